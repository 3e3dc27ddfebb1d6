"""What the LLM and the diffusion accounting share: a run's traces as frames, the summary's empty
shape and its status flags, the job's GPU counter traces.

Its own module so that `analysis.energy` (which dispatches to the diffusion accounting) and
`analysis.diffusion` (which builds on these pieces) both import it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from jouleflow import traces
from jouleflow.analysis import validity
from jouleflow.analysis.power_trace import GpuTrace, gpu_traces
from jouleflow.analysis.validity import Flags, Thresholds
from jouleflow.records import RunRecord, SummaryRecord, read_run


@dataclass
class RunData:
    """A run directory's traces as polars frames (None when the file is absent)."""

    run_dir: Path
    record: RunRecord  # run.json
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
    record = read_run(run_dir)
    llm_ok = record.status == "ok" and not (run_dir / "batches.parquet").exists()
    return RunData(
        run_dir=run_dir,
        record=record,
        power=_read(run_dir, "power.parquet", required=False),
        requests=_read(run_dir, "requests.parquet", required=llm_ok),
        tokens=_read(run_dir, "tokens.parquet", required=llm_ok),
        server=_read(run_dir, "server.parquet", required=False),
        batches=_read(run_dir, "batches.parquet", required=False),
    )


def has_energy_sensor(run: RunData) -> bool:
    return run.power is not None and run.power.height > 0 and bool(run.record.energy_source)


def power_limits_w(record: RunRecord) -> dict[int, float | None]:
    """Per GPU (index among the job's GPUs) its enforced power limit from provenance.gpus."""
    limits: dict[int, float | None] = {}
    for position, gpu in enumerate(record.gpus):
        index = gpu.get("index", position)
        limit = gpu.get("power_limit_w", gpu.get("default_power_limit_w"))
        limits[int(index)] = float(limit) if limit is not None else None
    return limits


def empty_summary(record: RunRecord, thresholds: Thresholds) -> SummaryRecord:
    """summary.json with null figures (the shape an infeasible/failed run gets)."""
    return SummaryRecord(
        status=record.status,
        reason=record.reason,
        energy_source=record.energy_source,
        batch_size=record.config.get("batch_size"),
        config_hash=record.config_hash,
        thresholds=thresholds.to_dict(),
    )


def add_status_flags(record: RunRecord, flags: Flags) -> None:
    if record.status != "ok":
        flags.raise_flag(
            validity.STATUS_NOT_OK, f"status {record.status!r}: {record.reason or 'no reason given'}"
        )


def job_gpu_traces(run: RunData, flags: Flags) -> dict[int, GpuTrace] | None:
    """Per-GPU counter traces; None (and `power-trace-gap`) when a GPU of the job has no samples.

    The job's GPUs are those listed in run.json provenance.gpus; summing only some of them would
    under-report the energy, so the run gets no energy figure instead.
    """
    by_gpu = gpu_traces(run.power)
    expected = set(power_limits_w(run.record))
    missing = sorted(expected - set(by_gpu))
    if missing or not by_gpu:
        flags.raise_flag(
            validity.POWER_TRACE_GAP, f"no power samples for GPU(s) {missing or 'any'} of the job"
        )
        return None
    return by_gpu


def finish(out: SummaryRecord, flags: Flags) -> SummaryRecord:
    out.update(valid=flags.valid, flags=flags.names, flag_details=dict(flags.details))
    return out
