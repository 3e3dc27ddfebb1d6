"""`jouleflow summarize` (the union of all runs) and `jouleflow campaign provenance`."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jouleflow.plan.runguard import copy_reference
from jouleflow.records import read_run
from jouleflow.traces import RunDirWriter
from jouleflow.units import iso_utc

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "tests/data/reference-fixture/runs/lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H100/tp1"
JOB_HEADER = ["run_dir", "energy_json", "architecture", "total_params_b", "active_params_b", "gpu_tdp_w"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    return subprocess.run(
        [sys.executable, "-m", "jouleflow", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


@pytest.fixture
def campaign(tmp_path):
    """Three copied runs with their energy summaries kept outside the run directories."""
    rows = []
    for batch in (64, 128, 256):
        run = copy_reference(BUNDLE / str(batch), tmp_path / "runs" / str(batch))
        energy = tmp_path / "energy" / str(batch) / "summary.json"
        done = cli("energy", str(run), "-o", str(energy))
        assert done.returncode == 0, done.stderr
        rows.append([str(run), str(energy), "dense", "8.03", "8.03", "700"])
    return tmp_path, rows


def write_jobs(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(JOB_HEADER)
        writer.writerows(rows)
    return path


def test_summary_is_the_sorted_union_with_registry_facts(campaign):
    import polars as pl

    root, rows = campaign
    forward = write_jobs(root / "jobs.tsv", rows)
    backward = write_jobs(root / "jobs-reversed.tsv", rows[::-1])
    a, b = root / "a.parquet", root / "b.parquet"
    assert (
        cli("summarize", "--jobs", str(forward), "-o", str(a), "--csv", str(root / "a.csv")).returncode == 0
    )
    assert cli("summarize", "--jobs", str(backward), "-o", str(b)).returncode == 0
    assert a.read_bytes() == b.read_bytes()  # listing order does not change a byte
    table = pl.read_parquet(a)
    assert table.get_column("batch_size").to_list() == [64, 128, 256]
    assert table.get_column("run_dir").to_list() == [r[0] for r in rows]
    # the copied runs' run.json carries no registry facts: they come from the jobs table
    assert set(table.get_column("architecture")) == {"dense"}
    assert set(table.get_column("total_params_b")) == {8.03}
    assert set(table.get_column("source")) == {"jouleflow"}
    assert pl.read_csv(root / "a.csv").height == 3


def test_summary_refuses_a_run_listed_twice_or_a_missing_energy_summary(campaign):
    root, rows = campaign
    twice = cli(
        "summarize", "--jobs", str(write_jobs(root / "t.tsv", rows + rows[:1])), "-o", str(root / "t.parquet")
    )
    assert twice.returncode == 2 and f"{rows[0][0]}: run listed twice" in twice.stderr
    missing = [rows[0][0], str(root / "nowhere" / "summary.json"), "dense", "", "", ""]
    gone = cli(
        "summarize", "--jobs", str(write_jobs(root / "m.tsv", [missing])), "-o", str(root / "m.parquet")
    )
    assert gone.returncode == 2 and "nowhere/summary.json" in gone.stderr
    assert not (root / "t.parquet").exists() and not (root / "m.parquet").exists()


def test_provenance_table_says_where_each_run_came_from(tmp_path):
    copied = copy_reference(BUNDLE / "64", tmp_path / "runs" / "64")
    writer = RunDirWriter(tmp_path / "runs" / "8")
    measured = writer.commit(
        {
            "status": "infeasible",
            "reason": "CUDA out of memory",
            "config": {"engine": "vllm", "load_format": "real"},
            "config_hash": "abc",
            "provenance": {
                "host": "gpu-node-3",
                "gpus": [{"name": "NVIDIA H100 80GB HBM3"}, {"name": "NVIDIA H100 80GB HBM3"}],
            },
        }
    )
    out = tmp_path / "provenance.csv"
    done = cli("campaign", "provenance", str(measured), str(copied), "-o", str(out))
    assert done.returncode == 0, done.stderr
    with out.open() as f:
        rows = {Path(r["run_dir"]).name: r for r in csv.DictReader(f)}
    assert rows["64"]["origin"] == f"bundled reference ({BUNDLE / '64'})"
    assert rows["64"]["energy_source"] == "simulated-test-fixture"
    # times read by people: ISO 8601 UTC, the run's own start and end
    run = read_run(copied)
    assert rows["64"]["start_time"] == iso_utc(run.provenance["start_time"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows["64"]["end_time"])
    assert rows["64"]["start_time"] <= rows["64"]["end_time"]
    assert rows["8"]["origin"] == "measured" and rows["8"]["status"] == "infeasible"
    assert rows["8"]["gpu_names"] == "NVIDIA H100 80GB HBM3;NVIDIA H100 80GB HBM3"
    assert (rows["8"]["host"], rows["8"]["load_format"], rows["8"]["config_hash"]) == (
        "gpu-node-3",
        "real",
        "abc",
    )
    shutil.rmtree(measured)
    missing = cli("campaign", "provenance", str(measured), "-o", str(tmp_path / "p2.csv"))
    assert missing.returncode == 2 and "run.json: file is missing" in missing.stderr


def test_summary_with_cost_columns(campaign):
    import polars as pl

    root, rows = campaign
    jobs = write_jobs(root / "jobs.tsv", rows)
    cost = "{price_usd_per_kwh: 0.2, carbon_g_per_kwh: 500, pue: 1.5}"
    done = cli("summarize", "--jobs", str(jobs), "-o", str(root / "c.parquet"), "--cost", cost)
    assert done.returncode == 0, done.stderr
    table = pl.read_parquet(root / "c.parquet")
    # J → kWh is / 3.6e6; × PUE 1.5 × 0.2 USD (or × 500 g) per kWh, per 1e6 tokens / 1e3 responses.
    for r in table.iter_rows(named=True):
        assert r["cost_region"] == "default"
        assert r["cost_usd_per_1m_tokens"] == pytest.approx(r["energy_per_token_j"] * 1e6 / 3.6e6 * 1.5 * 0.2)
        assert r["carbon_g_per_1k_responses"] == pytest.approx(
            r["energy_per_response_j"] * 1e3 / 3.6e6 * 1.5 * 500
        )
    bad = cli(
        "summarize",
        "--jobs",
        str(jobs),
        "-o",
        str(root / "d.parquet"),
        "--cost",
        "{price_usd_per_kwh: 0.1, carbon_g_per_kwh: 1, pue: 0.8}",
    )
    assert bad.returncode == 2 and "--cost.pue: must be >= 1" in bad.stderr
    assert not (root / "d.parquet").exists()
