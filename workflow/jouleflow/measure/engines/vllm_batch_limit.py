"""vLLM scheduler classes with an engine-side batch limit (engines/batch_limit.py says why).

Imported only by vLLM's engine-core process, which resolves `--scheduler-cls` by qualname; nothing
in jouleflow imports this module (an import-linter contract in pyproject.toml keeps it so), and it
is the only module that imports vllm.

    vllm serve MODEL --max-num-seqs B_MAX \\
        --scheduler-cls jouleflow.measure.engines.vllm_batch_limit.AsyncBatchLimitScheduler
    # engine env: JOULEFLOW_BATCH_LIMIT_FILE=/path/to/limit (holds one integer, the batch size B)
"""

from __future__ import annotations

import logging
from typing import Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler

from jouleflow.measure.engines.batch_limit import BatchLimitFile, effective_limit

# A child of vLLM's logger, so that the changes show in the server log with vLLM's own lines.
log = logging.getLogger("vllm.jouleflow.batch_limit")


class _BatchLimitMixin:
    """Sets max_num_running_reqs (what the scheduler admits up to) before every schedule() call."""

    max_num_running_reqs: int
    running: list[Any]
    scheduler_config: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch_limit_file = BatchLimitFile.from_env(log)
        self._max_num_seqs = self.scheduler_config.max_num_seqs
        log.info(
            "%s: max_num_seqs %d, batch limit file %s",
            type(self).__name__,
            self._max_num_seqs,
            self._batch_limit_file.path,
        )

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        self.max_num_running_reqs = effective_limit(
            self._batch_limit_file.limit(), self._max_num_seqs, len(self.running)
        )
        return super().schedule(*args, **kwargs)  # type: ignore[misc]


class BatchLimitScheduler(_BatchLimitMixin, Scheduler):
    """For --no-async-scheduling."""


class AsyncBatchLimitScheduler(_BatchLimitMixin, AsyncScheduler):
    """For async scheduling (vLLM 0.26's default on a single node)."""
