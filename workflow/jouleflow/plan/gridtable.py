"""The grid as files: job specs, results/grid/jobs.tsv (planned runs) and skipped.tsv (why not).

jobs.tsv is also the summary step's run list: it names each run directory, its energy summary and
the registry facts a run directory does not carry (architecture, parameter counts, GPU TDP).
The planned config (results/specs/config.json: files merged, defaults filled, `local` resolved) is
what the grid_table and analysis_targets rules read back: their jobs may run where the config
cannot be validated again (the analysis conda env has no Snakemake).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jouleflow import traces
from jouleflow.plan.grid import Grid, GridPoint, build_grid
from jouleflow.records import JobSpec

POINT_COLUMNS = (
    "task", "model", "precision", "gpu", "num_gpus", "parallelism", "batch_size", "source", "sweep",
)  # fmt: skip
JOB_COLUMNS = (
    *POINT_COLUMNS, "run_dir", "energy_json", "architecture", "total_params_b", "active_params_b", "gpu_tdp_w",
)  # fmt: skip
SKIPPED_COLUMNS = (*POINT_COLUMNS, "reason")


def run_dir(results_dir: str, point: GridPoint) -> str:
    return f"{results_dir}/runs/{point.key}"


def energy_json(results_dir: str, point: GridPoint) -> str:
    return f"{results_dir}/energy/{point.key}/summary.json"


def spec_path(results_dir: str, point: GridPoint) -> str:
    return f"{results_dir}/specs/{point.key}.json"


def sync_job_specs(grid: Grid) -> int:
    """Write each point's job spec where its content changed; returns the number written.

    The specs mirror the config: the workflow calls this at parse time, so they exist before any
    job runs and are rewritten only when the config changes what they say. Measurement rules
    take them as ancient() inputs and rerun on a change of the measured keys only (params).
    """
    written = 0
    for point in grid.points:
        path = Path(spec_path(grid.config["results_dir"], point))
        text = JobSpec.from_dict(grid.spec(point), str(path)).to_json()
        try:
            if path.read_text() == text:
                continue
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
        traces.write_text(text, path)
        written += 1
    return written


def planned_config_path(results_dir: str) -> str:
    return f"{results_dir}/specs/config.json"


def sync_planned_config(grid: Grid) -> bool:
    """Write the config the grid was built from where its content changed; True when written.

    Called at parse time next to sync_job_specs: the rules that read it take it as an ancient()
    input, so rewriting it reruns nothing (their params say when their outputs change)."""
    path = Path(planned_config_path(grid.config["results_dir"]))
    text = json.dumps(grid.config, indent=2, sort_keys=True) + "\n"
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    traces.write_text(text, path)
    return True


def read_planned_grid(path: str | Path) -> Grid:
    """The grid of a planned config (sync_planned_config): the same grid the workflow built."""
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: planned config not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    return build_grid(config)


def write_grid_tables(grid: Grid, jobs_path: str | Path, skipped_path: str | Path) -> None:
    """jobs.tsv and skipped.tsv of the grid."""
    write_tsv(job_rows(grid), JOB_COLUMNS, jobs_path)
    write_tsv(skipped_rows(grid), SKIPPED_COLUMNS, skipped_path)


def _point_fields(point: GridPoint) -> dict[str, Any]:
    return {
        "task": point.task,
        "model": point.model,
        "precision": point.precision,
        "gpu": point.gpu,
        "num_gpus": point.num_gpus,
        "parallelism": point.parallelism.label,
        "batch_size": point.batch_size,
        "source": point.source,
        "sweep": point.sweep,
    }


def job_rows(grid: Grid) -> list[dict[str, Any]]:
    results = grid.config["results_dir"]
    rows = []
    for point in grid.points:
        model = grid.config["models"][point.model]
        rows.append(
            {
                **_point_fields(point),
                "run_dir": run_dir(results, point),
                "energy_json": energy_json(results, point),
                "architecture": model["architecture"],
                "total_params_b": model.get("total_params_b"),
                "active_params_b": model.get("active_params_b"),
                "gpu_tdp_w": grid.config["gpus"][point.gpu]["tdp_w"],
            }
        )
    return rows


def skipped_rows(grid: Grid) -> list[dict[str, Any]]:
    return [{**_point_fields(s.point), "reason": s.reason} for s in grid.skipped]


def write_tsv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], path: str | Path) -> None:
    """Write a TSV atomically; empty cells for None."""
    traces.write_csv(rows, columns, path, delimiter="\t")
