"""The whole pipeline on the hand-made reference campaign: results, reproducibility and reruns.

Needs the energy, frontier and plot CLIs (other modules of the package); skipped where they are
not registered. Expected energies come from the fixture's own physics (tests/make_reference_fixture.py):
in the steady window every step moves B requests one token in step_time(B) s at power_at(B) W.
"""

from __future__ import annotations

import os
import shutil

import polars as pl
import pytest
from make_reference_fixture import power_at, step_time
from pipeline_helpers import (
    BASE_KEY,
    H200_BATCHES,
    H200_POINTS,
    MEASURE_RULES,
    copy_workflow,
    execute,
    plan,
    with_qwen,
)

LLAMA = "meta-llama--Llama-3.1-8B-Instruct"
QWEN = "Qwen--Qwen3-8B"
VL = "Qwen--Qwen3-VL-8B-Instruct"
# The default config's curves (task, model key): one plot each.
GROUPS = {
    f"lm-arena-chat/{LLAMA}",
    f"lm-arena-chat/{LLAMA}@fp8",
    f"lm-arena-chat/{QWEN}",
    f"gpqa-lengths/{QWEN}",
    f"image-chat/{VL}",
    "lm-arena-chat/Qwen--Qwen3-30B-A3B-Instruct-2507",
    "lm-arena-chat/Qwen--Qwen3-32B",
    "text-to-image/PixArt-alpha--PixArt-Sigma-XL-2-1024-MS",
}
# The energy-split figure is drawn for LLM curves only (a diffusion run has no attribution).
SPLIT_GROUPS = GROUPS - {"text-to-image/PixArt-alpha--PixArt-Sigma-XL-2-1024-MS"}


def job_set(jobs):
    """(rule, what) pairs: the run key for per-run rules, the group for per-group ones."""
    out = set()
    for rule, w in jobs:
        if "batch" in w:
            out.add((rule, f"{w['task']}/{w['model']}/{w['gpu']}/{w['parallelism']}/{w['batch']}"))
        elif "model" in w:
            out.add((rule, f"{w['task']}/{w['model']}"))
        else:
            out.add((rule, ""))
    return out


def results_files(workdir):
    return {
        p.relative_to(workdir).as_posix(): p.read_bytes()
        for p in sorted((workdir / "results").rglob("*"))
        if p.is_file() and p.name != ".snakemake_timestamp"
    }


@pytest.fixture(scope="module")
def completed(bundled_campaign):
    """The default campaign run by `snakemake --cores all` (the session's, read-only)."""
    bundled_campaign.check()
    return bundled_campaign.workdir


@pytest.fixture
def done(completed, tmp_path):
    return shutil.copytree(completed, tmp_path / "wf", symlinks=True)


def test_summary_has_the_fixtures_energy(completed):
    summary = pl.read_parquet(completed / "results" / "summary" / "summary.parquet").sort("batch_size")
    for precision in ("bf16", "fp8"):
        llama = (
            (pl.col("gpu") == "H200")
            & (pl.col("precision") == precision)
            & pl.col("model").str.starts_with("meta-llama")
        )
        assert summary.filter(llama).get_column("batch_size").to_list() == list(H200_BATCHES)
    summary = summary.filter(pl.col("gpu") == "H100")  # the fixture's runs, of known physics
    assert summary.get_column("batch_size").to_list() == [64, 128, 256]
    assert summary.get_column("valid").to_list() == [True, True, True]
    for row in summary.iter_rows(named=True):
        b = row["batch_size"]
        assert row["energy_per_token_j"] == pytest.approx(power_at(b) * step_time(b) / b, rel=5e-3)
        assert row["median_itl_s"] == pytest.approx(step_time(b), rel=1e-4)  # unix-time float resolution
        assert row["gpu_tdp_w"] == 700.0 and row["architecture"] == "dense"
    for figure in ("sweep", "frontier"):
        assert (completed / "results" / "figures" / figure / "lm-arena-chat" / f"{LLAMA}.svg").is_file()


def test_a_fresh_clone_regenerates_every_result_byte_for_byte(completed, tmp_path):
    """A second run of its own, through Snakemake's API in this process (all extras installed):
    the same bytes as the session's `snakemake --cores all` run."""
    fresh = copy_workflow(tmp_path / "fresh")
    jobs = plan(fresh)
    assert {rule for rule, _ in jobs} & MEASURE_RULES == {"fetch_reference"}
    execute(fresh)
    assert results_files(fresh) == results_files(completed)


def test_complete_campaign_has_nothing_to_do(done):
    assert plan(done) == []


def test_adding_a_model_reruns_its_jobs_and_the_aggregates_only(done):
    qwen = {f"lm-arena-chat/{QWEN}/H100/tp1/{b}" for b in (32, 64)}
    groups = GROUPS
    expected = (
        {("measure", k) for k in qwen}
        | {("energy", k) for k in qwen}
        | {("plot_timeline", k) for k in qwen}
        | {("attribute", k) for k in qwen}
        | {("plot_request_energy", k) for k in qwen}
        | {("plot_sweep", g) for g in groups}
        | {("plot_energy_split", g) for g in SPLIT_GROUPS}
        | {("plot_frontier", g) for g in groups}
        | {
            (rule, "")
            for rule in (
                "grid_table",
                "summary",
                "provenance_table",
                "frontier",
                "plot_task_energy",
                "campaign_page",
                "all",
            )
        }
        # the comparisons read the summary
        | {(f"compare_{c}", "") for c in ("gpus", "precision", "modality", "moe", "tasks")}
    )
    assert job_set(plan(done, with_qwen())) == expected


def test_published_data_reruns_the_overlays_only_when_a_file_changes(done):
    """The frontiers and the page overlay ML.ENERGY's bundled v3 slice: a copy or checkout that only
    moves its directories' mtimes (as a GPU host that gets the tree copied per call) reruns nothing."""
    published = done / "resources" / "mlenergy-v3"
    for folder in (published, published / "models", published / "tasks"):
        os.utime(folder)  # now: newer than every output
    assert plan(done) == []
    task_file = published / "tasks" / "text-to-image.json"
    # An updated slice: new content (Snakemake passes over a file rewritten with the same bytes).
    task_file.write_bytes(task_file.read_bytes() + b"\n")
    assert job_set(plan(done)) == {
        *(("plot_frontier", g) for g in GROUPS),
        ("campaign_page", ""),
        ("all", ""),
    }


def test_changing_a_latency_target_reruns_recommendations_only(done):
    jobs = plan(done, {"analysis": {"latency_targets": {"lm-arena-chat": ["40ms"]}}})
    assert job_set(jobs) == {
        ("analysis_targets", ""),
        ("frontier", ""),
        *(("plot_frontier", g) for g in GROUPS),  # the frontier table is one file for every group
        ("campaign_page", ""),  # the page shows the targets and their recommendations
        ("all", ""),
    }


def test_changing_a_validity_threshold_reruns_energy_not_measurements(done):
    jobs = job_set(plan(done, {"validity": {"min_steady_s": 30}}))
    assert {rule for rule, _ in jobs} & MEASURE_RULES == set()
    assert {k for rule, k in jobs if rule == "energy"} == {
        f"{BASE_KEY}/{b}" for b in (64, 128, 256)
    } | H200_POINTS
