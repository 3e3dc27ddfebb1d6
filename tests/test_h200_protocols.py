"""resources/verification/h200-protocols: shared vs dedicated vLLM servers measured on one H200. The
claims docs/method.md makes from it ("Third H200 measurement") are checked here on the bundled traces:
the batch-256 points are front-end bound whatever the protocol, and where the batch was held, one
server for several batch sizes measured J/token within 2% of dedicated servers."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from jouleflow.analysis.attribution_diagnosis import diagnose
from jouleflow.analysis.steady import in_flight_counts

BUNDLE = Path(__file__).resolve().parents[1] / "resources/verification/h200-protocols"


def _summary(rel: str) -> dict:
    return json.loads((BUNDLE / rel / "summary.json").read_text())


def _diagnosis(rel: str) -> dict:
    run, s = BUNDLE / rel, _summary(rel)
    return diagnose(
        pl.read_parquet(run / "server.parquet"),
        pl.read_parquet(run / "gpu_metrics.parquet"),
        json.loads((run / "run.json").read_text())["config"]["batch_size"],
        s["steady_start"],
        s["steady_end"],
        requests=pl.read_parquet(run / "requests.parquet"),
    )


@pytest.mark.parametrize("rel", ["reuse/256", "dedicated/256"])
def test_batch_256_is_frontend_bound_with_either_protocol(rel):
    diag = _diagnosis(rel)
    assert diag["primary"] == "frontend-bound", diag
    # On average the batch looked nearly full: only the time-resolved evidence shows the starved stretch.
    assert diag["evidence"]["mean_running"] > 0.85 * 256
    assert diag["evidence"]["frontend_starved_share"] >= 0.1
    assert "not-converged" in _summary(rel)["flags"]


def test_the_requests_queued_in_the_servers_front_end_not_in_the_engine():
    run = BUNDLE / "reuse/256"
    srv = pl.read_parquet(run / "server.parquet").sort("t")
    req = pl.read_parquet(run / "requests.parquet").filter(pl.col("t_send").is_not_null())
    in_flight = in_flight_counts(req["t_send"].to_list(), req["t_end"].to_list())
    backlog = [in_flight.at(t) - (r + w) for t, r, w in srv.select("t", "running", "waiting").iter_rows()]
    # More than a whole batch sent by the client yet neither running nor waiting in the engine ...
    assert max(backlog) > 256
    # ... while the engine itself had nothing waiting at times, and new requests took >10 s to start.
    assert (srv["waiting"] == 0).any()
    late = req.filter(pl.col("t_first_token").is_not_null()).sort("t_send").tail(200)
    assert (late["t_first_token"] - late["t_send"]).median() > 10
    # The load client was not the limit: under one core, most event-loop wake-ups on time.
    client = json.loads((run / "run.json").read_text())["load"]["client"]
    assert client["cpu_util"] < 0.9 and client["loop_lag_p50_s"] < 0.01


@pytest.mark.parametrize("rel", ["reuse/8", "reuse/16", "reuse/64", "dedicated/16", "dedicated/64"])
def test_the_points_below_the_front_end_limit_are_saturated(rel):
    assert _diagnosis(rel)["primary"] == "saturated"
    assert _summary(rel)["valid"]


def test_shared_and_dedicated_servers_agree_on_j_per_token_where_the_batch_was_held():
    def jpt(rel: str) -> float:
        return _summary(rel)["energy_per_token_j"]

    assert jpt("reuse/16") / jpt("dedicated/16") == pytest.approx(1, abs=0.02)
    for reuse, dedicated in (("reuse/64", "dedicated/64"), ("repeat/reuse-64", "repeat/dedicated-64")):
        assert jpt(reuse) / jpt(dedicated) == pytest.approx(1, abs=0.02)
    # tokens/s of two dedicated servers at B = 64, one after the other on one host, differ by more
    # than 2%: a single pair cannot decide a 2% tokens/s or power criterion.
    a, b = _summary("dedicated/64")["tokens_per_s"], _summary("repeat/dedicated-64")["tokens_per_s"]
    assert abs(a / b - 1) > 0.02


def test_the_summary_flags_a_starved_window_invalid_even_when_the_mean_batch_looks_full(tmp_path):
    from jouleflow.cli import main

    out = tmp_path / "summary.json"
    assert main(["energy", str(BUNDLE / "attribution-check/256-p200"), "-o", str(out)]) == 0
    s = json.loads(out.read_text())
    assert s["mean_running"] > 0.85 * 256 and "low-batch" not in s["flags"]
    assert "frontend-starved" in s["flags"] and not s["valid"]
    assert s["thresholds"]["max_starved_share"] == 0.1
    # the long-prompt twin streams ~4,000 tokens/s: its front end kept up, the batch stayed full
    assert main(["energy", str(BUNDLE / "attribution-check/256-p2000"), "-o", str(out)]) == 0
    assert "frontend-starved" not in json.loads(out.read_text())["flags"]
    assert (
        main(
            [
                "energy",
                str(BUNDLE / "attribution-check/256-p200"),
                "-o",
                str(out),
                "--max-starved-share",
                "0.5",
            ]
        )
        == 0
    )
    assert "frontend-starved" not in json.loads(out.read_text())["flags"]


def _replay_front_end_stop(run: Path) -> float | None:
    """When the live front-end rule (measure.convergence) would have stopped this run: its server
    samples replayed on a clock from the window's start; None if it would not have."""
    from jouleflow.measure.convergence import Convergence
    from jouleflow.measure.jobconfig import SaturateConfig

    doc = json.loads((run / "run.json").read_text())
    conv_doc, load_start = doc["convergence"], doc["provenance"]["phases"]["load"][0]
    rows = pl.read_parquet(run / "server.parquet").sort("t").to_dicts()
    seen: list[dict] = []
    now = [load_start]
    conv = Convergence(
        SaturateConfig(**{k: v for k, v in conv_doc["targets"].items() if v is not None}),
        doc["config"]["batch_size"],
        server_rows=lambda: seen,
        clock=lambda: now[0],
    )
    conv.start = conv_doc["steady_start"]
    for row in rows:
        if row["t"] > doc["load"]["t_stop"]:
            break
        seen.append(row)
        now[0] = row["t"]
        if row["t"] >= conv.start:
            conv._count_starved(now[0])
            if conv._front_end_verdict() is not None:
                return now[0] - load_start
    return None


@pytest.mark.parametrize(
    ("rel", "stops_before_s"),
    [("reuse/256", 50), ("dedicated/256", 55), ("attribution-check/256-p200", 42)],
)
def test_the_live_front_end_rule_would_have_stopped_the_starved_runs_early(rel, stops_before_s):
    at = _replay_front_end_stop(BUNDLE / rel)
    assert at is not None and at < stops_before_s  # they ran to their 75 s limit


@pytest.mark.parametrize(
    "rel", ["reuse/8", "reuse/16", "reuse/64", "reuse/128", "dedicated/16", "dedicated/64",
            "repeat/reuse-64", "repeat/dedicated-64", "attribution-check/256-p2000"],
)  # fmt: skip
def test_the_live_front_end_rule_leaves_the_fed_runs_alone(rel):
    assert _replay_front_end_stop(BUNDLE / rel) is None
