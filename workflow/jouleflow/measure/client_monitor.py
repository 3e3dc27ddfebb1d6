"""How busy the measuring client was: a load is only as good as the process that drives it.

One Python process sends every request and reads every stream. At high token rates (an H200 at
batch 256 streams ~10,000 chunks a second to 256 clients) it may fall behind: completions are seen
late, replacements sent late, and the engine runs a thinner load than the protocol says, which
looks exactly like a slow server front end in the engine's gauges. Recorded per load (run.json
`load.client`): the process's CPU time over the load and its share of one core, and the event
loop's lag — how late a `period_s` sleep wakes (p50, p99, max) — so a reader can tell a client
limit (a core busy, lag in the tens of ms) from a server limit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ClientMonitor:
    """Start inside the load's event loop; `stop()` returns what run.json's `load.client` keeps."""

    period_s: float = 0.1
    lags: list[float] = field(default_factory=list)
    _cpu0: float = 0.0
    _wall0: float = 0.0
    _task: asyncio.Task[None] | None = None

    def start(self) -> ClientMonitor:
        self._cpu0, self._wall0 = time.process_time(), time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(self.period_s)
            self.lags.append(max(loop.time() - t - self.period_s, 0.0))

    async def stop(self) -> dict[str, Any]:
        cpu, wall = time.process_time() - self._cpu0, time.monotonic() - self._wall0
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        lags = sorted(self.lags)

        def q(p: float) -> float | None:
            return lags[min(int(p * len(lags)), len(lags) - 1)] if lags else None

        return {
            "cpu_s": cpu,
            "wall_s": wall,
            "cpu_util": cpu / wall if wall > 0 else None,  # share of one core (threads included)
            "loop_lag_period_s": self.period_s,
            "loop_lag_p50_s": q(0.5),
            "loop_lag_p99_s": q(0.99),
            "loop_lag_max_s": lags[-1] if lags else None,
        }
