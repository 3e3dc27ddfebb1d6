"""Serving-engine process management: launch, health wait, teardown of the whole process group.

Every engine (vLLM, transformers serve, ...) is described by a `ServerSpec`; `ServerProcess`
runs it in its own process group (so its workers die with it), keeps its log, waits on its
health endpoint with an overall timeout while watching for an early exit, and classifies a
start-up failure: out of memory / not enough KV cache => "infeasible", anything else => "failed".
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Start-up failures that mean "this configuration does not fit", not "something broke".
INFEASIBLE_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"out of memory",
        r"OutOfMemoryError",
        r"No available memory for the cache blocks",
        r"larger than the available KV cache memory",
        r"not enough KV cache",
        r"KV cache is needed",
        r"Insufficient memory",
        r"insufficient KV cache",
    )
]


class ServerStartError(RuntimeError):
    """The server did not become healthy. `status` is "infeasible" (memory) or "failed"."""

    def __init__(self, status: str, reason: str, log_tail: str = "") -> None:
        super().__init__(f"{reason}\n--- server log tail ---\n{log_tail}" if log_tail else reason)
        self.status = status
        self.reason = reason
        self.log_tail = log_tail


class SessionInterrupted(KeyboardInterrupt):
    """SIGTERM (e.g. a SLURM cancel) turned into an exception so every `finally` runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises SessionInterrupted in the main thread (Ctrl-C already raises)."""

    def handler(signum: int, frame: object) -> None:
        raise SessionInterrupted(signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM during a teardown so it completes; re-raise afterwards if one came."""
    got: list[int] = []

    def remember(signum: int, frame: object) -> None:
        got.append(signum)

    try:
        previous = {s: signal.signal(s, remember) for s in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if got:
            raise SessionInterrupted(got[0])


@dataclass
class ServerSpec:
    """What to launch and how to talk to it."""

    engine: str  # "vllm" | "transformers"
    argv: list[str]
    host: str
    port: int
    served_model: str  # the `model` field requests must carry
    env: dict[str, str] = field(default_factory=dict)  # added on top of the inherited environment
    health_path: str = "/health"
    metrics_path: str | None = "/metrics"  # None: the engine has no Prometheus endpoint
    supports_ignore_eos: bool = True
    caps_batch: bool = True  # the server itself limits running requests to the batch size (max_num_seqs)
    sends_done: bool = True
    stop_argv: list[str] | None = None  # e.g. `docker stop NAME`: the client process is not the server

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (a tiny race remains until the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ValueError(f"port {port} on {host} is already in use ({exc.strerror})") from exc


def classify_start_failure(log_text: str) -> tuple[str, str | None]:
    """("infeasible", matching line) when the log shows a memory failure, else ("failed", None)."""
    for line in reversed(log_text.splitlines()):
        for pattern in INFEASIBLE_PATTERNS:
            if pattern.search(line):
                return "infeasible", line.strip()[:500]
    return "failed", None


def tail(path: Path, max_lines: int = 40, max_bytes: int = 64_000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-max_lines:])


class ServerProcess:
    """One engine server process (and its process group). Use as a context manager."""

    def __init__(self, spec: ServerSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None

    def start(self) -> None:
        env = {**os.environ, **self.spec.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file.write(f"$ {' '.join(self.spec.argv)}\n".encode())
        self._log_file.flush()
        log.info(
            "starting %s server on port %d: %s", self.spec.engine, self.spec.port, " ".join(self.spec.argv)
        )
        try:
            self.proc = subprocess.Popen(
                self.spec.argv,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its own process group: teardown reaches every worker
            )
        except FileNotFoundError as exc:
            self._log_file.close()
            raise ServerStartError("failed", f"cannot launch {self.spec.argv[0]!r}: {exc.strerror}") from exc
        self.pgid = self.proc.pid  # session leader: pgid == pid
        log.info(
            "%s server pid %d (its own process group); log: %s", self.spec.engine, self.pgid, self.log_path
        )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def is_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_healthy(self, timeout_s: float, poll_s: float = 0.5) -> float:
        """Block until GET health_path answers 200; returns seconds waited. Raises ServerStartError."""
        assert self.proc is not None, "start() first"
        url = self.spec.base_url + self.spec.health_path
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        while True:
            code = self.proc.poll()
            if code is not None:
                self._log_file.flush()
                text = tail(self.log_path, max_lines=400)
                status, line = classify_start_failure(text)
                reason = f"{self.spec.engine} server exited with code {code} before becoming healthy"
                if line:
                    reason += f": {line}"
                raise ServerStartError(status, reason, "\n".join(text.splitlines()[-40:]))
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        waited = time.monotonic() - t0
                        log.info("%s server healthy after %.1f s", self.spec.engine, waited)
                        return waited
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    "failed",
                    f"{self.spec.engine} server not healthy at {url} within {timeout_s:.0f} s",
                    tail(self.log_path),
                )
            time.sleep(poll_s)

    def group_alive(self) -> bool:
        if self.pgid is None:
            return False
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM the whole group, SIGKILL what is left after `grace_s`; idempotent."""
        if self.proc is None:
            return
        if self.spec.stop_argv:
            with contextlib.suppress(Exception):
                subprocess.run(self.spec.stop_argv, timeout=grace_s + 10, capture_output=True)
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not self.group_alive():
                break
            time.sleep(0.1)
        else:
            log.warning("%s server did not exit within %.0f s: SIGKILL", self.spec.engine, grace_s)
            self._signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            # Reap anything left of the group (children reparented to init are not ours to wait on).
            end = time.monotonic() + 5
            while self.group_alive() and time.monotonic() < end:
                time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        with contextlib.suppress(Exception):
            self._log_file.close()

    def _signal_group(self, sig: int) -> None:
        if self.pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def group_pids(self) -> set[int]:
        """PIDs in the server's process group (for telling its GPU processes from foreign ones)."""
        pids: set[int] = set()
        if self.pgid is None:
            return pids
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) == self.pgid:
                    pids.add(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
        return pids

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
