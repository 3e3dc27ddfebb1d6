"""What a person watching a measurement sees: the engine's start-up, then the load.

On a terminal: a rich status line while the engine starts (phase, elapsed time, the server log's
last meaningful line) and a progress bar for the load (requests, tokens/s, watts, ETA). Elsewhere
(SLURM logs, pipes) no live display: a plain log line every `log_every_s`, so a log file shows
progress without a redraw per refresh.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jouleflow.measure.load import LoadStats

log = logging.getLogger("jouleflow.measure.progress")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# tqdm-style bars and bare spinners say nothing a reader can act on
_NOISE = re.compile(r"(\d+%\|)|(it/s\])|(s/it\])|^[\W_]+$")


def last_meaningful_line(text: str, width: int = 120) -> str | None:
    """The server log's last line worth showing: no colour codes, progress bars or blank lines."""
    for raw in reversed(text.replace("\r", "\n").splitlines()):
        line = _ANSI.sub("", raw).strip()
        if line and not _NOISE.search(line):
            return line if len(line) <= width else line[: width - 1] + "…"
    return None


def eta_s(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the rate so far; None before the first completion or without a total."""
    if total <= 0 or done <= 0:
        return None
    return 0.0 if done >= total else elapsed_s * (total - done) / done


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _width(stream: Any) -> int:
    """The terminal's width behind `stream` (rich asks stdout's, which may be another)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80


class StartupProgress:
    """The engine's start-up: phase, elapsed time, the server log's last meaningful line.

    `tick(elapsed_s)` is called from the health-wait loop (ServerProcess.wait_healthy's on_poll).
    """

    def __init__(
        self,
        engine: str,
        log_path: Path,
        tty: bool | None = None,
        log_every_s: float = 15.0,
        stream: Any = None,
        phase: str = "starting, waiting for health",
    ) -> None:
        self.engine = engine
        self.phase = phase
        self.log_path = Path(log_path)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.log_every_s = log_every_s
        self._next_log = log_every_s
        self._status: Any = None

    def line(self, elapsed_s: float) -> str:
        from jouleflow.measure.engines.base import tail

        text = f"{self.engine}: {self.phase} · {_clock(elapsed_s)}"
        last = last_meaningful_line(tail(self.log_path, max_lines=50))
        return text + (f" · {last}" if last else "")

    def tick(self, elapsed_s: float) -> None:
        if self.tty:
            # One line, cut at the terminal's width: a wrapped status line leaves its tail behind.
            width = _width(self.stream)
            text = self.line(elapsed_s)
            text = text if len(text) <= width - 3 else text[: width - 4] + "…"
            if self._status is None:
                from rich.console import Console

                self._status = Console(file=self.stream, width=width).status(text)
                self._status.start()
            else:
                self._status.update(text)
        elif elapsed_s >= self._next_log:
            log.info(self.line(elapsed_s))
            self._next_log = elapsed_s + self.log_every_s

    def close(self, healthy_after_s: float | None = None) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if healthy_after_s is not None and self.tty:
            print(f"{self.engine}: ready after {_clock(healthy_after_s)}", file=self.stream)


def wait_healthy_shown(process: Any, timeout_s: float, display: bool = True) -> float:
    """ServerProcess.wait_healthy with the start-up shown (phase, elapsed, last log line)."""
    if not display:
        return process.wait_healthy(timeout_s)
    startup = StartupProgress(process.spec.engine, process.log_path)
    waited = None
    try:
        waited = process.wait_healthy(timeout_s, on_poll=startup.tick)
        return waited
    finally:
        startup.close(waited)


class Progress:
    """Polls `stats` (and optional watts / running callbacks) from inside the load's event loop."""

    def __init__(
        self,
        stats: LoadStats,
        watts: Callable[[], float | None] | None = None,
        running: Callable[[], float | None] | None = None,
        period_s: float = 0.5,
        log_every_s: float = 10.0,
        stream: Any = None,
    ) -> None:
        self.stats = stats
        self.watts = watts or (lambda: None)
        self.running = running or (lambda: None)
        self.period_s = period_s
        self.log_every_s = log_every_s
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.monotonic()

    def fields(self, rate: float) -> dict[str, str]:
        """tokens/s, watts, server running, failed: the bar's text columns."""
        w, r = self.watts(), self.running()
        return {
            "rate": f"{rate:,.0f} tok/s",
            "watts": f"{w:,.0f} W" if w is not None else "",
            "running": f"running {r:.0f}" if r is not None else "",
            "failed": f"{self.stats.failed} failed" if self.stats.failed else "",
        }

    def line(self, rate: float) -> str:
        """The plain form (logs): requests, tokens, tokens/s, running, watts, ETA."""
        s = self.stats
        f = self.fields(rate)
        parts = [
            f"requests {s.done}/{s.total} done ({s.failed} failed, {s.sent - s.done} in flight)",
            f"{s.tokens} tokens",
            f["rate"],
        ]
        parts += [f"server {f['running']}"] if f["running"] else []
        parts += [f["watts"]] if f["watts"] else []
        parts.append(f"ETA {_clock(eta_s(s.done, s.total, time.monotonic() - self.t0))}")
        return " | ".join(parts)

    async def run(self) -> None:
        """Until cancelled."""
        if self.tty:
            await self._run_bar()
        else:
            await self._run_log()

    async def _run_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        columns = (
            TextColumn("load"), BarColumn(), MofNCompleteColumn(), TextColumn("requests"),
            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[watts]}"),
            TextColumn("{task.fields[running]}"), TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        )  # fmt: skip
        last_tokens, last_t, rate = self.stats.tokens, time.monotonic(), 0.0
        console = Console(file=self.stream, width=_width(self.stream))
        with Bar(*columns, console=console, refresh_per_second=4, transient=False) as bar:
            task = bar.add_task("load", total=self.stats.total or None, **self.fields(0.0))
            try:
                while True:
                    await asyncio.sleep(self.period_s)
                    now = time.monotonic()
                    rate = (self.stats.tokens - last_tokens) / max(now - last_t, 1e-9)
                    last_tokens, last_t = self.stats.tokens, now
                    bar.update(
                        task, completed=self.stats.done, total=self.stats.total or None, **self.fields(rate)
                    )
            except asyncio.CancelledError:
                bar.update(task, completed=self.stats.done, **self.fields(rate))
                raise

    async def _run_log(self) -> None:
        last_tokens, last_t = self.stats.tokens, time.monotonic()
        next_log = last_t + self.log_every_s
        while True:
            await asyncio.sleep(self.period_s)
            now = time.monotonic()
            if now >= next_log:
                rate = (self.stats.tokens - last_tokens) / max(now - last_t, 1e-9)
                last_tokens, last_t = self.stats.tokens, now
                log.info(self.line(rate))
                next_log = now + self.log_every_s
