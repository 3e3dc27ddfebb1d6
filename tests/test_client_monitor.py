"""measure.client_monitor: the client's own CPU and event-loop lag, recorded with every load."""

import asyncio
import time

from jouleflow.measure.client_monitor import ClientMonitor


def test_a_blocked_event_loop_shows_as_lag_and_busy_cpu():
    async def go():
        mon = ClientMonitor(period_s=0.02).start()
        await asyncio.sleep(0.2)  # idle: the sleeps wake on time
        t = time.process_time()
        while time.process_time() - t < 0.3:  # a client busy parsing: the loop cannot run
            pass
        await asyncio.sleep(0.1)
        return await mon.stop()

    rec = asyncio.run(go())
    assert rec["loop_lag_max_s"] >= 0.25  # the 0.3 s of busy work delayed one wake-up
    assert rec["loop_lag_p50_s"] < 0.02  # most wake-ups were on time
    assert 0.25 <= rec["cpu_s"] <= rec["wall_s"] + 0.05
    assert 0.5 <= rec["wall_s"] < 2.0 and 0.2 < rec["cpu_util"] <= 1.05
    assert rec["loop_lag_period_s"] == 0.02


def test_an_idle_client_is_recorded_as_idle():
    async def go():
        mon = ClientMonitor(period_s=0.02).start()
        await asyncio.sleep(0.3)
        return await mon.stop()

    rec = asyncio.run(go())
    assert rec["cpu_util"] < 0.5 and rec["loop_lag_max_s"] < 0.1
