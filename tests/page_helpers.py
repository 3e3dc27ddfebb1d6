"""A campaign page built the way the workflow builds it: the bundled reference runs copied into a
results tree, then `jouleflow energy`, `summarize`, `frontier`, `campaign provenance`, `plot timeline`
and `report page`, each the real command."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
from pathlib import Path

from jouleflow.cli import main
from jouleflow.plan.runguard import copy_reference

REPO = Path(__file__).resolve().parents[1]
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
POINT = "lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H100/tp1"
BUNDLE = REPO / "tests/data/reference-fixture/runs" / POINT
PUBLISHED = REPO / "resources/mlenergy-v3"
# One target below the fixture's fastest run (14.6 ms), then one per batch size it picks.
TARGETS = "lm-arena-chat: [10ms, 15ms, 20ms, 25ms]\n"
JOB_HEADER = ["run_dir", "energy_json", "architecture", "total_params_b", "active_params_b", "gpu_tdp_w"]


def jouleflow(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real command, in this process (as fast as the suite needs); relative paths are under cwd."""
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    try:
        os.chdir(cwd or previous)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.chdir(previous)
    assert code == 0, f"jouleflow {' '.join(argv)}:\n{err.getvalue()}"
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def build_campaign(
    root: Path, batches=(64, 128, 256), energy_args: tuple[str, ...] = (), timelines: bool = True
) -> dict[str, Path]:
    """results/ under root with the given batch sizes; returns the tables' paths (cwd: root)."""
    rows = []
    for batch in batches:
        run = Path("results/runs") / POINT / str(batch)
        copy_reference(BUNDLE / str(batch), root / run)
        energy = Path("results/energy") / POINT / str(batch) / "summary.json"
        jouleflow("energy", run, "-o", energy, *energy_args, cwd=root)
        rows.append([str(run), str(energy), "dense", "8.03", "8.03", "700"])
        jouleflow(
            "plot",
            "timeline",
            run,
            "--energy",
            energy,
            "-o",
            f"results/figures/timeline/{POINT}/{batch}.png",
            cwd=root,
        )
    jobs = root / "results/grid/jobs.tsv"
    jobs.parent.mkdir(parents=True, exist_ok=True)
    with jobs.open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerows([JOB_HEADER, *rows])
    paths = {
        "summary": root / "results/summary/summary.parquet",
        "recommendations": root / "results/tables/recommendations.csv",
        "provenance": root / "results/tables/provenance.csv",
        "page": root / "results/report/campaign.html",
        "targets": root / "results/analysis/targets.yaml",
    }
    paths["targets"].parent.mkdir(parents=True, exist_ok=True)
    paths["targets"].write_text(TARGETS)
    jouleflow("summarize", "--jobs", jobs, "-o", paths["summary"], cwd=root)
    jouleflow(
        "frontier", "--summary", paths["summary"], "-o", root / "results/tables/frontier.parquet",
        "--allow-empty", "--recommendations", paths["recommendations"], "--targets", paths["targets"], cwd=root,
    )  # fmt: skip
    jouleflow("campaign", "provenance", "--jobs", jobs, "-o", paths["provenance"], cwd=root)
    return paths


def write_page(root: Path, paths: dict[str, Path], *extra: str) -> subprocess.CompletedProcess:
    return jouleflow(
        "report", "page", "--summary", paths["summary"], "--recommendations", paths["recommendations"],
        "--provenance", paths["provenance"], "--targets", paths["targets"], "--published", PUBLISHED, "--timelines", "results/figures/timeline",
        "--runs-root", "results/runs", *extra, "-o", paths["page"], cwd=root,
    )  # fmt: skip
