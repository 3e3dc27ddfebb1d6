"""Disjoint GPUs for concurrent measurement jobs on one machine.

Snakemake runs several measurement jobs at once on a multi-GPU box (`--cores all`); each
must measure its own GPUs, never a GPU another job is using. `allocate_gpus` takes an
exclusive `flock` on one lock file per GPU (the kernel drops it when the process dies, so a
crashed job never leaves a GPU blocked), checks the GPU type the job asks for, and waits
with a log line while the GPUs it needs are busy.

Under SLURM the scheduler already chose the job's GPUs and exposes only those through
`CUDA_VISIBLE_DEVICES`; the same code then allocates among what SLURM gave (the locks
never conflict between SLURM jobs, and they keep jobs apart inside one shared allocation,
e.g. `salloc --gpus=4` followed by a local `snakemake --cores all`).

GPUs are discovered through Zeus's device layer (`zeus.device.get_gpus`), which honours
`CUDA_VISIBLE_DEVICES` and works for NVIDIA and AMD alike. Measurement code: no polars here.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger("jouleflow.measure.gpualloc")

LOCK_DIR_ENV = "JOULEFLOW_GPU_LOCK_DIR"
DEFAULT_WAIT_TIMEOUT_S = 12 * 3600.0  # a queue of long measurements ahead is normal
_WAIT_LOG_EVERY_S = 300.0


class GpuAllocationError(RuntimeError):
    """The job's GPU request cannot be met (wrong type, too few GPUs, timed out)."""


@dataclass(frozen=True)
class VisibleGpu:
    """One GPU this process can see."""

    index: int  # position among this process's visible GPUs (Zeus / PowerSampler numbering)
    device_id: int  # the id CUDA_VISIBLE_DEVICES uses for it (NVML / ROCm SMI index)
    name: str  # e.g. "NVIDIA H100 80GB HBM3"


class AllocatedGpus(list[int]):
    """The allocated GPUs as visible indices (pass to `PowerSampler(gpu_indices=...)`).

    `cuda_visible_devices` is the value a child process (the inference server) needs so
    that it sees exactly these GPUs.
    """

    def __init__(self, gpus: Sequence[VisibleGpu]) -> None:
        super().__init__(g.index for g in gpus)
        self.gpus: tuple[VisibleGpu, ...] = tuple(gpus)

    @property
    def device_ids(self) -> list[int]:
        return [g.device_id for g in self.gpus]

    @property
    def cuda_visible_devices(self) -> str:
        return ",".join(str(d) for d in self.device_ids)


def visible_gpus() -> list[VisibleGpu]:
    """GPUs visible to this process, through Zeus (honours CUDA_VISIBLE_DEVICES)."""
    from jouleflow.measure.gpu_devices import NoGPUError
    from jouleflow.measure.gpu_devices import visible_gpus as zeus_gpus

    try:
        gpus, indices = zeus_gpus()
    except NoGPUError as e:
        raise GpuAllocationError(f"cannot list the GPUs: {e}") from e
    return [VisibleGpu(index=i, device_id=gpus.gpus[i].gpu_index, name=gpus.get_name(i)) for i in indices]


def gpu_type_matches(gpu_type: str, name: str) -> bool:
    """Whether a device name is of a GPU type: "H100" matches "NVIDIA H100 80GB HBM3".

    The type must appear as a whole token (case-insensitive), so "L4" does not match
    "NVIDIA L40S" and "B200" does not match "NVIDIA GB200".
    """
    pattern = r"(?<![a-z0-9])" + re.escape(gpu_type.strip().lower()) + r"(?![a-z0-9])"
    return re.search(pattern, name.lower()) is not None


def default_lock_dir() -> Path:
    """Per-user, per-machine lock dir: $JOULEFLOW_GPU_LOCK_DIR, else the runtime or temp dir."""
    if env := os.environ.get(LOCK_DIR_ENV):
        return Path(env)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return Path(runtime) / "jouleflow-gpu-locks"
    return Path(tempfile.gettempdir()) / f"jouleflow-gpu-locks-{os.getuid()}"


@contextmanager
def allocate_gpus(
    count: int,
    gpu_type: str | None,
    *,
    lock_dir: Path | str | None = None,
    wait_timeout_s: float | None = DEFAULT_WAIT_TIMEOUT_S,
    poll_interval_s: float = 1.0,
    inventory: Callable[[], list[VisibleGpu]] = visible_gpus,
    job: str | None = None,
) -> Iterator[AllocatedGpus]:
    """Hold `count` GPUs of `gpu_type` exclusively for the duration of the block.

    Yields the visible indices of the GPUs (an `AllocatedGpus`, a list of int). Raises
    `GpuAllocationError` at once when the machine (or the SLURM allocation) cannot ever
    satisfy the request, and after `wait_timeout_s` (None: wait forever) when the GPUs it
    needs stay busy. `job` names the job in messages.
    """
    if count < 0:
        raise ValueError(f"GPU count must be >= 0, got {count}")
    if count == 0:
        yield AllocatedGpus([])
        return
    who = job or "this measurement"
    candidates = _matching_gpus(count, gpu_type, inventory(), who)
    lock_root = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    held = _acquire_waiting(count, candidates, lock_root, wait_timeout_s, poll_interval_s, who)
    try:
        allocation = AllocatedGpus([gpu for gpu, _ in held])
        log.info(
            "%s: using GPU(s) %s (CUDA_VISIBLE_DEVICES=%s)",
            who,
            ", ".join(f"{g.device_id} ({g.name})" for g in allocation.gpus),
            allocation.cuda_visible_devices,
        )
        yield allocation
    finally:
        _release(held)


def _visibility_note() -> str:
    parts = []
    if job_id := os.environ.get("SLURM_JOB_ID"):
        parts.append(f"SLURM job {job_id}")
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    parts.append("CUDA_VISIBLE_DEVICES unset" if cvd is None else f"CUDA_VISIBLE_DEVICES={cvd!r}")
    return ", ".join(parts)


def _describe(gpus: Sequence[VisibleGpu]) -> str:
    if not gpus:
        return "none"
    counts: dict[str, int] = {}
    for g in gpus:
        counts[g.name] = counts.get(g.name, 0) + 1
    return ", ".join(f"{n} x {name}" for name, n in counts.items())


def _matching_gpus(count: int, gpu_type: str | None, present: list[VisibleGpu], who: str) -> list[VisibleGpu]:
    where = _visibility_note()
    wanted = f"{count} {gpu_type} GPU(s)" if gpu_type else f"{count} GPU(s)"
    if not present:
        raise GpuAllocationError(f"{who} needs {wanted}, but no GPU is visible ({where})")
    matching = [g for g in present if gpu_type is None or gpu_type_matches(gpu_type, g.name)]
    if not matching:
        raise GpuAllocationError(
            f"{who} needs GPU type {gpu_type!r}, but the GPUs present are: {_describe(present)} ({where})"
        )
    if len(matching) < count:
        raise GpuAllocationError(
            f"{who} needs {wanted}, but only {len(matching)} are visible "
            f"(GPUs present: {_describe(present)}; {where})"
        )
    return matching


def _lock_path(lock_root: Path, gpu: VisibleGpu) -> Path:
    # Keyed by host and device id: the same physical GPU gets the same file in every
    # process, whatever its CUDA_VISIBLE_DEVICES says.
    return lock_root / f"{socket.gethostname()}-gpu{gpu.device_id}.lock"


def _try_lock(path: Path) -> IO[str] | None:
    handle = open(path, "a+")  # noqa: SIM115 - kept open while the lock is held
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        handle.close()
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    # Who holds it, for the "waiting" message of other jobs.
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid={os.getpid()} host={socket.gethostname()} since={time.time():.0f}\n")
    handle.flush()
    return handle


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "holder unknown"
    except OSError:
        return "holder unknown"


def _release(held: list[tuple[VisibleGpu, IO[str]]]) -> None:
    for _, handle in held:
        handle.seek(0)
        handle.truncate()  # a free GPU's lock file names no holder
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def _try_acquire(
    count: int, candidates: list[VisibleGpu], lock_root: Path
) -> tuple[list[tuple[VisibleGpu, IO[str]]], list[VisibleGpu]]:
    """All or nothing: `count` locks, lowest indices first. Returns (held, busy GPUs)."""
    held: list[tuple[VisibleGpu, IO[str]]] = []
    busy: list[VisibleGpu] = []
    for gpu in candidates:
        handle = _try_lock(_lock_path(lock_root, gpu))
        if handle is None:
            busy.append(gpu)
            continue
        held.append((gpu, handle))
        if len(held) == count:
            return held, busy
    _release(held)
    return [], busy


def _acquire_waiting(
    count: int,
    candidates: list[VisibleGpu],
    lock_root: Path,
    wait_timeout_s: float | None,
    poll_interval_s: float,
    who: str,
) -> list[tuple[VisibleGpu, IO[str]]]:
    try:
        lock_root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GpuAllocationError(f"cannot create GPU lock dir {lock_root} (set {LOCK_DIR_ENV}): {e}") from e
    start = time.monotonic()
    last_log: float | None = None
    while True:
        held, busy = _try_acquire(count, candidates, lock_root)
        if held:
            if last_log is not None:
                log.warning("%s: got %d GPU(s) after waiting %.0f s", who, count, time.monotonic() - start)
            return held
        waited = time.monotonic() - start
        holders = "; ".join(f"GPU {g.device_id}: {_holder(_lock_path(lock_root, g))}" for g in busy)
        state = f"{len(busy)} of {len(candidates)} suitable GPU(s) busy ({holders}); locks in {lock_root}"
        if wait_timeout_s is not None and waited >= wait_timeout_s:
            raise GpuAllocationError(
                f"{who}: gave up after {waited:.0f} s waiting for {count} free GPU(s): {state}"
            )
        if last_log is None or time.monotonic() - last_log >= _WAIT_LOG_EVERY_S:
            log.warning("%s: waiting for %d free GPU(s): %s", who, count, state)
            last_log = time.monotonic()
        time.sleep(poll_interval_s)


@contextmanager
def session_gpus(
    count: int, gpu_type: str | None, *, energy: bool, job: str | None = None
) -> Iterator[AllocatedGpus | None]:
    """The GPUs of one measurement session, held for its duration.

    With energy measurement, no visible GPU is an error ("no GPU energy sensor"). Without it
    (`no_energy`), a machine whose GPUs NVML cannot see is allowed: nothing is allocated (None)
    and the engine inherits the environment.
    """
    try:
        present = visible_gpus()
    except GpuAllocationError as exc:
        if energy:
            raise GpuAllocationError(f"no GPU energy sensor: {exc}") from exc
        log.warning("no GPU visible to allocate (%s); running without an allocation", exc)
        yield None
        return
    with allocate_gpus(count, gpu_type, inventory=lambda: present, job=job) as gpus:
        yield gpus
