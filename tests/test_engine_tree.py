"""No engine process outlives jouleflow: real process trees, a real SIGKILL, /proc as the witness.

Every process of an engine tree carries a unique environment marker (the environment is
inherited), so /proc finds all of them, whatever their pid, process group or session.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from jouleflow.measure.engines.base import ServerProcess, ServerSpec, free_port

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SERVER = TESTS / "sse_test_server.py"
SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
]
# An engine like vLLM or torchrun: a worker with a worker of its own (API server -> EngineCore ->
# workers), a rank in its own session that ignores SIGTERM (torchrun starts ranks with
# start_new_session), and an orphan whose parent exits at once.
ENGINE_TREE = textwrap.dedent(
    f"""
    import subprocess, sys, time
    subprocess.Popen([sys.executable, "-c", "import subprocess, time; subprocess.Popen({SLEEP!r}); time.sleep(600)"])
    subprocess.Popen({STUBBORN!r}, start_new_session=True)
    subprocess.Popen([sys.executable, "-c", "import subprocess; subprocess.Popen({SLEEP!r}, start_new_session=True)"])
    time.sleep(600)
    """
)
ENGINE_TREE_SIZE = 6  # supervisor, engine, worker, its worker, the rank, the orphan


def marked(token: str) -> set[int]:
    """Live (non-zombie) processes whose environment holds JOULEFLOW_TEST_TREE=token."""
    needle = f"JOULEFLOW_TEST_TREE={token}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z" and needle in (entry / "environ").read_bytes().split(b"\0"):
                found.add(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def wait_for(predicate, timeout: float, what: str) -> float:
    t = time.monotonic()
    while not predicate():
        if time.monotonic() - t > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - t


def spec(argv: list[str], env: dict[str, str]) -> ServerSpec:
    return ServerSpec(engine="test", argv=argv, host="127.0.0.1", port=free_port(), served_model="m", env=env)


def run_driver(tmp_path: Path, argv: list[str], token: str, orphan_grace_s: float) -> subprocess.Popen:
    """A stand-in for `jouleflow measure`: starts the engine through ServerProcess, then waits."""
    driver = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from jouleflow.measure.engines.base import ServerProcess, ServerSpec, free_port
        spec = ServerSpec(engine="t", argv={argv!r}, host="127.0.0.1", port=free_port(), served_model="m",
                          env={{"JOULEFLOW_TEST_TREE": {token!r}}})
        server = ServerProcess(spec, Path({str(tmp_path / "s.log")!r}), orphan_grace_s={orphan_grace_s!r})
        server.start()
        print("started", flush=True)
        time.sleep(600)
        """
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'workflow'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "started"
    return proc


def kill_and_check_tree_gone(proc: subprocess.Popen, token: str, limit_s: float) -> None:
    assert proc.pid not in marked(token)  # the driver itself is not marked: only the engine's tree
    proc.kill()
    proc.wait()
    took = wait_for(lambda: not marked(token), timeout=30, what=f"engine tree gone: {marked(token)}")
    assert took < limit_s, f"the engine tree took {took:.1f} s to go"


def test_sigkill_of_the_measuring_process_takes_the_whole_engine_tree(tmp_path):
    token = uuid.uuid4().hex
    proc = run_driver(tmp_path, [sys.executable, "-c", ENGINE_TREE], token, orphan_grace_s=1.0)
    wait_for(lambda: len(marked(token)) == ENGINE_TREE_SIZE, 30, "the engine tree is up")
    kill_and_check_tree_gone(proc, token, limit_s=5)  # the stubborn rank needs the 1 s grace + SIGKILL


def test_stop_reaches_processes_outside_the_group_and_orphans(tmp_path):
    token = uuid.uuid4().hex
    server = ServerProcess(
        spec([sys.executable, "-c", ENGINE_TREE], {"JOULEFLOW_TEST_TREE": token}), tmp_path / "s.log"
    )
    server.start()
    wait_for(lambda: len(marked(token)) == ENGINE_TREE_SIZE, 30, "the engine tree is up")
    assert marked(token) <= server.group_pids()  # its GPU processes are never taken for foreign ones
    t = time.monotonic()
    server.stop(grace_s=1.0)
    assert time.monotonic() - t < 10
    assert not marked(token) and not server.group_alive()


@pytest.mark.parametrize(("code", "exit_code"), [("sys.exit(3)", 3), ("os.kill(os.getpid(), 9)", -9)])
def test_an_engine_that_exits_leaves_no_process_and_its_status(tmp_path, code, exit_code):
    token = uuid.uuid4().hex
    engine = f"import os, subprocess, sys, time; subprocess.Popen({SLEEP!r}, start_new_session=True); time.sleep(0.5); {code}"
    server = ServerProcess(
        spec([sys.executable, "-c", engine], {"JOULEFLOW_TEST_TREE": token}), tmp_path / "s.log"
    )
    server.start()
    wait_for(lambda: server.exit_code() is not None, 30, "the engine exited")
    assert server.exit_code() == exit_code  # the supervisor hands the engine's status on
    assert not marked(token)
    server.stop()


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch (torchrun)")
def test_sigkill_takes_torchrun_and_its_ranks(tmp_path):
    """The real torchrun: its ranks run in sessions of their own (start_new_session)."""
    token = uuid.uuid4().hex
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    argv += ["--no-python", "sleep", "600"]
    proc = run_driver(tmp_path, argv, token, orphan_grace_s=5.0)
    ranks = lambda: [p for p in marked(token) if Path(f"/proc/{p}/comm").read_text().strip() == "sleep"]  # noqa: E731
    wait_for(lambda: len(ranks()) == 2, 120, "torchrun's two ranks are up")
    assert all(os.getsid(p) == p for p in ranks())  # each rank leads its own session
    kill_and_check_tree_gone(proc, token, limit_s=8)


def test_sigkill_of_jouleflow_measure_mid_load_leaves_no_engine(tmp_path):
    """The real CLI and session, the SSE test server as engine plus a rank in its own session."""
    model = tmp_path / "model"
    model.mkdir()
    config = {"num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 512}
    (model / "config.json").write_text(json.dumps(config))
    launcher = tmp_path / "launcher.py"
    launcher.write_text(
        "import os, subprocess, sys\n"
        f"subprocess.Popen({SLEEP!r}, start_new_session=True)\n"
        f"os.execv(sys.executable, [sys.executable, {str(SERVER)!r}, *sys.argv[1:]])\n"
    )
    token = uuid.uuid4().hex
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), str(TESTS)]),
        "TEST_SERVER_TOKEN_DELAY_S": "0.5",
    }
    argv = [sys.executable, "-m", "jouleflow", "measure", "llm", "--model", "m", "--model-path", str(model)]
    argv += ["--launcher", f"{sys.executable} {launcher}", "--batch-size", "4", "--num-requests", "8"]
    argv += ["--output-len", "200", "--no-energy", "--no-progress", "-o", str(tmp_path / "run")]
    # Only the engine carries the marker (--env), so the measuring process itself is not counted.
    argv += ["--env", f"JOULEFLOW_TEST_TREE={token}"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stderr:
        if "load: 8 requests" in line:
            break
    assert len(marked(token)) == 3  # supervisor, server, rank
    kill_and_check_tree_gone(proc, token, limit_s=5)
    proc.stderr.close()


def test_supervisor_exits_when_started_by_a_parent_already_gone(tmp_path):
    """The race before the death signal is armed: an orphaned supervisor starts nothing."""
    from jouleflow.measure.engines import supervisor

    token = uuid.uuid4().hex
    gone = subprocess.Popen(["true"])
    gone.wait()
    argv = [sys.executable, "-I", "-S", supervisor.__file__, str(gone.pid), "1", "null", "--", *SLEEP]
    done = subprocess.run(argv, env={**os.environ, "JOULEFLOW_TEST_TREE": token}, timeout=30)
    assert done.returncode == 1 and not marked(token)
