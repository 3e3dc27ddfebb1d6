"""The comparisons over ML.ENERGY's published v3 results (all 1,858 rows in resources/mlenergy-v3).

Expected values are the ML.ENERGY v3.0 blog post's ("Reading the ML.ENERGY Leaderboard v3.0",
ml.energy/blog, Jan 2026), rounded as the blog rounds them. The summary frame comes both from a
minimal loader of the published JSON written for these tests (independent of the product's
importer) and from `jouleflow import mlenergy`'s importer. The blog states gains as (H100 - B200) / H100; here the change is B200 / H100 - 1, so
its signs are flipped.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from compare_v3_loader import v3_frame
from jouleflow.analysis.compare.gpus import compare_gpus
from jouleflow.analysis.compare.moe import compare_moe
from jouleflow.analysis.compare.precision import Bucket, compare_precision
from jouleflow.analysis.compare.scaling import compare_scaling
from jouleflow.analysis.compare.tasks import compare_tasks

BUCKETS = [Bucket(8, 16), Bucket(17, 64), Bucket(65, 256)]


V3_DATA = Path(__file__).resolve().parents[1] / "resources" / "mlenergy-v3"


@pytest.fixture(scope="module", params=["test loader", "jouleflow import"])
def v3(request):
    """The published rows, once through this file's own minimal loader, once through the product's importer."""
    if request.param == "test loader":
        df = v3_frame(V3_DATA)
    else:
        from jouleflow.importers.mlenergy import import_mlenergy

        df = pl.from_arrow(import_mlenergy(V3_DATA))
    assert df.height == 1858
    return df


def pct(x: float) -> int:
    return round(x * 100)


@pytest.mark.parametrize(
    "tasks, latency, deadlines, energy, wins, total, median, lo, hi",
    [
        # "B200 wins 88% (63/72) of comparisons with a median 35% energy reduction (-53% to +82%)"
        (
            ["gpqa", "lm-arena-chat"],
            "median_itl",
            [0.05, 0.1, 0.25],
            "energy_per_token",
            63,
            72,
            -35,
            -82,
            53,
        ),
        # "B200 wins 86% (18/21) of comparisons with a median 15% energy reduction (-4% to +23%)"
        (["text-to-image"], "batch_latency", [10, 30, 60], "energy_per_response", 18, 21, -15, -23, 4),
        # "B200 wins 79% (11/14) of comparisons with a median 4% energy reduction (-6% to +8%)"
        (["text-to-video"], "batch_latency", [100, 500, 1000], "energy_per_response", 11, 14, -4, -8, 6),
    ],
)
def test_b200_vs_h100_matches_the_blog(v3, tasks, latency, deadlines, energy, wins, total, median, lo, hi):
    s = compare_gpus(v3, "H100", "B200", deadlines, latency=latency, energy=energy, tasks=tasks).summary()
    assert (s["wins_b"], s["total"]) == (wins, total)
    assert (pct(s["median_change"]), pct(s["min_change"]), pct(s["max_change"])) == (median, lo, hi)


def test_b200_vs_h100_examples_at_50ms(v3):
    # "Qwen 3 30B A3B Thinking uses 53% less energy on H100 (2 GPUs, batch size 128) compared to B200
    # (1 GPU, batch size 64)"
    result = compare_gpus(v3, "H100", "B200", [0.05], energy="energy_per_token", tasks=["gpqa"])
    comp = next(c for c in result.comparisons if c.model == "Qwen/Qwen3-30B-A3B-Thinking-2507")
    assert (comp.a.num_gpus, comp.a.batch_size, comp.b.num_gpus, comp.b.batch_size) == (2, 128, 1, 64)
    assert pct(comp.change) == 53


@pytest.mark.parametrize(
    "metric, expected",
    [
        # "8-16: FP8 wins 0/7 on energy (median +30%, range +13% to +56%) ..."
        ("energy_per_token", [(0, 7, 30, 13, 56), (6, 13, 1, -12, 32), (11, 12, -11, -29, 0)]),
        # "... 1/7 on latency (median +7%, range -5% to +26%)"; 17-64: 11/13 (median -12%, -23% to +12%);
        # 65-256: 11/12 (range -18% to +3%; median below)
        ("median_itl", [(1, 7, 7, -5, 26), (11, 13, -12, -23, 12), (11, 12, None, -18, 3)]),
    ],
)
def test_fp8_vs_bf16_matches_the_blog(v3, metric, expected):
    # The blog's filters: batch sizes from 16 on, and Qwen 3 Coder 480B left out (its FP8 ran attention
    # data-parallel). Its tasks include the multimodal chat tasks.
    result = compare_precision(v3, BUCKETS, metric=metric, min_batch=16,
                               exclude_models=["Qwen/Qwen3-Coder-480B-A35B-Instruct"])  # fmt: skip
    for (bucket, stats), (wins, total, median, lo, hi) in zip(result.bucket_stats(), expected, strict=True):
        assert (stats.wins, stats.total) == (wins, total), bucket.label
        assert (pct(stats.min), pct(stats.max)) == (lo, hi), bucket.label
        if median is not None:
            assert pct(stats.median) == median, bucket.label
    # 65-256 latency: the blog prints -11%, the upper of the two middle values (-11.3%); the true median of
    # this even count is the mean of -11.3% and -12.1%.
    if metric == "median_itl":
        assert -0.12 < result.bucket_stats()[2][1].median < -0.115


def test_multi_gpu_scaling_matches_the_blog(v3):
    # "On B200 configurations, adding GPUs at the same batch size reduced latency in 81% of cases and always
    # increased energy per token. Similarly, on H100 configurations, energy increases in 93% of the cases and
    # latency always decreases."
    result = compare_scaling(
        v3, energy="energy_per_token", tasks=["gpqa", "lm-arena-chat", "sourcegraph-fim"]
    )
    by_gpu = {t["gpu"]: t for t in result.by_gpu()}
    assert pct(by_gpu["B200"]["energy_rises_share"]) == 100
    assert pct(by_gpu["B200"]["latency_falls_share"]) == 81
    assert pct(by_gpu["H100"]["energy_rises_share"]) == 93
    assert pct(by_gpu["H100"]["latency_falls_share"]) == 100


def test_qwen3_32b_across_tasks_matches_the_blog(v3):
    # Blog table, Qwen 3 32B on 1x B200: max batch 512 vs 128; output tokens 627 vs 7,035; J/token at batch
    # 128 0.209 vs 0.312; at max batch 0.151 vs 0.312; J/response 95 vs 2,192 (23x).
    group = compare_tasks(v3, "Qwen/Qwen3-32B", gpu="B200", num_gpus=1).groups[0]
    rows = {r["task"]: r for r in group.rows}
    chat, gpqa = rows["lm-arena-chat"], rows["gpqa"]
    assert group.shared_batch == 128
    assert (chat["max_batch"], gpqa["max_batch"]) == (512, 128)
    assert (round(chat["output_tokens"]), round(gpqa["output_tokens"])) == (627, 7035)
    assert (round(chat["jpt_shared"], 3), round(gpqa["jpt_shared"], 3)) == (0.209, 0.312)
    assert (round(chat["jpt_max"], 3), round(gpqa["jpt_max"], 3)) == (0.151, 0.312)
    assert (round(chat["jpr"]), round(gpqa["jpr"])) == (95, 2192)
    assert round(gpqa["jpr_ratio"]) == 23


def test_moe_vs_dense_matches_the_blog(v3):
    # "the energy per token of Qwen 3 30B A3B is 3.56x lower than that of Qwen 3 32B" (B200, GPQA, 1 GPU)
    rows = compare_moe(v3, tasks=["gpqa"], num_gpus=1).rows()
    pair = next(r for r in rows if r["gpu"] == "B200" and r["dense_model"] == "Qwen/Qwen3-32B"
                and r["moe_model"] == "Qwen/Qwen3-30B-A3B-Thinking-2507")  # fmt: skip
    assert round(pair["dense_over_moe"], 2) == 3.56
