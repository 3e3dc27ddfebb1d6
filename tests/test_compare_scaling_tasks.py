"""Multi-GPU scaling and one model across tasks, on hand-made summaries worked out by hand."""

from __future__ import annotations

import pytest
from compare_helpers import frame, row
from jouleflow.analysis.compare.common import CompareError, NoComparablePairs
from jouleflow.analysis.compare.scaling import compare_scaling
from jouleflow.analysis.compare.tasks import compare_tasks


def scaling_frame():
    return frame(
        # H100, batch 64: 1 GPU measured twice (90 J, 110 J -> 100 J), 2 GPUs 120 J, 4 GPUs 110 J
        row(gpu="H100", num_gpus=1, energy_per_response_j=90.0, median_itl_s=0.05),
        row(gpu="H100", num_gpus=1, energy_per_response_j=110.0, median_itl_s=0.05),
        row(gpu="H100", num_gpus=2, parallelism="tp2", energy_per_response_j=120.0, median_itl_s=0.03),
        row(gpu="H100", num_gpus=4, parallelism="tp4", energy_per_response_j=110.0, median_itl_s=0.04),
        # B200, batch 64: a tie on both metrics
        row(gpu="B200", num_gpus=1, energy_per_response_j=100.0, median_itl_s=0.05),
        row(gpu="B200", num_gpus=2, parallelism="tp2", energy_per_response_j=100.0, median_itl_s=0.05),
        # no partner: another batch size, another task, another precision
        row(gpu="H100", num_gpus=2, batch_size=128, energy_per_response_j=1.0),
        row(gpu="H100", num_gpus=8, task="gpqa", energy_per_response_j=1.0),
        row(gpu="H100", num_gpus=8, precision="fp8", energy_per_response_j=1.0),
    )


def test_scaling_cases_by_hand():
    result = compare_scaling(scaling_frame())
    by_gpu = {t["gpu"]: t for t in result.by_gpu()}
    # H100 cases: 1->2 (rises, falls), 1->4 (110 > 100 rises; 0.04 < 0.05 falls), 2->4 (neither)
    assert (by_gpu["H100"]["cases"], by_gpu["H100"]["energy_rises"], by_gpu["H100"]["latency_falls"]) == (
        3,
        2,
        2,
    )
    assert by_gpu["H100"]["energy_rises_share"] == pytest.approx(2 / 3)
    # B200: one case, a tie on both: neither rises nor falls
    assert (by_gpu["B200"]["cases"], by_gpu["B200"]["energy_rises"], by_gpu["B200"]["latency_falls"]) == (
        1,
        0,
        0,
    )
    summary = result.summary()
    assert (summary["all"]["cases"], summary["all"]["energy_rises"], summary["all"]["latency_falls"]) == (
        4,
        2,
        2,
    )
    one_to_two = next(c for c in result.cases if c.gpu == "H100" and (c.fewer_gpus, c.more_gpus) == (1, 2))
    assert one_to_two.fewer_energy == pytest.approx(100.0)  # the repeated run was averaged


def test_scaling_without_two_counts_says_so():
    with pytest.raises(NoComparablePairs, match="two GPU counts"):
        compare_scaling(frame(row(num_gpus=1), row(num_gpus=2, batch_size=128)))


def test_scaling_missing_column_is_named():
    with pytest.raises(CompareError, match="needs column.*num_gpus"):
        compare_scaling(scaling_frame().drop("num_gpus"))


def tasks_frame():
    m = {"model": "org/M", "gpu": "H100"}
    return frame(
        row(**m, task="chat", batch_size=64, energy_per_token_j=0.2, energy_per_response_j=100.0, mean_output_tokens=500.0),
        row(**m, task="chat", batch_size=256, energy_per_token_j=0.1, energy_per_response_j=60.0, mean_output_tokens=600.0),
        row(**m, task="gpqa", batch_size=64, energy_per_token_j=0.4, energy_per_response_j=2000.0,
            mean_output_tokens=5000.0),
        row(**m, task="gpqa", batch_size=128, energy_per_token_j=0.3, energy_per_response_j=1800.0,
            mean_output_tokens=6000.0),
        row(model="org/M", gpu="B200", task="chat"),  # one task only on B200: no comparison there
        row(model="org/Other", task="gpqa"),
    )  # fmt: skip


def test_tasks_by_hand():
    result = compare_tasks(tasks_frame(), "org/M")
    assert [(g.gpu, g.num_gpus) for g in result.groups] == [("H100", 1)]
    group = result.groups[0]
    assert group.shared_batch == 64  # largest batch both tasks have
    assert group.reference == "chat"  # least J/response
    chat, gpqa = group.rows
    assert (chat["max_batch"], chat["output_tokens"], chat["jpt_shared"], chat["jpt_max"], chat["jpr"]) == (
        256, 600.0, 0.2, 0.1, 60.0)  # fmt: skip
    assert (gpqa["max_batch"], gpqa["output_tokens"], gpqa["jpt_shared"], gpqa["jpt_max"], gpqa["jpr"]) == (
        128, 6000.0, 0.4, 0.3, 1800.0)  # fmt: skip
    assert gpqa["max_batch_ratio"] == pytest.approx(0.5)
    assert gpqa["output_tokens_ratio"] == pytest.approx(10.0)
    assert gpqa["jpt_shared_ratio"] == pytest.approx(2.0)
    assert gpqa["jpt_max_ratio"] == pytest.approx(3.0)
    assert gpqa["jpr_ratio"] == pytest.approx(30.0)


def test_tasks_reference_can_be_chosen():
    chat, gpqa = compare_tasks(tasks_frame(), "org/M", reference="gpqa").groups[0].rows
    assert gpqa["jpr_ratio"] == 1.0
    assert chat["jpr_ratio"] == pytest.approx(60 / 1800)


def test_tasks_unknown_model_lists_models():
    with pytest.raises(CompareError, match=r"model 'org/X' not in the summary; present: org/M, org/Other"):
        compare_tasks(tasks_frame(), "org/X")


def test_tasks_single_task_says_so():
    with pytest.raises(NoComparablePairs, match="two or more tasks"):
        compare_tasks(tasks_frame(), "org/M", gpu="B200")
