"""The recommendation at every latency deadline, as steps, for a page whose reader picks the deadline.

Which configurations meet a deadline changes only at a candidate's latency, so the minimum-energy
choice is a step function of the deadline with its steps at the task's candidate latencies. This
module asks `recommendation_table` (the rule of `jouleflow recommend` and recommendations.csv) for
the choice at each of those latencies; for any deadline d the answer is the step at the largest
latency ≤ d, and below the smallest one no configuration meets it. A reader's page needs only that
lookup, never the rule itself.
"""

from __future__ import annotations

import polars as pl

from jouleflow.analysis.frontier import usable_rows
from jouleflow.analysis.recommendations import (
    TargetSpec,
    TaskTargets,
    latency_metric_of,
    recommendation_table,
    task_partitions,
)


def task_metrics(summary: pl.DataFrame, targets: TargetSpec | None = None) -> dict[str, str]:
    """The latency metric each task's recommendations use (the targets' metric, else the default)."""
    targets = targets or TargetSpec()
    metrics = {}
    for task, rows in task_partitions(summary):
        default = latency_metric_of(task, rows, None)
        metrics[task] = targets.for_task(task, default).metric or default
    return metrics


def deadline_steps(summary: pl.DataFrame, targets: TargetSpec | None = None) -> pl.DataFrame:
    """recommendation_table's rows at every distinct usable latency of each task (the steps).

    Columns as recommendations.csv; `latency_target_s` is the step's deadline. A task without a
    usable row has no step (and so no recommendation at any deadline)."""
    per_task = {}
    for task, metric in task_metrics(summary, targets).items():
        rows = summary.filter(pl.col("task") == task)
        usable, _ = usable_rows(rows, metric)
        steps = usable.get_column(metric).cast(pl.Float64).unique().sort().to_list()
        if steps:
            per_task[task] = TaskTargets(tuple(steps), metric)
    if not per_task:
        return recommendation_table(summary.head(0), TargetSpec())
    # A task without steps would otherwise get the built-in default targets: leave it out.
    kept = summary.filter(pl.col("task").is_in(list(per_task)))
    return recommendation_table(kept, TargetSpec(per_task))
