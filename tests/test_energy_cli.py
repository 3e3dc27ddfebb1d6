"""`jouleflow energy` end to end, summary rows, diffusion batches, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from handmade_runs import constant_power, reference_run, run_json
from jouleflow import traces
from jouleflow.analysis.energy import analyze_run, summary_row, write_summary
from jouleflow.gpus import gpu_short_name

REPO = Path(__file__).resolve().parents[1]


def jouleflow(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "jouleflow", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_writes_summary_json_into_the_run_dir(tmp_path):
    run = reference_run(tmp_path / "run")
    done = jouleflow("energy", str(run))
    assert done.returncode == 0, done.stderr
    summary = json.loads((run / "summary.json").read_text())
    for key in ("steady_start", "steady_end", "steady_tokens", "steady_energy_j", "energy_per_token_j",
                "energy_per_request_j", "tokens_per_s", "mean_power_w", "median_itl_s", "median_ttft_s",
                "valid", "flags", "p90_itl_s", "p95_itl_s", "p99_itl_s", "mean_tpot_s", "p99_e2e_s",
                "mean_output_tokens", "tokens_per_s_per_w", "window_server", "window_client",
                "mean_running", "steady_duration_s"):  # fmt: skip
        assert key in summary, key
    assert summary["energy_per_token_j"] == pytest.approx(32500 / 70)
    assert "valid" in done.stdout


def test_cli_output_path_and_thresholds(tmp_path):
    run = reference_run(tmp_path / "run")
    out = tmp_path / "elsewhere" / "s.json"
    done = jouleflow("energy", str(run), "-o", str(out), "--min-window", "40", "--min-batch-fraction", "0.9")
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    assert summary["flags"] == ["short-window"] and summary["valid"] is False
    assert (
        summary["thresholds"]["min_window_s"] == 40.0 and summary["thresholds"]["min_batch_fraction"] == 0.9
    )
    assert not (run / "summary.json").exists()
    assert "INVALID short-window" in done.stdout


def test_summary_is_byte_identical_on_rerun(tmp_path):
    run = reference_run(tmp_path / "run")
    first = write_summary(run).read_bytes()
    assert write_summary(run).read_bytes() == first


def test_cli_names_a_corrupt_parquet_file(tmp_path):
    run = reference_run(tmp_path / "run")
    tokens = run / "tokens.parquet"
    tokens.write_bytes(tokens.read_bytes()[:40])  # truncated
    done = jouleflow("energy", str(run))
    assert done.returncode == 2
    assert "tokens.parquet" in done.stderr and "Traceback" not in done.stderr
    assert not (run / "summary.json").exists()


def test_missing_trace_of_an_ok_run_is_named(tmp_path):
    run = reference_run(tmp_path / "run")
    (run / "requests.parquet").unlink()
    with pytest.raises(traces.TraceError, match="requests.parquet"):
        analyze_run(run)


def test_cli_rejects_bad_thresholds_and_missing_dirs(tmp_path):
    run = reference_run(tmp_path / "run")
    done = jouleflow("energy", str(run), "--min-batch-fraction", "-0.5")
    assert done.returncode == 2 and "min_batch_fraction" in done.stderr
    done = jouleflow("energy", str(tmp_path / "nope"))
    assert done.returncode == 2 and "nope" in done.stderr


def test_cli_on_an_infeasible_run(tmp_path):
    run = traces.RunDirWriter(tmp_path / "run").commit(run_json(status="infeasible"))
    done = jouleflow("energy", str(run))
    assert done.returncode == 0, done.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "infeasible" and summary["energy_per_token_j"] is None
    row = summary_row(run)
    assert row["status"] == "infeasible" and row["valid"] is False and row["energy_per_token_j"] is None


def test_missing_batch_size_is_named(tmp_path):
    meta = run_json()
    del meta["config"]["batch_size"]
    with pytest.raises(traces.TraceError, match="config.batch_size"):
        analyze_run(reference_run(tmp_path / "run", meta=meta))


def test_summary_row_has_every_summary_column(tmp_path):
    run = reference_run(tmp_path / "run")
    write_summary(run)
    row = summary_row(run)
    assert list(row) == traces.SUMMARY.names
    assert row["gpu"] == "H100" and row["num_gpus"] == 2 and row["batch_size"] == 2
    assert row["energy_per_response_j"] == pytest.approx(32500 / 70 * 12.5)  # = energy_per_request_j
    assert row["gpu_tdp_w"] == 700.0 and row["mean_batch_size"] == pytest.approx(2.0)
    assert row["source"] == "jouleflow" and row["modality"] == "llm" and row["load_format"] == "dummy"
    assert row["valid"] is True and row["flags"] == ""
    table = traces.table_from_rows([row], traces.SUMMARY)  # fits the schema's types
    assert table.num_rows == 1


def test_summary_row_needs_summary_json(tmp_path):
    run = reference_run(tmp_path / "run")
    with pytest.raises(traces.TraceError, match="summary.json"):
        summary_row(run)


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("NVIDIA B200", "B200"),
        ("NVIDIA GeForce RTX 4090", "RTX4090"),
        ("AMD Instinct MI300X", "MI300X"),
        ("Tesla V100-SXM2-16GB", "V100"),
        (None, None),
    ],
)
def test_gpu_short_name(name, short):
    assert gpu_short_name(name) == short


def diffusion_run(run_dir: Path, power=None) -> Path:
    writer = traces.RunDirWriter(run_dir)
    # two batches of 4 images, 4 s each, on 2 GPUs at 500 W: 4000 J per batch -> 1000 J per image
    writer.write_trace(
        "batches.parquet",
        [
            {
                "batch_index": 0,
                "t_start": 1010.0,
                "t_end": 1014.0,
                "batch_size": 4,
                "ok": True,
                "error": None,
            },
            {
                "batch_index": 1,
                "t_start": 1014.5,
                "t_end": 1018.5,
                "batch_size": 4,
                "ok": True,
                "error": None,
            },
        ],
    )
    writer.write_trace("power.parquet", power if power is not None else constant_power())
    meta = run_json(batch=4)
    meta["config"].update(
        task="text-to-image", model="stabilityai/stable-diffusion-3-medium", modality="diffusion"
    )
    return writer.commit(meta)


def test_diffusion_per_batch_energy(tmp_path):
    run = diffusion_run(tmp_path / "run")
    s = analyze_run(run)
    assert s["window_source"] == "batches"
    assert s["steady_energy_j"] == pytest.approx(8000.0)
    assert s["energy_per_image_j"] == pytest.approx(1000.0)
    assert s["batch_latency_s"] == pytest.approx(4.0)
    assert s["mean_power_w"] == pytest.approx(1000.0)
    assert s["valid"] is True, s["flag_details"]
    write_summary(run)
    row = summary_row(run)
    assert row["modality"] == "diffusion" and row["energy_per_response_j"] == pytest.approx(1000.0)
    assert row["batch_latency_s"] == pytest.approx(4.0) and row["mean_batch_size"] == pytest.approx(4.0)


def test_diffusion_without_power_gives_no_energy(tmp_path):
    writer = traces.RunDirWriter(tmp_path / "run")
    writer.write_trace(
        "batches.parquet",
        [{"batch_index": 0, "t_start": 1.0, "t_end": 2.0, "batch_size": 1, "ok": True, "error": None}],
    )
    meta = run_json(batch=1)
    meta["provenance"]["energy_source"] = None
    s = analyze_run(writer.commit(meta))
    assert s["energy_per_image_j"] is None and "no-energy-sensor" in s["flags"]
    assert s["batch_latency_s"] == pytest.approx(1.0)


def test_cli_min_window_accepts_units(tmp_path):
    run = reference_run(tmp_path / "run")  # window 32.5 s
    done = jouleflow("energy", str(run), "--min-window", "0.6min", "-o", str(tmp_path / "a.json"))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "a.json").read_text())["thresholds"]["min_window_s"] == pytest.approx(36.0)
    done = jouleflow("energy", str(run), "--min-window", "20 parsecs")
    assert done.returncode == 2 and "not a duration" in done.stderr
