"""Failures after the engine started: one failed run record with the traces so far, never a lost session.

Real sessions (the CLI, the SSE test server or the xDiT worker imitation as engines) on the
test-only fake GPU, whose energy counter can be made to break mid-run (FAKE_GPU_ENERGY_FAIL_AFTER).
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

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SERVER = TESTS / "sse_test_server.py"
IMITATION = TESTS / "xdit_worker_imitation.py"
# Counter reads before the fake sensor breaks: a few seconds of 10 Hz sampling, well into the load.
FAIL_AFTER = "60"


def jouleflow(tmp_path: Path, *args: str, fake: bool = True, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_GPU", "IMITATION", "TEST_SERVER"))}
    for var in ("CUDA_VISIBLE_DEVICES", "ZEUSD_SOCK_PATH", "ZEUSD_HOST_PORT", "ZEUSD_TOKEN"):
        env.pop(var, None)
    paths = [FAKEGPU_DIR] if fake else []
    env.update(
        PYTHONPATH=os.pathsep.join([*paths, str(REPO / "workflow"), str(TESTS)]),
        JOULEFLOW_GPU_LOCK_DIR=str(tmp_path / "locks"),
        HF_HUB_CACHE=str(tmp_path / "hf-cache"),
        **env_extra,
    )
    argv = [sys.executable, "-m", "jouleflow", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180)


def measure_llm(tmp_path: Path, out: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    config = {"num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 512}
    (model / "config.json").write_text(json.dumps(config))
    return jouleflow(
        tmp_path, "measure", "llm", "--model", "test/model", "--model-path", str(model),
        "--launcher", f"{sys.executable} {SERVER}", "--batch-size", "4", "--num-requests", "12",
        "--output-len", "200", "--prompt-len", "fixed:5", "--no-progress", "--metrics-period", "100ms",
        *extra, "-o", str(out), **env,
    )  # fmt: skip


def kept_run(out: Path) -> Path:
    """The failed run beside `out`, and nothing else: no final dir, no partial dir."""
    siblings = [p.name for p in out.parent.iterdir() if p.name.startswith((out.name, f".{out.name}"))]
    (kept,) = siblings
    assert kept.startswith(f"{out.name}.failed-"), siblings
    return out.parent / kept


def rows(run: Path, name: str) -> list[dict]:
    return pq.read_table(run / name).to_pylist()


def one_line_error(done: subprocess.CompletedProcess, command: str, run: Path) -> str:
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith(f"jouleflow {command}: run failed:")]
    assert line.endswith(f"(details in {run})")
    return line


def test_power_sampler_failure_mid_load_is_a_failed_run_with_the_traces_so_far(tmp_path):
    out = tmp_path / "runs" / "p1"
    t = time.monotonic()
    done = measure_llm(
        tmp_path, out, "--idle-baseline", "0s",  # FAIL_AFTER counts from the sampler's start
        FAKE_GPU_ENERGY_FAIL_AFTER=FAIL_AFTER, FAKE_GPU_POWER_W="250", TEST_SERVER_TOKEN_DELAY_S="0.2",
    )  # fmt: skip
    assert time.monotonic() - t < 30  # the load (40 s of tokens) stopped at the failure
    run = kept_run(out)
    line = one_line_error(done, "measure llm", run)
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "failed"
    assert doc["reason"].startswith("power sampler failed: GPU 0: 20 consecutive failed reads")
    assert doc["reason"] in line and "GPU is lost" in doc["reason"]
    for name in (
        "requests.parquet",
        "tokens.parquet",
        "server.parquet",
        "power.parquet",
        "request_set.parquet",
    ):
        assert rows(run, name), f"{name} is empty"
    reqs = rows(run, "requests.parquet")
    assert len(reqs) == 12 and not any(r["ok"] for r in reqs)
    assert all(r["error"].endswith(doc["reason"]) for r in reqs)  # "aborted: ..." / "not sent: ..."
    assert any(r["output_tokens"] for r in reqs)  # tokens had been streaming: the failure was mid-load
    power = rows(run, "power.parquet")
    assert all(p["power_w"] == 250 for p in power)
    # The rows stop where the sensor broke: after the load began, before the load ended.
    assert doc["timing"]["t0"] < power[-1]["t"] < doc["timing"]["t_last_end"]
    assert doc["provenance"]["energy_source"] == "nvml-via-zeus"
    log = (run / "session.log").read_text()
    assert "power sampling stopped" in log and doc["reason"] in log


def test_power_sampler_failure_in_the_idle_baseline_fails_before_any_load(tmp_path):
    out = tmp_path / "run"
    done = measure_llm(tmp_path, out, "--idle-baseline", "30s", FAKE_GPU_ENERGY_FAIL_AFTER="10")
    run = kept_run(out)
    one_line_error(done, "measure llm", run)
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "failed" and doc["reason"].endswith("(idle baseline)")
    assert "consecutive failed reads" in doc["reason"] and "load" not in doc
    phases = doc["provenance"]["phases"]
    assert "load" not in phases and phases["idle_baseline"][1] - phases["idle_baseline"][0] < 10
    assert not (run / "requests.parquet").exists() and rows(run, "power.parquet")


def test_engine_exit_mid_load_is_a_failed_run_with_traces_and_the_log_tail(tmp_path):
    out = tmp_path / "run"
    done = measure_llm(tmp_path, out, TEST_SERVER_MODE="die-after:6", TEST_SERVER_TOKEN_DELAY_S="0.05")
    run = kept_run(out)
    one_line_error(done, "measure llm", run)
    doc = json.loads((run / "run.json").read_text())
    assert (doc["status"], doc["reason"]) == ("failed", "vllm server exited with code 3 during the load")
    for name in ("requests.parquet", "tokens.parquet", "server.parquet", "power.parquet"):
        assert rows(run, name), f"{name} is empty"
    assert not all(r["ok"] for r in rows(run, "requests.parquet"))
    log = (run / "session.log").read_text()
    # The engine's own last words are kept in session.log, not printed.
    assert "server.log tail:" in log and "--served-model-name test/model" in log
    assert "server.log tail" not in done.stderr


def test_an_error_raised_after_the_launch_is_a_failed_run_not_bad_input(
    tmp_path, fake_gpu, monkeypatch, capsys
):
    """A ValueError before the launch is bad input (nothing written); after it, the run has started."""
    from jouleflow.cli import build_parser
    from jouleflow.measure import session

    monkeypatch.setenv("JOULEFLOW_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("TEST_SERVER_TOKEN_DELAY_S", "0.01")
    calls = []
    check_foreign = session.Session.check_foreign

    def broken_after_the_load(self):
        calls.append(1)
        if len(calls) == 2:  # the check after the load
            raise ValueError("the foreign-process check broke")
        check_foreign(self)

    monkeypatch.setattr(session.Session, "check_foreign", broken_after_the_load)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_attention_heads": 4, "num_hidden_layers": 2}))
    out = tmp_path / "run"
    args = build_parser().parse_args(
        ["measure", "llm", "--model", "m", "--model-path", str(model), "--launcher", f"{sys.executable} {SERVER}",
         "--batch-size", "2", "--num-requests", "4", "--output-len", "5", "--no-progress", "-o", str(out)]
    )  # fmt: skip
    assert args.func(args) == 1
    run = kept_run(out)
    doc = json.loads((run / "run.json").read_text())
    assert (doc["status"], doc["reason"]) == ("failed", "ValueError: the foreign-process check broke")
    assert all(r["ok"] for r in rows(run, "requests.parquet")) and rows(run, "power.parquet")
    assert "Traceback" not in capsys.readouterr().err
    assert "Traceback" in (run / "session.log").read_text()  # the details are kept there


def test_power_sampler_failure_mid_diffusion_run_is_a_failed_run(tmp_path):
    out = tmp_path / "run"
    done = jouleflow(
        tmp_path, "measure", "diffusion", "-o", str(out), "--model", "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
        "--launcher", f"{sys.executable} {IMITATION} --nproc={{nproc}}", "-b", "1", "--num-batches", "40",
        FAKE_GPU_ENERGY_FAIL_AFTER=FAIL_AFTER, IMITATION_BATCH_S="0.5",
    )  # fmt: skip
    run = kept_run(out)
    one_line_error(done, "measure diffusion", run)
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "failed" and doc["reason"].startswith("power sampler failed: GPU 0:")
    batches = rows(run, "batches.parquet")
    assert [b["ok"] for b in batches[:-1]] == [True] * (len(batches) - 1) and len(batches) < 40
    assert not batches[-1]["ok"] and batches[-1]["error"] == doc["reason"]  # the batch cut off
    power = rows(run, "power.parquet")
    assert power and power[-1]["t"] < batches[-1]["t_start"] + 5


def test_sampler_reports_its_failure_while_running(fake_gpu):
    from jouleflow.measure.power import PowerSampler, PowerSamplingError

    fake_gpu.configure(FakeGPUConfig(energy_fail_after=10))
    sampler = PowerSampler(period_s=0.02, max_consecutive_errors=5)
    sampler.start()
    assert sampler.failure() is None
    deadline = time.monotonic() + 10
    while sampler.failure() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "5 consecutive failed reads" in (sampler.failure() or "")
    with pytest.raises(PowerSamplingError):
        sampler.stop()
    assert 1 <= len(sampler.rows()) <= 10
