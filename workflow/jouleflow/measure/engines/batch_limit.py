"""An engine-side batch limit that a running vLLM server re-reads from a control file.

One server started with max_num_seqs = B_max can then serve several batch sizes B <= B_max in
turn: the measuring side writes B into the file (`write_batch_limit`), and the engine's scheduler
(`vllm_batch_limit.BatchLimitScheduler`, loaded with `--scheduler-cls`) admits at most B running
requests from its next step on, exactly as a server started with max_num_seqs = B would.

Nothing here imports vllm, so it is tested without it; the scheduler classes that use it live in
`vllm_batch_limit`, which only the engine process imports.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

ENV_VAR = "JOULEFLOW_BATCH_LIMIT_FILE"
_MODULE = "jouleflow.measure.engines.vllm_batch_limit"
SCHEDULER_CLS = f"{_MODULE}.BatchLimitScheduler"
ASYNC_SCHEDULER_CLS = f"{_MODULE}.AsyncBatchLimitScheduler"


def scheduler_cls(async_scheduling: bool) -> str:
    """The `--scheduler-cls` qualname: the subclass of the class vLLM would otherwise use.

    vLLM uses a custom scheduler class whatever `async_scheduling` says, and the engine core still
    runs asynchronously when it is on: a subclass of the synchronous Scheduler would then lose
    async scheduling's output bookkeeping (vLLM warns of "degraded performance").
    """
    return ASYNC_SCHEDULER_CLS if async_scheduling else SCHEDULER_CLS


def write_batch_limit(path: str | Path, n: int) -> Path:
    """Set the limit the server applies from its next scheduling step on (atomic: the engine never
    reads half a file)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"batch limit must be a positive integer, got {n!r}")
    from jouleflow.traces import write_text

    write_text(f"{n}\n", path)
    return Path(path)


class BatchLimitFile:
    """The limit in the control file, re-read only when its mtime (or size, or inode) changes.

    `limit()` costs one stat() per call, which is cheap enough for every scheduling step. No file,
    an unreadable one or a bad value: no limit (None) for a missing file, the previous limit kept
    for a bad one; each change is logged once.
    """

    def __init__(self, path: str | Path | None, log: logging.Logger | None = None) -> None:
        self.path = Path(path) if path else None
        self.log = log or logging.getLogger(__name__)
        self._stamp: tuple[int, int, int] | None = None
        self._limit: int | None = None

    @classmethod
    def from_env(cls, log: logging.Logger | None = None) -> BatchLimitFile:
        return cls(os.environ.get(ENV_VAR) or None, log)

    def limit(self) -> int | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            if self._stamp is not None or self._limit is not None:
                self.log.info("batch limit file %s is gone: no limit", self.path)
            self._stamp, self._limit = None, None
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            self._stamp = stamp
            self._read()
        return self._limit

    def _read(self) -> None:
        assert self.path is not None
        try:
            text = self.path.read_text().strip()
            value = int(text)
            if value < 1:
                raise ValueError(f"{value} < 1")
        except (OSError, ValueError) as exc:
            self.log.warning("batch limit file %s: ignored (%s); limit stays %s", self.path, exc, self._limit)
            return
        if value != self._limit:
            self.log.info("batch limit: %s -> %d (from %s)", self._limit, value, self.path)
            self._limit = value


def effective_limit(limit: int | None, max_num_seqs: int, running: int) -> int:
    """The scheduler's max running requests for the next step: min(limit, max_num_seqs), but never
    below the requests already running (vLLM asserts len(running) <= the limit after each step; a
    lowered limit takes hold as running requests finish, new ones are not admitted meanwhile)."""
    target = max_num_seqs if limit is None else min(limit, max_num_seqs)
    return max(target, min(running, max_num_seqs))
