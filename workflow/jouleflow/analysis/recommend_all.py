"""Recommendations for every model at once, optionally on one GPU type and/or count.

The leaderboard's "best configuration per model under a deadline": one row per (task, model,
precision) × latency target, from `recommendations.recommendation_table` on the rows left after the
GPU and task filters (so the minimum-latency baseline is on the same hardware too). With a cost
spec the chosen configuration's cost and carbon columns come along.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from jouleflow.analysis.compare.output import markdown_table
from jouleflow.analysis.cost import COST_COLUMNS, CostSpec, add_cost_columns
from jouleflow.analysis.frontier import FrontierError, require_columns
from jouleflow.analysis.recommendations import TargetSpec, recommendation_table

# Markdown view: the choice and its numbers; the CSV/JSON keep every column.
_MD_COLUMNS = (
    "task", "model", "precision", "latency_target_s", "status", "gpu", "num_gpus", "batch_size",
    "parallelism", "latency_s", "energy_per_response_j", "savings_fraction",
)  # fmt: skip
_FORMATS = {
    "latency_target_s": "g", "latency_s": "g", "energy_per_response_j": "g", "savings_fraction": "share",
    "num_gpus": "int", "batch_size": "int", **{c: "g" for c in COST_COLUMNS[1:]},
}  # fmt: skip


def _values(df: pl.DataFrame, column: str) -> str:
    return (
        ", ".join(str(v) for v in sorted(df.get_column(column).drop_nulls().unique().to_list())) or "(none)"
    )


def restrict(
    summary: pl.DataFrame,
    *,
    gpu: str | None = None,
    num_gpus: int | None = None,
    tasks: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Rows on this GPU type / count / these tasks; FrontierError listing what exists when none is left."""
    require_columns(summary, ["task", "model", "precision"], "summary")
    df = summary
    if tasks:
        unknown = sorted(set(tasks) - set(df.get_column("task").drop_nulls().to_list()))
        if unknown:
            raise FrontierError(
                f"unknown task(s) {', '.join(unknown)}; the summary has: {_values(df, 'task')}"
            )
        df = df.filter(pl.col("task").is_in(list(tasks)))
    if gpu is not None:
        require_columns(df, ["gpu"], "summary")
        if df.filter(pl.col("gpu") == gpu).height == 0:
            raise FrontierError(f"no rows on GPU {gpu!r}; GPU types in the summary: {_values(df, 'gpu')}")
        df = df.filter(pl.col("gpu") == gpu)
    if num_gpus is not None:
        require_columns(df, ["num_gpus"], "summary")
        if num_gpus < 1:
            raise FrontierError(f"--num-gpus must be at least 1, got {num_gpus}")
        if df.filter(pl.col("num_gpus") == num_gpus).height == 0:
            on = f" on {gpu}" if gpu else ""
            raise FrontierError(
                f"no rows with {num_gpus} GPU(s){on}; GPU counts there: {_values(df, 'num_gpus')}"
            )
        df = df.filter(pl.col("num_gpus") == num_gpus)
    return df


def recommend_all(
    summary: pl.DataFrame,
    targets: TargetSpec | None = None,
    latency_metric: str | None = None,
    *,
    gpu: str | None = None,
    num_gpus: int | None = None,
    tasks: Sequence[str] | None = None,
    cost: CostSpec | None = None,
) -> pl.DataFrame:
    """One row per (task, model, precision) × target on the filtered rows (recommendations.csv columns)."""
    df = restrict(summary, gpu=gpu, num_gpus=num_gpus, tasks=tasks)
    if cost is not None:
        df = add_cost_columns(df, cost)
    return recommendation_table(df, targets, latency_metric)


def markdown(table: pl.DataFrame, title: str) -> str:
    columns = [*_MD_COLUMNS, *(c for c in COST_COLUMNS[1:] if c in table.columns)]
    counts = table.group_by("status").len().sort("status").iter_rows() if table.height else []
    status = ", ".join(f"{n} {s}" for s, n in counts) or "no rows"
    return f"# {title}\n\n{status}\n\n" + markdown_table(table.to_dicts(), columns, _FORMATS)


def to_json(table: pl.DataFrame, filters: dict[str, Any]) -> dict[str, Any]:
    return {
        "filters": filters,
        "units": {
            "latency": "s",
            "energy": "J per response",
            **{c: c.split("_", 1)[1] for c in COST_COLUMNS[1:]},
        },
        "recommendations": table.to_dicts(),
    }
