"""The job's visible GPUs through Zeus's device layer: lookup, inventory and foreign processes.

Zeus honours CUDA_VISIBLE_DEVICES (HIP_VISIBLE_DEVICES on AMD): index i here is the i-th
visible GPU, and `nvml_index` in the inventory is the physical one. Facts Zeus does not expose
(UUID, clocks, driver, processes) are read with pynvml through the handle Zeus opened.
Zeus is imported lazily: importing this module costs nothing on a machine without GPUs.
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)


class NoGPUError(RuntimeError):
    """The GPUs a measurement needs are not visible. Energy numbers are never made up instead."""


def describe_gpu_environment() -> str:
    """What the process can see: CUDA_VISIBLE_DEVICES and what NVML itself says (for error messages)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    parts = [f"CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else "CUDA_VISIBLE_DEVICES is unset"]
    try:
        import pynvml
    except ImportError:
        return "; ".join([*parts, "pynvml (nvidia-ml-py) is not installed"])
    try:
        pynvml.nvmlInit()
        try:
            parts.append(f"NVML sees {pynvml.nvmlDeviceGetCount()} GPU(s) in total")
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError as exc:
        parts.append(f"NVML says: {exc}")
    return "; ".join(parts)


def visible_gpus(gpu_indices: list[int] | None = None) -> tuple[Any, list[int]]:
    """Zeus's GPU collection and the checked indices (None = all visible). Raises NoGPUError."""
    try:
        from zeus.device import get_gpus
        from zeus.device.exception import ZeusBaseGPUError
    except ImportError as exc:
        raise NoGPUError(f"cannot read GPU power: zeus is not installed ({exc})") from exc
    try:
        gpus = get_gpus()
    except (ZeusBaseGPUError, ValueError) as exc:  # ValueError: Zeus wants integer CUDA_VISIBLE_DEVICES
        raise NoGPUError(f"no GPU visible through Zeus ({exc}); {describe_gpu_environment()}") from exc
    count = len(gpus)
    if count == 0:
        raise NoGPUError(f"Zeus sees no GPU; {describe_gpu_environment()}")
    indices = list(range(count)) if gpu_indices is None else list(gpu_indices)
    bad = [i for i in indices if not 0 <= i < count]
    if not indices or bad or len(set(indices)) != len(indices):
        raise NoGPUError(
            f"expected GPU indices {indices} among the visible GPUs, but Zeus sees {count} "
            f"(indices 0..{count - 1}); {describe_gpu_environment()}"
        )
    return gpus, indices


def _nvml_handle(gpus: Any, index: int) -> Any | None:
    """pynvml handle of a visible GPU, or None when it is not an NVIDIA GPU (e.g. AMD via amdsmi)."""
    from zeus.device.gpu.nvidia import NVIDIAGPU

    gpu = gpus.gpus[index]
    return gpu.handle if isinstance(gpu, NVIDIAGPU) else None


def _read(fn: Any, *args: Any) -> Any:
    """One NVML query; None where the device or driver does not support it."""
    import pynvml

    try:
        return fn(*args)
    except pynvml.NVMLError as exc:
        logger.debug("%s failed: %s", getattr(fn, "__name__", fn), exc)
        return None


def _mw_to_w(value: int | None) -> float | None:
    return None if value is None else value / 1000.0


def _architecture_name(code: int | None) -> str | None:
    import pynvml

    for name, value in vars(pynvml).items():
        if name.startswith("NVML_DEVICE_ARCH_") and value == code:
            return name.removeprefix("NVML_DEVICE_ARCH_").lower()
    return None


def gpu_inventory(gpu_indices: list[int] | None = None) -> list[dict]:
    """Per visible GPU: identity, power limits (W), clocks (MHz), memory, driver and CUDA version."""
    gpus, indices = visible_gpus(gpu_indices)
    rows = []
    for i in indices:
        handle = _nvml_handle(gpus, i)
        row: dict[str, Any] = {"index": i, "nvml_index": gpus.gpus[i].gpu_index, "name": gpus.get_name(i)}
        if handle is None:
            row.update(vendor="amd", power_limit_w=_mw_to_w(gpus.get_power_management_limit(i)))
            rows.append(row)
            continue
        import pynvml

        constraints = _read(pynvml.nvmlDeviceGetPowerManagementLimitConstraints, handle) or (None, None)
        memory = _read(pynvml.nvmlDeviceGetMemoryInfo, handle)
        pci = _read(pynvml.nvmlDeviceGetPciInfo, handle)
        cuda = _read(pynvml.nvmlSystemGetCudaDriverVersion_v2)
        row.update(
            vendor="nvidia",
            uuid=_read(pynvml.nvmlDeviceGetUUID, handle),
            pci_bus_id=pci.busId if pci is not None else None,
            architecture=_architecture_name(_read(pynvml.nvmlDeviceGetArchitecture, handle)),
            memory_total_mib=memory.total // 2**20 if memory is not None else None,
            power_limit_w=_mw_to_w(_read(pynvml.nvmlDeviceGetPowerManagementLimit, handle)),
            enforced_power_limit_w=_mw_to_w(_read(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)),
            # The default limit is the board's TDP on data-centre GPUs.
            default_power_limit_w=_mw_to_w(_read(pynvml.nvmlDeviceGetPowerManagementDefaultLimit, handle)),
            min_power_limit_w=_mw_to_w(constraints[0]),
            max_power_limit_w=_mw_to_w(constraints[1]),
            sm_clock_mhz=_read(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM),
            mem_clock_mhz=_read(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM),
            max_sm_clock_mhz=_read(pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_SM),
            max_mem_clock_mhz=_read(pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_MEM),
            driver=_read(pynvml.nvmlSystemGetDriverVersion),
            cuda_driver_version=f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
        )
        rows.append(row)
    return rows


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # Field 4 is the parent; split after the command name, which may contain spaces.
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _process_name(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def is_own_process(pid: int, own_pids: set[int]) -> bool:
    """True when pid is in own_pids or descends from one (walks /proc parent links)."""
    seen: set[int] = set()
    current: int | None = pid
    while current and current not in seen:
        if current in own_pids:
            return True
        seen.add(current)
        current = _parent_pid(current)
    return False


def foreign_processes(gpu_indices: list[int], own_pids: set[int]) -> list[dict]:
    """Compute processes on the given GPUs that are neither ours nor our descendants.

    Rows: pid, gpu (visible index), used_memory (bytes, None if unknown), name (None when the
    pid is not visible here, e.g. another PID namespace: such a process counts as foreign).
    """
    gpus, indices = visible_gpus(gpu_indices)
    import pynvml

    own = set(own_pids) | {os.getpid()}
    rows = []
    for i in indices:
        handle = _nvml_handle(gpus, i)
        if handle is None:
            raise NotImplementedError(
                f"GPU {i} ({gpus.get_name(i)}): listing processes needs NVML; Zeus offers no equivalent for this vendor"
            )
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if not is_own_process(proc.pid, own):
                rows.append(
                    {
                        "pid": proc.pid,
                        "gpu": i,
                        "used_memory": proc.usedGpuMemory,
                        "name": _process_name(proc.pid),
                    }
                )
    return rows
