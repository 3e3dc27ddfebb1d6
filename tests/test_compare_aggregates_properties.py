"""Property tests of the per-task aggregates: each model counts once per task, minima are minimal, row order
does not matter, and a model the pairing names must be in the summary."""

from __future__ import annotations

import random

import polars as pl
import pytest
from compare_helpers import frame, row
from hypothesis import given, settings
from hypothesis import strategies as st
from jouleflow.analysis.compare.common import CompareError
from jouleflow.analysis.compare.memory_batch import compare_memory_batch
from jouleflow.analysis.compare.modality import compare_modality
from jouleflow.analysis.compare.spread import compare_spread
from jouleflow.analysis.compare.task_aggregates import compare_task_aggregates

energy = st.floats(min_value=1e-2, max_value=1e5, allow_nan=False, allow_infinity=False)
tokens = st.floats(min_value=1.0, max_value=1e4, allow_nan=False, allow_infinity=False)
# One measured configuration: (task, model, GPU type, GPU count, batch size) -> energies and tokens.
config_key = st.tuples(
    st.sampled_from(["lm-arena-chat", "gpqa", "image-chat"]),
    st.sampled_from(["org/A", "org/B", "org/C"]),
    st.sampled_from(["H100", "B200"]),
    st.sampled_from([1, 2, 4]),
    st.sampled_from([8, 64, 256]),
)
configs = st.dictionaries(config_key, st.tuples(energy, energy, tokens), min_size=1, max_size=30)


def build(cfgs: dict) -> pl.DataFrame:
    return frame(*(
        row(task=t, model=m, gpu=g, num_gpus=n, batch_size=b, energy_per_response_j=e, energy_per_token_j=j,
            mean_output_tokens=k)
        for (t, m, g, n, b), (e, j, k) in cfgs.items()
    ))  # fmt: skip


def shuffled(df: pl.DataFrame, seed: int) -> pl.DataFrame:
    order = list(range(df.height))
    random.Random(seed).shuffle(order)
    return df[order]


@settings(max_examples=100, deadline=None)
@given(configs)
def test_each_model_once_per_task_at_its_minimum(cfgs):
    result = compare_task_aggregates(build(cfgs))
    keys = [(m["task"], m["model"]) for m in result.minima]
    assert len(keys) == len(set(keys))
    assert set(keys) == {(t, m) for t, m, *_ in cfgs}
    for m in result.minima:
        assert m["energy_per_response_j"] == min(
            e for (t, mod, *_), (e, _, _) in cfgs.items() if (t, mod) == (m["task"], m["model"])
        )
    for t in result.tasks:
        assert t["models"] == len({mod for task, mod, *_ in cfgs if task == t["task"]})
    for r in result.ratios:
        assert r["models"] == len(r["model_ids"]) >= 1
        assert r["min_model_energy_ratio"] <= r["median_model_energy_ratio"] <= r["max_model_energy_ratio"]


@settings(max_examples=60, deadline=None)
@given(configs, st.integers(min_value=0, max_value=10**6))
def test_results_do_not_depend_on_row_order(cfgs, seed):
    df = build(cfgs)
    other = shuffled(df, seed)
    assert compare_task_aggregates(df).summary() == compare_task_aggregates(other).summary()
    assert compare_spread(df).summary() == compare_spread(other).summary()
    assert compare_memory_batch(df).summary() == compare_memory_batch(other).summary()
    pairs = {"org/A": "org/B", "org/C": "org/C"}
    try:
        expected = compare_modality(df, pairs).summary()
    except CompareError as exc:  # a model absent, or nothing comparable: the same either way
        with pytest.raises(type(exc), match="."):
            compare_modality(other, pairs)
        return
    assert compare_modality(other, pairs).summary() == expected


@settings(max_examples=60, deadline=None)
@given(configs)
def test_spread_bounds_and_memory_flags_are_consistent(cfgs):
    df = build(cfgs)
    for t in compare_spread(df).tasks:
        assert t["min_energy"] <= t["median_energy"] <= t["max_energy"]
        assert t["max_over_min"] >= 1.0
    for r in compare_memory_batch(df).rows():
        if r["more_gpus_lower_energy_by_batch"]:
            assert r["min_energy"] < r["fewer_min_energy"] and r["min_energy_batch"] > r["fewer_max_batch"]
            assert r["num_gpus"] > r["fewer_gpus"]


@settings(max_examples=40, deadline=None)
@given(configs, st.sampled_from(["org/Z", "other/VL"]))
def test_a_pairing_naming_an_absent_model_is_refused(cfgs, absent):
    with pytest.raises(CompareError, match=f"not in the summary: .*{absent}"):
        compare_modality(build(cfgs), {absent: "org/A"})
    with pytest.raises(CompareError, match=f"not in the summary: .*{absent}"):
        compare_modality(build(cfgs), {"org/A": absent})
