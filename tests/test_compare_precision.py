"""FP8 vs BF16 by batch bucket, on a hand-made summary with answers worked out by hand."""

from __future__ import annotations

import pytest
from compare_helpers import frame, row
from jouleflow.analysis.compare.common import CompareError, NoComparablePairs
from jouleflow.analysis.compare.precision import Bucket, compare_precision, pair_fp8_bf16, parse_buckets

BUCKETS = [Bucket(8, 16), Bucket(17, 64), Bucket(65, 256)]


def pair(batch, fp8, bf16, **kw):
    return [
        row(model="org/Big-FP8", precision="fp8", batch_size=batch, energy_per_token_j=fp8, **kw),
        row(model="org/Big", precision="bf16", batch_size=batch, energy_per_token_j=bf16, **kw),
    ]


def hand_made():
    rows = [
        *pair(4, 1.2, 1.0),  # below every bucket
        *pair(8, 1.5, 1.0),  # +0.5  (8 is in 8-16: inclusive)
        *pair(16, 1.1, 1.0),  # +0.1 (16 is in 8-16)
        *pair(17, 0.9, 1.0),  # -0.1 (17 is in 17-64)
        *pair(32, 0.8, 1.0),  # -0.2
        *pair(64, 1.0, 1.0),  # 0.0: a tie, not a win
        *pair(65, 0.7, 1.0),  # -0.3
        row(model="org/Big-FP8", precision="fp8", batch_size=256, energy_per_token_j=0.95),
        row(model="org/Big", precision="bf16", batch_size=256, energy_per_token_j=0.9),  # repeated run:
        row(model="org/Big", precision="bf16", batch_size=256, energy_per_token_j=1.1),  # mean 1.0 -> -0.05
        *pair(512, 0.5, 1.0),  # above every bucket
        # Not pairs: FP8 alone, other parallelism, other GPU type, a sibling that is not BF16.
        row(model="org/Big-FP8", precision="fp8", batch_size=128, energy_per_token_j=0.1),
        row(model="org/Big", precision="bf16", batch_size=32, parallelism="tp2", energy_per_token_j=9.0),
        row(model="org/Big-FP8", precision="fp8", batch_size=32, gpu="B200", energy_per_token_j=9.0),
        row(model="org/Half-FP8", precision="fp8", batch_size=32, energy_per_token_j=0.1),
        row(model="org/Half", precision="fp16", batch_size=32, energy_per_token_j=9.0),
    ]
    return frame(*rows)


def test_buckets_by_hand():
    result = compare_precision(hand_made(), BUCKETS, metric="energy_per_token")
    stats = {b.label: s for b, s in result.bucket_stats()}
    assert (stats["8-16"].wins, stats["8-16"].total) == (0, 2)
    assert stats["8-16"].median == pytest.approx(0.3)  # even count: mean of +0.5 and +0.1
    assert (stats["8-16"].min, stats["8-16"].max) == (pytest.approx(0.1), pytest.approx(0.5))
    assert (stats["17-64"].wins, stats["17-64"].total) == (2, 3)  # the tie at 64 is not a win
    assert stats["17-64"].median == pytest.approx(-0.1)  # odd count: the middle value
    assert (stats["17-64"].min, stats["17-64"].max) == (pytest.approx(-0.2), pytest.approx(0.0))
    assert (stats["65-256"].wins, stats["65-256"].total) == (2, 2)
    assert stats["65-256"].median == pytest.approx(-0.175)
    assert result.outside == 2  # batch 4 and 512


def test_json_shape():
    summary = compare_precision(hand_made(), BUCKETS).summary()
    assert [b["range"] for b in summary["buckets"]] == ["8-16", "17-64", "65-256"]
    for bucket in summary["buckets"]:
        assert {"range", "wins", "total", "median_change", "min_change", "max_change"} <= set(bucket)
    assert summary["buckets"][2]["pairs"][1]["bf16"] == pytest.approx(1.0)  # the averaged repeat


def test_only_true_siblings_pair():
    pairs = pair_fp8_bf16(hand_made(), "energy_per_token_j")
    assert sorted(p.batch_size for p in pairs) == [4, 8, 16, 17, 32, 64, 65, 256, 512]
    assert {p.model for p in pairs} == {"org/Big"}
    assert {(p.gpu, p.parallelism) for p in pairs} == {("H100", "tp1")}


def test_latency_metric():
    df = frame(
        row(model="org/Big-FP8", precision="fp8", batch_size=8, median_itl_s=0.03),
        row(model="org/Big", precision="bf16", batch_size=8, median_itl_s=0.02),
    )
    result = compare_precision(df, [Bucket(8, 16)], metric="median_itl")
    assert result.metric_column == "median_itl_s"
    assert result.pairs[0].change == pytest.approx(0.5)


def test_exclusions_and_min_batch():
    result = compare_precision(hand_made(), BUCKETS, min_batch=16)
    assert dict((b.label, s.total) for b, s in result.bucket_stats())["8-16"] == 1
    with pytest.raises(NoComparablePairs, match="org/Big-FP8, org/Half-FP8 have no BF16 sibling"):
        compare_precision(hand_made(), BUCKETS, exclude_models=["org/Big"])


def test_no_fp8_model_says_so():
    with pytest.raises(NoComparablePairs, match="no model whose id ends in -FP8"):
        compare_precision(frame(row()), BUCKETS)


def test_pairs_outside_every_bucket_say_so():
    with pytest.raises(NoComparablePairs, match="batch sizes 4, 512"):
        compare_precision(frame(*pair(4, 1.0, 1.0), *pair(512, 1.0, 1.0)), BUCKETS)


def test_missing_column_is_named():
    with pytest.raises(CompareError, match="needs column.*energy_per_token_j"):
        compare_precision(hand_made().drop("energy_per_token_j"), BUCKETS)


def test_parse_buckets():
    assert parse_buckets("8-16, 17-64,65-256") == BUCKETS
    for text, message in [("8-16,16-64", "overlap"), ("8to16", "'8to16'"), ("16-8", "'16-8'"), ("", "''")]:
        with pytest.raises(CompareError, match=message):
            parse_buckets(text)
