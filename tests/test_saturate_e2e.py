"""arrival=saturate end to end on CPU: `jouleflow measure llm` against a real `transformers serve`
(the tiny random-weight Llama of test_e2e_cpu) with the test-only fake GPU, then `jouleflow energy`.

One run converges (loose targets a CPU meets), one hits its time limit (a target it cannot meet)
and is flagged with the uncertainty it reached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from jouleflow.records import SummaryRecord, read_run
from test_e2e_cpu import POWER_W, _have, _require, make_tiny_llama

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
B, POOL, OUT_LEN = 4, 3000, 16


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    _require(
        _have("torch") and _have("transformers") and _have("fastapi") and _have("uvicorn"),
        "torch/transformers[serving] not installed (pip install torch==2.13.0 'transformers[serving]')",
    )
    _require((TESTS / "fakegpu" / "sitecustomize.py").is_file(), "tests/fakegpu not available")
    return make_tiny_llama(tmp_path_factory.mktemp("m") / "tiny-llama")


def _measure(model: Path, run: Path, *targets: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS / "fakegpu"), str(REPO / "workflow")]),
        "FAKE_GPU_POWER_W": str(POWER_W),
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [
            sys.executable, "-m", "jouleflow", "measure", "llm", "--engine", "transformers", "--model", "test/tiny-llama",
            "--model-path", str(model), "--batch-size", str(B), "--num-requests", str(POOL), "--output-len", str(OUT_LEN),
            "--prompt-len", "fixed:12", "--temperature", "1.0", "--no-progress", "--health-timeout", "5min",
            "--arrival", "saturate", *targets, "-o", str(run),
        ],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


def _energy(run: Path) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "jouleflow", "energy", str(run), "--min-window", "1s"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "workflow")},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return json.loads((run / "summary.json").read_text())


def _peak_in_flight(reqs: list[dict]) -> int:
    sent = [r for r in reqs if r["t_send"] is not None]
    events = sorted(
        [(r["t_send"], 1) for r in sent] + [(r["t_end"], -1) for r in sent], key=lambda e: (e[0], e[1])
    )
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    return peak


def test_saturate_converges_on_cpu(tiny_model, tmp_path):
    run = tmp_path / "converged"
    r = _measure(
        tiny_model,
        run,
        "--target-window",
        "6s",
        "--target-ci",
        "0.5",
        "--max-load",
        "120s",
        "--ci-interval",
        "1s",
    )
    assert r.returncode == 0, r.stderr[-4000:]
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "ok" and doc["config"]["arrival"] == "saturate"
    assert doc["config"]["saturate"] == {
        "target_window_s": 6.0, "target_ci": 0.5, "max_load_s": 120.0, "interval_s": 1.0, "headroom": None,
        "warmup_response_times": 1.0,
    }  # fmt: skip
    conv, load = doc["convergence"], doc["load"]
    assert conv["stop_reason"] == "converged" and conv["converged"] and load["stopped"] == "converged"
    assert conv["start_source"] == "client-active"  # transformers serve has no /metrics
    # ... so the warm-up reads the streams' inter-token interval; the window begins after it
    assert conv["token_interval_from"].startswith("client") and conv["warmup_end"] > conv["batch_full"]
    assert conv["steady_start"] == conv["warmup_end"]
    assert conv["window_s"] >= 6.0 and conv["ci_rel"] <= 0.5 and conv["n_intervals"] >= 6
    # no max-num-seqs: the client is the batch cap, exactly B in flight
    assert load["in_flight"] == B and any("saturate keeps exactly B" in n for n in doc["notes"])
    # the client's own load, over the whole load (measure.client_monitor)
    client = load["client"]
    assert (
        conv["window_s"] <= client["wall_s"] and client["cpu_s"] > 0 and client["loop_lag_p99_s"] is not None
    )

    reqs = pq.read_table(run / "requests.parquet").to_pylist()
    assert _peak_in_flight(reqs) == B
    stopped = [q for q in reqs if q["stopped"] and q["t_send"] is not None]
    unsent = [q for q in reqs if q["t_send"] is None]
    assert len(stopped) == load["stopped_requests"] and 1 <= len(stopped) <= B
    assert all(q["error"] == "stopped: converged" and not q["ok"] for q in stopped)
    assert len(unsent) == load["not_sent"] > 0 and all(q["error"] == "not sent: converged" for q in unsent)
    assert all(q["ok"] for q in reqs if not q["stopped"])

    s = _energy(run)
    print(json.dumps(s, indent=1, sort_keys=True))
    assert s["num_failed"] == 0 and s["num_stopped"] == len(stopped) and s["num_not_sent"] == len(unsent)
    assert "failed-requests" not in s["flags"] and "not-converged" not in s["flags"]
    assert s["steady_end"] <= load["t_stop"] and s["load_stop_reason"] == "converged"
    assert s["steady_start"] >= conv["warmup_end"]
    assert s["count_e2e"] == s["num_ok"]  # stopped requests are not in the latencies
    # every length was set (a null EOS stands in for ignore_eos): the sent requests' targets count
    sent = {q["request_id"] for q in reqs if q["t_send"] is not None}
    request_set = pq.read_table(run / "request_set.parquet").to_pylist()
    targets = [q["max_tokens"] for q in request_set if q["request_id"] in sent]
    assert s["output_tokens_from"] == "request targets"
    assert s["mean_output_tokens"] == pytest.approx(sum(targets) / len(targets))
    assert s["energy_per_token_ci_interval_s"] == 1.0 and s["energy_per_token_ci_intervals"] >= 5
    assert 0 <= s["energy_per_token_ci_rel"] < 1
    assert s["mean_power_w"] == pytest.approx(POWER_W, rel=1e-3)
    # the records read the saturate run's files back whole (convergence, the stop, the CI keys)
    record = read_run(run)
    assert record.to_dict() == doc and record.convergence == conv and record.load == load
    assert SummaryRecord.read(run / "summary.json").to_dict() == s


def test_saturate_time_limit_is_flagged_with_its_uncertainty(tiny_model, tmp_path):
    run = tmp_path / "limited"
    r = _measure(
        tiny_model,
        run,
        "--target-window",
        "3s",
        "--target-ci",
        "1e-9",
        "--max-load",
        "8s",
        "--ci-interval",
        "1s",
    )
    assert r.returncode == 0, r.stderr[-4000:]
    doc = json.loads((run / "run.json").read_text())
    conv = doc["convergence"]
    assert doc["status"] == "ok" and not conv["converged"]
    assert conv["stop_reason"].startswith("time limit: J/token ±") and conv["stop_reason"].endswith(" s")
    assert conv["ci_rel"] > 1e-9 and conv["n_intervals"] >= 2
    s = _energy(run)
    assert not s["valid"] and "not-converged" in s["flags"]
    detail = s["flag_details"]["not-converged"]
    assert detail.startswith("load stopped: time limit") and "intervals" in detail
    assert s["energy_per_token_ci_rel"] > 1e-9 and s["energy_per_token_ci_intervals"] >= 2
    # the same figures reach the campaign summary row
    from jouleflow.analysis.run_row import summary_row

    row = summary_row(run)
    assert row["energy_per_token_ci_rel"] == s["energy_per_token_ci_rel"]
    assert row["energy_per_token_ci_intervals"] == s["energy_per_token_ci_intervals"]
    assert "not-converged" in row["flags"] and row["valid"] is False
