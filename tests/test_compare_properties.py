"""Property tests: a minimum-energy choice never violates its deadline and is truly minimal; counts add up."""

from __future__ import annotations

import statistics

from compare_helpers import frame, row
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jouleflow.analysis.compare.common import NoComparablePairs, change_stats
from jouleflow.analysis.compare.gpus import compare_gpus
from jouleflow.analysis.compare.precision import Bucket, compare_precision
from jouleflow.analysis.compare.scaling import compare_scaling

positive = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)
latency = st.floats(min_value=1e-3, max_value=1.0, allow_nan=False, allow_infinity=False)
config = st.tuples(
    st.sampled_from(["H100", "B200"]),
    st.sampled_from(["org/A", "org/B"]),
    st.sampled_from([1, 2, 4]),
    st.sampled_from([8, 16, 64, 256]),
    latency,
    positive,
)


def build(configs):
    return frame(*(
        row(gpu=g, model=m, num_gpus=n, batch_size=b, median_itl_s=lat, energy_per_response_j=e)
        for g, m, n, b, lat, e in configs
    ))  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(config, min_size=1, max_size=25), st.lists(latency, min_size=1, max_size=4))
def test_choices_meet_their_deadline_and_are_minimal(configs, deadlines):
    assume({c[0] for c in configs} == {"H100", "B200"})  # both GPU types present (else: a usage error)
    df = build(configs)
    try:
        result = compare_gpus(df, "H100", "B200", deadlines)
    except NoComparablePairs:
        # then no model has, for any deadline, a feasible config on both GPU types
        for model in ("org/A", "org/B"):
            for d in deadlines:
                feasible = {g for g, m, _, _, lat, _ in configs if m == model and lat <= d}
                assert feasible != {"H100", "B200"}
        return
    for comp in result.comparisons:
        for choice in (comp.a, comp.b):
            assert choice.latency <= comp.deadline_s
            feasible = [
                e
                for g, m, _, _, lat, e in configs
                if g == choice.gpu and m == comp.model and lat <= comp.deadline_s
            ]
            assert choice.energy == min(feasible)
    stats = result.summary()
    assert 0 <= stats["wins_b"] <= stats["total"] == len(result.comparisons)
    assert stats["min_change"] <= stats["median_change"] <= stats["max_change"]


@given(st.lists(st.floats(min_value=-0.99, max_value=10, allow_nan=False), max_size=40))
def test_change_stats_invariants(changes):
    stats = change_stats(changes)
    assert 0 <= stats.wins <= stats.total == len(changes)
    if changes:
        assert stats.min <= stats.median <= stats.max
        assert stats.median == statistics.median(changes)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 400), positive, positive), min_size=1, max_size=30, unique_by=lambda t: t[0]
    )
)
def test_every_pair_lands_in_at_most_one_inclusive_bucket(batches):
    rows = []
    for b, fp8, bf16 in batches:
        rows.append(row(model="org/M-FP8", precision="fp8", batch_size=b, energy_per_token_j=fp8))
        rows.append(row(model="org/M", precision="bf16", batch_size=b, energy_per_token_j=bf16))
    buckets = [Bucket(8, 16), Bucket(17, 64), Bucket(65, 256)]
    try:
        result = compare_precision(frame(*rows), buckets)
    except NoComparablePairs:
        assert all(not (8 <= b <= 256) for b, _, _ in batches)
        return
    totals = {b.label: s.total for b, s in result.bucket_stats()}
    assert sum(totals.values()) + result.outside == len(batches)
    assert totals["8-16"] == sum(1 for b, _, _ in batches if 8 <= b <= 16)
    assert totals["65-256"] == sum(1 for b, _, _ in batches if 65 <= b <= 256)
    for _, s in result.bucket_stats():
        assert s.wins <= s.total


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2, 4, 8]), positive, latency), min_size=1, max_size=8,
                unique_by=lambda t: t[0]))  # fmt: skip
def test_scaling_counts_every_fewer_more_pair(counts):
    df = frame(*(row(num_gpus=n, energy_per_response_j=e, median_itl_s=lat) for n, e, lat in counts))
    n = len(counts)
    try:
        result = compare_scaling(df)
    except NoComparablePairs:
        assert n == 1
        return
    assert len(result.cases) == n * (n - 1) // 2
    tally = result.summary()["all"]
    assert tally["energy_rises"] <= tally["cases"] and tally["latency_falls"] <= tally["cases"]
    for case in result.cases:
        assert case.fewer_gpus < case.more_gpus
