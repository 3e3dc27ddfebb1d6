"""FP8 vs BF16 by batch bucket, on a hand-made summary with answers worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from compare_helpers import frame, row
from jouleflow.analysis.compare.common import CompareError, NoComparablePairs
from jouleflow.analysis.compare.precision import Bucket, compare_precision, pair_fp8_bf16, parse_buckets
from jouleflow.plan.config import validate_config
from jouleflow.plan.grid import build_grid
from jouleflow.runkey import model_slug

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema" / "config.schema.yaml"

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
    with pytest.raises(
        NoComparablePairs, match="no model whose id ends in -FP8 and no row whose precision is FP8"
    ):
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


# jouleflow's own campaigns: `precisions: [bf16, fp8]` measures one model id twice, and only the
# precision column tells the FP8 run (vLLM online quantization) from the BF16 one.
OWN = "meta-llama/Llama-3.1-8B-Instruct"


def own_campaign():
    return frame(
        row(model=OWN, precision="fp8", batch_size=16, energy_per_token_j=0.09),
        row(model=OWN, precision="bf16", batch_size=16, energy_per_token_j=0.12),  # 0.09/0.12 - 1 = -0.25
        row(model=OWN, precision="fp8", batch_size=64, energy_per_token_j=0.06),
        row(model=OWN, precision="bf16", batch_size=64, energy_per_token_j=0.05),  # 0.06/0.05 - 1 = +0.2
        # Not pairs: FP8 on another GPU type, BF16 at a batch size without FP8.
        row(model=OWN, precision="fp8", batch_size=64, gpu="B200", energy_per_token_j=0.01),
        row(model=OWN, precision="bf16", batch_size=128, energy_per_token_j=0.04),
        # An ML.ENERGY-style FP8 checkpoint in the same summary still pairs by its id.
        row(model="org/Big-FP8", precision="fp8", batch_size=16, energy_per_token_j=0.3),
        row(model="org/Big", precision="bf16", batch_size=16, energy_per_token_j=0.2),  # +0.5
    )


def test_same_id_at_fp8_pairs_with_its_bf16_row():
    pairs = pair_fp8_bf16(own_campaign(), "energy_per_token_j")
    got = [(p.model, p.fp8_model, p.gpu, p.batch_size, p.fp8, p.bf16) for p in pairs]
    assert got == [
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct@fp8", "H100", 16, 0.09, 0.12),
        ("org/Big", "org/Big-FP8", "H100", 16, 0.3, 0.2),
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct@fp8", "H100", 64, 0.06, 0.05),
    ]
    assert [p.change for p in pairs] == [pytest.approx(-0.25), pytest.approx(0.5), pytest.approx(0.2)]
    result = compare_precision(own_campaign(), BUCKETS)
    stats = {b.label: s for b, s in result.bucket_stats()}
    assert (stats["8-16"].wins, stats["8-16"].total) == (1, 2)  # -0.25 wins, +0.5 does not
    assert (stats["17-64"].wins, stats["17-64"].total) == (0, 1)
    assert "| meta-llama/Llama-3.1-8B-Instruct@fp8 |" in result.markdown()


@pytest.mark.parametrize("spelling", ["FP8", "float8", "fp8_e4m3"])
def test_other_fp8_spellings_pair_and_label_as_written(spelling):
    df = frame(
        row(model="org/M", precision=spelling, batch_size=32, energy_per_token_j=0.3),
        row(model="org/M", precision="bfloat16", batch_size=32, energy_per_token_j=0.4),
    )
    (p,) = pair_fp8_bf16(df, "energy_per_token_j")
    assert (p.model, p.fp8_model, p.change) == ("org/M", f"org/M@{spelling}", pytest.approx(-0.25))


def test_a_row_fitting_both_rules_pairs_once_by_its_id():
    # org/Big-FP8 at precision fp8 has a sibling by id (org/Big) and by precision (org/Big-FP8 at bf16).
    df = frame(
        row(model="org/Big-FP8", precision="fp8", batch_size=32, energy_per_token_j=0.8),
        row(model="org/Big", precision="bf16", batch_size=32, energy_per_token_j=1.0),
        row(model="org/Big-FP8", precision="bf16", batch_size=32, energy_per_token_j=0.5),
    )
    got = sorted((p.fp8_model, p.model, p.fp8, p.bf16) for p in pair_fp8_bf16(df, "energy_per_token_j"))
    # The id rule as before (it ignores the row's precision: ML.ENERGY v2 labels every LLM run bf16);
    # the fp8 row is not also paired with org/Big-FP8 at bf16 (0.8 vs 0.5).
    assert got == [("org/Big-FP8", "org/Big", 0.5, 1.0), ("org/Big-FP8", "org/Big", 0.8, 1.0)]
    # Without org/Big, the fp8 row falls back to its own id at bf16.
    (p,) = pair_fp8_bf16(df.filter(df["model"] == "org/Big-FP8"), "energy_per_token_j")
    assert (p.fp8_model, p.model, p.fp8, p.bf16) == ("org/Big-FP8@fp8", "org/Big-FP8", 0.8, 0.5)


def test_bf16_only_campaign_has_no_pairs():
    df = frame(*(row(model=OWN, precision="bf16", batch_size=b) for b in (8, 16, 64)))
    with pytest.raises(
        NoComparablePairs, match="no model whose id ends in -FP8 and no row whose precision is FP8"
    ):
        compare_precision(df, BUCKETS)


def test_unpaired_fp8_rows_are_named_with_their_precision():
    df = frame(
        row(model=OWN, precision="fp8", batch_size=16, gpu="B200"),
        row(model=OWN, precision="bf16", batch_size=16, gpu="H100"),
    )
    with pytest.raises(
        NoComparablePairs, match=r"FP8 models meta-llama/Llama-3\.1-8B-Instruct@fp8 have no BF16"
    ):
        compare_precision(df, BUCKETS)


def test_planned_bf16_and_fp8_runs_pair_under_the_run_keys_name():
    """The rows' model and precision as the planner's job specs give them (and the run records, and
    so the summary, carry them): one id, precision bf16 or fp8; the FP8 label is the run key's."""
    config = {
        "source": "measure",
        "gpus": {"H100": {"memory_gb": 80, "tdp_w": 700, "per_node": 8}},
        "models": {"org/small": {"total_params_b": 8, "precision": "bf16"}},
        "tasks": {"chat": {"request_set": {"kind": "synthetic", "fixed_output_len": 128}}},
        "sweeps": [
            {"models": ["org/small"], "tasks": ["chat"], "gpus": ["H100"], "parallelism": ["tp1"],
             "batch_sizes": [8], "precisions": ["bf16", "fp8"]}
        ],
    }  # fmt: skip
    grid = build_grid(validate_config(config, SCHEMA))
    energy = {"bf16": 0.2, "fp8": 0.15}  # 0.15/0.2 - 1 = -0.25
    rows = []
    for point in grid.points:
        spec = grid.spec(point)
        fields = {k: spec[k] for k in ("task", "model", "precision", "gpu", "num_gpus", "batch_size")}
        rows.append(
            row(**fields, parallelism=point.parallelism.label, energy_per_token_j=energy[spec["precision"]])
        )
    assert sorted((r["model"], r["precision"]) for r in rows) == [("org/small", "bf16"), ("org/small", "fp8")]
    (p,) = pair_fp8_bf16(frame(*rows), "energy_per_token_j")
    assert (p.model, p.fp8_model, p.change) == ("org/small", "org/small@fp8", pytest.approx(-0.25))
    fp8_point = next(pt for pt in grid.points if pt.precision == "fp8")
    assert model_slug(p.fp8_model) == fp8_point.model_slug == "org--small@fp8"
