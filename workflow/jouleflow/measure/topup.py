"""arrival=saturate: raise the in-flight count while the engine's own queue runs dry.

The client keeps B + headroom requests in flight so that the engine has a request waiting whenever
one finishes. At high token rates the API server's front end (tokenizing, detokenizing, streaming)
holds some of them: a request the client counts as in flight may not have reached the scheduler yet,
or have finished there and still be streaming out. On an H200 at batch 256 (12k tokens/s) a fixed
headroom of B/8 left vLLM at 193-210 running with none waiting, so the "full batch" window was not
full. With the top-up filling the batch (255 of 256), the engine's queue still drained through the
window (247 -> 12 waiting over 38 s) while the client kept 512 in flight: completions outpaced the
front end's admissions, and the batch would have run short soon after. The engine's own gauges say
when either happens, and the count is raised, at most once per scrape, up to `cap`:
- fewer than (1 - tolerance) x B running and none waiting: add the shortfall (B - running);
- a full batch with fewer than `floor` (the starting headroom) waiting: add floor - waiting.
A raise shows in the gauges only once the front end has admitted it (seconds at high token rates),
so the count overshoots what the engine needs: harmless, since more requests waiting costs nothing
measured (the engine runs at most B; a waiting request holds no KV cache), only pool; too few is
what biases the window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TopUp:
    """An `in_flight_check` for saturate.run_saturate: the in-flight count to keep from now on."""

    batch: int  # the full batch (B x data-parallel replicas)
    cap: int  # never more than this in flight
    server_rows: Callable[[], Sequence[dict]]
    tolerance: float = 0.05  # analysis.steady's full-batch tolerance
    floor: int = 0  # requests the engine should have waiting at a full batch (the starting headroom)
    raises: list[tuple[float, int]] = field(default_factory=list)  # (scrape time, new in-flight count)
    _last_t: float | None = None

    def __call__(self, current: int) -> int:
        if current >= self.cap:
            return current
        rows = self.server_rows()
        if not rows:
            return current
        last = rows[-1]
        t, running, waiting = last.get("t"), last.get("running"), last.get("waiting")
        if t is None or running is None or waiting is None:
            return current  # an engine without the gauges: keep the fixed headroom
        if self._last_t is not None and t <= self._last_t:
            return current  # one decision per scrape: the last raise has not been seen yet
        self._last_t = t
        full = running >= (1 - self.tolerance) * self.batch
        if waiting == 0 and not full:
            add = max(1, round(self.batch - running))
        elif full and waiting < self.floor:
            add = max(1, round(self.floor - waiting))
        else:
            return current
        new = min(self.cap, current + add)
        self.raises.append((float(t), new))
        return new

    def record(self, start: int, final: int) -> dict[str, Any]:
        """What run.json's `load` keeps: the count it started at, ended at, and each raise."""
        return {
            "in_flight_start": start,
            "in_flight_final": final,
            "in_flight_cap": self.cap,
            "in_flight_floor": self.floor,
            "in_flight_raises": [[t, n] for t, n in self.raises],
        }
