"""What the energy counter alone does not say: GPU latent metrics, the engine's host CPU time and
the idle baseline of a session.

`LatentSampler` records, per GPU on its own thread (rows of traces.GPU_METRICS): utilization
(GPU, memory), SM and memory clocks and the clock-event (throttle) reasons bitmask, read with
pynvml on the NVML handles of the GPUs the power sampler measures. Each field is read on its own:
one the GPU or driver does not report is null, and no failed read ever fails the session.
`tree_cpu_s` is the cumulative CPU time of a process tree (the scraper's `engine_cpu_s`);
`idle_baseline` turns the power rows of the pre-load idle span into run.json's `idle_baseline`.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from jouleflow.measure.gpu_devices import _nvml_handle, visible_gpus

log = logging.getLogger(__name__)

COLUMNS = ("util_gpu_pct", "util_mem_pct", "sm_clock_mhz", "mem_clock_mhz", "throttle_reasons")


class LatentSampler:
    """Background sampler of GPU latent metrics; rows: t, gpu (visible index as in power.parquet),
    then COLUMNS (None where not reported)."""

    def __init__(self, gpu_indices: list[int], period_s: float = 0.5) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        import pynvml

        self._nvml = pynvml
        gpus, indices = visible_gpus(gpu_indices)
        # Zeus's own handles: the same devices the power sampler reads (non-NVIDIA GPUs have none).
        self._handles = {i: h for i in indices if (h := _nvml_handle(gpus, i)) is not None}
        self.period_s = period_s
        self.rows: list[dict[str, Any]] = []
        self.read_errors = 0
        self._unsupported: dict[int, set[str]] = {i: set() for i in self._handles}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _field(self, i: int, name: str, read: Any, *args: Any) -> Any:
        if name in self._unsupported[i]:
            return None
        pynvml = self._nvml
        try:
            return read(*args)
        except pynvml.NVMLError as exc:
            if isinstance(exc, pynvml.NVMLError_NotSupported):  # never asked again on this GPU
                self._unsupported[i].add(name)
                log.info("GPU %d: %s not supported; left null", i, name)
            else:
                self.read_errors += 1
            return None

    def sample(self) -> None:
        nvml = self._nvml
        # nvmlDeviceGetCurrentClocksEventReasons (driver >= 535) is the renamed ...ThrottleReasons.
        reasons = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        reasons = reasons or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        for i, h in self._handles.items():
            t = time.time()
            util = self._field(i, "utilization", nvml.nvmlDeviceGetUtilizationRates, h)
            sm = self._field(i, "sm_clock_mhz", nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_SM)
            mem = self._field(i, "mem_clock_mhz", nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_MEM)
            mask = self._field(i, "throttle_reasons", reasons, h)
            self.rows.append(
                {
                    "t": t,
                    "gpu": i,
                    "util_gpu_pct": None if util is None else float(util.gpu),
                    "util_mem_pct": None if util is None else float(util.memory),
                    "sm_clock_mhz": None if sm is None else float(sm),
                    "mem_clock_mhz": None if mem is None else float(mem),
                    "throttle_reasons": None if mask is None else int(mask),
                }
            )

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                self.sample()
            except Exception as exc:  # a latent metric never fails the session
                self.read_errors += 1
                log.warning("latent GPU metrics: sample failed (%s)", exc)
            next_at = max(next_at + self.period_s, time.monotonic())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jouleflow-latent-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.period_s + 5)
        return self.rows

    def info(self) -> dict[str, Any]:
        """Provenance for run.json: settings, samples, errors, what each GPU did not report."""
        return {
            "period_s": self.period_s,
            "samples": len(self.rows),
            "read_errors": self.read_errors,
            "gpus": sorted(self._handles),
            "unsupported": {str(i): sorted(s) for i, s in self._unsupported.items() if s},
        }


_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pids: Iterable[int]) -> float | None:
    """Cumulative CPU seconds (user + system, including reaped children) of the processes; None when
    none could be read. Fields 14-17 of /proc/<pid>/stat: utime, stime, cutime, cstime."""
    total, seen = 0, False
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()  # the command name may hold spaces
            total += sum(int(x) for x in fields[11:15])
            seen = True
        except (OSError, ValueError, IndexError):  # exited meanwhile
            continue
    return total * _TICK_S if seen else None


def _counter_at(ts: list[float], es: list[float], t: float) -> float | None:
    """The energy counter linearly interpolated at t; None outside the samples."""
    k = bisect.bisect_left(ts, t)
    if k < len(ts) and ts[k] == t:
        return es[k]
    if k == 0 or k == len(ts):
        return None
    t0, t1, e0, e1 = ts[k - 1], ts[k], es[k - 1], es[k]
    return e0 + (e1 - e0) * (t - t0) / (t1 - t0)


def idle_baseline(power_rows: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """run.json's idle_baseline: the span and each GPU's mean power over it, the energy counter
    interpolated at both ends divided by the duration (as analysis windows the counter)."""
    duration = end - start
    by_gpu: dict[int, tuple[list[float], list[float]]] = {}
    for row in power_rows:
        ts, es = by_gpu.setdefault(row["gpu"], ([], []))
        ts.append(row["t"])
        es.append(row["energy_j"])
    mean: dict[str, float | None] = {}
    for gpu, (ts, es) in sorted(by_gpu.items()):
        e0, e1 = _counter_at(ts, es, start), _counter_at(ts, es, end)
        mean[str(gpu)] = (e1 - e0) / duration if e0 is not None and e1 is not None and duration > 0 else None
    return {"start": start, "end": end, "duration_s": duration, "mean_power_w": mean}
