"""The campaign summary: one traces.SUMMARY row per run, the union of all runs in the config.

Each row comes from energy.summary_row (config fields from run.json, figures from summary.json);
registry facts the run directory does not carry (architecture, parameter counts, the GPU's TDP)
are filled from the pipeline's jobs table. Rows are sorted so the file is byte-identical for the
same runs, whatever order they were listed in.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from jouleflow.traces import SUMMARY, TraceError, table_from_rows, write_atomic, write_table

SORT_KEYS = ("task", "model", "precision", "gpu", "num_gpus", "parallelism", "batch_size", "run_dir")
# Jobs-table columns copied into a row where the run itself left the field empty.
REGISTRY_FIELDS = {
    "architecture": str,
    "total_params_b": float,
    "active_params_b": float,
    "gpu_tdp_w": float,
}


@dataclass(frozen=True)
class RunEntry:
    run_dir: Path
    summary_json: Path | None = None  # None: the run directory's own summary.json
    extras: Mapping[str, Any] = field(default_factory=dict)


def read_jobs_table(path: str | Path) -> list[RunEntry]:
    """Entries from the pipeline's jobs table (results/grid/jobs.tsv)."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: jobs table is missing")
    with path.open(newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"run_dir", "energy_json"} - set(reader.fieldnames or [])
        if missing:
            raise TraceError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        entries = []
        for line in reader:
            extras = {}
            for name, cast in REGISTRY_FIELDS.items():
                value = line.get(name)
                if value not in (None, ""):
                    extras[name] = cast(value)
            entries.append(RunEntry(Path(line["run_dir"]), Path(line["energy_json"]), extras))
    return entries


def _row(entry: RunEntry) -> dict[str, Any]:
    from jouleflow.analysis.energy import summary_row  # analysis module; imported only when summarizing

    row = dict(summary_row(entry.run_dir, entry.summary_json))
    for name, value in entry.extras.items():
        current = row.get(name)
        if current is None or (isinstance(current, float) and math.isnan(current)):
            row[name] = value
    return row


def build_summary(entries: Iterable[RunEntry]) -> pl.DataFrame:
    """The summary table (traces.SUMMARY columns first, then any extra columns), sorted."""
    entries = list(entries)
    seen: set[str] = set()
    for entry in entries:
        if str(entry.run_dir) in seen:
            raise ValueError(f"{entry.run_dir}: run listed twice")
        seen.add(str(entry.run_dir))
    rows = [_row(e) for e in entries]
    frame = pl.from_arrow(table_from_rows(rows, SUMMARY))
    assert isinstance(frame, pl.DataFrame)
    return frame.sort(list(SORT_KEYS), nulls_last=True)


def write_summary(frame: pl.DataFrame, parquet: str | Path, csv_path: str | Path | None = None) -> None:
    table = frame.to_arrow()
    write_table(table_from_rows(table.to_pydict(), SUMMARY), parquet)
    if csv_path is not None:
        write_atomic(csv_path, frame.write_csv)
