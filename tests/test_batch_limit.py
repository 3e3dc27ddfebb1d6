"""The engine-side batch limit: the control file, the launch arguments, and the scheduler subclasses
(run here against a stand-in for vLLM's scheduler, since vLLM is not installed for the tests)."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import types
from pathlib import Path

import pytest
from jouleflow.measure.engines import batch_limit, vllm
from jouleflow.measure.engines.batch_limit import BatchLimitFile, effective_limit, write_batch_limit
from jouleflow.measure.jobconfig import config_from_dict
from jouleflow.measure.session_setup import engine_spec


def cfg(**kw):
    return config_from_dict({"model": "org/m", "batch_size": 256, "synthetic": {"fixed_output_len": 8}, **kw})


def _bump_mtime(path: Path) -> None:
    """A new mtime even on a coarse-grained filesystem clock."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_limit_file_is_reread_only_when_it_changes(tmp_path, caplog):
    path = tmp_path / "limit"
    reader = BatchLimitFile(path, logging.getLogger("test.batch_limit"))
    assert reader.limit() is None  # no file yet: no limit
    write_batch_limit(path, 64)
    caplog.set_level(logging.INFO, logger="test.batch_limit")
    assert reader.limit() == 64
    reads = []
    original = reader._read
    reader._read = lambda: (reads.append(1), original())[1]  # type: ignore[method-assign]
    assert [reader.limit() for _ in range(5)] == [64] * 5 and reads == []  # one stat per call, no read
    write_batch_limit(path, 128)
    _bump_mtime(path)
    assert reader.limit() == 128 and reads == [1]
    path.write_text("lots\n")
    _bump_mtime(path)
    assert reader.limit() == 128  # a bad value keeps the previous limit
    path.unlink()
    assert reader.limit() is None
    messages = [r.getMessage() for r in caplog.records]
    assert any("batch limit: 64 -> 128" in m for m in messages)
    assert any("ignored (invalid literal" in m and "limit stays 128" in m for m in messages)
    assert any("is gone: no limit" in m for m in messages)


def test_write_batch_limit_is_atomic_and_checked(tmp_path):
    path = write_batch_limit(tmp_path / "sub" / "limit", 32)
    assert path.read_text() == "32\n" and oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert sorted(p.name for p in path.parent.iterdir()) == ["limit"]  # no temp file left
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="positive integer"):
            write_batch_limit(path, bad)  # type: ignore[arg-type]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_effective_limit_never_drops_below_the_running_requests():
    assert effective_limit(None, 256, 0) == 256
    assert effective_limit(64, 256, 10) == 64
    assert effective_limit(512, 256, 10) == 256  # never above max_num_seqs: the KV cache is sized for it
    assert effective_limit(64, 256, 200) == 200  # lowered while 200 run: admits nothing until they finish


@pytest.mark.parametrize(
    "async_scheduling, server_args, flag, cls",
    [
        (None, [], "--async-scheduling", "AsyncBatchLimitScheduler"),
        (True, [], "--async-scheduling", "AsyncBatchLimitScheduler"),
        (False, [], "--no-async-scheduling", "BatchLimitScheduler"),
        (None, ["--no-async-scheduling"], None, "BatchLimitScheduler"),
    ],
)
def test_server_command_with_the_batch_limit(tmp_path, async_scheduling, server_args, flag, cls):
    c = cfg(
        batch_limit_file=str(tmp_path / "limit"), async_scheduling=async_scheduling, server_args=server_args
    )
    spec = engine_spec(c, 8000)
    assert (
        spec.argv[spec.argv.index("--scheduler-cls") + 1]
        == f"jouleflow.measure.engines.vllm_batch_limit.{cls}"
    )
    if flag:
        assert spec.argv.count(flag) == 1
    assert spec.env == {"JOULEFLOW_BATCH_LIMIT_FILE": str(tmp_path / "limit")}
    assert spec.argv[spec.argv.index("--max-num-seqs") + 1] == "256"
    assert "--scheduler-cls" not in vllm.build_command(cfg(), 8000)
    boxed = cfg(batch_limit_file=str(tmp_path / "limit"), container={"runtime": "docker", "image": "img"})
    argv = engine_spec(boxed, 8000).argv
    assert f"{tmp_path}:{tmp_path}" in argv and f"JOULEFLOW_BATCH_LIMIT_FILE={tmp_path / 'limit'}" in argv


class _StandInScheduler:
    """vLLM 0.26's Scheduler as far as the limit is concerned (v1/core/sched/scheduler.py):
    max_num_running_reqs starts at max_num_seqs, schedule() admits waiting requests while
    len(running) < max_num_running_reqs and then asserts len(running) <= max_num_running_reqs."""

    def __init__(self, max_num_seqs: int) -> None:
        self.scheduler_config = types.SimpleNamespace(max_num_seqs=max_num_seqs)
        self.max_num_running_reqs = max_num_seqs
        self.running: list[int] = []
        self.waiting = list(range(1000))

    def schedule(self, throttle_prefills: bool = False) -> int:
        while self.waiting and len(self.running) < self.max_num_running_reqs:
            self.running.append(self.waiting.pop())
        assert len(self.running) <= self.max_num_running_reqs
        return len(self.running)


@pytest.fixture
def engine_module(monkeypatch):
    """jouleflow.measure.engines.vllm_batch_limit imported against the stand-in."""
    sched = types.ModuleType("vllm.v1.core.sched.scheduler")
    sched.Scheduler = _StandInScheduler  # type: ignore[attr-defined]
    async_sched = types.ModuleType("vllm.v1.core.sched.async_scheduler")
    async_sched.AsyncScheduler = type("AsyncScheduler", (_StandInScheduler,), {})  # type: ignore[attr-defined]
    for name in ("vllm", "vllm.v1", "vllm.v1.core", "vllm.v1.core.sched"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, sched.__name__, sched)
    monkeypatch.setitem(sys.modules, async_sched.__name__, async_sched)
    monkeypatch.delitem(sys.modules, "jouleflow.measure.engines.vllm_batch_limit", raising=False)
    module = importlib.import_module("jouleflow.measure.engines.vllm_batch_limit")
    yield module
    sys.modules.pop("jouleflow.measure.engines.vllm_batch_limit", None)


@pytest.mark.parametrize("name", ["BatchLimitScheduler", "AsyncBatchLimitScheduler"])
def test_scheduler_follows_the_limit_file(tmp_path, monkeypatch, engine_module, name):
    limit = tmp_path / "limit"
    monkeypatch.setenv(batch_limit.ENV_VAR, str(limit))
    cls = getattr(engine_module, name)
    base = "AsyncScheduler" if name.startswith("Async") else "_StandInScheduler"
    assert [c.__name__ for c in cls.__mro__][2] == base
    assert f"{cls.__module__}.{name}" == batch_limit.scheduler_cls(name.startswith("Async"))
    s = cls(256)
    assert s.schedule() == 256  # no file: max_num_seqs
    s.running.clear()
    write_batch_limit(limit, 64)
    assert s.schedule() == 64 and s.max_num_running_reqs == 64
    write_batch_limit(limit, 16)
    _bump_mtime(limit)
    assert s.schedule() == 64  # lowered while 64 run: none admitted, and vLLM's assert holds
    del s.running[40:]
    assert s.schedule() == 40 and s.max_num_running_reqs == 40
    del s.running[10:]
    assert s.schedule() == 16  # the lowered limit has taken hold
    write_batch_limit(limit, 1024)
    _bump_mtime(limit)
    assert s.schedule() == 256  # capped at max_num_seqs
