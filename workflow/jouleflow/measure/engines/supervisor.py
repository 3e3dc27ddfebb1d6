"""A tiny supervisor between jouleflow and a serving engine: no engine process outlives jouleflow.

`ServerProcess` launches `python -I -S supervisor.py PARENT_PID GRACE_S STOP_JSON -- ENGINE ARGV...`
as the leader of a new process group; the supervisor starts the engine in that group and waits.
It is a child subreaper (PR_SET_CHILD_SUBREAPER), so every descendant that loses its parent is
re-parented to it instead of init, even one that moved to its own session (torchrun starts its
ranks with start_new_session; vLLM's EngineCore and workers are grandchildren). When the engine
exits, when it is asked to stop (SIGTERM/SIGINT/SIGHUP), or when jouleflow dies, even by SIGKILL
(PR_SET_PDEATHSIG, and a getppid() poll as a fallback), it SIGTERMs every descendant, SIGKILLs
what is left after GRACE_S (jouleflow's own grace when jouleflow asked), reaps them all and exits with the engine's own status (signals
re-raised), so the caller sees the engine's exit code. On jouleflow's death it first runs
STOP_JSON (e.g. `docker stop NAME`: a container's processes are not descendants).

Standard library only, and run with -I -S: it must start fast and never import the engine's
packages. Linux-only parts (prctl, /proc) degrade to the getppid() poll elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# Delivered by the kernel when the thread that started us exits; checked against getppid().
PARENT_DEATH_SIGNAL = signal.SIGUSR2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
POLL_S = 0.1


def _prctl(option: int, arg: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, arg, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def _parent_pids() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process, from /proc."""
    parents: dict[int, int] = {}
    if not os.path.isdir("/proc"):  # not Linux: the caller falls back to the engine alone
        return parents
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(root: int) -> set[int]:
    """Every live process below `root` (children, grandchildren, ... in any session)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parent_pids().items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class Supervisor:
    def __init__(self, parent: int, grace_s: float, stop_argv: list[str] | None, argv: list[str]) -> None:
        self.parent = parent
        self.grace_s = grace_s
        self.stop_argv = stop_argv
        self.argv = argv
        self.stop_requested = False
        self.engine: int | None = None
        self.status: int | None = None  # the engine's wait status once reaped

    def parent_gone(self) -> bool:
        return os.getppid() != self.parent

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stop_requested = True

    def _reap(self) -> bool:
        """Reap every exited child (orphans come to us); True while any child is left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.engine:
                self.status = status

    def run(self) -> int:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_stop)
        signal.signal(PARENT_DEATH_SIGNAL, lambda signum, frame: None)  # wakes the poll; getppid() decides
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL)
        if self.parent_gone():  # jouleflow died before the death signal was armed
            return 1
        try:
            # Python ignores SIGPIPE and SIGXFSZ; the engine gets the defaults back (as Popen does).
            self.engine = os.posix_spawnp(
                self.argv[0], self.argv, os.environ, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ)
            )
        except OSError as exc:
            print(f"jouleflow: cannot launch {self.argv[0]!r}: {exc.strerror}", file=sys.stderr, flush=True)
            return 127
        while self.status is None and not self.stop_requested and not self.parent_gone():
            self._reap()
            time.sleep(POLL_S)
        if self.parent_gone() and self.stop_argv:
            print(
                "jouleflow: the measuring process is gone; stopping the engine", file=sys.stderr, flush=True
            )
            with contextlib.suppress(Exception):
                subprocess.run(self.stop_argv, timeout=self.grace_s + 10, capture_output=True)
        self.shutdown()
        return self.exit()

    def tree(self, me: int) -> set[int]:
        """Our live descendants; without /proc, the engine alone while it runs."""
        found = descendants(me)
        if not found and self.status is None and self.engine is not None and not os.path.isdir("/proc"):
            found = {self.engine}
        return found

    def shutdown(self) -> None:
        """SIGTERM the whole tree (processes started meanwhile too), SIGKILL the rest after the grace.

        Asked to stop by a living jouleflow, the supervisor does not escalate: jouleflow's own
        grace decides (ServerProcess.stop), unless jouleflow dies meanwhile.
        """
        me = os.getpid()
        termed: set[int] = set()
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline or (self.stop_requested and not self.parent_gone()):
            left = self.tree(me)
            if not left and not self._reap():
                return
            signal_all(left - termed, signal.SIGTERM)
            termed |= left
            self._reap()
            time.sleep(0.05)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            signal_all(self.tree(me), signal.SIGKILL)
            if not self._reap():
                return
            time.sleep(0.05)

    def exit(self) -> int:
        """The engine's status as ours: an exit code, or the same signal re-raised on ourselves."""
        if self.status is None:
            return 1
        code = os.waitstatus_to_exitcode(self.status)
        if code >= 0:
            return code
        import resource

        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # re-raising SIGSEGV must not dump our core
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code


def main(argv: list[str]) -> int:
    parent, grace, stop_json, sep, *engine = argv
    if sep != "--" or not engine:
        print("usage: supervisor.py PARENT_PID GRACE_S STOP_JSON -- ARGV...", file=sys.stderr)
        return 2
    return Supervisor(int(parent), float(grace), json.loads(stop_json), engine).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
