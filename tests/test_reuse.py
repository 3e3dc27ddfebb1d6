"""Several batch sizes on one server (`jouleflow measure llm-sweep`, measure/reuse.py).

The test server stands in for vLLM (tests/sse_test_server.py): it honours --max-num-seqs and the
batch-limit file through the product's own reader, as jouleflow's scheduler does inside vLLM, and
answers vLLM's dev endpoint /reset_prefix_cache only with VLLM_SERVER_DEV_MODE=1. Power comes from
the fake GPU (tests/fakegpu) under Zeus's real code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
SERVER = TESTS / "sse_test_server.py"


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(TESTS / "fakegpu"), str(REPO / "workflow"), str(TESTS)])
    return {**os.environ, "PYTHONPATH": path, "JOULEFLOW_GPU_LOCK_DIR": os.environ.get("TMPDIR", "/tmp")}


def _jouleflow(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jouleflow", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _spec(tmp_path: Path, *extra: str) -> Path:
    """The job spec as `jouleflow measure llm --print-config` writes it (the real code path)."""
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps({"num_attention_heads": 4, "num_hidden_layers": 2}))
    r = _jouleflow(
        "measure", "llm", "--model", "test/model", "--model-path", str(model),
        "--launcher", f"{sys.executable} {SERVER}", "--batch-size", "4", "--num-requests", "400",
        "--output-len", "30", "--prompt-len", "fixed:5", "--health-timeout", "60s",
        "--metrics-period", "50ms", "--arrival", "saturate", "--target-window", "2s",
        "--target-ci", "0.5", "--max-load", "20s", "--ci-interval", "0.5s", "--headroom", "3",
        *extra, "--print-config",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    spec = tmp_path / "spec.json"
    spec.write_text(r.stdout)
    return spec


@pytest.mark.slow
def test_one_server_measures_each_batch_size_as_its_own_run(tmp_path):
    root = tmp_path / "runs"
    spec = _spec(tmp_path, "--idle-baseline", "1s")
    r = _jouleflow("measure", "llm-sweep", "--config", str(spec), "--batch-sizes", "2,4",
                   "--out-root", str(root), "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    docs = {b: json.loads((root / str(b) / "run.json").read_text()) for b in (2, 4)}
    pids = set()
    for b, doc in docs.items():
        assert doc["status"] == "ok", doc["reason"]
        assert doc["config"]["batch_size"] == b and doc["config"]["server_max_num_seqs"] == 4
        shared = doc["provenance"]["shared_engine"]
        assert shared["point_index"] == (0 if b == 2 else 1) and shared["points"] == 2
        assert shared["server_max_num_seqs"] == 4 and shared["startup_share_s"] > 0
        pids.add(shared["server_pid"])
        assert doc["provenance"]["energy_source"] == "nvml-via-zeus"
        # Each point takes its own idle baseline on the shared server, between its start and its load.
        phases = doc["provenance"]["phases"]
        assert phases["server_start"][1] <= phases["idle_baseline"][0] < phases["idle_baseline"][1]
        assert phases["idle_baseline"][1] <= phases["load"][0]
        base = doc["provenance"]["idle_baseline"]
        # 1 mJ of counter rounding at each interpolated end, and a sample's timestamp and its counter
        # read apart by tens of µs on a loaded machine (23 mJ seen over this 1 s): 50 mJ of the span's
        # energy, as test_e2e_cpu allows its window
        assert base["mean_power_w"] == {"0": pytest.approx(300, abs=0.05 / base["duration_s"])}
        # The engine, not the client, held the batch: B streams at once, the headroom waited.
        server = pl.read_parquet(root / str(b) / "server.parquet")
        assert server["running"].max() == b and server["waiting"].max() > 0
        assert doc["convergence"]["stop_reason"] == "converged"
    assert len(pids) == 1  # one server for both points
    log = (root / "4" / "server.log").read_text()
    assert log.count("test server: mode") == 1  # started once
    assert log.count("prefix cache reset") == 2  # before each point
    assert "--max-num-seqs 4" in log and "BatchLimitScheduler" in log
    # The sweep stopped its server.
    pid = pids.pop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # Each run is an ordinary run directory for the analysis.
    out = tmp_path / "summary.json"
    e = _jouleflow("energy", str(root / "2"), "-o", str(out))
    assert e.returncode == 0, e.stderr
    summary = json.loads(out.read_text())
    assert summary["status"] == "ok" and summary["batch_size"] == 2
    assert 1.5 <= summary["mean_running"] <= 2.0


def test_the_batch_sizes_must_be_distinct_and_the_engine_vllm(tmp_path):
    spec = _spec(tmp_path)
    r = _jouleflow("measure", "llm-sweep", "--config", str(spec), "--batch-sizes", "4,4",
                   "--out-root", str(tmp_path / "a"))  # fmt: skip
    assert r.returncode == 2 and "distinct positive integers" in r.stderr and "Traceback" not in r.stderr
    doc = json.loads(spec.read_text())
    doc["engine"], doc["launcher"] = "transformers", None
    other = tmp_path / "tf.json"
    other.write_text(json.dumps(doc))
    r = _jouleflow("measure", "llm-sweep", "--config", str(other), "--batch-sizes", "2,4",
                   "--out-root", str(tmp_path / "b"))  # fmt: skip
    assert r.returncode == 2 and "needs vllm" in r.stderr, r.stderr
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").rglob("run.json"))


def test_a_request_set_smaller_than_num_requests_fails_before_the_server_starts(tmp_path):
    # The spec draws 400 requests per point; a 100-request set would only fail at its own point,
    # after the server started and the earlier points ran.
    small = tmp_path / "p2000.parquet"
    r = _jouleflow("prepare", "requests", "-o", str(small), "--num-requests", "100",
                   "--output-len", "20", "--prompt-len", "fixed:5")  # fmt: skip
    assert r.returncode == 0, r.stderr
    root = tmp_path / "runs"
    r = _jouleflow("measure", "llm-sweep", "--config", str(_spec(tmp_path)), "--batch-sizes", "2,4",
                   "--point", f"4:{small}", "--out-root", str(root), "--no-progress")  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"request set {small}: has 100 requests, the spec's num_requests is 400" in r.stderr
    assert not root.exists() or not any(root.rglob("run.json")) and not any(root.rglob("server-*.log"))
    not_parquet = tmp_path / "notes.parquet"
    not_parquet.write_text("not parquet")
    r = _jouleflow("measure", "llm-sweep", "--config", str(_spec(tmp_path)), "--batch-sizes", "2",
                   "--request-sets", str(not_parquet), "--out-root", str(root))  # fmt: skip
    assert r.returncode == 2 and f"request set {not_parquet}: not a readable Parquet file" in r.stderr


@pytest.mark.slow
def test_request_sets_and_repeats_are_points_of_one_server(tmp_path):
    # Two request sets that differ only in prompt length (the prefill/decode attribution check),
    # each at one batch size, twice: four run directories on one server, named by set and repeat.
    sets = []
    for words in (5, 40):
        out = tmp_path / f"p{words}.parquet"
        r = _jouleflow("prepare", "requests", "-o", str(out), "--num-requests", "400",
                       "--output-len", "20", "--prompt-len", f"fixed:{words}")  # fmt: skip
        assert r.returncode == 0, r.stderr
        sets.append(out)
    root = tmp_path / "runs"
    spec = _spec(tmp_path, "--idle-baseline", "0.5s")
    r = _jouleflow("measure", "llm-sweep", "--config", str(spec), "--batch-sizes", "4",
                   "--request-sets", ",".join(map(str, sets)), "--repeats", "2",
                   "--out-root", str(root), "--no-progress", timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = ["4-p5-r1", "4-p40-r1", "4-p5-r2", "4-p40-r2"]
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == sorted(names)
    pids = set()
    for i, name in enumerate(names):
        doc = json.loads((root / name / "run.json").read_text())
        assert doc["status"] == "ok", doc["reason"]
        assert doc["provenance"]["shared_engine"]["point_index"] == i
        pids.add(doc["provenance"]["shared_engine"]["server_pid"])
        assert Path(doc["config"]["request_set"]).name == name.split("-")[1] + ".parquet"
        words = 5 if "-p5-" in name else 40
        done = pl.read_parquet(root / name / "requests.parquet").filter(pl.col("ok"))
        assert done.height > 0 and done["input_tokens"].unique().to_list() == [words]  # words, here
    assert len(pids) == 1


def test_sweep_points_name_and_order_the_runs():
    from jouleflow.measure.reuse import sweep_points

    pts = sweep_points([16, 64], ["a/short.parquet", "b/long.parquet"], repeats=2)
    assert [p.name for p in pts] == [
        "16-short-r1", "64-short-r1", "16-long-r1", "64-long-r1",
        "16-short-r2", "64-short-r2", "16-long-r2", "64-long-r2",
    ]  # fmt: skip
    assert [p.name for p in sweep_points([8, 256])] == ["8", "256"]
    with pytest.raises(ValueError, match="file names must differ"):
        sweep_points([8], ["x/a.parquet", "y/a.parquet"])
    with pytest.raises(ValueError, match="repeats"):
        sweep_points([8], None, repeats=0)


def test_extra_points_follow_the_grid_and_name_their_set():
    from jouleflow.cli import CLIError
    from jouleflow.cli.measure_sweep import extra_points
    from jouleflow.measure.reuse import sweep_points

    extra = extra_points(["8:sets/p2000.parquet", "256:sets/p2000.parquet"])
    assert extra == [(8, "sets/p2000.parquet"), (256, "sets/p2000.parquet")]
    pts = sweep_points([8, 64, 256], None, 1, extra)
    assert [(p.name, p.batch_size, p.request_set) for p in pts] == [
        ("8", 8, None), ("64", 64, None), ("256", 256, None),
        ("8-p2000", 8, "sets/p2000.parquet"), ("256-p2000", 256, "sets/p2000.parquet"),
    ]  # fmt: skip
    assert [p.name for p in sweep_points([8], None, 2, [(8, "p.parquet")])] == [
        "8-r1",
        "8-p-r1",
        "8-r2",
        "8-p-r2",
    ]
    with pytest.raises(ValueError, match="share a run directory name: 8-p"):
        sweep_points([8], ["a/p.parquet", "a/q.parquet"], 1, [(8, "b/p.parquet")])
    for bad in ("p2000.parquet", "x:p.parquet", "8:"):
        with pytest.raises(CLIError, match="BATCH_SIZE:REQUEST_SET"):
            extra_points([bad])
