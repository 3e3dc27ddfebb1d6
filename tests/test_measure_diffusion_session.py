"""`jouleflow measure diffusion` end to end with a worker imitation (tests/xdit_worker_imitation.py).

The real CLI, session, power sampler (Zeus on the test-only fake GPU), process-group teardown,
events parsing and run-directory commit run; only the torchrun+xfuser worker is replaced by a
script that speaks its output protocol. Expected energies are worked out from the recorded batch
windows and the fake's constant power.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fakegpu import FAKEGPU_DIR, FakeGPUConfig

REPO = Path(__file__).resolve().parents[1]
IMITATION = REPO / "tests" / "xdit_worker_imitation.py"
PIXART = "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS"
GPU_VARS = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ZEUSD_SOCK_PATH",
    "ZEUSD_HOST_PORT",
    "ZEUSD_TOKEN",
)


def jouleflow(
    tmp_path: Path, *args: str, fake: FakeGPUConfig | None = None, timeout: float = 180, **env_extra: str
):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in GPU_VARS and not k.startswith(("FAKE_GPU", "IMITATION"))
    }
    paths = [str(REPO / "workflow")]
    if fake is not None:
        paths.insert(0, FAKEGPU_DIR)
        env.update(fake.to_env())
    env.update(PYTHONPATH=os.pathsep.join(paths), HF_HUB_CACHE=str(tmp_path / "hf-cache"), **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "jouleflow", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def measure(tmp_path: Path, out: Path, *args: str, **kw):
    launcher = f"{sys.executable} {IMITATION} --nproc={{nproc}}"
    return jouleflow(
        tmp_path,
        "measure",
        "diffusion",
        "-o",
        str(out),
        "--model",
        PIXART,
        "--launcher",
        launcher,
        *args,
        **kw,
    )


def batches_of(run: Path) -> list[dict]:
    return pq.read_table(run / "batches.parquet").to_pylist()


def test_ok_run_traces_and_energy_per_image(tmp_path):
    out = tmp_path / "runs" / "pixart" / "b2"
    fake = FakeGPUConfig(count=2, power_w="250;350")
    done = measure(
        tmp_path, out, "-b", "2", "--ulysses", "2", "--num-batches", "4", "--warmup-batches", "1",
        "--steps", "3", fake=fake, IMITATION_BATCH_S="0.4",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ok: {out}"
    assert sorted(p.name for p in out.iterdir()) == [
        "batches.parquet", "power.parquet", "run.json", "session.log", "worker.log",
        "worker_events.jsonl", "worker_spec.json",
    ]  # fmt: skip
    assert [p.name for p in out.parent.iterdir()] == ["b2"]  # no partial directory left behind

    doc = json.loads((out / "run.json").read_text())
    assert (doc["status"], doc["reason"]) == ("ok", None)
    cfg = doc["config"]
    expected = {
        "modality": "diffusion", "engine": "xdit", "task": "text-to-image", "model": PIXART,
        "pipeline": "pixart-sigma", "gpu": "H100", "num_gpus": 2, "batch_size": 2, "parallelism": "uly2-ring1",
        "ulysses_degree": 2, "ring_degree": 1, "cfg_degree": 1, "pipefusion_degree": 1, "steps": 3,
        "height": 1024, "width": 1024, "num_frames": None, "guidance_scale": 4.5, "num_batches": 4,
        "warmup_batches": 1, "num_prompts": 8, "load_format": "real", "precision": "bf16",
    }  # fmt: skip
    assert {k: cfg[k] for k in expected} == expected
    assert cfg["prompt_set"]["path"] == "bundled:diffusion_prompts.txt" and cfg["prompt_set"]["num_used"] == 8
    prov = doc["provenance"]
    assert prov["energy_source"] == "nvml-via-zeus" and len(prov["gpus"]) == 2
    assert prov["engine"] == "xdit" and prov["worker"]["versions"] == {"xfuser": "imitation"}
    assert {"load", "warmup", "batches", "worker", "teardown"} <= set(prov["phases"])
    assert len(doc["warmup"]) == 1 and doc["warmup"][0]["ok"] is True

    # What the worker was given: xfuser's options, the world size, and the spec with 4 batches of 2.
    argv = doc["worker"]["argv"]
    assert "--nproc=2" in argv and "--ulysses_degree=2" in argv and "--num_inference_steps=3" in argv
    assert argv[-1] == "--jouleflow_spec={run_dir}/worker_spec.json"
    worker_spec = json.loads((out / "worker_spec.json").read_text())
    assert [len(b) for b in worker_spec["batches"]] == [2, 2, 2, 2] and worker_spec["dtype"] == "bfloat16"

    rows = batches_of(out)
    assert [r["batch_index"] for r in rows] == [0, 1, 2, 3]
    assert all(r["ok"] and r["batch_size"] == 2 and r["t_end"] - r["t_start"] >= 0.4 for r in rows)
    assert all(a["t_end"] <= b["t_start"] for a, b in zip(rows, rows[1:], strict=False))
    assert doc["timing"] == {"t0": rows[0]["t_start"], "t_last_end": rows[-1]["t_end"]}

    # Eq. 1: J/image = batch energy / B; both fake GPUs draw 250 + 350 W the whole time.
    summary_done = jouleflow(tmp_path, "energy", str(out))
    assert summary_done.returncode == 0, summary_done.stderr
    summary = json.loads((out / "summary.json").read_text())
    busy = sum(r["t_end"] - r["t_start"] for r in rows)
    assert summary["energy_per_image_j"] == pytest.approx(600.0 * busy / 8, rel=1e-4)
    assert summary["batch_latency_s"] == pytest.approx(busy / 4, rel=1e-9)
    assert summary["mean_power_w"] == pytest.approx(600.0, rel=1e-4)
    assert summary["valid"] is True and summary["flags"] == []


def test_without_a_sensor_no_energy_is_reported(tmp_path):
    out = tmp_path / "run"
    done = measure(tmp_path, out, "-b", "1", "--num-batches", "2", "--no-energy")
    assert done.returncode == 0, done.stderr
    assert not (out / "power.parquet").exists()
    doc = json.loads((out / "run.json").read_text())
    assert doc["provenance"]["energy_source"] is None and doc["provenance"]["gpus"] == []
    assert jouleflow(tmp_path, "energy", str(out)).returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["energy_per_image_j"] is None and "no-energy-sensor" in summary["flags"]


def test_worker_exiting_early_is_a_failed_run_kept_aside(tmp_path):
    out = tmp_path / "run"
    done = measure(tmp_path, out, "-b", "2", "--num-batches", "4", "--no-energy", IMITATION_EXIT_AFTER="2")
    assert done.returncode == 1
    assert (
        "run failed: xdit worker exited with code 3 after timed batch 1 (2 of 4 timed batches done)"
        in done.stderr
    )
    assert not out.exists()
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.failed-")]
    doc = json.loads((kept / "run.json").read_text())
    assert doc["status"] == "failed" and doc["worker"]["exit_code"] == 3
    assert [(r["batch_index"], r["ok"]) for r in batches_of(kept)] == [(0, True), (1, True)]
    assert "imitation: crashing after 2 timed batches" in (kept / "worker.log").read_text()


def test_out_of_memory_in_a_batch_is_infeasible(tmp_path):
    out = tmp_path / "run"
    done = measure(tmp_path, out, "-b", "32", "--num-batches", "3", "--no-energy", IMITATION_OOM_AT="timed:1")
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "run.json").read_text())
    assert doc["status"] == "infeasible"
    assert doc["reason"].startswith(
        "out of GPU memory during timed batch 1: torch.OutOfMemoryError: CUDA out of memory"
    )
    assert done.stdout.startswith(f"infeasible: {out} (out of GPU memory")
    rows = batches_of(out)
    assert [(r["batch_index"], r["ok"]) for r in rows] == [(0, True), (1, False)]
    assert rows[1]["t_end"] is None and "out of memory" in rows[1]["error"]


def test_out_of_memory_seen_only_in_the_log_is_infeasible(tmp_path):
    out = tmp_path / "run"
    done = measure(tmp_path, out, "-b", "4", "--no-energy", IMITATION_OOM_AT="load", IMITATION_OOM_SILENT="1")
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "run.json").read_text())
    assert doc["status"] == "infeasible"
    assert doc["reason"].startswith("out of GPU memory while loading the pipeline: torch.OutOfMemoryError")
    assert batches_of(out) == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_timeout_stops_every_process_of_the_worker(tmp_path):
    out = tmp_path / "run"
    done = measure(
        tmp_path, out, "-b", "1", "--ulysses", "2", "--ring", "2", "--num-batches", "2", "--no-energy",
        "--timeout", "3s", IMITATION_HANG="1",
    )  # fmt: skip
    assert done.returncode == 1
    assert "xdit worker timed out after 3 s (0 of 2 timed batches done)" in done.stderr
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.failed-")]
    start = json.loads((kept / "worker_events.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 4 and len(start["rank_pids"]) == 3
    time.sleep(0.5)
    assert not [pid for pid in start["rank_pids"] if _alive(pid)]
    (row,) = batches_of(kept)
    assert (row["batch_index"], row["ok"], row["t_end"]) == (0, False, None)


def test_too_few_prompts_ends_before_anything_is_written(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red bus\na blue boat\na green tram\n")
    runs = tmp_path / "runs"
    done = measure(
        tmp_path, runs / "run", "-b", "2", "--num-batches", "2", "--prompts", str(prompts), "--no-energy"
    )
    assert done.returncode == 2
    assert f"{prompts}: has 3 prompts, the run needs 4" in done.stderr
    assert not runs.exists()


def test_a_finished_run_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"status": "ok"}')
    done = measure(tmp_path, out, "-b", "1", "--no-energy")
    assert done.returncode == 2 and "a finished run is already there" in done.stderr
    assert (out / "run.json").read_text() == '{"status": "ok"}'


def test_job_file_and_flags_merge_in_print_config(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(
        f"model: {PIXART}\nbatch_size: 4\nsteps: 12\nring_degree: 2\nxfuser_args: ['--use_torch_compile']\n"
    )
    done = jouleflow(
        tmp_path, "measure", "diffusion", "-o", str(tmp_path / "x"), "--config", str(job), "-b", "8",
        "--xfuser-arg=--warmup_steps=2", "--print-config",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cfg = json.loads(done.stdout)
    assert (cfg["batch_size"], cfg["steps"], cfg["num_gpus"], cfg["parallelism"]) == (8, 12, 2, "uly1-ring2")
    assert cfg["xfuser_args"] == ["--use_torch_compile", "--warmup_steps=2"]
    assert not (tmp_path / "x").exists()


def test_config_errors_name_the_key(tmp_path):
    done = jouleflow(
        tmp_path, "measure", "diffusion", "-o", str(tmp_path / "x"), "--model", PIXART, "-b", "2",
        "--ulysses", "2", "--num-gpus", "4",
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        "num_gpus: the parallel degrees multiply to ulysses 2 x ring 1 x cfg 1 x pipefusion 1 = 2 GPUs"
        in done.stderr
    )


@pytest.mark.slow
def test_a_slow_pipeline_load_is_shown_while_it_lasts(tmp_path):
    # Not a terminal: the start-up is a plain log line every 15 s, with the worker log's last line.
    out = tmp_path / "runs" / "pixart" / "b2"
    r = measure(tmp_path, out, "-b", "2", "--num-batches", "2", "--warmup-batches", "1", "--steps", "3",
                fake=FakeGPUConfig(count=1), IMITATION_LOAD_S="16")  # fmt: skip
    assert r.returncode == 0, r.stderr
    shown = [line for line in r.stderr.splitlines() if "xdit: loading the pipeline" in line]
    assert len(shown) == 1 and "0:15" in shown[0], r.stderr[-2000:]
    assert r.stderr.index("xdit: loading the pipeline") < r.stderr.index("pipeline loaded in")
