"""What the campaign page shows, as plain JSON-able data, built from the campaign's tables.

Every number comes from an existing table or analysis function: the summary rows, recommendations.csv
(or `recommendation_table`), the frontier flags, the deadline steps of `analysis.deadlines`, the
provenance table and ML.ENERGY's published rows (`importers`). A campaign the page cannot chart (no
usable run, a missing column) gets a note saying so, never an exception or an empty chart.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from jouleflow import labels as vocabulary
from jouleflow.analysis.deadlines import deadline_steps, task_metrics
from jouleflow.analysis.frontier import (
    ENERGY_COL,
    GROUP_COLS,
    FrontierError,
    frontier_flags,
    published_rows,
    usable_rows,
)
from jouleflow.analysis.recommendations import TargetSpec, TaskTargets, recommendation_table
from jouleflow.units import format_duration

# Summary columns the tables show, in order; a missing one is named in a note.
SUMMARY_COLUMNS = (
    "task", "model", "precision", "gpu", "num_gpus", "parallelism", "batch_size", "energy_per_response_j",
    "median_itl_s", "median_tpot_s", "median_ttft_s", "median_e2e_s", "batch_latency_s", "energy_per_token_j",
    "mean_output_tokens", "tokens_per_s", "mean_power_w", "status", "valid", "flags", "load_format", "source",
    "steady_duration_s", "energy_per_token_ci_rel",
)  # fmt: skip
# One step of the deadline control: from this deadline on, this choice (recommendations.csv's columns).
STEP_COLUMNS = [
    "latency_target_s",
    "status",
    "run_dir",
    "latency_s",
    "energy_per_response_j",
    "savings_fraction",
]
REQUIRED = ("task", "model", "precision", "status", "valid", "run_dir", ENERGY_COL)
RECOMMENDATION_COLUMNS = (
    "task", "model", "precision", "latency_target_s", "status", "gpu", "num_gpus", "parallelism",
    "batch_size", "latency_s", "energy_per_response_j", "savings_fraction", "latency_metric", "baseline_gpu",
    "baseline_num_gpus", "baseline_batch_size", "baseline_latency_s", "baseline_energy_per_response_j",
    "best_latency_s", "candidates",
)  # fmt: skip
# Summary quantities take jouleflow.labels' names and units (one vocabulary with the figures and
# `recommend`); these are the page's own columns: recommendation and run-table fields.
PAGE_LABELS: dict[str, tuple[str, str]] = {
    "num_gpus": ("GPUs", ""),
    "load_format": ("Weights", ""),
    "energy_per_token_ci_rel": ("Energy per token, 95% CI (relative)", "%"),
    "latency_target_s": ("Deadline", "s"),
    "latency_s": ("Latency", "s"),
    "savings_fraction": ("Savings vs min-latency", "%"),
    "baseline_latency_s": ("Min-latency config: latency", "s"),
    "baseline_energy_per_response_j": ("Min-latency config: energy per response", "J"),
    "best_latency_s": ("Fastest measured latency", "s"),
}


def label(column: str) -> dict[str, str]:
    if column in vocabulary.QUANTITIES:  # values stay in the column's unit (s, J, W): no ms scaling
        name, unit = vocabulary.name(column), vocabulary.QUANTITIES[column][1]
    elif column in PAGE_LABELS:
        name, unit = PAGE_LABELS[column]
    elif column.endswith("_s"):
        name, unit = metric_name(column), "s"
    else:
        name, unit = column.replace("baseline_", "Min-latency config: ").replace("_", " "), ""
    return {"key": column, "label": name, "unit": unit}


def metric_name(column: str) -> str:
    """median_itl_s → 'Median ITL' (jouleflow.labels' name; the statistic stated for any other)."""
    if vocabulary.column_of(column) in vocabulary.QUANTITIES:
        return vocabulary.name(column)
    stat, _, metric = column.removesuffix("_s").partition("_")
    return f"{stat.capitalize()} {metric.upper()}" if metric else stat.capitalize()


@dataclass
class PageInputs:
    summary: pl.DataFrame
    targets: TargetSpec | None = None
    recommendations: pl.DataFrame | None = None
    provenance: pl.DataFrame | None = None
    published: pl.DataFrame | None = None
    timelines: dict[str, Path] = field(default_factory=dict)  # run_dir → PNG
    title: str = "jouleflow campaign"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(df: pl.DataFrame, columns: list[str]) -> list[list[Any]]:
    return [[_clean(v) for v in row] for row in df.select(columns).iter_rows()]


def _instant(value: Any) -> datetime | None:
    """A provenance time: ISO 8601 (the table's, e.g. 2026-11-20T12:33:01Z) or epoch seconds (older tables)."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(timezone.utc)
        except ValueError:
            return None
    return datetime.fromtimestamp(seconds, tz=timezone.utc) if math.isfinite(seconds) else None


def human_time(value: Any) -> str | None:
    """'2026-11-23 10:33:01 UTC'."""
    instant = _instant(value)
    return instant.strftime("%Y-%m-%d %H:%M:%S UTC") if instant else None


def run_label(row: dict[str, Any]) -> str:
    weights = ", dummy weights" if row.get("load_format") == "dummy" else ""
    return (
        f"{row.get('gpu')} ×{row.get('num_gpus')}, {row.get('parallelism')}, batch {row.get('batch_size')}, "
        f"{row.get('precision')}{weights}"
    )


def build(inputs: PageInputs) -> dict[str, Any]:
    summary = inputs.summary
    notes: list[str] = []
    missing = [c for c in REQUIRED if c not in summary.columns]
    if missing:
        return _empty(
            inputs, [f"The summary lacks required column(s) {', '.join(missing)}: nothing to show."]
        )
    absent = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if absent:
        notes.append(f"The summary has no column(s) {', '.join(absent)}; the tables leave them out.")
    if summary.height == 0:
        return _empty(inputs, ["The campaign has no runs."])
    targets = inputs.targets or TargetSpec()
    tasks = [
        _task(summary, task, metric, targets, inputs.published) for task, metric in _metrics(summary, notes)
    ]
    if not any(t["points"] for t in tasks):
        notes.append(
            "No run of the campaign is usable (ok, valid, with latency and energy): no chart to draw."
        )
    return {
        "title": inputs.title,
        "notes": notes,
        "tasks": tasks,
        "summary": _summary_table(summary),
        "recommendations": _recommendations(inputs, notes),
        "runs": _runs(inputs),
    }


def _metrics(summary: pl.DataFrame, notes: list[str]) -> list[tuple[str, str | None]]:
    try:
        return sorted(task_metrics(summary).items())
    except FrontierError as exc:
        notes.append(f"No latency metric for the campaign's tasks: {exc}")
        tasks = summary.get_column("task").drop_nulls().unique().sort().to_list()
        return [(t, None) for t in tasks]


def _empty(inputs: PageInputs, notes: list[str]) -> dict[str, Any]:
    return {
        "title": inputs.title,
        "notes": notes,
        "tasks": [],
        "summary": None,
        "recommendations": None,
        "runs": {},
    }


def _task(
    summary: pl.DataFrame, task: str, metric: str | None, targets: TargetSpec, published: pl.DataFrame | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task": task,
        "metric": metric,
        "notes": [],
        "points": [],
        "published": [],
        "steps": {},
    }
    rows = summary.filter(pl.col("task") == task)
    if metric is None or metric not in rows.columns:
        out["notes"].append(
            f"The summary has no latency column for this task ({metric or 'unknown metric'})."
        )
        return out
    spec = targets.for_task(task, metric)
    metric = spec.metric or metric
    out |= {"metric": metric, "metric_label": metric_name(metric), "targets_s": list(spec.targets_s)}
    usable, excluded = usable_rows(rows, metric)
    if excluded.total:
        out["notes"].append(f"{excluded.describe()}; the chart and the deadline control use the rest.")
    if usable.height == 0:
        out["notes"].append(
            "No usable run (ok, valid, with latency and energy): nothing to chart or recommend."
        )
        return out
    if usable.height == 1:
        out["notes"].append(
            "One usable configuration: no trade-off to chart; it is the choice at any deadline it meets."
        )
    out["points"] = _points(usable, metric)
    out["published"] = _published(published, task, rows, metric)
    steps = deadline_steps(
        summary.filter(pl.col("task") == task), TargetSpec({task: TaskTargets(spec.targets_s, metric)})
    )
    for key, group in steps.partition_by(["model", "precision"], as_dict=True, maintain_order=True).items():
        out["steps"][f"{key[0]} ({key[1]})"] = _records(group, STEP_COLUMNS)
    out["time_unit"], out["time_scale"] = ("ms", 1e3) if usable[metric].max() < 1 else ("s", 1.0)
    return out


def _points(usable: pl.DataFrame, metric: str) -> list[dict[str, Any]]:
    front = frontier_flags(usable, metric, ENERGY_COL, GROUP_COLS)
    per_gpu = frontier_flags(usable, metric, ENERGY_COL, (*GROUP_COLS, "gpu"))
    rows = usable.with_columns(on_frontier=front, on_gpu_frontier=per_gpu)
    return [
        {
            "run_dir": r["run_dir"],
            "model": r["model"],
            "group": f"{r['model']} ({r['precision']})",
            "gpu": r.get("gpu"),
            "config": run_label(r),
            "latency_s": r[metric],
            "energy_j": r[ENERGY_COL],
            "on_frontier": r["on_frontier"],
            "on_gpu_frontier": r["on_gpu_frontier"],
        }
        for r in rows.sort([metric, ENERGY_COL]).iter_rows(named=True)
    ]


def _published(
    published: pl.DataFrame | None, task: str, rows: pl.DataFrame, metric: str
) -> list[dict[str, Any]]:
    """ML.ENERGY's published configurations of the campaign's models on this task (usable ones)."""
    usable = published_rows(published, task, rows.get_column("model").unique().to_list(), metric)
    if usable.is_empty():
        return []
    usable = usable.with_columns(
        on_gpu_frontier=frontier_flags(usable, metric, ENERGY_COL, (*GROUP_COLS, "gpu"))
    )
    return [
        {
            "model": r["model"],
            "gpu": r.get("gpu"),
            "source": r.get("source"),
            "config": run_label(r),
            "latency_s": r[metric],
            "energy_j": r[ENERGY_COL],
            "on_gpu_frontier": r["on_gpu_frontier"],
        }
        for r in usable.sort([metric, ENERGY_COL]).iter_rows(named=True)
    ]


def _summary_table(summary: pl.DataFrame) -> dict[str, Any]:
    # A column empty in every row (batch latency of an LLM campaign) is left out, not shown blank.
    columns = [
        c for c in SUMMARY_COLUMNS if c in summary.columns and summary[c].null_count() < summary.height
    ]
    return {
        "columns": [label(c) for c in columns],
        "rows": _records(summary, columns),
        "run_dirs": summary["run_dir"].to_list(),
    }


def _recommendations(inputs: PageInputs, notes: list[str]) -> dict[str, Any] | None:
    recs = inputs.recommendations
    if recs is None:
        try:
            recs = recommendation_table(inputs.summary, inputs.targets)
        except FrontierError as exc:
            notes.append(f"No recommendations: {exc}")
            return None
    columns = [c for c in RECOMMENDATION_COLUMNS if c in recs.columns]
    run_dirs = recs["run_dir"].to_list() if "run_dir" in recs.columns else [None] * recs.height
    return {"columns": [label(c) for c in columns], "rows": _records(recs, columns), "run_dirs": run_dirs}


def _runs(inputs: PageInputs) -> dict[str, dict[str, Any]]:
    prov = {}
    if inputs.provenance is not None and "run_dir" in inputs.provenance.columns:
        prov = {r["run_dir"]: r for r in inputs.provenance.iter_rows(named=True)}
    runs = {}
    for row in inputs.summary.iter_rows(named=True):
        run_dir = row["run_dir"]
        p = dict(prov.get(run_dir, {}))
        start, end = p.pop("start_time", None), p.pop("end_time", None)
        times = {"started": human_time(start), "ended": human_time(end)}
        if times["started"] and times["ended"]:
            times["duration"] = format_duration((_instant(end) - _instant(start)).total_seconds())
        p = times | {k: v for k, v in p.items() if k not in ("run_dir", "status")}  # status: shown above
        png = inputs.timelines.get(run_dir)
        runs[run_dir] = {
            "label": f"{row['task']} / {row['model']}: {run_label(row)}",
            "status": row.get("status"),
            "valid": row.get("valid"),
            "flags": row.get("flags") or "",
            "reason": row.get("reason"),
            "provenance": {k: v for k, v in p.items() if v not in (None, "")},
            "timeline": _data_uri(png) if png and png.is_file() else None,
        }
    return runs


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
