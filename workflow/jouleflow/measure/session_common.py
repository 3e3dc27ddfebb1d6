"""Plumbing shared by the LLM and the diffusion measurement sessions.

Import-light on purpose (standard library only): the diffusion environment has no aiohttp, so
nothing here may pull in the LLM load generator.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

SESSION_LOG = "session.log"


class RunFailed(RuntimeError):
    """The session ran and failed; `run_dir` holds what was recorded (status "failed")."""

    def __init__(self, reason: str, run_dir: Path) -> None:
        super().__init__(f"{reason} (details in {run_dir})")
        self.reason = reason
        self.run_dir = run_dir


def attach_session_log(writer: Any) -> logging.Handler:
    """Copy jouleflow's log records into the run directory's session.log until detached."""
    handler = logging.FileHandler(writer.path(SESSION_LOG))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("jouleflow").addHandler(handler)
    return handler


def detach_session_log(handler: logging.Handler) -> None:
    logging.getLogger("jouleflow").removeHandler(handler)
    handler.close()


def record_allocation(prov: dict[str, Any], alloc: Any) -> None:
    """Provenance of the GPUs the session holds (alloc: gpualloc.AllocatedGpus, or None)."""
    if alloc is not None:
        prov["allocated_gpus"] = list(alloc)
        prov["allocated_device_ids"] = alloc.device_ids
    prov["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")


def session_gpu_indices(alloc: Any, count: int) -> list[int]:
    """The session's GPUs as visible indices: the allocation's, else the first `count` visible ones."""
    return list(alloc) if alloc is not None else list(range(count))


def open_power(gpu_indices: list[int], period_s: float, notes: list[str]) -> tuple[Any, Any, list[dict]]:
    """Start the power sampler (the energy source) and the ZeusMonitor cross-check on the GPUs.

    Returns (sampler, check or None, GPU inventory). Raises power.NoGPUError when a GPU has no
    sensor. The cross-check is optional: zeus.monitor needs scikit-learn, which GPU hosts may lack;
    its absence is noted, never fatal.
    """
    from jouleflow.measure import power

    sampler = power.PowerSampler(gpu_indices=gpu_indices, period_s=period_s)
    inventory = power.gpu_inventory(gpu_indices)
    try:
        check = power.SessionEnergyCheck(gpu_indices)
        check.begin()
    except ImportError as exc:
        check = None
        notes.append(f"no ZeusMonitor session cross-check: {exc}")
        logging.getLogger("jouleflow.measure.session").warning("no ZeusMonitor session cross-check: %s", exc)
    sampler.start()
    return sampler, check, inventory


def collect_foreign(foreign: list[dict], gpu_indices: list[int], own_pids: set[int]) -> None:
    """Add the processes on the session's GPUs that are not ours to `foreign` (each once)."""
    from jouleflow.measure import power

    for proc in power.foreign_processes(gpu_indices, own_pids):
        if proc not in foreign:
            foreign.append(proc)


def stop_power(sampler: Any, check: Any) -> tuple[list[dict], dict | None, str | None]:
    """Stop the power sampler and end the Zeus cross-check: (power rows, check result, failure).

    Never raises for a sampler breakdown: the rows recorded up to it are returned with the reason.
    """
    from jouleflow.measure.power import PowerSamplingError

    try:
        rows = sampler.stop()
    except PowerSamplingError:
        rows = sampler.rows()
    result = None
    if check is not None:
        with contextlib.suppress(Exception):  # only a cross-check: never lose the measured rows
            result = check.end()
    failure = sampler.failure()
    return rows, result, f"power sampler failed: {failure}" if failure else None


class Failure:
    """Why a run that started failed: the first reason is the run's; later ones become notes.

    Every failure after the engine was launched goes through here, so the session always commits
    a failed run with what it gathered. `details` (a traceback, a log tail) goes to session.log
    only; the console gets one line per failure.
    """

    def __init__(self, notes: list[str], handler: logging.Handler | None = None) -> None:
        self.notes = notes
        self.handler = handler
        self.reason: str | None = None

    def add(self, reason: str, details: str | None = None) -> None:
        if reason == self.reason or f"also failed: {reason}" in self.notes:
            return
        log = logging.getLogger("jouleflow.measure.session")
        if self.reason is None:
            self.reason = reason
            log.error("%s", reason)
        else:
            self.notes.append(f"also failed: {reason}")
            log.error("also failed: %s", reason)
        if details:
            self.detail(details)

    def detail(self, text: str) -> None:
        """Write `text` to session.log only (straight to its handler, past the console)."""
        if self.handler is not None:
            log = logging.getLogger("jouleflow.measure.session")
            self.handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (text,), None))


def failed_run_dir(out_dir: Path) -> Path:
    """Where a failed run is kept for inspection: next to the requested one, never in its place."""
    return out_dir.with_name(f"{out_dir.name}.failed-{time.strftime('%Y%m%dT%H%M%S')}")
