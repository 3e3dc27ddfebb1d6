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
    from jouleflow import power

    sampler = power.PowerSampler(gpu_indices=gpu_indices, period_s=period_s)
    inventory = power.gpu_inventory(gpu_indices)
    try:
        check = power.SessionEnergyCheck(gpu_indices)
        check.begin()
    except ImportError as exc:
        check = None
        notes.append(f"no ZeusMonitor session cross-check: {exc}")
        logging.getLogger("jouleflow.session").warning("no ZeusMonitor session cross-check: %s", exc)
    sampler.start()
    return sampler, check, inventory


def collect_foreign(foreign: list[dict], gpu_indices: list[int], own_pids: set[int]) -> None:
    """Add the processes on the session's GPUs that are not ours to `foreign` (each once)."""
    from jouleflow import power

    for proc in power.foreign_processes(gpu_indices, own_pids):
        if proc not in foreign:
            foreign.append(proc)


def stop_power(sampler: Any, check: Any) -> tuple[list[dict], dict | None]:
    """Stop the power sampler and end the Zeus cross-check: (power rows, check result or None)."""
    rows = sampler.stop()
    result = None
    if check is not None:
        with contextlib.suppress(Exception):  # only a cross-check: never lose the measured rows
            result = check.end()
    return rows, result


def failed_run_dir(out_dir: Path) -> Path:
    """Where a failed run is kept for inspection: next to the requested one, never in its place."""
    return out_dir.with_name(f"{out_dir.name}.failed-{time.strftime('%Y%m%dT%H%M%S')}")
