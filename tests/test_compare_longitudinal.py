"""compare longitudinal on hand-made summaries: pairing, aliases, the J/token decomposition, bad input."""

from __future__ import annotations

import math

import pytest
from compare_helpers import frame, row
from hypothesis import given, settings
from hypothesis import strategies as st
from jouleflow.analysis.compare.aliases import Aliases, load_aliases, parse_aliases
from jouleflow.analysis.compare.common import CompareError, NoComparablePairs
from jouleflow.analysis.compare.longitudinal import compare_longitudinal

OLD = {"task": "chat", "model": "org/Old-Name"}
NEW = {"task": "lm-arena-chat", "model": "org/New-Name"}
ALIASES = parse_aliases(
    {"tasks": {"chat": "lm-arena-chat"}, "models": {"org/Old-Name": "org/New-Name"}}, "test"
)


def side(ids, batch, energy, throughput, power, **kw):
    return row(
        **ids, batch_size=batch, energy_per_token_j=energy, tokens_per_s=throughput, mean_power_w=power, **kw
    )


def baseline():
    # J/token = power / throughput on every row: 200/1000, 300/2000, 250/1000.
    return frame(side(OLD, 64, 0.2, 1000.0, 200.0), side(OLD, 128, 0.15, 2000.0, 300.0),
                 side(OLD, 256, 0.25, 1000.0, 250.0))  # fmt: skip


def challenger():
    return frame(side(NEW, 32, 0.3, 1000.0, 300.0), side(NEW, 64, 0.1, 4000.0, 400.0),
                 side(NEW, 128, 0.12, 3000.0, 360.0))  # fmt: skip


def test_pairs_at_matched_batch_size_by_hand():
    result = compare_longitudinal(
        baseline(), challenger(), ALIASES, baseline_label="old", challenger_label="new"
    )
    rows = result.rows()
    assert [(r["task"], r["model"], r["batch_size"]) for r in rows] == [
        ("lm-arena-chat", "org/New-Name", 64),
        ("lm-arena-chat", "org/New-Name", 128),
    ]
    b64, b128 = rows
    # Batch 64: 0.2 -> 0.1 J/token (-50%) = power x2 (200 -> 400 W) / throughput x4 (1000 -> 4000 tok/s).
    assert b64["baseline_model_id"] == "org/Old-Name" and b64["challenger_model_id"] == "org/New-Name"
    assert b64["energy_change"] == pytest.approx(-0.5)
    assert (b64["power_ratio"], b64["throughput_ratio"]) == (pytest.approx(2.0), pytest.approx(4.0))
    assert b64["log_energy_ratio"] == pytest.approx(math.log(0.5))
    assert b64["log_power_ratio"] == pytest.approx(math.log(2.0))
    assert b64["log_throughput_ratio"] == pytest.approx(math.log(4.0))
    assert b64["log_residual"] == pytest.approx(0.0, abs=1e-12)
    # ln 0.5 = ln 2 - ln 4: power's share is -1 (it pushed energy up), throughput's +2.
    assert (b64["power_share"], b64["throughput_share"]) == (pytest.approx(-1.0), pytest.approx(2.0))
    assert b64["driver"] == "throughput"
    # Batch 128: 0.15 -> 0.12 (-20%) = power x1.2 / throughput x1.5.
    assert b128["energy_change"] == pytest.approx(-0.2)
    assert (b128["power_ratio"], b128["throughput_ratio"]) == (pytest.approx(1.2), pytest.approx(1.5))

    (group,) = result.groups()
    assert (group["total"], group["challenger_lower"]) == (2, 2)
    assert group["median_change"] == pytest.approx(-0.35)
    assert (group["min_change"], group["max_change"]) == (pytest.approx(-0.5), pytest.approx(-0.2))
    assert group["largest_reduction_batch_size"] == 64
    assert group["median_throughput_ratio"] == pytest.approx(2.75)
    assert result.unpaired == [
        {
            "task": "lm-arena-chat",
            "model": "org/New-Name",
            "gpu": "H100",
            "side": "baseline",
            "batch_sizes": [256],
        },
        {
            "task": "lm-arena-chat",
            "model": "org/New-Name",
            "gpu": "H100",
            "side": "challenger",
            "batch_sizes": [32],
        },
    ]
    text = result.markdown()
    assert "# new vs old at matched batch size" in text
    assert (
        "| org/New-Name | H100 | 64 | 1x tp1 bf16 | 1x tp1 bf16 | 0.2 | 0.1 | -50.0% | 4.00x | 2.00x |"
        in text
    )


def test_residual_carries_what_power_over_throughput_leaves_out():
    # The challenger's J/token (0.11) is 10% above its power / throughput (400/4000 = 0.1).
    result = compare_longitudinal(
        frame(side(OLD, 64, 0.2, 1000.0, 200.0)), frame(side(NEW, 64, 0.11, 4000.0, 400.0)), ALIASES
    )
    (r,) = result.rows()
    assert r["log_residual"] == pytest.approx(math.log(1.1))
    assert r["log_power_ratio"] - r["log_throughput_ratio"] + r["log_residual"] == pytest.approx(
        r["log_energy_ratio"]
    )


def test_repeats_are_averaged_first():
    rep = frame(side(NEW, 64, 0.1, 4000.0, 400.0), side(NEW, 64, 0.1, 4000.0, 400.0))
    (r,) = compare_longitudinal(frame(side(OLD, 64, 0.2, 1000.0, 200.0)), rep, ALIASES).rows()
    assert (r["baseline_runs"], r["challenger_runs"]) == (1, 2)


def test_without_aliases_the_first_key_in_nothing_in_common_is_named():
    with pytest.raises(
        NoComparablePairs, match=r"no task in common: baseline has chat; challenger has lm-arena-chat"
    ):
        compare_longitudinal(baseline(), challenger())
    models_only = parse_aliases({"tasks": {"chat": "lm-arena-chat"}}, "test")
    with pytest.raises(NoComparablePairs, match=r"no model in common within the shared \(task\)"):
        compare_longitudinal(baseline(), challenger(), models_only)


def test_no_common_batch_size_is_named():
    with pytest.raises(
        NoComparablePairs, match="no batch_size in common .*baseline has 256; challenger has 32"
    ):
        compare_longitudinal(
            frame(side(OLD, 256, 0.2, 1000.0, 200.0)), frame(side(NEW, 32, 0.1, 1.0, 0.1)), ALIASES
        )


def test_ignoring_precision_gpu_count_and_parallelism_pairs_an_fp8_sibling():
    fp8 = {"task": "lm-arena-chat", "model": "org/New-Name-FP8"}
    b = frame(side(OLD, 64, 0.4, 1000.0, 400.0, num_gpus=2, parallelism="tp2"))
    c = frame(side(fp8, 64, 0.1, 2000.0, 200.0, precision="fp8", num_gpus=1, parallelism="tp1"))
    with pytest.raises(NoComparablePairs, match="no model in common"):
        compare_longitudinal(b, c, ALIASES)
    (r,) = compare_longitudinal(b, c, ALIASES, ignore=["precision", "num_gpus", "parallelism"]).rows()
    assert r["model"] == "org/New-Name"
    assert (r["baseline_precision"], r["baseline_num_gpus"], r["baseline_parallelism"]) == ("bf16", 2, "tp2")
    assert (r["challenger_model_id"], r["challenger_precision"], r["challenger_num_gpus"]) == (
        "org/New-Name-FP8",
        "fp8",
        1,
    )
    assert r["energy_change"] == pytest.approx(-0.75)


def test_one_id_at_bf16_and_fp8_pairs_by_precision_unless_precision_is_ignored():
    # jouleflow's own sweeps: the FP8 run (online quantization) keeps the model id; precision says fp8.
    b = frame(side(NEW, 64, 0.2, 1000.0, 200.0), side(NEW, 64, 0.1, 2000.0, 200.0, precision="fp8"))
    c = frame(side(NEW, 64, 0.1, 2000.0, 200.0), side(NEW, 64, 0.08, 2500.0, 200.0, precision="fp8"))
    rows = compare_longitudinal(b, c, ALIASES).rows()
    # Each precision with itself: bf16 0.2 -> 0.1 (-50%), fp8 0.1 -> 0.08 (-20%); never bf16 with fp8.
    got = [(r["baseline_precision"], r["challenger_precision"], r["energy_change"]) for r in rows]
    assert got == [("bf16", "bf16", pytest.approx(-0.5)), ("fp8", "fp8", pytest.approx(-0.2))]
    # Ignored, a bf16-only baseline pairs with an fp8-only challenger of the same id: 0.2 -> 0.08 (-60%).
    (r,) = compare_longitudinal(b.head(1), c.tail(1), ALIASES, ignore=["precision"]).rows()
    assert (r["baseline_model_id"], r["challenger_model_id"]) == ("org/New-Name", "org/New-Name")
    assert (r["baseline_precision"], r["challenger_precision"]) == ("bf16", "fp8")
    assert r["energy_change"] == pytest.approx(-0.6)
    # Ignored with both precisions on both sides: every combination, in a fixed order.
    rows = compare_longitudinal(b, c, ALIASES, ignore=["precision"]).rows()
    assert [(r["baseline_precision"], r["challenger_precision"]) for r in rows] == [
        ("bf16", "bf16"), ("bf16", "fp8"), ("fp8", "bf16"), ("fp8", "fp8"),
    ]  # fmt: skip


def test_bad_ignore_key_and_unknown_names_are_refused():
    with pytest.raises(
        CompareError, match="cannot ignore batch_size; ignorable keys: num_gpus, precision, parallelism"
    ):
        compare_longitudinal(baseline(), challenger(), ALIASES, ignore=["batch_size"])
    with pytest.raises(
        CompareError, match=r"model\(s\) org/Nope in neither campaign .*present: org/New-Name"
    ):
        compare_longitudinal(baseline(), challenger(), ALIASES, models=["org/Nope"])


def test_missing_column_names_the_side():
    with pytest.raises(CompareError, match=r"longitudinal \(challenger\) needs column\(s\) mean_power_w"):
        compare_longitudinal(baseline(), challenger().drop("mean_power_w"), ALIASES)


def test_bundled_aliases_pair_mlenergy_v2_and_v3_names():
    aliases = load_aliases()
    assert aliases.canonical("tasks", "chat") == "lm-arena-chat"
    assert (
        aliases.canonical("models", "meta-llama/Meta-Llama-3.1-70B-Instruct")
        == "meta-llama/Llama-3.1-70B-Instruct"
    )
    assert aliases.canonical("tasks", "code") == "code"  # not the same workload as sourcegraph-fim


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (["chat"], "expected a mapping with sections tasks, models, gpus, got list"),
        ({"task": {"chat": "x"}}, r"unknown section\(s\) task; known: tasks, models, gpus"),
        ({"models": ["a", "b"]}, "section 'models' should map alias -> canonical name, got list"),
        ({"tasks": {"chat": 3}}, "tasks.chat: alias and canonical name must be non-empty strings"),
        ({"gpus": {"H100 SXM": "H100", "H100": "H200"}}, "gpus.H100 is both an alias and a canonical name"),
    ],
)
def test_bad_alias_shape_names_the_key(doc, message):
    with pytest.raises(CompareError, match=f"alias file my.yaml: {message}"):
        parse_aliases(doc, "my.yaml")


def test_alias_file_errors_name_the_file(tmp_path):
    with pytest.raises(CompareError, match="cannot read"):
        load_aliases(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: {chat: [\n")
    with pytest.raises(CompareError, match=f"alias file {bad}: not valid YAML"):
        load_aliases(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_aliases(empty) == Aliases(source=str(empty))


positive = st.floats(min_value=1e-2, max_value=1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([8, 64, 256]), positive, positive, positive, positive),
        min_size=1,
        max_size=6,
    )
)
def test_factors_multiply_back_to_the_energy_ratio(configs):
    # Each side's J/token is its power / throughput, as in ML.ENERGY's published data.
    configs = list({b: (b, pb, tb, pc, tc) for b, pb, tb, pc, tc in configs}.values())
    b = frame(*(side(OLD, bs, pb / tb, tb, pb) for bs, pb, tb, _, _ in configs))
    c = frame(*(side(NEW, bs, pc / tc, tc, pc) for bs, _, _, pc, tc in configs))
    rows = compare_longitudinal(b, c, ALIASES).rows()
    assert len(rows) == len(configs)
    for r in rows:
        assert r["power_ratio"] / r["throughput_ratio"] == pytest.approx(1.0 + r["energy_change"], rel=1e-9)
        assert r["log_residual"] == pytest.approx(0.0, abs=1e-9)
        assert r["log_power_ratio"] - r["log_throughput_ratio"] + r["log_residual"] == pytest.approx(
            r["log_energy_ratio"], abs=1e-12
        )
        if r["power_share"] is not None:
            assert r["power_share"] + r["throughput_share"] == pytest.approx(1.0, abs=1e-6)
