"""The live stop of a saturate load whose front end starves the batch (measure.convergence): once the
window holds more starved time than the `frontend-starved` validity threshold allows over the longest
window the load could still reach, the run cannot end valid, so the load stops instead of burning the
rest of `max_load_s` (on an H200 at B = 256 the batch emptied from 511 to 136 in the engine while
the client held 544-1,024 in flight)."""

from __future__ import annotations

import pytest
from jouleflow.analysis.validity import DEFAULT_THRESHOLDS
from jouleflow.measure.convergence import FRONT_END, Convergence
from jouleflow.measure.jobconfig import SaturateConfig
from jouleflow.measure.load import RequestResult

B = 8


def _run(waiting_when_short: float, short_from: float = 1010.0):
    """A saturate load on a fake clock: full from t = 1002, then 3 of 8 running from `short_from`."""
    now = [1000.0]
    targets = SaturateConfig(target_window_s=20, target_ci=1e-6, max_load_s=60, interval_s=2)
    power: list[dict] = []
    server: list[dict] = []
    conv = Convergence(targets, B, server_rows=lambda: server, power_rows=lambda: power, clock=lambda: now[0])
    results = [RequestResult(request_id=i, t_send=now[0]) for i in range(12)]
    energy, reason = 0.0, None
    while reason is None:
        now[0] += 0.5
        energy += 300.0 * 0.5
        power.append({"t": now[0], "gpu": 0, "power_w": 300.0, "energy_j": energy})
        short = now[0] >= short_from
        server.append({"t": now[0], "running": 3.0 if short else (8.0 if now[0] >= 1002 else 2.0),
                       "waiting": waiting_when_short if short else 4.0})  # fmt: skip
        for r in results[: 3 if short else 8]:
            r.chunk_t.append(now[0] - 0.25)
            r.chunk_n.append(1)
        reason = conv(results)
    return reason, now[0], conv.record(reason, now[0])


def test_a_batch_starved_by_the_front_end_stops_once_the_run_cannot_be_valid():
    reason, t_stop, rec = _run(waiting_when_short=0.0)
    assert reason.startswith(FRONT_END + ":") and "frontend-starved" in reason
    longest = 1000.0 + 60 - 1002.0  # the window could have lasted until max_load_s
    threshold = DEFAULT_THRESHOLDS.max_starved_share * longest
    assert threshold < rec["starved_s"] <= threshold + 0.5  # stopped at the first sample past it
    assert t_stop == pytest.approx(1010.0 + threshold, abs=1.0)  # ~16 s, not the 60 s limit
    assert rec["steady_start"] == 1002.0 and not rec["converged"]


def test_a_short_batch_with_requests_waiting_is_not_the_front_end():
    # The engine holds requests it does not run (KV cache, memory): not the front end; the load runs on.
    reason, t_stop, rec = _run(waiting_when_short=5.0)
    assert reason.startswith("time limit: J/token") and t_stop == pytest.approx(1060.0, abs=0.5)
    assert rec["starved_s"] == 0.0
