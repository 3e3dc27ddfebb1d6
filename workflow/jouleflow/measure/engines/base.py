"""Serving-engine process management: launch, health wait, teardown of the whole process group.

Every engine (vLLM, transformers serve, xDiT's torchrun, ...) is described by a `ServerSpec`;
`ServerProcess` runs it under a small supervisor (engines/supervisor.py) that leads the engine's
process group and takes the engine's whole process tree down when the engine exits, when asked
to stop, or when jouleflow itself dies (even by SIGKILL). It keeps the engine's log, waits on its
health endpoint with an overall timeout while watching for an early exit, and classifies a
start-up failure: out of memory / not enough KV cache => "infeasible", anything else => "failed".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jouleflow.measure.engines import supervisor

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
    """One engine server (its supervisor, process group and every descendant). Use as a context manager.

    `pid` and `pgid` are the supervisor's: it leads the group, exits with the engine's status and
    kills the engine's tree if this process dies or the engine exits (`orphan_grace_s` of SIGTERM,
    then SIGKILL). Start it from the main thread: Linux's parent-death signal follows the thread
    that started the child (a getppid() poll covers other threads, within 0.1 s).
    """

    def __init__(self, spec: ServerSpec, log_path: Path, orphan_grace_s: float = 10.0) -> None:
        self.spec = spec
        self.log_path = Path(log_path)
        self.orphan_grace_s = orphan_grace_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None

    def start(self) -> None:
        env = {**os.environ, **self.spec.env}
        exe = self.spec.argv[0]
        # The supervisor launches the engine, so check here what Popen would have reported.
        if shutil.which(exe, path=env.get("PATH", os.defpath)) is None:
            raise ServerStartError("failed", f"cannot launch {exe!r}: not found or not executable")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file.write(f"$ {' '.join(self.spec.argv)}\n".encode())
        self._log_file.flush()
        log.info(
            "starting %s server on port %d: %s", self.spec.engine, self.spec.port, " ".join(self.spec.argv)
        )
        argv = [
            sys.executable, "-I", "-S", supervisor.__file__, str(os.getpid()), str(self.orphan_grace_s),
            json.dumps(self.spec.stop_argv), "--", *self.spec.argv,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own group: Ctrl-C in a terminal reaches only jouleflow
        )
        self.pgid = self.proc.pid  # session leader: pgid == pid
        log.info(
            "%s server pid %d (supervisor and process group leader); log: %s",
            self.spec.engine,
            self.pgid,
            self.log_path,
        )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def is_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout_s: float) -> int | None:
        """The exit code if the server exits within `timeout_s`, else None (it is left running)."""
        if self.proc is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.proc.wait(timeout=timeout_s)
        return None

    def wait_healthy(
        self, timeout_s: float, poll_s: float = 0.5, on_poll: Callable[[float], None] | None = None
    ) -> float:
        """Block until GET health_path answers 200; returns seconds waited. Raises ServerStartError.

        `on_poll(elapsed_s)` is called on every poll (the start-up display, measure.progress).
        """
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
            if on_poll is not None:
                on_poll(time.monotonic() - t0)
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    "failed",
                    f"{self.spec.engine} server not healthy at {url} within {timeout_s:.0f} s",
                    tail(self.log_path),
                )
            time.sleep(poll_s)

    def tree_pids(self) -> set[int]:
        """The supervisor's descendants (in any process group or session) plus its group's members."""
        if self.proc is None:
            return set()
        pids = self._group_members()
        if self.proc.poll() is None:  # once it is reaped, its pid may name another process
            pids |= {self.proc.pid, *supervisor.descendants(self.proc.pid)}
        return pids

    def group_alive(self) -> bool:
        """Whether any process of the server is left: the supervisor, its group or a descendant."""
        return bool(self.tree_pids())

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM the whole tree, SIGKILL what is left after `grace_s`; idempotent."""
        if self.proc is None:
            return
        if self.spec.stop_argv:
            with contextlib.suppress(Exception):
                subprocess.run(self.spec.stop_argv, timeout=grace_s + 10, capture_output=True)
        # The supervisor SIGTERMs the descendants outside the group (e.g. torchrun's ranks) itself.
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not self.group_alive():
                break
            time.sleep(0.1)
        else:
            log.warning("%s server did not exit within %.0f s: SIGKILL", self.spec.engine, grace_s)
            # The tree is listed while the supervisor lives: once it is gone they are out of reach.
            end = time.monotonic() + 10
            while time.monotonic() < end:
                supervisor.signal_all(self.tree_pids(), signal.SIGKILL)
                self._signal_group(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=0.1)
                if not self.group_alive():
                    break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        with contextlib.suppress(Exception):
            self._log_file.close()

    def _signal_group(self, sig: int) -> None:
        if self.pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def _group_members(self) -> set[int]:
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

    def group_pids(self) -> set[int]:
        """PIDs of the server's processes (for telling its GPU processes from foreign ones)."""
        return self.tree_pids()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
