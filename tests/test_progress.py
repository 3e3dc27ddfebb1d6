"""The live display: engine start-up (phase, elapsed, last log line) and the load bar (requests,
tokens/s, watts, ETA) on a terminal; plain periodic log lines elsewhere (SLURM logs)."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import pty
import select
import struct
import sys
import termios
import time

import pytest
from jouleflow.measure.engines.base import ServerProcess, ServerSpec, ServerStartError, free_port
from jouleflow.measure.load import LoadStats
from jouleflow.measure.progress import Progress, StartupProgress, eta_s, last_meaningful_line

# What an engine writes while it loads: colour codes, tqdm bars, blank lines.
LOADING = (
    "import sys, time\n"
    "print('\\x1b[32mINFO\\x1b[0m 12-01 starting engine', flush=True)\n"
    "print('INFO Loading weights took 3.10 seconds', flush=True)\n"
    "print('Capturing CUDA graphs:  40%|####      | 4/10 [00:01<00:02, 3.1it/s]', flush=True)\n"
    "print('', flush=True)\n"
    "time.sleep(60)\n"
)


def test_last_meaningful_line_skips_bars_colours_and_blanks():
    text = "\x1b[32mINFO\x1b[0m starting\nINFO Loading weights took 3.10 seconds\n 40%|####  | 4/10 [00:01, 3.1it/s]\n\n"
    assert last_meaningful_line(text) == "INFO Loading weights took 3.10 seconds"
    assert last_meaningful_line("\n  \n") is None
    assert last_meaningful_line("x" * 300, width=20) == "x" * 19 + "…"


def test_eta_from_the_rate_so_far():
    assert eta_s(25, 100, 10.0) == pytest.approx(30.0)
    assert eta_s(0, 100, 10.0) is None and eta_s(5, 0, 1.0) is None
    assert eta_s(100, 100, 10.0) == 0.0


def _loading_server(tmp_path) -> ServerProcess:
    spec = ServerSpec(engine="test", argv=[sys.executable, "-c", LOADING], host="127.0.0.1", port=free_port(),
                      served_model="m")  # fmt: skip
    server = ServerProcess(spec, tmp_path / "server.log")
    server.start()
    return server


def test_startup_off_a_terminal_logs_phase_elapsed_and_last_log_line(tmp_path, caplog):
    server = _loading_server(tmp_path)
    startup = StartupProgress("test", server.log_path, tty=False, log_every_s=0.5)
    with caplog.at_level(logging.INFO, logger="jouleflow.measure.progress"), pytest.raises(ServerStartError):
        server.wait_healthy(timeout_s=2.0, poll_s=0.1, on_poll=startup.tick)
    server.stop(grace_s=5)
    lines = [r.getMessage() for r in caplog.records if r.name == "jouleflow.measure.progress"]
    assert 2 <= len(lines) <= 5  # periodic, not one per poll
    assert lines[-1].startswith("test: starting, waiting for health · 0:0")
    assert lines[-1].endswith(" · INFO Loading weights took 3.10 seconds")


def _pty_stream():
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # a wide terminal
    return master, os.fdopen(slave, "w", buffering=1)


def _read_all(master: int) -> str:
    chunks = []
    while select.select([master], [], [], 0.2)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def test_startup_on_a_terminal_shows_a_live_status(tmp_path):
    server = _loading_server(tmp_path)
    master, stream = _pty_stream()
    startup = StartupProgress("test", server.log_path, stream=stream)
    assert startup.tty
    with pytest.raises(ServerStartError):
        server.wait_healthy(timeout_s=1.5, poll_s=0.1, on_poll=startup.tick)
    startup.close(None)
    server.stop(grace_s=5)
    stream.flush()
    out = _read_all(master)
    stream.close()
    os.close(master)
    assert "waiting for health" in out and "Loading weights took 3.10 seconds" in out


async def _drive(progress: Progress, stats: LoadStats, seconds: float) -> None:
    task = asyncio.create_task(progress.run())
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(0.05)
        stats.sent = min(stats.total, stats.sent + 1)
        stats.done = min(stats.sent, stats.done + 1) if stats.done < 5 else stats.done
        stats.tokens += 100
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_load_off_a_terminal_logs_requests_rate_watts_and_eta(caplog):
    stats = LoadStats(total=10)
    progress = Progress(stats, watts=lambda: 512.0, running=lambda: 4.0, period_s=0.05, log_every_s=0.2)
    assert not progress.tty  # pytest captures stderr
    with caplog.at_level(logging.INFO, logger="jouleflow.measure.progress"):
        asyncio.run(_drive(progress, stats, 0.7))
    lines = [r.getMessage() for r in caplog.records if r.name == "jouleflow.measure.progress"]
    assert lines, "no progress line logged"
    last = lines[-1]
    assert last.startswith("requests 5/10 done (0 failed, ")
    assert " tok/s | server running 4 | 512 W | ETA 0:0" in last


def test_load_on_a_terminal_draws_a_bar_with_eta(monkeypatch):
    master, stream = _pty_stream()
    stats = LoadStats(total=10)
    progress = Progress(stats, watts=lambda: 512.0, period_s=0.05, stream=stream)
    assert progress.tty
    asyncio.run(_drive(progress, stats, 0.6))
    stream.flush()
    out = _read_all(master)
    stream.close()
    os.close(master)
    assert "5/10" in out and "512 W" in out and "tok/s" in out and "ETA" in out and "━" in out
