"""Energy per response of a saturating load: the mean output length of the requests the load sent.

A saturate run (`jouleflow measure llm`, the test-only SSE server standing in for vLLM, the fake
GPU under Zeus) over a request set of short and long requests stops with the long ones in flight:
the completed requests' mean is biased low. Every request had its length set (ignore_eos with
max_tokens), so the analysis takes the sent requests' targets; an older run without them in
requests.parquet takes them from its request_set.parquet, and without that file falls back to the
completed requests with the flag `output-length-biased`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from jouleflow.analysis.energy import summarize_run, write_summary
from jouleflow.analysis.run_row import summary_row

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SERVER = TESTS / "sse_test_server.py"
B = 4
# Three of four requests 1-4 tokens long, one 300-399: the long ones are those in flight at the stop.
HISTOGRAM = {"bins": [1, 5, 300, 400], "counts": [3, 0, 1]}


@pytest.fixture(scope="module")
def saturated(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("saturated")
    model, hist, run = tmp / "model", tmp / "lengths.json", tmp / "run"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_attention_heads": 4, "num_hidden_layers": 2}))
    hist.write_text(json.dumps(HISTOGRAM))
    path = os.pathsep.join([str(TESTS / "fakegpu"), str(REPO / "workflow"), str(TESTS)])
    env = {**os.environ, "PYTHONPATH": path, "FAKE_GPU_POWER_W": "250", "JOULEFLOW_GPU_LOCK_DIR": str(tmp)}
    r = subprocess.run(
        [
            sys.executable, "-m", "jouleflow", "measure", "llm", "--model", "test/model",
            "--model-path", str(model), "--launcher", f"{sys.executable} {SERVER}",
            "--batch-size", str(B), "--num-requests", "3000", "--output-lengths", str(hist),
            "--prompt-len", "fixed:5", "--health-timeout", "60s", "--metrics-period", "50ms",
            "--arrival", "saturate", "--target-window", "2s", "--target-ci", "0.5", "--max-load", "30s",
            "--ci-interval", "0.5s", "--headroom", "3", "--no-progress", "-o", str(run),
        ],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    return run


def _sent_targets(run: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The requests the load sent, and the request set's rows for them (read from the files)."""
    requests = pl.read_parquet(run / "requests.parquet")
    sent = requests.filter(pl.col("t_send").is_not_null())
    request_set = pl.read_parquet(
        run / "request_set.parquet", columns=["request_id", "max_tokens", "ignore_eos"]
    )
    return sent, request_set.filter(pl.col("request_id").is_in(sent["request_id"].implode()))


def _as_older_run(run: Path, dest: Path) -> Path:
    """The run as a jouleflow before trace schema 5 left it: requests.parquet without the targets."""
    shutil.copytree(run, dest)
    requests = pl.read_parquet(dest / "requests.parquet")
    requests.drop("max_tokens", "ignore_eos").write_parquet(dest / "requests.parquet")
    return dest


def test_a_saturated_run_reports_the_mean_of_the_sent_requests_targets(saturated):
    run = saturated
    sent, targets = _sent_targets(run)
    stopped = sent.filter(pl.col("stopped"))
    ok = sent.filter(pl.col("ok"))
    assert stopped.height >= 1 and targets.height == sent.height
    # requests.parquet records each request's target as the request set gave it
    recorded = sent.select("request_id", "max_tokens", "ignore_eos").sort("request_id")
    assert recorded.equals(targets.sort("request_id")) and recorded["ignore_eos"].all()
    expected = float(targets["max_tokens"].mean())
    # the bias the targets correct: the completed requests are the short ones
    assert float(ok["output_tokens"].mean()) < expected

    write_summary(run)
    s = json.loads((run / "summary.json").read_text())
    assert s["mean_output_tokens"] == pytest.approx(expected)
    assert s["output_tokens_from"] == "request targets" and "output-length-biased" not in s["flags"]
    assert s["energy_per_request_j"] == pytest.approx(s["energy_per_token_j"] * expected)
    assert summary_row(run)["output_tokens_from"] == "request targets"


def test_an_older_run_takes_the_targets_from_its_request_set(saturated, tmp_path):
    new = summarize_run(saturated)
    old = summarize_run(_as_older_run(saturated, tmp_path / "old"))
    _, targets = _sent_targets(saturated)
    assert old.mean_output_tokens == pytest.approx(float(targets["max_tokens"].mean()))
    assert old.output_tokens_from == "request targets"
    assert old.energy_per_request_j == pytest.approx(new.energy_per_request_j)
    assert old.flags == new.flags

    # a request set that is not the one run.json records (its sha256) is not used
    other = _as_older_run(saturated, tmp_path / "other")
    rs = pl.read_parquet(other / "request_set.parquet")
    rs.with_columns(pl.col("max_tokens") + 1).write_parquet(other / "request_set.parquet")
    changed = summarize_run(other)
    assert changed.output_tokens_from == "completed requests"
    assert "sha256" in changed.flag_details["output-length-biased"]


def test_without_targets_the_completed_requests_are_used_and_flagged(saturated, tmp_path):
    new = summarize_run(saturated)
    run = _as_older_run(saturated, tmp_path / "old")
    (run / "request_set.parquet").unlink()
    s = summarize_run(run)
    requests = pl.read_parquet(run / "requests.parquet")
    ok = requests.filter(pl.col("ok"))
    stopped = requests.filter(pl.col("stopped") & pl.col("t_send").is_not_null())
    completed = float(ok["output_tokens"].mean())
    assert s.mean_output_tokens == pytest.approx(completed)
    assert s.output_tokens_from == "completed requests"
    assert s.energy_per_request_j == pytest.approx(s.energy_per_token_j * completed)
    assert s.energy_per_request_j < new.energy_per_request_j
    # informational: J/token and the run's validity are untouched, the detail names the numbers
    assert [f for f in s.flags if f != "output-length-biased"] == new.flags and s.valid == new.valid
    assert "output-length-biased" in s.flags
    assert s.energy_per_token_j == new.energy_per_token_j
    detail = s.flag_details["output-length-biased"]
    assert f"{completed:.1f}" in detail and f"{ok.height} completed" in detail
    assert f"{stopped.height} stopped in flight" in detail and "biased low" in detail
