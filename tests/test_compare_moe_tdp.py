"""MoE vs dense and the TDP-estimate ratio, on hand-made summaries worked out by hand."""

from __future__ import annotations

import pytest
from compare_helpers import frame, row
from jouleflow.analysis.compare.common import CompareError, NoComparablePairs
from jouleflow.analysis.compare.moe import architecture_kind, compare_moe
from jouleflow.analysis.compare.tdp import compare_tdp, parse_tdp


def moe_frame():
    g = {"task": "gpqa", "gpu": "B200"}
    return frame(
        row(**g, model="org/A30B", architecture="moe", total_params_b=30.0, active_params_b=3.0, energy_per_token_j=0.1),
        row(**g, model="org/A30B", architecture="moe", total_params_b=30.0, active_params_b=3.0, num_gpus=2,
            energy_per_token_j=0.08),
        row(**g, model="org/D32", architecture="dense", total_params_b=32.0, energy_per_token_j=0.3),
        row(**g, model="org/D8", architecture="dense", total_params_b=8.0, energy_per_token_j=0.05),  # too small
        row(**g, model="org/H30", architecture="Mamba-Transformer Hybrid", total_params_b=30.0, energy_per_token_j=0.01),
        row(task="gpqa", gpu="H100", model="org/D32", architecture="dense", total_params_b=32.0),  # no MoE on H100
    )  # fmt: skip


def test_moe_pairs_by_hand():
    result = compare_moe(moe_frame())
    assert len(result.pairs) == 1
    pair = result.rows()[0]
    assert (pair["moe_model"], pair["dense_model"]) == ("org/A30B", "org/D32")
    assert pair["moe_energy"] == 0.08  # the MoE model's best over GPU counts (2 GPUs)
    assert pair["change"] == pytest.approx(0.08 / 0.3 - 1)
    assert pair["dense_over_moe"] == pytest.approx(3.75)
    summary = result.summary()
    assert (summary["wins_moe"], summary["total"]) == (1, 1)


def test_moe_fixed_gpu_count():
    pair = compare_moe(moe_frame(), num_gpus=1).rows()[0]
    assert pair["dense_over_moe"] == pytest.approx(3.0)


def test_moe_tolerance_is_respected():
    with pytest.raises(NoComparablePairs, match="within 5%"):
        compare_moe(moe_frame(), tolerance=0.05)  # 32/30 - 1 = 6.7%


def test_moe_needs_both_kinds():
    with pytest.raises(NoComparablePairs, match="no moe model"):
        compare_moe(moe_frame().filter(moe_frame()["architecture"] != "moe"))


def test_architecture_kinds():
    assert architecture_kind("MoE") == "moe"
    assert architecture_kind("Dense Transformer") == "dense"
    assert architecture_kind("Mamba-Transformer Hybrid") is None
    assert architecture_kind(None) is None


def tdp_frame():
    return frame(
        # LLM on 1x H100 (700 W built in): 1000 tokens at 2000 tok/s = 0.5 s -> 350 J estimated vs 200 J
        row(model="org/L", gpu="H100", energy_per_response_j=200.0, mean_output_tokens=1000.0, tokens_per_s=2000.0),
        # same model on 2x H100: 0.25 s -> 700 x 2 x 0.25 = 350 J vs 150 J; the least energy, so the one reported
        row(model="org/L", gpu="H100", num_gpus=2, energy_per_response_j=150.0, mean_output_tokens=1000.0,
            tokens_per_s=4000.0),
        # diffusion on 1x B200 (1000 W): batch of 4 in 8 s -> 2 s each -> 2000 J vs 1000 J
        row(task="t2i", model="org/D", gpu="B200", modality="diffusion", batch_size=4, batch_latency_s=8.0,
            energy_per_response_j=1000.0, mean_output_tokens=None, tokens_per_s=None),
        # a GPU type with its TDP in the summary
        row(task="t2i", model="org/D", gpu="X9", gpu_tdp_w=300.0, modality="diffusion", batch_size=1,
            batch_latency_s=1.0, energy_per_response_j=100.0),
    )  # fmt: skip


def test_tdp_ratios_by_hand():
    result = compare_tdp(tdp_frame())
    best = {(r["task"], r["gpu"]): r for r in result.rows_best}
    assert best[("chat", "H100")]["num_gpus"] == 2
    assert best[("chat", "H100")]["estimate_j"] == pytest.approx(350.0)
    assert best[("chat", "H100")]["ratio"] == pytest.approx(350 / 150)
    assert best[("t2i", "B200")]["ratio"] == pytest.approx(2.0)
    assert best[("t2i", "X9")]["ratio"] == pytest.approx(3.0)
    assert best[("t2i", "X9")]["tdp_source"] == "summary"
    every = result.summary()["all_configurations"]
    assert every["total"] == 4
    assert every["max_ratio"] == pytest.approx(3.0)
    assert every["min_ratio"] == pytest.approx(1.75)


def test_tdp_override_wins():
    result = compare_tdp(tdp_frame(), parse_tdp("H100=350, X9=600"))
    best = {(r["task"], r["gpu"]): r for r in result.rows_best}
    assert best[("chat", "H100")]["ratio"] == pytest.approx(175 / 150)
    assert best[("t2i", "X9")]["tdp_source"] == "override"


def test_tdp_unknown_gpu_is_named():
    df = frame(row(gpu="Z1"))
    with pytest.raises(CompareError, match="no TDP known for GPU type.*Z1.*--tdp Z1=WATTS"):
        compare_tdp(df)


@pytest.mark.parametrize("text, message", [("H100", "'H100' is not GPU=WATTS"), ("H100=lots", "'lots'"),
                                           ("H100=0", "positive")])  # fmt: skip
def test_parse_tdp_errors(text, message):
    with pytest.raises(CompareError, match=message):
        parse_tdp(text)
