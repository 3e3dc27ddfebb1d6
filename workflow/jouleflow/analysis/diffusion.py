"""Per-batch energy accounting of a diffusion run (batches.parquet), eq. 1 of the ML.ENERGY paper.

Each successful batch is its own window [t_start, t_end]; its energy is the counter interpolated at
both ends, summed over GPUs. J/image = (sum of batch energies) / (sum of batch sizes), which is the
mean of batch energy / B when every batch has the same B. Batch latency = mean of t_end - t_start.
"""

from __future__ import annotations

import polars as pl

from jouleflow.analysis import validity
from jouleflow.analysis.accounting import (
    RunData,
    add_status_flags,
    empty_summary,
    finish,
    has_energy_sensor,
    job_gpu_traces,
    power_limits_w,
)
from jouleflow.analysis.latency import percentile
from jouleflow.analysis.power_trace import window_energy
from jouleflow.analysis.validity import DEFAULT_THRESHOLDS, Flags, Thresholds
from jouleflow.records import SummaryRecord


def analyze_diffusion(run: RunData, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> SummaryRecord:
    flags = Flags()
    out = empty_summary(run.record, thresholds)
    add_status_flags(run.record, flags)
    sensor = has_energy_sensor(run)
    if not sensor:
        flags.raise_flag(validity.NO_ENERGY_SENSOR, "no power.parquet or provenance.energy_source is null")
    batches = run.batches.sort("t_start")
    ok = batches.filter(pl.col("ok").fill_null(False) & (pl.col("t_end") > pl.col("t_start")))
    out.update(num_requests=batches.height, num_ok=ok.height, num_failed=batches.height - ok.height)
    if out.num_failed > thresholds.max_failed_fraction * max(batches.height, 1):
        flags.raise_flag(validity.FAILED_REQUESTS, f"{out['num_failed']} of {batches.height} batches failed")
    if ok.height == 0:
        flags.raise_flag(validity.NO_STEADY_STATE, "no successful batch")
        return finish(out, flags)

    latencies = (ok["t_end"] - ok["t_start"]).cast(pl.Float64)
    busy_s = float(latencies.sum())
    out.update(
        steady_start=float(ok["t_start"].min()),
        steady_end=float(ok["t_end"].max()),
        steady_duration_s=busy_s,
        window_source="batches",
        batch_latency_s=float(latencies.mean()),
        median_batch_latency_s=percentile(latencies, 50),
        mean_batch_size=float(ok["batch_size"].mean()),
    )
    if not sensor:
        return finish(out, flags)

    traces = job_gpu_traces(run, flags)
    if traces is None:
        return finish(out, flags)
    per_gpu: dict[int, float] = {}
    total, uncovered, resets = 0.0, set(), {}
    for start, end in zip(ok["t_start"].to_list(), ok["t_end"].to_list(), strict=True):
        energy = window_energy(traces, start, end)
        uncovered.update(energy.uncovered_gpus)
        for gpu, n in energy.resets_in_window.items():
            resets[gpu] = resets.get(gpu, 0) + n
        if energy.total_j is None:
            continue
        total += energy.total_j
        for gpu, e in energy.per_gpu_j.items():
            per_gpu[gpu] = per_gpu.get(gpu, 0.0) + e
    if uncovered:
        flags.raise_flag(
            validity.POWER_TRACE_GAP, f"power samples do not cover every batch on GPU(s) {sorted(uncovered)}"
        )
        return finish(out, flags)
    if any(resets.values()):
        flags.raise_flag(validity.ENERGY_COUNTER_RESET, f"counter went backwards during batches: {resets}")
    per_gpu_power = {g: e / busy_s for g, e in per_gpu.items()}
    validity.check_power_bounds(flags, per_gpu_power, power_limits_w(run.record), thresholds)
    out.update(
        steady_energy_j=total,
        energy_per_gpu_j={str(g): e for g, e in per_gpu.items()},
        mean_power_w=total / busy_s,
        mean_power_per_gpu_w={str(g): p for g, p in per_gpu_power.items()},
        energy_per_image_j=total / float(ok["batch_size"].sum()),
    )
    return finish(out, flags)
