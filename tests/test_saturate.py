"""arrival=saturate against the test-only streaming server, and its live stopping rule."""

from __future__ import annotations

import asyncio

import pyarrow.parquet as pq
import pytest
from jouleflow import traces
from jouleflow.measure.convergence import CONVERGED, Convergence
from jouleflow.measure.jobconfig import ConfigError, SaturateConfig, config_from_dict
from jouleflow.measure.load import LoadSettings, RequestResult, run_load
from jouleflow.measure.load_rows import request_rows
from jouleflow.measure.saturate import POOL_EXHAUSTED
from sse_test_server import ServerState
from test_load import _chat, _with_server


def _saturate(state, requests, in_flight, stop_check=None, poll_s=0.05):
    async def go(url):
        s = LoadSettings(base_url=url, model="m", arrival="saturate", in_flight=in_flight)
        return await run_load(requests, s, stop_check=stop_check, poll_s=poll_s)

    return asyncio.run(_with_server(state, go))


def _peak_in_flight(results) -> int:
    events = sorted(
        [(r.t_send, 1) for r in results if r.t_send is not None]
        + [(r.t_end, -1) for r in results if r.t_send is not None],
        key=lambda e: (e[0], e[1]),
    )
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    return peak


def test_keeps_in_flight_full_refills_and_stops_on_the_check():
    state = ServerState(token_delay_s=0.004)
    seen = []

    def stop(results):
        seen.append(sum(r.t_send is not None and r.t_end is None for r in results))
        done = sum(r.ok for r in results)
        return "converged" if done >= 30 else None

    reqs = [_chat(i, max_tokens=10 + i % 7) for i in range(500)]
    result = _saturate(state, reqs, in_flight=6, stop_check=stop)
    assert result.stopped == "converged" and result.aborted is None
    assert state.max_running == 6 and _peak_in_flight(result.results) == 6
    # Refilled at once: full at most polls; a loaded machine may end two streams in one event-loop tick.
    assert max(seen) == 6 and sorted(seen)[len(seen) // 2] == 6 and min(seen) >= 4
    ok = [r for r in result.results if r.ok]
    stopped = [r for r in result.results if r.stopped and r.t_send is not None]
    unsent = [r for r in result.results if r.t_send is None]
    # The in-flight ones at the stop: as many as the last check saw (a loaded machine may have
    # ended a stream or two in the tick before it), nothing cancelled later.
    assert len(ok) >= 30 and 4 <= len(stopped) <= 6 and len(stopped) == seen[-1]
    assert all(r.error == "stopped: converged" and not r.ok for r in stopped)
    assert all(r.error == "not sent: converged" and r.stopped and r.t_end is None for r in unsent)
    assert len(ok) + len(stopped) + len(unsent) == 500
    assert all(r.t_end <= result.t_stop + 0.5 for r in stopped)  # ended by the stop, not run out
    sent_order = sorted(r.request_id for r in result.results if r.t_send is not None)
    assert sent_order == list(range(len(sent_order)))  # the pool is taken in order


def test_pool_exhausted_stops_at_the_first_request_that_cannot_be_replaced():
    state = ServerState(token_delay_s=0.002)
    reqs = [_chat(i, max_tokens=8 + 4 * (i % 3)) for i in range(20)]
    result = _saturate(state, reqs, in_flight=4)
    assert result.stopped == POOL_EXHAUSTED
    assert all(r.t_send is not None for r in result.results)  # every request was sent
    stopped = [r for r in result.results if r.stopped]
    assert 1 <= len(stopped) <= 3 and all(r.error == f"stopped: {POOL_EXHAUSTED}" for r in stopped)
    assert sum(r.ok for r in result.results) == 20 - len(stopped)
    last_send = max(r.t_send for r in result.results)
    assert min(r.t_end for r in stopped) >= last_send


def test_stopped_column_round_trips_and_old_traces_still_read(tmp_path):
    state = ServerState(token_delay_s=0.002)
    calls = iter(range(1000))
    result = _saturate(
        state, [_chat(i) for i in range(50)], 3, lambda _: "time limit" if next(calls) > 3 else None
    )
    writer = traces.RunDirWriter(tmp_path / "run")
    path = writer.write_trace("requests.parquet", request_rows(result.results))
    table = traces.read_table(path)
    rows = table.to_pylist()
    assert [r["stopped"] for r in rows] == [r.stopped for r in result.results]
    assert any(r["stopped"] for r in rows) and any(r["ok"] for r in rows)
    # a version-1 file (no `stopped`) reads with the column null; a version-2 file without it is broken
    old = pq.read_table(path).drop_columns(["stopped"])
    old = old.replace_schema_metadata({b"jouleflow_schema_version": b"1"})
    pq.write_table(old, tmp_path / "old.parquet")
    read = traces.read_table(tmp_path / "old.parquet", traces.REQUESTS)
    assert read.column("stopped").null_count == read.num_rows
    pq.write_table(old.replace_schema_metadata({b"jouleflow_schema_version": b"2"}), tmp_path / "new.parquet")
    with pytest.raises(traces.TraceError, match="missing column.*stopped"):
        traces.read_table(tmp_path / "new.parquet", traces.REQUESTS)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _stream(results: list[RequestResult], t: float, tokens: int) -> None:
    for i, r in enumerate(results):
        if i < tokens:
            r.chunk_t.append(t)
            r.chunk_n.append(1)


@pytest.mark.parametrize("noisy", [False, True])
def test_convergence_stops_when_the_ci_is_met_else_at_the_time_limit(noisy):
    clock = Clock()
    targets = SaturateConfig(target_window_s=20, target_ci=0.02, max_load_s=60, interval_s=2)
    power: list[dict] = []
    server: list[dict] = []
    conv = Convergence(targets, 4, server_rows=lambda: server, power_rows=lambda: power, clock=clock)
    results = [RequestResult(request_id=i, t_send=clock.now) for i in range(6)]
    energy, reason, step = 0.0, None, 0
    while reason is None:
        clock.now += 0.5
        step += 1
        watts = 100.0 * (1.8 if noisy and (step // 4) % 2 else 1.0)
        energy += watts * 0.5
        power.append({"t": clock.now, "gpu": 0, "power_w": watts, "energy_j": energy})
        server.append({"t": clock.now, "running": 4.0 if clock.now >= 1002 else 2.0})
        _stream(results, clock.now - 0.25, 5)
        reason = conv(results)
    rec = conv.record(reason, clock.now)
    assert rec["steady_start"] == 1002.0 and rec["start_source"] == "server"
    if not noisy:
        assert reason == CONVERGED and rec["converged"]
        assert rec["window_s"] == pytest.approx(20.0, abs=0.5) and rec["ci_rel"] <= 0.02
        assert rec["j_per_token"] == pytest.approx(100.0 / 10, rel=1e-9)  # 100 W / 10 tokens/s
    else:
        assert reason.startswith("time limit: J/token ±") and reason.endswith("after 60 s")
        assert not rec["converged"] and rec["ci_rel"] > 0.02 and rec["n_intervals"] >= 25


def test_saturate_config_is_validated_naming_the_key():
    base = {"model": "m", "batch_size": 8, "synthetic": {"fixed_output_len": 4}}
    cfg = config_from_dict({**base, "arrival": "saturate"})
    assert cfg.saturate == SaturateConfig() and cfg.saturate_headroom() == 4
    assert config_from_dict({**base, "batch_size": 256, "arrival": "saturate"}).saturate_headroom() == 32
    assert "saturate" not in config_from_dict(base).to_dict()  # other arrivals record what they always did
    for bad, key in [
        ({"target_ci": 0}, "saturate.target_ci"),
        ({"headroom": -1}, "saturate.headroom"),
        ({"interval_s": 40}, "saturate.interval_s"),
        ({"max_load_s": 10}, "saturate.max_load_s"),
        ({"warmup_response_times": -0.5}, "saturate.warmup_response_times"),
        ({"warmup_response_times": "1"}, "saturate.warmup_response_times"),
        ({"bogus": 1}, "saturate.bogus"),
    ]:
        with pytest.raises(ConfigError, match=key):
            config_from_dict({**base, "arrival": "saturate", "saturate": bad}, "spec.yaml")
    with pytest.raises(ConfigError, match="saturate: only used with arrival=saturate"):
        config_from_dict({**base, "saturate": {"target_ci": 0.05}})


def test_campaign_measurement_load_reaches_the_job_spec_only_for_saturate():
    from jouleflow.plan.config import ConfigSchemaError
    from test_grid import grid_of

    burst = grid_of()
    point = burst.points[0]
    assert "arrival" not in burst.spec(point) and "saturate" not in burst.spec(point)
    assert "arrival" not in burst.identity(point)  # burst campaigns' rerun triggers unchanged
    load = {"arrival": "saturate", "target_ci": 0.02, "max_load_s": 300}
    grid = grid_of(measurement={"load": load})
    spec = grid.spec(grid.points[0])
    assert spec["arrival"] == "saturate" and spec["saturate"] == {"target_ci": 0.02, "max_load_s": 300}
    off = grid_of(measurement={"load": {**load, "warmup_response_times": 0}})
    assert off.spec(off.points[0])["saturate"]["warmup_response_times"] == 0
    assert grid.identity(grid.points[0])["saturate"] == spec["saturate"]
    cfg = config_from_dict(
        {k: v for k, v in spec.items() if v is not None} | {"synthetic": {"fixed_output_len": 8}}
    )
    assert cfg.saturate == SaturateConfig(target_ci=0.02, max_load_s=300)
    with pytest.raises(ConfigSchemaError, match="target_cl"):
        grid_of(measurement={"load": {"arrival": "saturate", "target_cl": 0.02}})


def test_the_live_estimate_counts_tokens_with_the_engines_counter_when_it_has_one():
    """An engine falling behind merges tokens into fewer chunks: counted per chunk, J/token reads high."""
    clock = Clock()
    targets = SaturateConfig(target_window_s=10, target_ci=0.02, max_load_s=60, interval_s=2)
    power: list[dict] = []
    server: list[dict] = []
    conv = Convergence(targets, 4, server_rows=lambda: server, power_rows=lambda: power, clock=clock)
    results = [RequestResult(request_id=i, t_send=clock.now) for i in range(4)]
    energy, generated, reason = 0.0, 0, None
    while reason is None:
        clock.now += 0.5
        energy += 100.0 * 0.5  # 100 W
        generated += 10  # the engine makes 20 tokens/s ...
        power.append({"t": clock.now, "gpu": 0, "power_w": 100.0, "energy_j": energy})
        server.append({"t": clock.now, "running": 4.0, "generation_tokens": float(generated)})
        _stream(results, clock.now - 0.25, 2 if int(clock.now * 2) % 3 else 4)  # ... streamed in fewer chunks
        reason = conv(results)
    rec = conv.record(reason, clock.now)
    assert reason == CONVERGED and rec["token_source"] == "server counter"
    assert rec["j_per_token"] == pytest.approx(100.0 / 20, rel=1e-9)
    # Without the counter the same chunks give a biased, noisy estimate.
    for row in server:
        del row["generation_tokens"]
    blind = Convergence(targets, 4, server_rows=lambda: server, power_rows=lambda: power, clock=clock)
    blind.t0 = clock.now - 1
    blind(results)
    assert blind.token_source == "client chunks" and blind.estimate.mean > 100.0 / 20 * 1.2


def test_counter_growth_per_interval_is_interpolated_and_none_where_not_covered():
    from jouleflow.analysis.uncertainty import counter_per_interval

    t, c = [0.0, 1.0, 3.0, 4.0], [0.0, 10.0, 50.0, 60.0]
    assert counter_per_interval(t, c, [0.5, 2.0, 4.0, 5.0]) == [25.0, 30.0, None]
    assert counter_per_interval(t, c, [-1.0, 1.0]) == [None]


def _saturate_scraped(state, in_flight, top_up_cap=None, load_s=4.0):
    """A saturating load with the real /metrics scraper, optionally topped up (measure.topup)."""
    from jouleflow.measure.server_metrics import MetricsScraper
    from jouleflow.measure.topup import TopUp

    async def go(url):
        scraper = MetricsScraper(url + "/metrics", period_s=0.05)
        scraper.start()
        top_up = TopUp(8, top_up_cap, lambda: scraper.rows) if top_up_cap else None
        t0 = asyncio.get_running_loop().time()

        def stop(results):
            return "enough" if asyncio.get_running_loop().time() - t0 > load_s else None

        s = LoadSettings(base_url=url, model="m", arrival="saturate", in_flight=in_flight)
        reqs = [_chat(i, max_tokens=4) for i in range(2000)]
        try:
            result = await run_load(reqs, s, stop_check=stop, in_flight_check=top_up, poll_s=0.05)
        finally:
            rows = await asyncio.to_thread(scraper.stop)
        return result, rows, top_up, s.in_flight

    return asyncio.run(_with_server(state, go))


def _median_running(rows, after):
    values = sorted(r["running"] for r in rows if r["t"] >= after and r.get("running") is not None)
    return values[len(values) // 2]


def test_top_up_fills_the_batch_a_slow_front_end_leaves_short():
    # Each request spends 2 x 50 ms in the front end around 80 ms in the batch: B + 1 in flight keep
    # only ~4 of 8 running with none waiting; the top-up raises the count until the batch is full.
    def state():
        st = ServerState(token_delay_s=0.02)  # few, long sleeps: a starved event loop stretches all alike
        st.max_num_seqs, st.frontend_s = 8, 0.05
        return st

    fixed, rows_fixed, _, n_fixed = _saturate_scraped(state(), in_flight=9)
    assert n_fixed == 9 and _median_running(rows_fixed, fixed.t0 + 1.0) <= 6
    topped, rows, top_up, n_final = _saturate_scraped(state(), in_flight=9, top_up_cap=24)
    assert top_up.raises and n_final == top_up.raises[-1][1] and 17 <= n_final <= 24
    assert [n for _, n in top_up.raises] == sorted({n for _, n in top_up.raises})  # only ever raised
    t_full = top_up.raises[-1][0]
    assert _median_running(rows, t_full + 0.2) == 8  # full after the last raise
    assert any(r["waiting"] > 0 for r in rows if r["t"] > t_full)  # a request waits, as it should
    rec = top_up.record(9, n_final)
    assert rec["in_flight_start"] == 9 and rec["in_flight_final"] == n_final and rec["in_flight_cap"] == 24


def test_top_up_raises_on_a_short_batch_or_a_draining_queue_and_leaves_the_rest_alone():
    from jouleflow.measure.topup import TopUp

    rows: list[dict] = []
    top = TopUp(batch=64, cap=160, server_rows=lambda: rows, floor=8)
    assert top(72) == 72  # nothing scraped yet
    rows.append({"t": 1.0, "running": 64, "waiting": 9})
    assert top(72) == 72  # full, its queue deep enough
    rows.append({"t": 2.0, "running": 40, "waiting": 12})
    assert top(72) == 72  # short but requests wait: memory or prefill bound, not the client
    rows.append({"t": 3.0, "running": 50, "waiting": 0})
    assert top(72) == 86  # short, none waiting: raise by the shortfall
    assert top(86) == 86  # the same scrape again: wait for the raise to show
    rows.append({"t": 4.0, "running": 64, "waiting": 3})
    assert top(86) == 91  # full, but the queue drains below the floor: raise by what it lacks
    rows.append({"t": 5.0, "running": 62, "waiting": 0})
    assert top(91) == 99  # full within the tolerance, queue empty: the floor again
    rows.append({"t": 6.0, "running": 50, "waiting": 0})
    assert top(150) == 160  # capped
    rows.append({"t": 7.0, "running": 50, "waiting": 0})
    assert top(160) == 160
    assert top.raises == [(3.0, 86), (4.0, 91), (5.0, 99), (6.0, 160)]
    assert top.record(72, 160)["in_flight_floor"] == 8
    rows.append({"t": 8.0, "running": None, "waiting": None})
    assert TopUp(batch=64, cap=128, server_rows=lambda: rows)(72) == 72  # no gauges
    assert TopUp(batch=64, cap=128, server_rows=lambda: [{"t": 1.0, "running": 64, "waiting": 0}])(72) == 72
    # (no floor: a full batch with nothing waiting is left alone)


def test_the_warmup_reads_the_streams_when_the_engine_has_no_token_counter():
    from jouleflow.measure.convergence import WINDOW_REACHED
    from jouleflow.measure.warmup import TARGETS, UPPER, Warmup, mean_output_length

    assert mean_output_length([100, 300], [True, True]) == (200.0, TARGETS)
    assert mean_output_length([100, None], [True, False]) == (100.0, UPPER)  # an upper estimate
    assert mean_output_length([None, None], [False, False])[0] is None
    clock = Clock()
    targets = SaturateConfig(target_window_s=4, max_load_s=60, interval_s=1)
    warmup = Warmup(targets.warmup_response_times, 40.0, TARGETS, targets.interval_s)
    conv = Convergence(targets, 4, clock=clock, warmup=warmup)  # no /metrics, no energy sensor
    results = [RequestResult(request_id=i, t_send=clock.now) for i in range(4)]
    reason, first = None, clock.now + 0.05
    while reason is None:  # each request streams a token every 50 ms: 40 tokens take 2 s
        clock.now += 0.05
        _stream(results, clock.now, 4)
        reason = conv(results) if round((clock.now - 1000) / 0.05) % 5 == 0 else None
    rec = conv.record(reason, clock.now)
    assert reason == WINDOW_REACHED and rec["start_source"] == "client-active"
    assert rec["batch_full"] == pytest.approx(first)
    assert rec["token_interval_s"] == pytest.approx(0.05) and rec["token_interval_from"].startswith("client")
    assert rec["mean_response_s"] == pytest.approx(2.0)
    assert rec["warmup_end"] == pytest.approx(first + 2.0) == rec["steady_start"]
    assert clock.now == pytest.approx(first + 2.0 + 4.0, abs=0.3)


def test_convergence_waits_for_the_estimate_to_cover_the_window():
    """Power rows that arrive behind the clock (a sampler on a loaded host): the window is long enough
    and the CI met on its first intervals, but the load goes on until the estimate's intervals span
    the whole target window."""
    clock = Clock()
    targets = SaturateConfig(target_window_s=20, target_ci=0.02, max_load_s=60, interval_s=2)
    sampled: list[dict] = []
    server: list[dict] = []
    lag = 3.0  # the rows the sampler has handed over reach 3 s before now
    conv = Convergence(
        targets,
        4,
        server_rows=lambda: server,
        power_rows=lambda: [r for r in sampled if r["t"] <= clock.now - lag],
        clock=clock,
    )
    results = [RequestResult(request_id=i, t_send=clock.now) for i in range(6)]
    energy, reason = 0.0, None
    while reason is None:
        clock.now += 0.5
        energy += 100.0 * 0.5
        sampled.append({"t": clock.now, "gpu": 0, "power_w": 100.0, "energy_j": energy})
        server.append({"t": clock.now, "running": 4.0 if clock.now >= 1002 else 2.0})
        _stream(results, clock.now - 0.25, 5)
        reason = conv(results)
    rec = conv.record(reason, clock.now)
    assert reason == CONVERGED and rec["steady_start"] == 1002.0
    assert rec["n_intervals"] >= 10 and rec["ci_rel"] <= 0.02  # 10 x 2 s = the target window
    assert rec["window_s"] >= 20.0 + lag - 0.5  # it waited for the lagging rows
    assert rec["j_per_token"] == pytest.approx(100.0 / 10, rel=1e-9)
