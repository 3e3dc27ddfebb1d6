"""A saturating load's warm-up: the steady window begins once the batch's context mix has settled.

`jouleflow measure llm` against the test-only SSE server (standing in for vLLM, with its /metrics)
and the fake GPU, with outputs long relative to the window: every request of the first batch
starts together, so the window begins `warmup_response_times` mean response times after the batch
first filled. The expectation is computed from the files: the request set's targets and the
engine's token counter and running gauge in server.parquet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from jouleflow.analysis import steady
from jouleflow.analysis.energy import summarize_run
from jouleflow.records import read_run

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SERVER = TESTS / "sse_test_server.py"
B, OUT_LEN, TOKEN_DELAY_S = 4, 120, 0.01  # ~1.3 s per response, against a 2 s window


def _measure(tmp: Path, name: str, *flags: str) -> Path:
    model, run = tmp / "model", tmp / name
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps({"num_attention_heads": 4, "num_hidden_layers": 2}))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS / "fakegpu"), str(REPO / "workflow"), str(TESTS)]),
        "FAKE_GPU_POWER_W": "250",
        "JOULEFLOW_GPU_LOCK_DIR": str(tmp),
        "TEST_SERVER_TOKEN_DELAY_S": str(TOKEN_DELAY_S),
    }
    r = subprocess.run(
        [
            sys.executable, "-m", "jouleflow", "measure", "llm", "--model", "test/model",
            "--model-path", str(model), "--launcher", f"{sys.executable} {SERVER}",
            "--batch-size", str(B), "--num-requests", "400", "--output-len", str(OUT_LEN),
            "--prompt-len", "fixed:5", "--health-timeout", "60s", "--metrics-period", "50ms",
            "--idle-baseline", "0s", "--arrival", "saturate", "--target-window", "2s",
            "--target-ci", "0.5", "--ci-interval", "0.5s", "--headroom", "3", "--no-progress",
            *flags, "-o", str(run),
        ],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("warmup")
    return {
        "default": _measure(tmp, "default", "--max-load", "20s"),
        "off": _measure(tmp, "off", "--max-load", "20s", "--warmup", "0"),
        "too-long": _measure(tmp, "too-long", "--max-load", "3s", "--warmup", "20"),
    }


def _server(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "server.parquet").filter(pl.col("running").is_not_null()).sort("t")


def _batch_full(run: Path) -> float:
    """The first scrape with the full batch running (the rule of docs/method.md, from the file)."""
    srv = _server(run)
    return float(srv.filter(pl.col("running") >= B * (1 - steady.DEFAULT_FULL_TOLERANCE))["t"][0])


def test_the_window_begins_one_mean_response_time_after_the_batch_filled(runs):
    run = runs["default"]
    conv = read_run(run).convergence
    assert conv["converged"] and conv["warmup_response_times"] == 1.0
    assert conv["targets"]["warmup_response_times"] == 1.0
    full, warmup_end = _batch_full(run), conv["warmup_end"]
    assert conv["batch_full"] == pytest.approx(full)
    # Expected: the request set's mean target x the per-request token interval the engine showed
    # (mean running / generation tokens per second) over the warm-up.
    targets = pl.read_parquet(run / "request_set.parquet")
    assert targets["ignore_eos"].all()
    mean_len = float(targets["max_tokens"].mean())
    srv = _server(run).filter(pl.col("t").is_between(full, warmup_end))
    rate = (srv["generation_tokens"][-1] - srv["generation_tokens"][0]) / (srv["t"][-1] - srv["t"][0])
    expected = mean_len * float(srv["running"].mean()) / rate
    assert expected > 0.5 * TOKEN_DELAY_S * OUT_LEN  # the outputs are long relative to the window
    assert warmup_end - full == pytest.approx(expected, rel=0.25)
    assert conv["mean_output_tokens"] == mean_len and conv["mean_output_tokens_from"].startswith(
        "request targets"
    )
    assert conv["mean_response_s"] == pytest.approx(warmup_end - full)
    assert conv["token_interval_from"].startswith("server counter")
    # The live window counts from the warm-up's end, and so does the summary's.
    assert conv["steady_start"] == warmup_end and conv["window_s"] >= 2.0
    s = summarize_run(run)
    assert s.steady_start >= warmup_end and s.steady_start == pytest.approx(warmup_end)
    assert s.window_server["start"] == pytest.approx(warmup_end) and s.window_client["start"] >= warmup_end
    assert s.steady_end <= read_run(run).load["t_stop"]
    assert "not-converged" not in s.flags and "no-steady-state" not in s.flags  # (a 2 s window is short)


def test_without_a_warmup_the_window_starts_at_the_full_batch_as_before(runs):
    run = runs["off"]
    conv = read_run(run).convergence
    assert conv["warmup_response_times"] == 0 and conv["warmup_end"] is None
    full = _batch_full(run)
    assert conv["batch_full"] == pytest.approx(full) and conv["steady_start"] == pytest.approx(full)
    s = summarize_run(run)
    assert s.steady_start == pytest.approx(full) and s.window_source == steady.SERVER
    firsts = sorted(pl.read_parquet(run / "requests.parquet")["t_first_token"].drop_nulls().to_list())
    assert s.window_client["start"] == firsts[B - 1]  # the B-th first token, untouched


def test_a_warmup_longer_than_the_load_ends_it_unconverged_naming_the_warmup(runs):
    run = runs["too-long"]
    rec = read_run(run)
    conv = rec.convergence
    assert rec.status == "ok" and not conv["converged"]
    assert (
        conv["stop_reason"].startswith("time limit: warm-up (20 x ")
        and "not over after 3 s" in conv["stop_reason"]
    )
    assert conv["steady_start"] is None and conv["window_s"] is None
    assert conv["warmup_end"] > rec.load["t_stop"]  # its projected end
    s = summarize_run(run)
    assert s.steady_start is None and s.energy_per_token_j is None
    assert "no-steady-state" in s.flags and "not-converged" in s.flags
    assert "warm-up" in s.flag_details["not-converged"]
