"""Where every run came from: one row per run directory, read from run.json (and origin.json).

Times are ISO 8601 UTC (2026-11-20T12:33:01Z): run.json keeps epoch seconds for arithmetic, but a
table is read by people.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jouleflow.records import read_run
from jouleflow.traces import read_json, write_csv
from jouleflow.units import iso_utc

COLUMNS = (
    "run_dir", "origin", "status", "reason", "host", "gpu_names", "driver", "engine", "engine_version",
    "jouleflow_version", "git_sha", "load_format", "energy_source", "config_hash", "start_time", "end_time",
)  # fmt: skip


def provenance_row(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    prov = run.provenance
    origin_path = run_dir / "origin.json"
    origin = read_json(origin_path) if origin_path.is_file() else None
    return {
        "run_dir": str(run_dir),
        "origin": f"bundled reference ({origin.get('bundle')})" if origin else "measured",
        "status": run.status,
        "reason": run.reason,
        "host": prov.get("host"),
        "gpu_names": ";".join(str(g.get("name")) for g in run.gpus),
        "driver": prov.get("driver"),
        "engine": prov.get("engine") or run.config.get("engine"),
        "engine_version": prov.get("engine_version"),
        "jouleflow_version": prov.get("jouleflow_version"),
        "git_sha": prov.get("git_sha"),
        "load_format": prov.get("load_format") or run.config.get("load_format"),
        "energy_source": run.energy_source,
        "config_hash": run.config_hash,
        "start_time": iso_utc(prov.get("start_time")),
        "end_time": iso_utc(run.end_time),
    }


def write_provenance_csv(run_dirs: Iterable[str | Path], path: str | Path) -> int:
    """Write the table atomically; returns the number of rows."""
    rows = [provenance_row(d) for d in sorted(map(str, run_dirs))]
    write_csv(rows, COLUMNS, path)
    return len(rows)
