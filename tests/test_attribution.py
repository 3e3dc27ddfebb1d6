"""Where the joules go (analysis.attribution, `jouleflow attribute`) on simulated runs with known costs.

The simulation: one GPU, B = 8 requests always in the batch (a queue behind it), 0.1 s ticks. A
request admitted in a tick prefills its prompt there and streams its first token; every running request
streams 1-4 tokens per tick (the engine's speed, redrawn every second). The GPU draws STATIC_W plus A J per prefill
token plus B_DECODE J per decode token, tick by tick, with a little noise; the counter is that
energy's running sum, sampled at every tick edge, and the server's counters every 0.5 s.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from handmade_runs import run_json
from jouleflow import traces
from jouleflow.analysis.attribution import Options, attribute, interval_edges
from jouleflow.analysis.attribution_diagnosis import DiagnosisThresholds
from jouleflow.analysis.attribution_fit import FitThresholds, fit_costs
from jouleflow.analysis.energy import write_summary
from jouleflow.analysis.power_trace import gpu_traces, window_energy
from jouleflow.cli import main

STATIC_W, A, B_DECODE = 150.0, 0.01, 0.4
BATCH, TICK, T0 = 8, 0.1, 1000.0
REFERENCE_64 = Path(__file__).parents[1] / "resources/reference/runs/lm-arena-chat/"
REFERENCE_64 = REFERENCE_64 / "meta-llama--Llama-3.1-8B-Instruct/H100/tp1/64"


def simulate(
    seed: int = 0,
    n_requests: int = 240,
    noise: float = 0.01,
    counters: bool = True,
    prompt_tokens: tuple[int, int] = (50, 3000),
    speeds: tuple[int, int] = (1, 5),  # tokens per request per tick, drawn in [lo, hi) every second
) -> dict:
    rng = np.random.default_rng(seed)
    inputs = rng.integers(*prompt_tokens, n_requests)
    outputs = rng.integers(10, 120, n_requests)
    queue, running, t = list(range(n_requests)), {}, T0
    first, end, chunks = {}, {}, []
    energy, prompt_total, gen_total = 0.0, 0.0, 0.0
    power, server = [{"t": T0, "gpu": 0, "power_w": STATIC_W, "energy_j": 0.0, "temp_c": 50.0}], []
    tick = 0
    while queue or running:
        prefill = 0
        while queue and len(running) < BATCH:
            rid = queue.pop(0)
            running[rid], prefill = int(outputs[rid]), prefill + int(inputs[rid])
            first[rid] = t + TICK / 2
        decode = 0
        if tick % 10 == 0:  # the engine's speed changes every second (a batch's context lengths, say)
            speed = int(rng.integers(*speeds))
        for rid in list(running):
            n = min(speed, running[rid])
            chunks.append({"request_id": rid, "t": t + TICK / 2, "n_tokens": n})
            running[rid] -= n
            decode += n
            if running[rid] == 0:
                end[rid] = t + TICK / 2
                del running[rid]
        e = (STATIC_W * TICK + A * prefill + B_DECODE * decode) * (1 + noise * rng.standard_normal())
        energy, prompt_total, gen_total = energy + e, prompt_total + prefill, gen_total + decode
        tick += 1
        t = T0 + tick * TICK
        power.append({"t": t, "gpu": 0, "power_w": e / TICK, "energy_j": energy, "temp_c": 50.0})
        if tick % 5 == 0:
            row = {
                "t": t,
                "running": float(len(running)),
                "waiting": float(len(queue)),
                "kv_cache_usage": 0.3,
            }
            row.update(preemptions=0.0, generation_tokens=gen_total if counters else 0.0)
            if counters:
                row["prompt_tokens"] = prompt_total
            server.append(row)
    for k in range(1, 20):  # the sampler runs a little past the load
        power.append(
            {"t": t + k * TICK, "gpu": 0, "power_w": STATIC_W, "energy_j": energy + STATIC_W * k * TICK}
        )
    requests = [
        {
            "request_id": r,
            "t_send": T0,
            "t_first_token": first[r],
            "t_end": end[r],
            "input_tokens": int(inputs[r]),
        }
        | {"output_tokens": int(outputs[r]), "ok": True, "error": None, "stopped": False}
        for r in range(n_requests)
    ]
    return {"power": power, "server": server, "tokens": chunks, "requests": requests}


def write_sim(
    run_dir: Path, sim: dict, baseline_w: float | None = None, gpu_util: float | None = None
) -> Path:
    writer = traces.RunDirWriter(run_dir)
    for name in ("power", "server", "tokens", "requests"):
        writer.write_trace(f"{name}.parquet", sim[name])
    if gpu_util is not None:  # what the latent sampler records; the other latents unreported (null)
        rows = [
            {"t": r["t"], "gpu": 0, "util_gpu_pct": gpu_util, "util_mem_pct": None, "sm_clock_mhz": None,
             "mem_clock_mhz": None, "throttle_reasons": None}
            for r in sim["server"]
        ]  # fmt: skip
        writer.write_trace("gpu_metrics.parquet", rows)
    extra = {}
    if baseline_w is not None:
        extra["idle_baseline"] = {
            "start": 900.0,
            "end": 930.0,
            "duration_s": 30.0,
            "mean_power_w": {"0": baseline_w},
        }
    meta = run_json(batch=BATCH, gpus=1, **extra)
    meta["config"]["num_requests"] = len(sim["requests"])
    writer.commit(meta)
    write_summary(run_dir)  # the steady window, as the pipeline computes it
    return run_dir


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory) -> Path:
    return write_sim(tmp_path_factory.mktemp("attr") / "run", simulate(), baseline_w=STATIC_W, gpu_util=95.0)


@pytest.fixture(scope="module")
def old_run(tmp_path_factory) -> Path:
    """The same load recorded the way older runs are: no prompt counter, no baseline, no GPU metrics."""
    return write_sim(tmp_path_factory.mktemp("attr") / "old", simulate(counters=False))


def test_the_fit_recovers_the_simulated_costs(sim_run):
    doc, _ = attribute(sim_run)
    assert doc["window"]["duration_s"] > 15 and doc["n_intervals"] >= 15
    assert "prompt_tokens counter" in doc["token_sources"]["prefill_tokens"]
    free, fixed = doc["fit"]["free"], doc["fit"]["fixed_static"]
    assert free["identifiable"] and fixed["identifiable"] and fixed["s_fixed"]
    # 1 % noise per tick: within 10 % (a), 5 % (b, s), and within a few standard errors
    for fit in (free, fixed):
        assert fit["a_j_per_prefill_token"] == pytest.approx(A, rel=0.10)
        assert fit["b_j_per_decode_token"] == pytest.approx(B_DECODE, rel=0.05)
        assert abs(fit["a_j_per_prefill_token"] - A) < 4 * fit["a_se"]
        assert fit["r2"] > 0.9
    assert free["s_w"] == pytest.approx(STATIC_W, rel=0.05) and free["s_se"] > 0
    assert fixed["s_w"] == STATIC_W and fixed["s_se"] is None


def test_the_fit_without_counters_uses_the_client_tokens(old_run):
    doc, _ = attribute(old_run)
    assert "input_tokens" in doc["token_sources"]["prefill_tokens"]
    assert "streamed chunk" in doc["token_sources"]["decode_tokens"]
    free = doc["fit"]["free"]
    assert free["identifiable"]
    assert free["b_j_per_decode_token"] == pytest.approx(B_DECODE, rel=0.05)
    assert free["a_j_per_prefill_token"] == pytest.approx(A, rel=0.10)
    assert doc["fit"]["fixed_static"] == {"identifiable": False, "reason": doc["static_dynamic"]["reason"]}


def test_static_share_with_and_without_a_baseline(sim_run, old_run):
    doc, _ = attribute(sim_run)
    split, window = doc["static_dynamic"], doc["window"]
    assert split["static_j"] == pytest.approx(STATIC_W * window["duration_s"], rel=1e-12)
    assert split["static_j"] + split["dynamic_j"] == pytest.approx(doc["energy_j"], rel=1e-12)
    assert split["static_share"] + split["dynamic_share"] == pytest.approx(1.0)
    assert 0.2 < split["static_share"] < 0.8
    old, _ = attribute(old_run)
    assert old["static_dynamic"]["static_j"] is None and "idle_baseline" in old["static_dynamic"]["reason"]
    assert set(old["missing"]) == {"idle_baseline", "gpu_metrics", "prefill_tokens_counter"}
    assert old["requests"]["static_source"].startswith("fitted s")


def test_the_baseline_is_the_one_run_json_records(sim_run):
    from jouleflow.analysis.attribution import idle_baseline
    from jouleflow.records import read_run

    record = read_run(sim_run)
    assert idle_baseline(record) == record.idle_baseline == record.provenance["idle_baseline"]
    assert idle_baseline(record)["mean_power_w"] == {"0": STATIC_W}


@pytest.mark.parametrize("run", ["sim_run", "old_run"])
def test_per_request_energy_conserves_the_window_energy(run, request):
    run_dir = request.getfixturevalue(run)
    doc, frame = attribute(run_dir)
    window = doc["window"]
    counter = window_energy(
        gpu_traces(pl.read_parquet(run_dir / "power.parquet")), window["start"], window["end"]
    )
    assert doc["energy_j"] == pytest.approx(counter.total_j, rel=1e-9)
    total = frame["energy_j"].sum() + doc["requests"]["unattributed_j"]
    assert total == pytest.approx(doc["energy_j"], rel=1e-6)
    assert doc["requests"]["unattributed_j"] == 0.0  # the batch is never empty in the window
    parts = frame["static_j"] + frame["prefill_j"] + frame["decode_j"]
    assert np.allclose(parts.to_numpy(), frame["energy_j"].to_numpy(), rtol=1e-9, atol=1e-9)
    stats = doc["requests"]["whole_in_window"]["energy_j"]
    assert stats["n"] > 20 and stats["p10"] <= stats["p50"] <= stats["p90"]


def test_prefill_weighting_follows_the_fit_or_counts_tokens(sim_run):
    doc, frame = attribute(sim_run)
    assert doc["requests"]["prefill_to_decode_ratio"] == pytest.approx(A / B_DECODE, rel=0.15)
    assert "fitted a/b" in doc["requests"]["weighting"]
    strict = Options(fit=FitThresholds(min_intervals=10_000))
    doc1, frame1 = attribute(sim_run, strict)
    assert doc1["requests"]["prefill_to_decode_ratio"] == 1.0 and "1:1" in doc1["requests"]["weighting"]
    # without a resolved fit the split is not reported (a 1:1 weight would overstate prefill here),
    # while each request's dynamic joules (keyed 1:1 by tokens) still add up to the window's
    assert frame1["prefill_j"].null_count() == frame1.height and doc1["requests"]["prefill_j"] is None
    assert doc1["requests"]["decode_j"] is None and doc1["requests"]["fit_used"] is None
    assert frame1["dynamic_j"].sum() + frame1["static_j"].sum() == pytest.approx(
        doc1["requests"]["attributed_j"]
    )
    assert frame["prefill_j"].sum() + frame["decode_j"].sum() == pytest.approx(frame["dynamic_j"].sum())


def test_not_identifiable_on_too_few_intervals_and_collinear_inputs():
    rng = np.random.default_rng(1)
    n = 40
    dt, p, d = np.ones(n), rng.uniform(0, 1000, n), rng.uniform(100, 200, n)
    e = STATIC_W * dt + A * p + B_DECODE * d
    assert fit_costs(e, dt, p, d)["identifiable"]
    few = fit_costs(e[:9], dt[:9], p[:9], d[:9])
    assert (
        not few["identifiable"] and "9 intervals < 10" in few["reason"] and "a_j_per_prefill_token" not in few
    )
    collinear = fit_costs(e, dt, 3 * d, d)
    assert not collinear["identifiable"] and "collinear" in collinear["reason"]
    constant = fit_costs(e, dt, np.full(n, 500.0), d)
    assert not constant["identifiable"] and "constant" in constant["reason"]
    # decode tokens barely varying: indistinguishable from the static term
    flat = fit_costs(e, dt, p, 150 + 1e-4 * rng.standard_normal(n))
    assert not flat["identifiable"] and "condition number" in flat["reason"]


def test_too_short_a_window_is_not_identifiable(sim_run):
    doc, frame = attribute(sim_run, Options(interval_s=100.0))
    assert doc["n_intervals"] == 1 and not doc["fit"]["free"]["identifiable"]
    assert frame["energy_j"].sum() == pytest.approx(doc["energy_j"], rel=1e-6)


def test_intervals_cover_the_window_exactly():
    edges = interval_edges(10.0, 13.5, 1.0)
    assert edges.tolist() == [10.0, 11.0, 12.0, 13.0, 13.5]
    assert interval_edges(10.0, 13.0, 1.0).tolist() == [10.0, 11.0, 12.0, 13.0]


def test_diagnosis_from_the_latents(sim_run, old_run):
    diag = attribute(sim_run)[0]["diagnosis"]
    assert diag["primary"] == "saturated" and diag["unknown"] == {}
    assert diag["evidence"]["mean_util_gpu_pct"] == 95.0
    old = attribute(old_run)[0]["diagnosis"]
    assert old["primary"] == "unclassified"
    assert set(old["unknown"]) == {"host-bound", "underutilized", "saturated"}
    tight = Options(diagnosis=DiagnosisThresholds(kv_full=0.25, util_busy_pct=99.0))
    diag = attribute(sim_run, tight)[0]["diagnosis"]
    assert (
        diag["primary"] == "memory-bound" and "kv_cache_usage reached 0.300" in diag["labels"]["memory-bound"]
    )
    assert diag["thresholds"]["kv_full"] == 0.25


def test_the_cli_end_to_end(sim_run, tmp_path, capsys):
    out, per_request = tmp_path / "attribution.json", tmp_path / "requests.parquet"
    argv = ["attribute", str(sim_run), "-o", str(out), "--requests", str(per_request), "--interval", "500ms"]
    assert main([*argv, "--kv-full", "0.95"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert "saturated" in printed and f"static share {doc['static_dynamic']['static_share']:.1%}" in printed
    assert doc["interval_s"] == 0.5 and doc["thresholds"]["diagnosis"]["kv_full"] == 0.95
    assert doc["fit"]["free"]["b_j_per_decode_token"] == pytest.approx(B_DECODE, rel=0.05)
    frame = pl.read_parquet(per_request)
    assert frame["energy_j"].sum() == pytest.approx(doc["energy_j"], rel=1e-6)
    assert main(["attribute", str(tmp_path / "nope"), "-o", str(out)]) == 2


def test_a_bundled_real_run_yields_what_it_can(tmp_path, capsys):
    out = tmp_path / "attribution.json"
    assert main(["attribute", str(REFERENCE_64), "-o", str(out)]) == 0
    assert "no static share: run.json has no idle_baseline" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["window"]["source"].startswith("computed")  # the bundle has no summary.json
    assert doc["energy_j"] > 0 and doc["static_dynamic"]["static_j"] is None
    assert set(doc["missing"]) == {"idle_baseline", "gpu_metrics", "prefill_tokens_counter"}
    assert set(doc["diagnosis"]["unknown"]) == {"host-bound", "underutilized", "saturated"}
    assert doc["diagnosis"]["evidence"]["full_batch"] == 64
    free = doc["fit"]["free"]
    assert free["identifiable"] is False or (free["b_j_per_decode_token"] > 0 and math.isfinite(free["r2"]))
    assert doc["requests"]["attributed_j"] + doc["requests"]["unattributed_j"] == pytest.approx(
        doc["energy_j"], rel=1e-6
    )


def test_an_interval_without_tokens_goes_to_the_residents(sim_run, tmp_path):
    """Drop every chunk of one second: its dynamic energy goes to the requests resident then."""
    sim = simulate()
    sim["tokens"] = [c for c in sim["tokens"] if not 1030.0 <= c["t"] < 1031.0]
    run_dir = write_sim(tmp_path / "gap", sim, baseline_w=STATIC_W)
    doc, frame = attribute(run_dir, Options(fit=FitThresholds(min_intervals=10_000)))
    assert doc["requests"]["unattributed_j"] == 0.0
    assert frame["energy_j"].sum() == pytest.approx(doc["energy_j"], rel=1e-6)
    parts = frame["static_j"] + frame["dynamic_j"]  # no resolved fit: no prefill/decode split
    assert np.allclose(parts.to_numpy(), frame["energy_j"].to_numpy(), rtol=1e-9, atol=1e-9)
