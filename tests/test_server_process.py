"""Server process management with real subprocesses: health wait, early exit, teardown of the group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from jouleflow.measure.engines.base import (
    ServerProcess,
    ServerSpec,
    ServerStartError,
    check_port_free,
    classify_start_failure,
    free_port,
)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def spec(argv: list[str], port: int, env: dict | None = None) -> ServerSpec:
    return ServerSpec(engine="test", argv=argv, host="127.0.0.1", port=port, served_model="m", env=env or {})


def test_exit_with_oom_is_infeasible(tmp_path):
    code = "import sys; print('loading'); print('torch.OutOfMemoryError: CUDA out of memory. Tried 2 GiB'); sys.exit(1)"
    server = ServerProcess(spec([sys.executable, "-c", code], free_port()), tmp_path / "server.log")
    server.start()
    t = time.monotonic()
    with pytest.raises(ServerStartError) as err:
        server.wait_healthy(timeout_s=60)
    assert time.monotonic() - t < 10  # the exit is noticed, not the 60 s timeout
    assert err.value.status == "infeasible"
    assert "exited with code 1" in err.value.reason and "CUDA out of memory" in err.value.reason
    assert "loading" in err.value.log_tail
    server.stop()
    assert "CUDA out of memory" in (tmp_path / "server.log").read_text()


def test_exit_with_other_error_is_failed_with_log_tail(tmp_path):
    code = "import sys; print('ImportError: no module named flashinfer'); sys.exit(3)"
    server = ServerProcess(spec([sys.executable, "-c", code], free_port()), tmp_path / "server.log")
    server.start()
    with pytest.raises(ServerStartError) as err:
        server.wait_healthy(timeout_s=60)
    assert err.value.status == "failed" and "code 3" in err.value.reason
    assert "flashinfer" in str(err.value)  # the log tail is in the message


def test_kv_cache_messages_are_infeasible():
    line = (
        "ValueError: To serve at least one request with the models's max seq len (131072), (16.0 GiB KV cache is "
        "needed, which is larger than the available KV cache memory (9.5 GiB)."
    )
    assert classify_start_failure("INFO start\n" + line + "\n")[0] == "infeasible"
    assert classify_start_failure("ValueError: No available memory for the cache blocks.")[0] == "infeasible"
    assert classify_start_failure("RuntimeError: NCCL error")[0] == "failed"


def test_missing_executable_is_failed(tmp_path):
    server = ServerProcess(spec(["/nonexistent/vllm", "serve"], free_port()), tmp_path / "s.log")
    with pytest.raises(ServerStartError, match="cannot launch"):
        server.start()


def test_healthy_server_and_timeout(tmp_path):
    port = free_port()
    env = {"PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    argv = [sys.executable, str(TESTS / "sse_test_server.py"), "serve", "m", "--port", str(port)]
    with ServerProcess(spec(argv, port, env), tmp_path / "server.log") as server:
        waited = server.wait_healthy(timeout_s=60)
        assert waited < 60 and server.is_alive()
    assert not server.group_alive()
    # a process that never serves: the overall timeout ends the wait
    slow = ServerProcess(
        spec([sys.executable, "-c", "import time; time.sleep(60)"], free_port()), tmp_path / "x.log"
    )
    slow.start()
    with pytest.raises(ServerStartError, match="not healthy .* within 1 s") as err:
        slow.wait_healthy(timeout_s=1.0, poll_s=0.1)
    assert err.value.status == "failed"
    slow.stop(grace_s=5)
    assert not slow.group_alive()


def test_stop_escalates_to_sigkill_for_the_whole_group(tmp_path):
    # The leader ignores SIGTERM and has a child that ignores it too (like a stuck worker).
    code = textwrap.dedent(
        """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        print("CHILDPID", child.pid, flush=True)
        time.sleep(600)
        """
    )
    server = ServerProcess(spec([sys.executable, "-c", code], free_port()), tmp_path / "s.log")
    server.start()
    child_pid = _wait_for_child_pid(tmp_path / "s.log")
    assert os.getpgid(child_pid) == server.pgid
    t = time.monotonic()
    server.stop(grace_s=1.0)
    assert time.monotonic() - t < 10
    assert not server.group_alive()
    assert not _pid_alive(child_pid)


def _wait_for_child_pid(log: Path) -> int:
    for _ in range(100):
        for line in log.read_text().splitlines():
            if line.startswith("CHILDPID "):
                return int(line.split()[1])
        time.sleep(0.1)
    raise AssertionError(f"no child pid in {log}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_sigterm_to_the_controller_tears_the_server_group_down(tmp_path):
    """A SLURM cancel: SIGTERM to the measuring process must take the engine's whole group with it."""
    driver = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from jouleflow.measure.engines.base import ServerProcess, ServerSpec, sigterm_raises, free_port
        code = ("import subprocess, sys, time; "
                "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
                "print('CHILDPID', c.pid, flush=True); time.sleep(600)")
        spec = ServerSpec(engine="t", argv=[sys.executable, "-c", code], host="127.0.0.1", port=free_port(),
                          served_model="m")
        server = ServerProcess(spec, Path({str(tmp_path / "s.log")!r}))
        with sigterm_raises():
            try:
                server.start()
                print("pgid", server.pgid, flush=True)
                time.sleep(600)
            finally:
                server.stop(grace_s=5)
                print("stopped", flush=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'workflow'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True, env=env)
    pgid = int(proc.stdout.readline().split()[1])
    child = _wait_for_child_pid(tmp_path / "s.log")
    assert _pid_alive(child)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert "stopped" in out
    assert proc.returncode != 0  # SessionInterrupted propagated after the teardown
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert not _pid_alive(child)


def test_port_in_use_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ValueError, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port_free("127.0.0.1", port)
