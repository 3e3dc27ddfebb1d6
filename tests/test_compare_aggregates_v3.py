"""The per-task aggregate analyses on ML.ENERGY's published v3 results (resources/mlenergy-v3, imported by
`jouleflow import mlenergy`'s importer), against the v3.0 blog post's numbers where it gives them."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml
from jouleflow.analysis.compare.memory_batch import compare_memory_batch
from jouleflow.analysis.compare.modality import compare_modality
from jouleflow.analysis.compare.spread import compare_spread
from jouleflow.analysis.compare.task_aggregates import compare_task_aggregates

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def v3():
    from jouleflow.importers.mlenergy import import_mlenergy

    df = pl.from_arrow(import_mlenergy(REPO / "resources" / "mlenergy-v3"))
    assert df.height == 1858
    return df


def test_reasoning_vs_chat_on_b200(v3):
    # Blog: minimum-energy configuration of each model on B200; Problem Solving averages 6,988 output
    # tokens vs 717 for Text Conversation (10x) and 25x the energy per response.
    result = compare_task_aggregates(
        v3, gpu="B200", select="energy_per_token", pairs=[("gpqa", "lm-arena-chat")]
    )
    tasks = {t["task"]: t for t in result.tasks}
    assert (tasks["gpqa"]["models"], round(tasks["gpqa"]["mean_output_tokens"])) == (12, 6988)
    assert (tasks["lm-arena-chat"]["models"], round(tasks["lm-arena-chat"]["mean_output_tokens"])) == (
        16,
        717,
    )
    (r,) = result.ratios
    assert round(r["all_models_tokens_ratio"]) == 10
    assert round(r["all_models_energy_ratio"]) == 25
    assert r["models"] == 6  # the models with both tasks: the same-model ratio is smaller
    assert r["energy_ratio"] == pytest.approx(17.33, abs=0.01)


def test_gpt_oss_120b_on_h100_needs_two_gpus_for_its_batch(v3):
    result = compare_memory_batch(v3, tasks=["gpqa"], gpu="H100")
    flagged = {(r["model"], r["num_gpus"]): r for r in result.flagged()}
    r = flagged[("openai/gpt-oss-120b", 2)]
    assert (r["fewer_gpus"], r["fewer_max_batch"], r["min_energy_batch"]) == (1, 64, 2048)
    assert r["change"] == pytest.approx(148.07 / 465.26 - 1, abs=1e-3)


def test_multimodal_upper_ends_match_the_blog(v3):
    # Blog: multimodal models use 1.1-5.2x the energy of their text siblings on images and 1.3-15x on
    # videos. With the paper config's pairing, J/token on B200 reaches the same upper ends (Qwen 3 Omni).
    config = yaml.safe_load((REPO / "config" / "paper" / "mlenergy-v3.yaml").read_text())["compare"][
        "modality"
    ][0]
    result = compare_modality(v3, config["pairs"], gpu="B200")
    by_task = {b["task"]: b for b in result.by_task() if b["gpu"] == "B200"}
    assert round(by_task["image-chat"]["max_jpt_ratio"], 1) == 5.2
    assert round(by_task["video-chat"]["max_jpt_ratio"]) == 15
    assert [u["model"] for u in result.unmatched] == [
        "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        "nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16",
    ]  # their image-chat runs are on H100 only
    assert all(u["why"].endswith("has no image-chat/video-chat run on B200") for u in result.unmatched)


def test_video_generation_costs_over_100x_an_image(v3):
    result = compare_spread(v3)
    (diffusion,) = [c for c in result.contrasts if c["task"] == "text-to-video"]
    assert diffusion["median_ratio"] > 100
    assert {t["task"]: t["models"] for t in result.tasks} == {
        "gpqa": 12, "image-chat": 11, "lm-arena-chat": 18, "sourcegraph-fim": 3, "text-to-image": 7,
        "text-to-video": 5, "video-chat": 6,
    }  # fmt: skip
