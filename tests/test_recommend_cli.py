"""The CLI end to end on ML.ENERGY's published v2 data, checked against the paper's own answer."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]
V2 = REPO / "tests" / "data" / "mlenergy-v2"
SD21 = "stabilityai/stable-diffusion-2-1"


def jouleflow(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    result = subprocess.run(
        [sys.executable, "-m", "jouleflow", *args], env=env, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"jouleflow {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def v2_summary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("v2") / "summary.parquet"
    jouleflow("import", "mlenergy", str(V2), "-o", str(out))
    return out


def test_stable_diffusion_5s_target_matches_the_paper(v2_summary: Path) -> None:
    # The ML.ENERGY paper (NeurIPS'25): SD 2.1 text-to-image, 5 s generation-latency target →
    # 3.63 s on the frontier with 21% less energy than the minimum-latency configuration.
    result = jouleflow(
        "recommend", "--summary", str(v2_summary), "--task", "text-to-image", "--model", SD21,
        "--latency-target", "5s", "--json",
    )  # fmt: skip
    out = json.loads(result.stdout)
    assert set(out) >= {"config", "latency", "energy", "baseline", "savings_fraction"}
    assert round(out["latency"], 2) == 3.63
    assert round(out["savings_fraction"], 2) == 0.21
    assert out["latency"] <= 5.0
    for key in ("gpu", "num_gpus", "batch_size", "parallelism", "precision", "run_dir"):
        assert key in out["config"] and key in out["baseline"]["config"]
    assert out["baseline"]["latency"] < out["latency"] and out["baseline"]["energy"] > out["energy"]
    # Provenance: the recommended row names the published file it came from.
    assert (V2 / out["config"]["run_dir"]).is_file()
    raw = json.loads((V2 / out["config"]["run_dir"]).read_text())
    assert raw["Model"] == SD21 and raw["Batch latency (s)"] == out["latency"]


def test_text_output_and_duration_units(v2_summary: Path) -> None:
    result = jouleflow(
        "recommend", "--summary", str(v2_summary), "--task", "text-to-image", "--model", SD21,
        "--latency-target", "5000ms",
    )  # fmt: skip
    assert "3.63 s" in result.stdout and "21.1% less energy" in result.stdout
    # the figures' vocabulary: metric name with its statistic, energy per response
    assert "target Batch latency ≤ 5 s" in result.stdout and "J per response" in result.stdout


def test_unreachable_target_exits_nonzero(v2_summary: Path) -> None:
    result = jouleflow(
        "recommend", "--summary", str(v2_summary), "--task", "text-to-image", "--model", SD21,
        "--latency-target", "100ms", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "100 ms" in result.stderr and "941 ms" in result.stderr  # the target and the best achievable


def test_unknown_model_lists_models(v2_summary: Path) -> None:
    result = jouleflow(
        "recommend", "--summary", str(v2_summary), "--task", "text-to-image", "--model", "nope/nope",
        "--latency-target", "5s", check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "nope/nope" in result.stderr and SD21 in result.stderr


def test_bad_duration_and_missing_summary(tmp_path: Path, v2_summary: Path) -> None:
    bad = jouleflow(
        "recommend",
        "--summary",
        str(v2_summary),
        "--task",
        "t",
        "--model",
        "m",
        "--latency-target",
        "5",
        check=False,
    )
    assert bad.returncode == 2 and "'5' has no unit" in bad.stderr
    missing = tmp_path / "none.parquet"
    gone = jouleflow(
        "recommend",
        "--summary",
        str(missing),
        "--task",
        "t",
        "--model",
        "m",
        "--latency-target",
        "5s",
        check=False,
    )
    assert gone.returncode == 2 and str(missing) in gone.stderr


def test_frontier_command_writes_frontier_and_recommendations(tmp_path: Path, v2_summary: Path) -> None:
    frontier, recs = tmp_path / "frontier.parquet", tmp_path / "recs.csv"
    targets = tmp_path / "targets.yaml"
    targets.write_text("text-to-image: [5s]\n")
    result = jouleflow(
        "frontier", "--summary", str(v2_summary), "-o", str(frontier), "--recommendations", str(recs),
        "--targets", str(targets),
    )  # fmt: skip
    assert "excluded" in result.stderr
    front = pl.read_parquet(frontier).filter((pl.col("task") == "text-to-image") & (pl.col("model") == SD21))
    # By hand from the published files: H100 batches 1..64 are each faster or cheaper than the rest;
    # every A100 point is beaten by some H100 point.
    assert front.get_column("gpu").to_list() == ["H100"] * 7
    assert front.get_column("batch_size").to_list() == [1, 2, 4, 8, 16, 32, 64]
    with recs.open() as f:
        rows = [r for r in csv.DictReader(f) if r["model"] == SD21]
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["batch_size"] == "8"
    # energy says what it is per: the summary's column name, for the recommended and the baseline
    assert float(rows[0]["energy_per_response_j"]) < float(rows[0]["baseline_energy_per_response_j"])
    assert "energy_j" not in rows[0]
    # Tasks without targets in the file get the built-in defaults.
    with recs.open() as f:
        chat = [r for r in csv.DictReader(f) if r["task"] == "chat"]
    assert {r["latency_target_s"] for r in chat} == {"0.05", "0.1", "0.25"}
