"""Energy of a time window from power.parquet: the cumulative counter interpolated at both ends.

For each GPU the counter E(t) is linearly interpolated at the window's start and end, and the
energy is E(end) - E(start) computed as a sum over the samples inside the window. A negative step
(the counter wrapped or was reset) contributes nothing and is reported; the figure is then a lower
bound and the run is flagged. A window not covered by samples on both sides gets no energy at all:
the counter is never extrapolated. The integral of the instant power (trapezoids) is kept as a
cross-check of the counter.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl


@dataclass(frozen=True)
class GpuTrace:
    """One GPU's samples, sorted by time."""

    gpu: int
    t: tuple[float, ...]
    energy_j: tuple[float, ...]
    power_w: tuple[float | None, ...]

    def covers(self, start: float, end: float) -> bool:
        return bool(self.t) and self.t[0] <= start and end <= self.t[-1]

    def resets(self, start: float | None = None, end: float | None = None) -> int:
        """Number of decreasing counter steps whose segment overlaps [start, end] (whole trace by default)."""
        lo = float("-inf") if start is None else start
        hi = float("inf") if end is None else end
        return sum(
            1
            for i in range(len(self.t) - 1)
            if self.energy_j[i + 1] < self.energy_j[i] and self.t[i + 1] > lo and self.t[i] < hi
        )


def gpu_traces(power: pl.DataFrame) -> dict[int, GpuTrace]:
    """Split power.parquet into per-GPU traces (samples with a null counter are dropped)."""
    traces: dict[int, GpuTrace] = {}
    rows = power.filter(pl.col("energy_j").is_not_null() & pl.col("t").is_not_null()).sort("gpu", "t")
    for (gpu,), part in rows.group_by(["gpu"], maintain_order=True):
        traces[int(gpu)] = GpuTrace(
            int(gpu),
            tuple(part["t"].to_list()),
            tuple(part["energy_j"].to_list()),
            tuple(part["power_w"].to_list()),
        )
    return traces


def gpu_traces_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[int, GpuTrace]:
    """gpu_traces for rows of traces.POWER as dicts (the live sampler's rows), same filtering."""
    by_gpu: dict[int, list[tuple[float, float, float | None]]] = {}
    for row in rows:
        if row.get("t") is not None and row.get("energy_j") is not None:
            by_gpu.setdefault(int(row["gpu"]), []).append((row["t"], row["energy_j"], row.get("power_w")))
    out = {}
    for gpu, samples in sorted(by_gpu.items()):
        samples.sort(key=lambda s: s[0])
        t, e, p = zip(*samples, strict=True)
        out[gpu] = GpuTrace(gpu, tuple(t), tuple(e), tuple(p))
    return out


def _interpolate(t: tuple[float, ...], y: tuple[float, ...], x: float) -> float:
    """Linear interpolation of samples (t, y) at x, t[0] <= x <= t[-1]; equal times take the later sample."""
    i = bisect_right(t, x) - 1
    if i >= len(t) - 1 or t[i] == x:
        return y[i]
    t0, t1 = t[i], t[i + 1]
    return y[i] + (y[i + 1] - y[i]) * (x - t0) / (t1 - t0)


def _points_in(trace: GpuTrace, values: tuple, start: float, end: float) -> list[tuple[float, float]]:
    """(t, value) at start, at each sample strictly inside, and at end."""
    inside = [(ti, vi) for ti, vi in zip(trace.t, values, strict=True) if start < ti < end]
    return [(start, _interpolate(trace.t, values, start)), *inside, (end, _interpolate(trace.t, values, end))]


def counter_energy(trace: GpuTrace, start: float, end: float) -> float | None:
    """E(end) - E(start) from the interpolated counter, negative steps (resets) counted as 0."""
    if not trace.covers(start, end):
        return None
    points = _points_in(trace, trace.energy_j, start, end)
    return sum(max(0.0, b[1] - a[1]) for a, b in zip(points, points[1:], strict=False))


def power_integral(trace: GpuTrace, start: float, end: float) -> float | None:
    """Trapezoidal integral of the instant power over [start, end] (cross-check of the counter)."""
    if not trace.covers(start, end) or any(p is None for p in trace.power_w):
        return None
    points = _points_in(trace, trace.power_w, start, end)
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(points, points[1:], strict=False))


@dataclass(frozen=True)
class WindowEnergy:
    per_gpu_j: dict[int, float | None]
    power_integral_j: dict[int, float | None]
    resets_in_window: dict[int, int]
    resets_outside_window: dict[int, int]
    uncovered_gpus: tuple[int, ...]

    @property
    def total_j(self) -> float | None:
        """Sum over GPUs; None when any GPU's energy is unknown."""
        values = list(self.per_gpu_j.values())
        if not values or any(v is None for v in values):
            return None
        return float(sum(values))

    @property
    def total_power_integral_j(self) -> float | None:
        values = list(self.power_integral_j.values())
        if not values or any(v is None for v in values):
            return None
        return float(sum(values))


def window_energy(traces: dict[int, GpuTrace], start: float, end: float) -> WindowEnergy:
    per_gpu, integral, resets_in, resets_out, uncovered = {}, {}, {}, {}, []
    for gpu, trace in sorted(traces.items()):
        per_gpu[gpu] = counter_energy(trace, start, end)
        integral[gpu] = power_integral(trace, start, end)
        if per_gpu[gpu] is None:
            uncovered.append(gpu)
        resets_in[gpu] = trace.resets(start, end)
        resets_out[gpu] = trace.resets() - resets_in[gpu]
    return WindowEnergy(per_gpu, integral, resets_in, resets_out, tuple(uncovered))
