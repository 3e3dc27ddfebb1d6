"""`jouleflow measure llm` end to end against the test-only SSE server standing in for `vllm serve`.

The server (tests/sse_test_server.py) is launched through the real vLLM command construction
(`--launcher`), so the session's process handling, load, metrics scraping, run-directory writing
and failure classification all run for real; only the model is absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SERVER = TESTS / "sse_test_server.py"
HAVE_POWER = importlib.util.find_spec("jouleflow.measure.power") is not None and (TESTS / "fakegpu").is_dir()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    config = {
        "architectures": ["LlamaForCausalLM"],
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "vocab_size": 512,
    }
    (d / "config.json").write_text(json.dumps(config))
    return d


def measure(
    out: Path,
    model_dir: Path,
    *extra: str,
    env: dict | None = None,
    fake_gpu: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    pythonpath = [str(REPO / "workflow"), str(TESTS)]
    if fake_gpu:
        pythonpath.insert(0, str(TESTS / "fakegpu"))
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath), **(env or {})}
    argv = [
        sys.executable,
        "-m",
        "jouleflow",
        "measure",
        "llm",
        "--model",
        "test/model",
        "--model-path",
        str(model_dir),
        "--launcher",
        f"{sys.executable} {SERVER}",
        "--batch-size",
        "4",
        "--num-requests",
        "12",
        "--output-len",
        "20",
        "--prompt-len",
        "fixed:5",
        "--no-progress",
        "--health-timeout",
        "60s",
        "--metrics-period",
        "100ms",
        "-o",
        str(out),
        *extra,
    ]
    if not fake_gpu and "--no-energy" not in extra:
        argv.append("--no-energy")
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=timeout)


def test_ok_run_writes_the_contract(tmp_path, model_dir):
    out = tmp_path / "runs" / "p1"
    r = measure(out, model_dir, "--sampling", "seed=3", env={"TEST_SERVER_TOKEN_DELAY_S": "0.01"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"ok: {out}"
    assert sorted(p.name for p in out.iterdir()) == [
        "request_set.parquet",
        "requests.parquet",
        "run.json",
        "server.log",
        "server.parquet",
        "session.log",
        "tokens.parquet",
    ]
    doc = json.loads((out / "run.json").read_text())
    assert doc["status"] == "ok" and doc["reason"] is None and doc["schema_version"] == 2
    c = doc["config"]
    assert (c["model"], c["batch_size"], c["num_gpus"], c["parallelism"], c["engine"]) == (
        "test/model",
        4,
        1,
        "tp1",
        "vllm",
    )
    assert c["sampling"] == {"temperature": 0.8, "top_p": 0.95, "seed": 3} and c["architecture"] == "dense"
    # config keeps the job spec's shape (the run guard compares it); the materialized set is beside it
    assert c["request_set"] is None
    assert len(doc["request_set"]["sha256"]) == 64 and doc["request_set"]["path"] == "request_set.parquet"
    assert len(doc["config_hash"]) == 64
    prov = doc["provenance"]
    assert prov["energy_source"] is None and prov["load_format"] == "real" and prov["host"]
    assert set(prov["phases"]) == {"prepare", "power_start", "server_start", "load", "teardown"}
    assert prov["start_time"] <= doc["timing"]["t0"] <= doc["timing"]["t_last_end"] <= prov["end_time"]
    reqs = pq.read_table(out / "requests.parquet").to_pylist()
    assert [q["request_id"] for q in reqs] == list(range(12))
    assert all(q["ok"] and q["output_tokens"] == 20 and q["input_tokens"] == 5 for q in reqs)
    toks = pq.read_table(out / "tokens.parquet").to_pylist()
    assert len(toks) == 12 * 20 and all(t["n_tokens"] == 1 for t in toks)
    server = pq.read_table(out / "server.parquet").to_pylist()
    assert server and max(s["running"] for s in server) <= 12  # all 12 in flight (the test server has no cap)
    assert server[-1]["generation_tokens"] <= 240
    log = (out / "server.log").read_text()
    assert "--max-num-seqs 4" in log.splitlines()[0]  # the launched command line is kept
    # the same grid point measured again elsewhere hashes the same (where files lived is not hashed)
    out2 = tmp_path / "elsewhere" / "p1"
    assert measure(out2, model_dir, "--sampling", "seed=3").returncode == 0
    assert json.loads((out2 / "run.json").read_text())["config_hash"] == doc["config_hash"]


def test_finished_run_is_never_overwritten(tmp_path, model_dir):
    out = tmp_path / "run"
    assert measure(out, model_dir).returncode == 0
    before = (out / "run.json").read_bytes()
    r = measure(out, model_dir)
    assert r.returncode == 2 and "already there" in r.stderr
    assert (out / "run.json").read_bytes() == before


def test_oom_at_start_is_an_infeasible_result(tmp_path, model_dir):
    out = tmp_path / "run"
    r = measure(out, model_dir, env={"TEST_SERVER_MODE": "oom"})
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "run.json").read_text())
    assert doc["status"] == "infeasible" and "CUDA out of memory" in doc["reason"]
    assert not (out / "requests.parquet").exists()
    assert "OutOfMemoryError" in (out / "server.log").read_text()


def test_start_crash_is_failed_beside_the_final_dir(tmp_path, model_dir):
    out = tmp_path / "run"
    r = measure(out, model_dir, env={"TEST_SERVER_MODE": "crash"})
    assert r.returncode == 1 and "exited with code 1" in r.stderr
    assert not out.exists()
    [failed] = [p for p in tmp_path.iterdir() if p.name.startswith("run.failed-")]
    doc = json.loads((failed / "run.json").read_text())
    assert doc["status"] == "failed" and "something unrelated broke" in (failed / "server.log").read_text()


def test_server_death_mid_run_is_failed_and_recorded(tmp_path, model_dir):
    out = tmp_path / "run"
    t = time.monotonic()
    r = measure(
        out,
        model_dir,
        "--arrival",
        "concurrency",
        "--max-concurrency",
        "2",
        env={"TEST_SERVER_MODE": "die-after:4", "TEST_SERVER_TOKEN_DELAY_S": "0.05"},
    )
    assert time.monotonic() - t < 60
    assert r.returncode == 1 and "during the load" in r.stderr
    assert not out.exists()
    [failed] = [p for p in tmp_path.iterdir() if p.name.startswith("run.failed-")]
    doc = json.loads((failed / "run.json").read_text())
    assert doc["status"] == "failed" and "exited with code 3" in doc["reason"]
    reqs = pq.read_table(failed / "requests.parquet").to_pylist()
    assert len(reqs) == 12 and not all(q["ok"] for q in reqs)
    assert all(q["error"] for q in reqs if not q["ok"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-path", "/nonexistent/model"], "model directory /nonexistent/model does not exist"),
        (
            ["--tensor-parallel", "3", "--num-gpus", "3"],
            "tensor_parallel=3 does not divide num_attention_heads=4",
        ),
        (["--request-set", "/nonexistent/rs.parquet"], "rs.parquet: trace file is missing"),
        (["--batchsize", "4"], "unrecognized arguments"),
    ],
)
def test_bad_input_names_the_thing_and_leaves_nothing(tmp_path, model_dir, args, message):
    out = tmp_path / "run"
    r = measure(out, model_dir, *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == [model_dir]


def test_sigterm_mid_load_tears_down_and_keeps_a_failed_run(tmp_path, model_dir):
    out = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), str(TESTS)]),
        "TEST_SERVER_TOKEN_DELAY_S": "0.5",
    }
    argv = [
        sys.executable,
        "-m",
        "jouleflow",
        "measure",
        "llm",
        "--model",
        "m",
        "--model-path",
        str(model_dir),
        "--launcher",
        f"{sys.executable} {SERVER}",
        "--batch-size",
        "4",
        "--num-requests",
        "8",
        "--output-len",
        "200",
        "--no-energy",
        "--no-progress",
        "-o",
        str(out),
    ]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stderr:
        if "load: 8 requests" in line:
            break
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(".run.partial-")]
    assert partial
    session_log = (partial[0] / "session.log").read_text()
    server_pid = int(session_log.split("server pid ")[1].split()[0])
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    # interrupted mid-load (a cancelled job, a time limit): what was gathered is kept as a failed run
    assert proc.returncode == 143 and "kept as a failed run in" in err, err
    (kept,) = [p for p in tmp_path.iterdir() if p != model_dir]
    assert kept.name.startswith("run.failed-")
    doc = json.loads((kept / "run.json").read_text())
    assert doc["status"] == "failed" and doc["reason"] == "interrupted: interrupted by signal SIGTERM"
    assert (kept / "server.log").is_file() and (kept / "session.log").is_file()
    with pytest.raises(ProcessLookupError):
        os.killpg(server_pid, 0)  # the server's whole process group is gone


def test_fake_gpu_session_records_power(tmp_path, model_dir):
    out = tmp_path / "run"
    r = measure(out, model_dir, env={"FAKE_GPU_POWER_W": "250", "FAKE_GPU_COUNT": "2"}, fake_gpu=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "run.json").read_text())
    assert doc["provenance"]["energy_source"] == "nvml-via-zeus"
    assert [g["index"] for g in doc["provenance"]["gpus"]] == [0]  # tp1: the job's one GPU, not both
    assert doc["config"]["gpu"] == "H100"
    power = pq.read_table(out / "power.parquet").to_pylist()
    assert {p["gpu"] for p in power} == {0} and all(p["power_w"] == 250 for p in power)
    t = [p["t"] for p in power]
    assert t[0] <= doc["timing"]["t0"] and t[-1] >= doc["timing"]["t_last_end"]


def test_fake_gpu_session_records_latents_and_the_idle_baseline(tmp_path, model_dir):
    """GPU latent metrics beside the power (a field the driver lacks is null), the engine's prompt
    tokens and CPU time with the server metrics, and the idle power before the load."""
    out = tmp_path / "run"
    env = {
        "FAKE_GPU_POWER_W": "90",
        "FAKE_GPU_UNSUPPORTED": "nvmlDeviceGetCurrentClocksEventReasons,nvmlDeviceGetCurrentClocksThrottleReasons",
    }
    args = ("--idle-baseline", "1s", "--latent-period", "100ms")
    r = measure(out, model_dir, *args, env=env, fake_gpu=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "run.json").read_text())
    phases = doc["provenance"]["phases"]
    order = ["prepare", "power_start", "server_start", "idle_baseline", "load"]
    assert [p for p in sorted(phases, key=lambda p: phases[p][0]) if p in order] == order
    for before, after in zip(order, order[1:], strict=False):
        assert phases[before][1] <= phases[after][0]
    base = doc["provenance"]["idle_baseline"]
    assert [base["start"], base["end"]] == phases["idle_baseline"]
    assert base["duration_s"] == pytest.approx(1.0, abs=0.25)
    assert base["mean_power_w"] == {"0": pytest.approx(90, abs=0.01)}  # the counter over the span
    assert doc["config"]["idle_baseline_s"] == 1 and doc["config"]["latent_period_s"] == 0.1

    latents = pq.read_table(out / "gpu_metrics.parquet")
    assert latents.schema.field("throttle_reasons").type == "int64"
    rows = latents.to_pylist()
    assert len(rows) >= 10 and {q["gpu"] for q in rows} == {0}
    assert all(
        (q["util_gpu_pct"], q["util_mem_pct"], q["sm_clock_mhz"], q["mem_clock_mhz"]) == (87, 41, 1755, 2619)
        and q["throttle_reasons"] is None
        for q in rows
    )
    t = [q["t"] for q in rows]
    assert t == sorted(t) and t[0] <= phases["idle_baseline"][0] and t[-1] >= doc["timing"]["t_last_end"]
    assert doc["provenance"]["gpu_metrics"]["unsupported"] == {"0": ["throttle_reasons"]}

    server = pq.read_table(out / "server.parquet").to_pylist()
    assert server[-1]["prompt_tokens"] == 12 * 5  # every prompt admitted: 12 requests of 5 tokens
    cpu = [s["engine_cpu_s"] for s in server]
    assert all(c is not None and c > 0 for c in cpu) and cpu == sorted(cpu)


def test_no_latents_and_no_baseline_when_turned_off(tmp_path, model_dir):
    out = tmp_path / "run"
    r = measure(out, model_dir, "--idle-baseline", "0s", "--latent-period", "0s", fake_gpu=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "run.json").read_text())
    assert "idle_baseline" not in doc["provenance"] and "idle_baseline" not in doc["provenance"]["phases"]
    assert not (out / "gpu_metrics.parquet").exists() and (out / "power.parquet").is_file()


def test_vllm_without_a_gpu_is_a_clear_error(tmp_path, model_dir):
    out = tmp_path / "run"
    r = measure(out, model_dir, env={"FAKE_GPU_INIT_ERROR": "DRIVER_NOT_LOADED"}, fake_gpu=True)
    assert r.returncode == 2 and "no GPU energy sensor" in r.stderr
    assert list(tmp_path.iterdir()) == [model_dir]


def test_allocated_gpu_reaches_the_sampler_and_the_server(tmp_path, model_dir, fake_gpu):
    """With GPU 0 held by another job, the session measures and serves on GPU 1 only."""
    from fakegpu import FakeGPUConfig, subprocess_env
    from jouleflow.measure.gpualloc import allocate_gpus

    fake_gpu.configure(FakeGPUConfig(count=2, power_w="300"))
    locks = tmp_path / "locks"
    out = tmp_path / "run"
    # The launcher prints what the server process sees before exec'ing the test server.
    launcher = (
        f"sh -c 'echo SERVER_SEES_CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES >&2; "
        f'exec {sys.executable} {SERVER} "$@"\' server'
    )
    env = subprocess_env(fake_gpu)
    env.pop("PYTHONPATH")  # measure() puts the fake GPU and the package on it
    env["JOULEFLOW_GPU_LOCK_DIR"] = str(locks)
    with allocate_gpus(1, None, lock_dir=locks) as held:
        assert list(held) == [0]
        r = measure(out, model_dir, "--launcher", launcher, env=env, fake_gpu=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "run.json").read_text())
    assert doc["provenance"]["allocated_gpus"] == [1]
    assert doc["provenance"]["allocated_device_ids"] == [1]
    assert set(pq.read_table(out / "power.parquet").column("gpu").to_pylist()) == {1}
    assert "SERVER_SEES_CUDA_VISIBLE_DEVICES=1\n" in (out / "server.log").read_text()


def test_a_gpu_type_other_than_the_card_is_bad_input(tmp_path, model_dir):
    """The spec names the run directory's GPU type: an H200 job on an H100 stops before any server."""
    out = tmp_path / "run"
    r = measure(out, model_dir, "--gpu", "H200", fake_gpu=True)
    assert r.returncode == 2, r.stderr
    assert "needs GPU type 'H200', but the GPUs present are: 1 x NVIDIA H100 80GB HBM3" in r.stderr
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == [model_dir]  # nothing written
