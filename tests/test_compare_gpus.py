"""GPU generations at matched latency, on a hand-made summary with answers worked out by hand."""

from __future__ import annotations

import pytest
from compare_helpers import frame, row
from jouleflow.analysis.compare.common import CompareError, NoComparablePairs
from jouleflow.analysis.compare.gpus import compare_gpus, min_energy_under_deadline


def hand_made():
    m = {"task": "chat", "model": "org/M", "precision": "bf16"}
    return frame(
        # H100: 20 ms / 200 J, 60 ms / 120 J, 90 ms / 100 J (2 GPUs)
        row(**m, gpu="H100", batch_size=8, median_itl_s=0.020, energy_per_response_j=200.0),
        row(**m, gpu="H100", batch_size=64, median_itl_s=0.060, energy_per_response_j=120.0),
        row(**m, gpu="H100", num_gpus=2, batch_size=128, parallelism="tp2", median_itl_s=0.090,
            energy_per_response_j=100.0),
        # B200: exactly 50 ms / 150 J (the bound is inclusive); two configs tie at 100 J, the faster wins
        row(**m, gpu="B200", batch_size=64, median_itl_s=0.050, energy_per_response_j=150.0),
        row(**m, gpu="B200", batch_size=256, median_itl_s=0.080, energy_per_response_j=100.0),
        row(**m, gpu="B200", num_gpus=2, batch_size=256, parallelism="tp2", median_itl_s=0.070,
            energy_per_response_j=100.0),
        # Same model id but FP8 weights: a different group, and only on B200, so never compared.
        row(task="chat", model="org/M", precision="fp8", gpu="B200", median_itl_s=0.010, energy_per_response_j=1.0),
        # Another task only on B200: no comparison.
        row(task="gpqa", model="org/M", gpu="B200", median_itl_s=0.010, energy_per_response_j=1.0),
    )  # fmt: skip


def test_min_energy_choice_per_deadline_by_hand():
    result = compare_gpus(hand_made(), "H100", "B200", [0.030, 0.050, 0.100], latency="median_itl")
    got = {round(c.deadline_s * 1000): c for c in result.comparisons}
    assert sorted(got) == [50, 100]
    # 50 ms: H100 only its 20 ms config (200 J); B200 its 50 ms config (150 J): 150/200 - 1 = -0.25
    assert got[50].a.energy == 200.0 and got[50].b.energy == 150.0
    assert got[50].change == pytest.approx(-0.25)
    # 100 ms: H100 2 GPUs (100 J); B200 tie at 100 J broken by latency -> 2 GPUs at 70 ms; change 0
    assert (got[100].a.num_gpus, got[100].a.energy) == (2, 100.0)
    assert (got[100].b.num_gpus, got[100].b.latency) == (2, 0.070)
    assert got[100].change == 0.0
    # 30 ms: only H100 meets it
    assert result.unmatched == [("chat", "org/M", "bf16", 0.030, "deadline met only on H100")]


def test_wins_and_spread_by_hand():
    summary = compare_gpus(hand_made(), "H100", "B200", [0.030, 0.050, 0.100]).summary()
    assert summary["wins_b"] == 1  # the tie at 100 ms is not a win
    assert summary["total"] == 2
    assert summary["median_change"] == pytest.approx(-0.125)  # mean of -0.25 and 0
    assert summary["min_change"] == pytest.approx(-0.25)
    assert summary["max_change"] == 0.0
    assert len(summary["comparisons"]) == 2
    by_deadline = {round(d["deadline_s"] * 1000): d for d in summary["by_deadline"]}
    assert by_deadline[30]["total"] == 0 and by_deadline[30]["median_change"] is None
    assert by_deadline[50]["wins_b"] == 1


def test_swapping_a_and_b_inverts_the_ratio():
    forward = compare_gpus(hand_made(), "H100", "B200", [0.050]).comparisons[0]
    backward = compare_gpus(hand_made(), "B200", "H100", [0.050]).comparisons[0]
    assert (1 + forward.change) * (1 + backward.change) == pytest.approx(1.0)


def test_energy_per_token_is_selectable():
    df = hand_made().with_columns(energy_per_token_j=2 * hand_made()["energy_per_response_j"])
    result = compare_gpus(df, "H100", "B200", [0.050], energy="energy_per_token")
    assert result.energy_column == "energy_per_token_j"
    assert result.comparisons[0].a.energy == 400.0


def test_task_filter():
    with pytest.raises(NoComparablePairs):
        compare_gpus(hand_made(), "H100", "B200", [0.050], tasks=["gpqa"])
    with pytest.raises(CompareError, match="task.*video.*present: chat, gpqa"):
        compare_gpus(hand_made(), "H100", "B200", [0.050], tasks=["video"])


def test_unknown_gpu_type_lists_the_present_ones():
    with pytest.raises(CompareError, match=r"GPU type\(s\) A100 not in the summary; present: B200, H100"):
        compare_gpus(hand_made(), "A100", "B200", [0.050])


def test_missing_column_is_named():
    with pytest.raises(CompareError, match="needs column.*median_itl_s"):
        compare_gpus(hand_made().drop("median_itl_s"), "H100", "B200", [0.050])


def test_no_deadline_met_on_both_says_so():
    with pytest.raises(NoComparablePairs, match="none meets any deadline"):
        compare_gpus(hand_made(), "H100", "B200", [0.001, 0.030])


def test_no_model_on_both_gpus_says_so():
    df = hand_made().filter(~((hand_made()["gpu"] == "B200") & (hand_made()["precision"] == "bf16")))
    df = df.vstack(frame(row(model="org/Other", gpu="B200")))
    with pytest.raises(NoComparablePairs, match="on both H100 and B200"):
        compare_gpus(df, "H100", "B200", [0.050])


def test_min_energy_under_deadline_returns_none_when_nothing_meets_it():
    rows = hand_made().to_dicts()
    assert min_energy_under_deadline(rows, "median_itl_s", "energy_per_response_j", 0.005) is None
