"""Live progress of a load phase: requests done, tokens/s, watts (rich on a TTY, log lines otherwise)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable

from jouleflow.measure.load import LoadStats

log = logging.getLogger("jouleflow.measure.progress")


class Progress:
    """Polls `stats` (and an optional watts callback) from inside the load's event loop."""

    def __init__(
        self,
        stats: LoadStats,
        watts: Callable[[], float | None] | None = None,
        running: Callable[[], float | None] | None = None,
        period_s: float = 0.5,
        log_every_s: float = 10.0,
    ) -> None:
        self.stats = stats
        self.watts = watts or (lambda: None)
        self.running = running or (lambda: None)
        self.period_s = period_s
        self.log_every_s = log_every_s
        self.tty = sys.stderr.isatty()

    def line(self, rate: float) -> str:
        s = self.stats
        w = self.watts()
        r = self.running()
        parts = [
            f"requests {s.done}/{s.total} done ({s.failed} failed, {s.sent - s.done} in flight)",
            f"{s.tokens} tokens",
            f"{rate:,.0f} tok/s",
        ]
        if r is not None:
            parts.append(f"server running {r:.0f}")
        if w is not None:
            parts.append(f"{w:,.0f} W")
        return " | ".join(parts)

    async def run(self) -> None:
        """Until cancelled."""
        last_tokens, last_t = self.stats.tokens, time.monotonic()
        rate = 0.0
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            with Live(console=Console(stderr=True), refresh_per_second=4, transient=False) as live:
                try:
                    while True:
                        await asyncio.sleep(self.period_s)
                        now = time.monotonic()
                        rate = (self.stats.tokens - last_tokens) / max(now - last_t, 1e-9)
                        last_tokens, last_t = self.stats.tokens, now
                        live.update(self.line(rate))
                except asyncio.CancelledError:
                    live.update(self.line(rate))
                    raise
        next_log = time.monotonic() + self.log_every_s
        while True:
            await asyncio.sleep(self.period_s)
            now = time.monotonic()
            if now >= next_log:
                rate = (self.stats.tokens - last_tokens) / max(now - last_t, 1e-9)
                last_tokens, last_t = self.stats.tokens, now
                log.info(self.line(rate))
                next_log = now + self.log_every_s
