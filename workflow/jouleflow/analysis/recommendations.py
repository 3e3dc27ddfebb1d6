"""Campaign-wide tables: the frontier of every (task, model, precision) and recommendations per target.

`frontier_table` gives frontier.parquet (the summary rows on each frontier plus latency_metric,
latency_s and frontier_rank); `recommendation_table` gives recommendations.csv (one row per group ×
latency target). Targets come from a YAML/JSON mapping (see `load_targets`) or built-in defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from jouleflow import traces
from jouleflow.analysis.cost import COST_COLUMNS
from jouleflow.analysis.frontier import (
    ENERGY_COL,
    GROUP_COLS,
    ConfigPoint,
    Exclusions,
    FrontierError,
    TargetUnreachableError,
    best_under_target,
    default_latency_metric,
    frontier_flags,
    require_columns,
    resolve_latency_metric,
    usable_rows,
)
from jouleflow.units import DurationError, parse_duration

# Built-in targets: the ML.ENERGY v3 study's deadlines where it has them (ITL 50/100/250 ms,
# text-to-image 10/30/60 s, text-to-video 100/500/1000 s); round numbers elsewhere.
_DEFAULT_BY_METRIC: dict[str, tuple[float, ...]] = {
    "median_itl_s": (0.05, 0.1, 0.25),
    "median_tpot_s": (0.05, 0.1, 0.25),
    "median_ttft_s": (0.5, 1.0, 2.0),
    "median_e2e_s": (2.0, 5.0, 10.0),
    "batch_latency_s": (10.0, 30.0, 60.0),
}
_VIDEO_TARGETS = (100.0, 500.0, 1000.0)


@dataclass(frozen=True)
class TaskTargets:
    targets_s: tuple[float, ...]
    metric: str | None = None  # None: the task's default metric


@dataclass(frozen=True)
class TargetSpec:
    per_task: Mapping[str, TaskTargets] = field(default_factory=dict)
    default: TaskTargets | None = None  # for tasks not listed; None → built-in defaults

    def for_task(self, task: str, metric: str) -> TaskTargets:
        if task in self.per_task:
            return self.per_task[task]
        if self.default is not None:
            return self.default
        return TaskTargets(default_targets(task, metric))


def default_targets(task: str, metric: str) -> tuple[float, ...]:
    if metric == "batch_latency_s" and "video" in task:
        return _VIDEO_TARGETS
    return _DEFAULT_BY_METRIC.get(metric, (1.0, 5.0, 10.0))


def _task_targets(value: Any, where: str) -> TaskTargets:
    metric = None
    if isinstance(value, Mapping):
        unknown = set(value) - {"metric", "targets"}
        if unknown:
            raise FrontierError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: metric, targets)"
            )
        metric = resolve_latency_metric(str(value["metric"])) if value.get("metric") else None
        value = value.get("targets")
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, list) or not value:
        raise FrontierError(f"{where}: expected a non-empty list of durations such as [50ms, 100ms]")
    try:
        targets = tuple(
            parse_duration(v, what=where) if isinstance(v, str) else _no_unit(v, where) for v in value
        )
    except DurationError as exc:
        raise FrontierError(str(exc)) from exc
    return TaskTargets(targets, metric)


def _no_unit(value: Any, where: str) -> float:
    raise FrontierError(f"{where}: {value!r} has no unit; write e.g. '{value}s' or '{value}ms'")


def load_targets(path: str | Path) -> TargetSpec:
    """Targets file: {task: [50ms, 100ms] | {metric: median_itl, targets: [...]}, default: [...]}."""
    path = Path(path)
    if not path.is_file():
        raise FrontierError(f"{path}: targets file is missing")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise FrontierError(f"{path}: not valid YAML/JSON ({exc})") from exc
    if not isinstance(doc, Mapping) or not doc:
        raise FrontierError(f"{path}: expected a mapping of task → latency targets")
    per_task = {str(k): _task_targets(v, f"{path}: {k}") for k, v in doc.items() if k != "default"}
    default = _task_targets(doc["default"], f"{path}: default") if "default" in doc else None
    return TargetSpec(per_task, default)


def task_partitions(summary: pl.DataFrame) -> list[tuple[str, pl.DataFrame]]:
    require_columns(summary, ["task", "model", "precision"], "summary")
    parts = summary.filter(pl.col("task").is_not_null()).partition_by("task", as_dict=True)
    return sorted(((key[0], rows) for key, rows in parts.items()), key=lambda item: item[0])


@dataclass(frozen=True)
class FrontierTable:
    frontier: pl.DataFrame
    metric_by_task: dict[str, str]
    excluded_by_task: dict[str, Exclusions]

    @property
    def excluded(self) -> Exclusions:
        return sum(self.excluded_by_task.values(), Exclusions())


def latency_metric_of(task: str, rows: pl.DataFrame, latency_metric: str | None) -> str:
    return resolve_latency_metric(latency_metric) if latency_metric else default_latency_metric(task, rows)


def frontier_table(
    summary: pl.DataFrame, latency_metric: str | None = None, allow_empty: bool = False
) -> FrontierTable:
    """Frontier rows of every (task, model, precision), fastest first, with frontier_rank 1..n.

    No usable row at all is an error, or with `allow_empty` (a campaign whose points all failed
    still gets its tables) an empty frontier with the same columns."""
    parts, metrics, excluded = [], {}, {}
    for task, rows in task_partitions(summary):
        metric = latency_metric_of(task, rows, latency_metric)
        usable, excluded[task] = usable_rows(rows, metric)
        metrics[task] = metric
        front = usable.filter(frontier_flags(usable, metric, ENERGY_COL, GROUP_COLS))
        parts.append(
            front.with_columns(latency_metric=pl.lit(metric), latency_s=pl.col(metric).cast(pl.Float64))
        )
    if not parts or all(p.height == 0 for p in parts):
        if not allow_empty:
            raise FrontierError("the summary has no usable rows (ok, valid, with latency and energy)")
        empty = summary.head(0).with_columns(
            latency_metric=pl.lit(None, pl.String),
            latency_s=pl.lit(None, pl.Float64),
            frontier_rank=pl.lit(None, pl.Int64),
        )
        return FrontierTable(empty, metrics, excluded)
    order = [*GROUP_COLS, "latency_s", ENERGY_COL, "gpu", "num_gpus", "batch_size", "parallelism", "run_dir"]
    frontier = pl.concat([p for p in parts if p.height], how="diagonal_relaxed").sort(order, nulls_last=True)
    frontier = frontier.with_columns(
        frontier_rank=(pl.int_range(pl.len()).over(list(GROUP_COLS)) + 1).cast(pl.Int64)
    )
    return FrontierTable(frontier, metrics, excluded)


_REC_SCHEMA: dict[str, Any] = {
    "task": pl.String,
    "model": pl.String,
    "precision": pl.String,
    "latency_metric": pl.String,
    "latency_target_s": pl.Float64,
    "status": pl.String,  # ok | unreachable | no-usable-rows
    "best_latency_s": pl.Float64,
    **{f"{prefix}{c}": t for prefix in ("", "baseline_") for c, t in (
        ("gpu", pl.String), ("num_gpus", pl.Int64), ("batch_size", pl.Int64), ("parallelism", pl.String),
        ("load_format", pl.String), ("source", pl.String), ("run_dir", pl.String),
        ("latency_s", pl.Float64), ("energy_per_response_j", pl.Float64),
    )},
    "savings_fraction": pl.Float64,
    "candidates": pl.Int64,
}  # fmt: skip


def _point_fields(point: ConfigPoint, prefix: str) -> dict[str, Any]:
    fields = {
        c: getattr(point, c)
        for c in ("gpu", "num_gpus", "batch_size", "parallelism", "load_format", "source", "run_dir")
    }
    # energy_per_response_j: the summary's column name, so the table says per response (image, video).
    fields |= {"latency_s": point.latency, "energy_per_response_j": point.energy}
    return {f"{prefix}{k}": v for k, v in fields.items()}


def recommendation_table(
    summary: pl.DataFrame, targets: TargetSpec | None = None, latency_metric: str | None = None
) -> pl.DataFrame:
    """One row per (task, model, precision) × target: the recommendation, or why there is none."""
    targets = targets or TargetSpec()
    # A summary with cost columns (analysis.cost) gives each recommendation its cost and carbon.
    carried = [c for c in COST_COLUMNS if c in summary.columns]
    schema = _REC_SCHEMA | {c: summary.schema[c] for c in carried}
    records: list[dict[str, Any]] = []
    for task, rows in task_partitions(summary):
        spec = targets.for_task(task, latency_metric_of(task, rows, latency_metric))
        metric = spec.metric or latency_metric_of(task, rows, latency_metric)
        usable, _ = usable_rows(rows, metric)
        groups = rows.select(GROUP_COLS).unique().sort(GROUP_COLS, nulls_last=True).iter_rows(named=True)
        by_group = usable.partition_by(list(GROUP_COLS), as_dict=True)
        for key in groups:
            candidates = by_group.get(tuple(key[c] for c in GROUP_COLS))
            for target in spec.targets_s:
                records.append(_recommend_row(key, metric, target, candidates, carried))
    return pl.DataFrame(records, schema=schema, orient="row") if records else pl.DataFrame(schema=schema)


def _recommend_row(
    key: dict, metric: str, target: float, candidates: pl.DataFrame | None, carried: Sequence[str] = ()
) -> dict[str, Any]:
    row: dict[str, Any] = {**key, "latency_metric": metric, "latency_target_s": target}
    if candidates is None or candidates.height == 0:
        return row | {"status": "no-usable-rows", "candidates": 0}
    row["candidates"] = candidates.height
    try:
        chosen, baseline = best_under_target(candidates, metric, target)
    except TargetUnreachableError as exc:
        return row | {"status": "unreachable", "best_latency_s": exc.best_latency_s}
    point = ConfigPoint.from_row(chosen, metric, ENERGY_COL)
    base = ConfigPoint.from_row(baseline, metric, ENERGY_COL)
    return row | {
        "status": "ok",
        "best_latency_s": base.latency,
        **_point_fields(point, ""),
        **_point_fields(base, "baseline_"),
        "savings_fraction": 1.0 - point.energy / base.energy,
        **{c: chosen.get(c) for c in carried},
    }


def summarize_exclusions(table: FrontierTable) -> list[str]:
    """One line per task: metric used and rows excluded (for logs and CLI output)."""
    return [
        f"{task}: latency metric {table.metric_by_task[task]}; {excl.describe()}"
        for task, excl in sorted(table.excluded_by_task.items())
    ]


def write_recommendations_csv(df: pl.DataFrame, path: str | Path) -> None:
    """Write the CSV atomically (temp file + rename), so a killed job never leaves half a table."""
    traces.write_atomic(path, df.write_csv)


def targets_from_cli(entries: Sequence[str]) -> TargetSpec:
    """`--target TASK=50ms,100ms` entries (TASK may be 'default')."""
    per_task: dict[str, TaskTargets] = {}
    default = None
    for entry in entries:
        task, sep, values = entry.partition("=")
        if not sep or not task.strip():
            raise FrontierError(
                f"--target {entry!r}: expected TASK=DURATION[,DURATION...], e.g. gpqa=50ms,100ms"
            )
        spec = _task_targets(values, f"--target {task.strip()}")
        if task.strip() == "default":
            default = spec
        else:
            per_task[task.strip()] = spec
    return TargetSpec(per_task, default)
