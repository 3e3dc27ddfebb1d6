"""Energy accounting and latency metrics on hand-made runs (see handmade_runs.py for the scenario)."""

from __future__ import annotations

import polars as pl
import pytest
from handmade_runs import (
    SCHEDULE,
    chunks_for,
    reference_run,
    run_json,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from jouleflow.analysis import latency
from jouleflow.analysis.energy import analyze_run
from jouleflow.analysis.power_trace import GpuTrace, counter_energy, gpu_traces, power_integral, window_energy


def trace(t, e, p=None, gpu=0):
    return GpuTrace(gpu, tuple(t), tuple(e), tuple(p if p is not None else [0.0] * len(t)))


# --- the counter interpolated at the window's ends ------------------------------------------------


def test_counter_interpolated_linearly_between_samples():
    # 100 W for 10 s, then 200 W: E(5) = 500, E(15) = 1000 + 1000 = 2000 -> 1500 J
    tr = trace([0.0, 10.0, 20.0], [0.0, 1000.0, 3000.0])
    assert counter_energy(tr, 5.0, 15.0) == pytest.approx(1500.0)
    assert counter_energy(tr, 0.0, 20.0) == pytest.approx(3000.0)
    assert counter_energy(tr, 2.5, 7.5) == pytest.approx(500.0)  # inside one segment: 100 W x 5 s


def test_counter_never_extrapolated():
    tr = trace([0.0, 10.0], [0.0, 1000.0])
    assert counter_energy(tr, -1.0, 5.0) is None
    assert counter_energy(tr, 5.0, 10.5) is None


def test_counter_reset_counts_nothing_and_is_reported():
    # 100 W; the counter restarts from 0 at t=20 (reading 0 where it should read 2000).
    tr = trace([0.0, 10.0, 20.0, 30.0], [0.0, 1000.0, 0.0, 1000.0])
    assert tr.resets() == 1
    assert tr.resets(12.0, 18.0) == 1 and tr.resets(21.0, 29.0) == 0
    # 5..25: 500 (5->10) + 0 (reset segment) + 500 (20->25) = 1000, a lower bound of the true 2000
    assert counter_energy(tr, 5.0, 25.0) == pytest.approx(1000.0)


def test_power_integral_trapezoids():
    # power ramps 0 -> 100 W over 10 s: integral over [0, 10] = 500 J, over [5, 10] = (50+100)/2*5 = 375 J
    tr = trace([0.0, 10.0], [0.0, 500.0], [0.0, 100.0])
    assert power_integral(tr, 0.0, 10.0) == pytest.approx(500.0)
    assert power_integral(tr, 5.0, 10.0) == pytest.approx(375.0)


def power_frame(rows):
    return pl.DataFrame(
        rows, schema={"t": pl.Float64, "gpu": pl.Int32, "power_w": pl.Float64, "energy_j": pl.Float64}
    )


@st.composite
def counters(draw):
    n = draw(st.integers(min_value=2, max_value=40))
    steps = draw(st.lists(st.floats(min_value=0.01, max_value=5.0), min_size=n - 1, max_size=n - 1))
    incs = draw(st.lists(st.floats(min_value=0.0, max_value=1000.0), min_size=n - 1, max_size=n - 1))
    t, e = [0.0], [draw(st.floats(min_value=0, max_value=1e6))]
    for dt, de in zip(steps, incs, strict=True):
        t.append(t[-1] + dt)
        e.append(e[-1] + de)
    a, b, c = sorted(draw(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=3, max_size=3)))
    span = t[-1]
    return t, e, a * span, b * span, c * span


@given(counters())
def test_window_energy_is_additive_over_split_windows(case):
    t, e, a, b, c = case
    tr = trace(t, e)
    whole = counter_energy(tr, a, c)
    assert whole == pytest.approx(counter_energy(tr, a, b) + counter_energy(tr, b, c), rel=1e-9, abs=1e-6)


@given(counters(), st.permutations([0, 1, 2]))
@settings(max_examples=50)
def test_window_energy_invariant_to_gpu_order_and_row_order(case, perm):
    t, e, a, _, c = case
    rows = [
        {"t": ti, "gpu": g, "power_w": 1.0, "energy_j": ei * (g + 1)}
        for g in range(3)
        for ti, ei in zip(t, e, strict=True)
    ]
    relabeled = [{**r, "gpu": perm[r["gpu"]]} for r in reversed(rows)]
    first = window_energy(gpu_traces(power_frame(rows)), a, c).total_j
    second = window_energy(gpu_traces(power_frame(relabeled)), a, c).total_j
    assert first == pytest.approx(second, rel=1e-12)


# --- latency metrics ----------------------------------------------------------------------------------


def test_percentile_linear_interpolation_by_hand():
    values = [10.0, 1.0, 4.0, 2.0, 3.0]  # sorted 1 2 3 4 10
    assert latency.percentile(values, 50) == 3.0
    assert latency.percentile(values, 90) == pytest.approx(7.6)  # rank 3.6: 4 + 0.6 * 6
    assert latency.percentile(values, 99) == pytest.approx(9.76)  # rank 3.96: 4 + 0.96 * 6
    assert latency.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert latency.percentile([], 50) is None


def test_itl_spreads_multi_token_chunks_evenly():
    tokens = pl.DataFrame(
        {
            "request_id": [7, 7, 7, 7, 8, 8],
            "t": [0.0, 0.3, 0.9, 0.95, 5.0, 6.0],
            "n_tokens": [1, 1, 3, 0, 2, 4],  # a 0-token chunk (usage only) is ignored
        }
    )
    itl = sorted(latency.inter_token_latencies(tokens).to_list())
    # request 7: 0.3 (one token), 0.6 / 3 three times; request 8: first chunk none, then 1.0 / 4 four times
    assert itl == pytest.approx(sorted([0.3, 0.2, 0.2, 0.2, 0.25, 0.25, 0.25, 0.25]))
    only_8 = latency.inter_token_latencies(tokens, pl.Series([8]))
    assert only_8.to_list() == pytest.approx([0.25] * 4)


def test_request_latencies_ttft_tpot_e2e():
    requests = pl.DataFrame(
        {
            "request_id": [1, 2, 3],
            "t_send": [0.0, 0.0, 0.0],
            "t_first_token": [2.0, 1.0, None],
            "t_end": [4.0, 1.0, 3.0],
            "output_tokens": [5, 1, 0],
            "ok": [True, True, False],
        }
    )
    lat = latency.request_latencies(requests).sort("request_id")
    assert lat["ttft"].to_list() == [2.0, 1.0]  # the failed request is left out
    assert lat["e2e"].to_list() == [4.0, 1.0]
    assert lat["tpot"].to_list() == [0.5, None]  # (4 - 2) / (5 - 1); undefined for one token


# --- the whole accounting on the reference scenario ---------------------------------------------------


def test_reference_run_accounting_to_the_joule(tmp_path):
    s = analyze_run(reference_run(tmp_path / "run"))
    # server window: first sample at 2 running = 1011.0, last = 1043.5 (drop at 1044)
    assert (s["steady_start"], s["steady_end"], s["steady_duration_s"]) == (1011.0, 1043.5, 32.5)
    assert s["window_source"] == "server"
    # tokens at whole seconds 1011..1043: r0 20, r1 30, r2 12, r3 4, r4 3, r5 1
    assert s["steady_tokens"] == 70
    assert s["steady_energy_j"] == pytest.approx(2 * 500 * 32.5)  # 32500 J
    assert s["energy_per_gpu_j"] == {"0": pytest.approx(16250.0), "1": pytest.approx(16250.0)}
    assert s["energy_per_token_j"] == pytest.approx(32500 / 70)
    assert s["mean_output_tokens"] == pytest.approx((21 + 30 + 12 + 4 + 4 + 4) / 6)
    assert s["energy_per_request_j"] == pytest.approx(32500 / 70 * 12.5)
    assert s["tokens_per_s"] == pytest.approx(70 / 32.5)
    assert s["mean_power_w"] == pytest.approx(1000.0)
    assert s["tokens_per_s_per_w"] == pytest.approx(70 / 32.5 / 1000.0)
    assert s["mean_running"] == pytest.approx(2.0) and s["batch_fraction"] == pytest.approx(1.0)
    assert s["window_client"]["start"] == 1011.0 and s["window_client"]["end"] == 1041.0
    assert s["window_client_active"]["end"] == 1044.0
    assert s["window_overlap"] == pytest.approx(30 / 32.5)
    # TTFT 10 11 30 40 41 43 s; E2E 30 40 41 43 44 46 s; every gap 1 s
    assert s["median_ttft_s"] == pytest.approx(35.0) and s["p90_ttft_s"] == pytest.approx(42.0)
    assert s["mean_ttft_s"] == pytest.approx(175 / 6)
    assert s["median_e2e_s"] == pytest.approx(42.0) and s["p99_e2e_s"] == pytest.approx(45.9)
    assert s["median_itl_s"] == pytest.approx(1.0) and s["median_tpot_s"] == pytest.approx(1.0)
    assert s["count_itl"] == 75 - 6
    assert s["valid"] is True and s["flags"] == []


def test_client_window_when_the_server_has_no_metrics(tmp_path):
    s = analyze_run(reference_run(tmp_path / "run", server=None))
    assert s["window_source"] == "client-mlenergy"
    assert (s["steady_start"], s["steady_end"]) == (1011.0, 1041.0)
    # tokens at 1011..1041: r0 20, r1 30, r2 12, r3 2, r4 1
    assert s["steady_tokens"] == 65
    assert s["energy_per_token_j"] == pytest.approx(30000 / 65)
    assert s["mean_running_source"] == "client-active" and s["mean_running"] == pytest.approx(2.0)
    assert s["flags"] == ["server-window-missing"] and s["valid"] is True


def test_multi_token_chunks_count_whole_at_their_timestamp(tmp_path):
    tokens = chunks_for(SCHEDULE)
    # r1 sends 5 tokens in one chunk at 1043.5 (the window's last instant) and 7 at 1043.6 (after it)
    tokens += [{"request_id": 1, "t": 1043.5, "n_tokens": 5}, {"request_id": 1, "t": 1043.6, "n_tokens": 7}]
    s = analyze_run(reference_run(tmp_path / "run", tokens=tokens))
    assert s["steady_tokens"] == 70 + 5


def test_no_energy_sensor_gives_null_energy(tmp_path):
    s = analyze_run(reference_run(tmp_path / "a", power=None))
    for key in (
        "steady_energy_j",
        "energy_per_token_j",
        "energy_per_request_j",
        "mean_power_w",
        "tokens_per_s_per_w",
    ):
        assert s[key] is None
    assert s["steady_tokens"] == 70 and s["median_itl_s"] == pytest.approx(1.0)  # non-energy figures stay
    assert "no-energy-sensor" in s["flags"] and s["valid"] is False
    # power.parquet present but provenance says there was no real sensor: still no energy
    meta = run_json()
    meta["provenance"]["energy_source"] = None
    s = analyze_run(reference_run(tmp_path / "b", meta=meta))
    assert s["steady_energy_j"] is None and "no-energy-sensor" in s["flags"]


def test_infeasible_run_without_traces_gets_a_summary_of_nulls(tmp_path):
    from jouleflow.traces import RunDirWriter

    run_dir = RunDirWriter(tmp_path / "run").commit(
        {**run_json(status="infeasible"), "reason": "CUDA out of memory"}
    )
    s = analyze_run(run_dir)
    assert s["status"] == "infeasible" and s["reason"] == "CUDA out of memory"
    assert s["energy_per_token_j"] is None and s["steady_start"] is None and s["median_itl_s"] is None
    assert {"status-not-ok", "no-energy-sensor", "no-steady-state"} <= set(s["flags"])
    assert s["valid"] is False


def test_failed_status_keeps_the_numbers(tmp_path):
    s = analyze_run(reference_run(tmp_path / "run", meta=run_json(status="failed")))
    assert s["flags"] == ["status-not-ok"] and s["valid"] is False
    assert s["energy_per_token_j"] == pytest.approx(32500 / 70)


def test_data_parallel_full_batch_is_b_times_replicas(tmp_path):
    # B = 1 per engine, 2 replicas: the reference run's 2 concurrent requests are a full batch
    meta = run_json(batch=1)
    meta["config"]["data_parallel"] = 2
    s = analyze_run(reference_run(tmp_path / "run", meta=meta))
    assert s["full_batch"] == 2 and s["batch_size"] == 1
    assert (s["steady_start"], s["steady_end"]) == (1011.0, 1043.5)
    assert s["energy_per_token_j"] == pytest.approx(32500 / 70) and s["valid"] is True
