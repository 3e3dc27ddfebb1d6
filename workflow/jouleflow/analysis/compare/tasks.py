"""One model across tasks.

For each GPU type and count on which the model ran two or more tasks, per task: the largest batch
size measured, and at that batch size the mean output tokens, energy per token and energy per
response; plus energy per token at the shared batch size (the largest batch size every task has).
Ratios are against the reference task: the one with the least energy per response unless given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from jouleflow.analysis.compare import output
from jouleflow.analysis.compare.common import (
    CompareError,
    NoComparablePairs,
    NotInSummary,
    collapse_repeats,
    filter_tasks,
    gpus_note,
    require_columns,
    same_gpus,
    usable_rows,
    with_config_keys,
)

NEEDED = (
    "task",
    "model",
    "gpu",
    "num_gpus",
    "batch_size",
    "energy_per_token_j",
    "energy_per_response_j",
    "mean_output_tokens",
)
VALUES = ("energy_per_token_j", "energy_per_response_j", "mean_output_tokens")
RATIO_OF = ("max_batch", "output_tokens", "jpt_shared", "jpt_max", "jpr")
TABLE_COLUMNS = (
    "model",
    "gpu",
    "num_gpus",
    "task",
    "max_batch",
    "output_tokens",
    "shared_batch",
    "jpt_shared",
    "jpt_max",
    "jpr",
    "reference",
    *(f"{c}_ratio" for c in RATIO_OF),
    "same_gpus",
)
HEADERS = {
    "max_batch": "max batch",
    "output_tokens": "mean output tokens",
    "shared_batch": "shared batch",
    "jpt_shared": "J/token @ shared",
    "jpt_max": "J/token @ max batch",
    "jpr": "J/response",
}


@dataclass
class TaskGroup:
    """The model's tasks on one GPU type and count."""

    gpu: str
    num_gpus: int
    shared_batch: int | None
    reference: str
    rows: list[dict[str, Any]]  # one per task, TABLE_COLUMNS
    same_gpus: bool | None = None  # every row compared ran on the same physical GPUs (None: unknown)


@dataclass
class TasksResult:
    model: str
    groups: list[TaskGroup]

    def rows(self) -> list[dict[str, Any]]:
        return [row for g in self.groups for row in g.rows]

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "groups": [
                {
                    "gpu": g.gpu,
                    "num_gpus": g.num_gpus,
                    "shared_batch": g.shared_batch,
                    "reference": g.reference,
                    "same_gpus": g.same_gpus,
                    "tasks": g.rows,
                }
                for g in self.groups
            ],
        }

    def markdown(self) -> str:
        lines = [
            f"# {self.model} across tasks\n",
            "Per task at its largest measured batch size; J/token also at the largest batch size all tasks share. "
            "Ratios are against the reference task (least J/response unless chosen).\n",
        ]
        fmt = {
            "max_batch": "int",
            "output_tokens": "g",
            "jpt_shared": "g",
            "jpt_max": "g",
            "jpr": "g",
            **{f"{c}_ratio": "ratio" for c in RATIO_OF},
        }
        for g in self.groups:
            lines.append(
                f"\n## {g.num_gpus}x {g.gpu} (shared batch {g.shared_batch or '—'}, reference {g.reference})\n"
            )
            if note := gpus_note([g.same_gpus], "task groups"):
                lines.append(note)
            lines.append(
                output.markdown_table(
                    g.rows,
                    [
                        "task",
                        "max_batch",
                        "output_tokens",
                        "jpt_shared",
                        "jpt_max",
                        "jpr",
                        "output_tokens_ratio",
                        "jpr_ratio",
                    ],
                    fmt,
                    {**HEADERS, "output_tokens_ratio": "tokens ratio", "jpr_ratio": "J/response ratio"},
                )
            )
        return "\n".join(lines)


def _task_rows(
    configs: pl.DataFrame, reference: str | None
) -> tuple[int | None, str, list[dict[str, Any]], bool | None] | None:
    tasks = sorted(set(configs["task"].to_list()))
    if len(tasks) < 2:
        return None
    batches = [set(configs.filter(pl.col("task") == t)["batch_size"].to_list()) for t in tasks]
    shared = set.intersection(*batches)
    shared_batch = max(shared) if shared else None
    rows, compared = [], []
    for task in tasks:
        runs = configs.filter(pl.col("task") == task)
        max_batch = int(runs["batch_size"].max())
        at_max = runs.filter(pl.col("batch_size") == max_batch).to_dicts()[0]
        at_shared = runs.filter(pl.col("batch_size") == shared_batch).to_dicts()[0] if shared_batch else None
        compared += [at_max, *([at_shared] if at_shared else [])]
        rows.append(
            {
                "task": task,
                "max_batch": max_batch,
                "output_tokens": at_max["mean_output_tokens"],
                "shared_batch": shared_batch,
                "jpt_shared": at_shared["energy_per_token_j"] if at_shared else None,
                "jpt_max": at_max["energy_per_token_j"],
                "jpr": at_max["energy_per_response_j"],
            }
        )
    if reference is not None and reference not in tasks:
        return None
    ref_task = reference or min(rows, key=lambda r: (r["jpr"], r["task"]))["task"]
    ref = next(r for r in rows if r["task"] == ref_task)
    same = same_gpus(*compared)
    for row in rows:
        row["reference"] = ref_task
        for c in RATIO_OF:
            row[f"{c}_ratio"] = row[c] / ref[c] if row[c] is not None and ref[c] else None
        row["same_gpus"] = same
    return shared_batch, ref_task, rows, same


def compare_tasks(
    df: pl.DataFrame,
    model: str,
    gpu: str | None = None,
    num_gpus: int | None = None,
    tasks: Sequence[str] | None = None,
    reference: str | None = None,
) -> TasksResult:
    """The model's energy across tasks, per GPU type and count. See the module docstring."""
    require_columns(df, NEEDED, "tasks")
    models = sorted(set(df["model"].drop_nulls().to_list()))
    if model not in models:  # not measured yet: nothing to compare (the planner checks the id itself)
        raise NotInSummary(f"model {model!r} not in the summary; present: {', '.join(models) or '(none)'}")
    df = with_config_keys(df.filter(pl.col("model") == model))
    df = usable_rows(
        filter_tasks(df, tasks), ["energy_per_token_j", "energy_per_response_j", "mean_output_tokens"]
    )
    if gpu is not None:
        present = sorted(set(df["gpu"].to_list()))
        if gpu not in present:
            raise CompareError(
                f"model {model!r} has no usable runs on GPU type {gpu!r}; present: {', '.join(present)}"
            )
        df = df.filter(pl.col("gpu") == gpu)
    if num_gpus is not None:
        df = df.filter(pl.col("num_gpus") == num_gpus)
    # Several parallelisms at one batch size: keep the least energy per token (the better setup).
    configs = collapse_repeats(df, ["gpu", "num_gpus", "task", "batch_size", "parallelism"], VALUES)
    configs = configs.sort(["energy_per_token_j"]).unique(
        ["gpu", "num_gpus", "task", "batch_size"], keep="first"
    )
    groups = []
    for (g, n), part in sorted(
        configs.group_by(["gpu", "num_gpus"]), key=lambda kv: (str(kv[0][0]), kv[0][1])
    ):
        built = _task_rows(part, reference)
        if built is None:
            continue
        shared_batch, ref_task, rows, same = built
        rows = [{"model": model, "gpu": g, "num_gpus": int(n), **r} for r in rows]
        groups.append(TaskGroup(str(g), int(n), shared_batch, ref_task, rows, same))
    if not groups:
        where = (
            ""
            if gpu is None and num_gpus is None
            else f" on {num_gpus or 'any number of'} x {gpu or 'any GPU'}"
        )
        ref = f" including reference task {reference!r}" if reference else ""
        raise NoComparablePairs(
            f"no comparable pairs: model {model!r} has no GPU type and count{where} with two "
            f"or more tasks{ref}"
        )
    return TasksResult(model, groups)
