"""What the LLM and the diffusion accounting share: a run's traces as frames, the summary's empty
shape and its status flags, the job's GPU counter traces.

Its own module so that `analysis.energy` (which dispatches to the diffusion accounting) and
`analysis.diffusion` (which builds on these pieces) both import it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from jouleflow import traces
from jouleflow.analysis import validity
from jouleflow.analysis.power_trace import GpuTrace, gpu_traces
from jouleflow.analysis.validity import Flags, Thresholds

SUMMARY_SCHEMA_VERSION = 1


@dataclass
class RunData:
    """A run directory's traces as polars frames (None when the file is absent)."""

    run_dir: Path
    meta: dict[str, Any]
    power: pl.DataFrame | None
    requests: pl.DataFrame | None
    tokens: pl.DataFrame | None
    server: pl.DataFrame | None
    batches: pl.DataFrame | None


def _read(run_dir: Path, name: str, required: bool) -> pl.DataFrame | None:
    path = run_dir / name
    if not path.exists() and not required:
        return None
    return pl.from_arrow(traces.read_table(path))  # TraceError names the file when corrupt/incomplete


def load_run(run_dir: str | Path) -> RunData:
    """Read run.json and the traces; a run with status ok must have requests and tokens."""
    run_dir = Path(run_dir)
    meta = traces.read_run(run_dir)
    llm_ok = meta.get("status") == "ok" and not (run_dir / "batches.parquet").exists()
    return RunData(
        run_dir=run_dir,
        meta=meta,
        power=_read(run_dir, "power.parquet", required=False),
        requests=_read(run_dir, "requests.parquet", required=llm_ok),
        tokens=_read(run_dir, "tokens.parquet", required=llm_ok),
        server=_read(run_dir, "server.parquet", required=False),
        batches=_read(run_dir, "batches.parquet", required=False),
    )


def has_energy_sensor(run: RunData) -> bool:
    return (
        run.power is not None
        and run.power.height > 0
        and bool(run.meta.get("provenance", {}).get("energy_source"))
    )


def power_limits_w(meta: dict[str, Any]) -> dict[int, float | None]:
    """Per GPU (index among the job's GPUs) its enforced power limit from provenance.gpus."""
    limits: dict[int, float | None] = {}
    for position, gpu in enumerate(meta.get("provenance", {}).get("gpus") or []):
        index = gpu.get("index", position)
        limit = gpu.get("power_limit_w", gpu.get("default_power_limit_w"))
        limits[int(index)] = float(limit) if limit is not None else None
    return limits


def empty_summary(meta: dict[str, Any], thresholds: Thresholds) -> dict[str, Any]:
    """Every key of summary.json with null figures (the shape an infeasible/failed run gets)."""
    figures = [
        "steady_start", "steady_end", "steady_duration_s", "window_source", "window_overlap",
        "steady_tokens", "steady_energy_j", "energy_per_token_j", "energy_per_request_j",
        "mean_output_tokens", "tokens_per_s", "mean_power_w", "tokens_per_s_per_w",
        "mean_running", "mean_running_source", "batch_fraction", "mean_active_client",
        "power_integral_j", "energy_power_mismatch", "num_requests", "num_ok", "num_failed",
        "batch_latency_s", "energy_per_image_j", "num_stopped", "num_not_sent",
        "energy_per_token_ci_rel", "energy_per_token_ci_intervals", "energy_per_token_ci_interval_s",
        "energy_per_token_ci_reason", "load_stop_reason",
    ]  # fmt: skip
    out: dict[str, Any] = dict.fromkeys(figures)
    for name in ("ttft", "itl", "tpot", "e2e"):
        for stat in ("median", "mean", "p90", "p95", "p99"):
            out[f"{stat}_{name}_s"] = None
        out[f"count_{name}"] = 0
    out.update(
        summary_schema_version=SUMMARY_SCHEMA_VERSION,
        status=meta.get("status"),
        reason=meta.get("reason"),
        energy_source=meta.get("provenance", {}).get("energy_source"),
        batch_size=meta.get("config", {}).get("batch_size"),
        full_batch=None,
        config_hash=meta.get("config_hash"),
        thresholds=thresholds.to_dict(),
        window_server=None,
        window_client=None,
        window_client_active=None,
        energy_per_gpu_j=None,
        mean_power_per_gpu_w=None,
    )
    return out


def add_status_flags(meta: dict[str, Any], flags: Flags) -> None:
    status = meta.get("status")
    if status != "ok":
        flags.raise_flag(
            validity.STATUS_NOT_OK, f"status {status!r}: {meta.get('reason') or 'no reason given'}"
        )


def job_gpu_traces(run: RunData, flags: Flags) -> dict[int, GpuTrace] | None:
    """Per-GPU counter traces; None (and `power-trace-gap`) when a GPU of the job has no samples.

    The job's GPUs are those listed in run.json provenance.gpus; summing only some of them would
    under-report the energy, so the run gets no energy figure instead.
    """
    by_gpu = gpu_traces(run.power)
    expected = set(power_limits_w(run.meta))
    missing = sorted(expected - set(by_gpu))
    if missing or not by_gpu:
        flags.raise_flag(
            validity.POWER_TRACE_GAP, f"no power samples for GPU(s) {missing or 'any'} of the job"
        )
        return None
    return by_gpu


def finish(out: dict[str, Any], flags: Flags) -> dict[str, Any]:
    out.update(valid=flags.valid, flags=flags.names, flag_details=dict(flags.details))
    return out
