"""Per-task aggregates over models, and task-to-task ratios.

Each model's minimum-energy configuration per task (least energy per response, or per token with
`select`, over GPU type, count, batch size and parallelism, or on one GPU type) is taken once; per task, the mean output
tokens, mean energy per response and mean energy per token over those models. A task-to-task
ratio (A vs B) uses only the models that have both tasks, so that it compares the same models:
ratio of means (mean over those models in A / mean in B) and the median of the per-model ratios.
The ratio of the two tasks' means over all their models (`all_models_*`) is given too: that is the
v3 blog's "Problem Solving consumes on average 25x more energy per response" figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import polars as pl

from jouleflow.analysis.compare import output
from jouleflow.analysis.compare.common import (
    CompareError,
    NoComparablePairs,
    filter_tasks,
    metric_column,
    require_columns,
)
from jouleflow.analysis.compare.minimum import config_label, mean, minimum_per, prepare, ratio, spread_stats

ENERGY = "energy_per_response_j"
TABLE_COLUMNS = (
    "kind",
    "task",
    "versus",
    "models",
    "mean_output_tokens",
    "mean_energy_per_response_j",
    "mean_energy_per_token_j",
    "versus_mean_output_tokens",
    "versus_mean_energy_per_response_j",
    "tokens_ratio",
    "energy_ratio",
    "median_model_energy_ratio",
    "min_model_energy_ratio",
    "max_model_energy_ratio",
    "all_models_tokens_ratio",
    "all_models_energy_ratio",
)
FORMATS = {
    "models": "int",
    "mean_output_tokens": "g",
    "mean_energy_per_response_j": "g",
    "mean_energy_per_token_j": "g",
    "versus_mean_output_tokens": "g",
    "versus_mean_energy_per_response_j": "g",
    "tokens_ratio": "ratio",
    "energy_ratio": "ratio",
    "median_model_energy_ratio": "ratio",
    "min_model_energy_ratio": "ratio",
    "max_model_energy_ratio": "ratio",
    "all_models_tokens_ratio": "ratio",
    "all_models_energy_ratio": "ratio",
    "energy_per_response_j": "g",
    "energy_per_token_j": "g",
}
HEADERS = {
    "mean_output_tokens": "mean output tokens",
    "mean_energy_per_response_j": "mean J/response",
    "mean_energy_per_token_j": "mean J/token",
    "versus_mean_output_tokens": "vs: mean output tokens",
    "versus_mean_energy_per_response_j": "vs: mean J/response",
    "tokens_ratio": "tokens ratio",
    "energy_ratio": "J/response ratio",
    "median_model_energy_ratio": "median per-model ratio",
    "min_model_energy_ratio": "min",
    "max_model_energy_ratio": "max",
    "all_models_tokens_ratio": "all models: tokens ratio",
    "all_models_energy_ratio": "J/response ratio",
}


def parse_task_pairs(text: str | Sequence[str] | None) -> list[tuple[str, str]]:
    """`gpqa:lm-arena-chat,image-chat:lm-arena-chat` -> [(A, B), ...]; an empty text -> []."""
    if not text:
        return []
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(s).strip() for s in text]
    pairs = []
    for item in filter(None, items):
        a, sep, b = item.partition(":")
        if not sep or not a.strip() or not b.strip() or a.strip() == b.strip():
            raise CompareError(f"task pair {item!r} is not TASK_A:TASK_B with two different tasks")
        pairs.append((a.strip(), b.strip()))
    return pairs


@dataclass
class TaskAggregatesResult:
    gpu: str | None
    select_column: str
    minima: list[dict[str, Any]]  # one row per (task, model)
    tasks: list[dict[str, Any]]  # one row per task
    ratios: list[dict[str, Any]]  # one row per task pair

    def rows(self) -> list[dict[str, Any]]:
        return [{"kind": "task", **t} for t in self.tasks] + [{"kind": "ratio", **r} for r in self.ratios]

    def summary(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "selected_by": self.select_column,
            "tasks": self.tasks,
            "ratios": self.ratios,
            "minima": self.minima,
        }

    def markdown(self) -> str:
        where = f"on {self.gpu}" if self.gpu else "over every GPU type"
        return "\n".join(
            [
                "# Per-task aggregates over models\n",
                f"Each model's minimum-energy configuration per task ({where}; least {self.select_column}), "
                "then the mean over models. Ratios use only the models that have both tasks.\n",
                output.markdown_table(
                    self.tasks,
                    [
                        "task",
                        "models",
                        "mean_output_tokens",
                        "mean_energy_per_response_j",
                        "mean_energy_per_token_j",
                    ],
                    FORMATS,
                    HEADERS,
                ),
                "\n## Task-to-task ratios (common models)\n",
                output.markdown_table(
                    self.ratios,
                    [
                        "task",
                        "versus",
                        "models",
                        "tokens_ratio",
                        "energy_ratio",
                        "median_model_energy_ratio",
                        "min_model_energy_ratio",
                        "max_model_energy_ratio",
                        "all_models_tokens_ratio",
                        "all_models_energy_ratio",
                    ],
                    FORMATS,
                    HEADERS,
                ),  # fmt: skip
                "\n## Minimum-energy configuration per model\n",
                output.markdown_table(
                    self.minima,
                    [
                        "task",
                        "model",
                        "config",
                        "mean_output_tokens",
                        "energy_per_token_j",
                        "energy_per_response_j",
                    ],
                    FORMATS,
                    {
                        "mean_output_tokens": "mean output tokens",
                        "energy_per_token_j": "J/token",
                        "energy_per_response_j": "J/response",
                    },
                ),  # fmt: skip
            ]
        )


def _ratio_row(
    a: str, b: str, by_task: dict[str, dict[str, dict[str, Any]]], task_rows: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    common = sorted(set(by_task[a]) & set(by_task[b]))
    ea = [by_task[a][m][ENERGY] for m in common]
    eb = [by_task[b][m][ENERGY] for m in common]
    ta = mean([by_task[a][m]["mean_output_tokens"] for m in common])
    tb = mean([by_task[b][m]["mean_output_tokens"] for m in common])
    per_model = spread_stats([x / y for x, y in zip(ea, eb, strict=True)])
    return {
        "task": a,
        "versus": b,
        "models": len(common),
        "model_ids": common,
        "mean_output_tokens": ta,
        "mean_energy_per_response_j": mean(ea),
        "versus_mean_output_tokens": tb,
        "versus_mean_energy_per_response_j": mean(eb),
        "tokens_ratio": ratio(ta, tb),
        "energy_ratio": ratio(mean(ea), mean(eb)),
        "median_model_energy_ratio": per_model["median"],
        "min_model_energy_ratio": per_model["min"],
        "max_model_energy_ratio": per_model["max"],
        "all_models_tokens_ratio": ratio(
            task_rows[a]["mean_output_tokens"], task_rows[b]["mean_output_tokens"]
        ),
        "all_models_energy_ratio": ratio(
            task_rows[a]["mean_energy_per_response_j"], task_rows[b]["mean_energy_per_response_j"]
        ),
    }


def compare_task_aggregates(
    df: pl.DataFrame,
    tasks: Sequence[str] | None = None,
    gpu: str | None = None,
    pairs: Sequence[tuple[str, str]] = (),
    select: str = "energy_per_response",
) -> TaskAggregatesResult:
    """Per-task means over each model's minimum-energy configuration. See the module docstring.

    `pairs` (A, B) are the task-to-task ratios to report; by default every pair of tasks that
    shares a model, the one with more mean energy first. `select` is the energy metric whose
    minimum picks each model's configuration (the means are always per response and per token).
    """
    sel = metric_column(select, "energy")
    for a, b in pairs:
        for t in (a, b):
            if tasks and t not in tasks:
                raise CompareError(f"task pair {a}:{b} names task {t!r}, which --tasks leaves out")
    require_columns(df, ["task"], "task-aggregates")
    filter_tasks(df, sorted({t for p in pairs for t in p}))  # a task no row names is an error naming it
    configs = prepare(df, ENERGY, "task-aggregates", tasks=tasks, gpu=gpu)
    # Selecting by J/token: rows without it cannot be chosen (diffusion has none).
    configs = configs.filter(pl.col(sel).is_not_null() & (pl.col(sel) > 0))
    if configs.height == 0:
        where = f" on {gpu}" if gpu else ""
        raise NoComparablePairs(
            f"no comparable pairs: no configuration{where} has a positive {ENERGY} and {sel}"
        )
    minima = [
        {**row, "config": config_label(row)}
        for row in minimum_per(configs, ["task", "model"], sel).to_dicts()
    ]
    by_task: dict[str, dict[str, dict[str, Any]]] = {}
    for row in minima:
        by_task.setdefault(row["task"], {})[row["model"]] = row
    task_rows = [
        {
            "task": t,
            "models": len(models),
            "mean_output_tokens": mean([r["mean_output_tokens"] for r in models.values()]),
            "mean_energy_per_response_j": mean([r[ENERGY] for r in models.values()]),
            "mean_energy_per_token_j": mean([r["energy_per_token_j"] for r in models.values()]),
        }
        for t, models in sorted(by_task.items())
    ]
    task_index = {t["task"]: t for t in task_rows}
    if pairs:
        missing = [t for p in pairs for t in p if t not in by_task]
        if missing:
            raise NoComparablePairs(
                f"no comparable pairs: task(s) {', '.join(sorted(set(missing)))} have no usable configuration"
            )
        ratio_rows = [_ratio_row(a, b, by_task, task_index) for a, b in pairs]
        empty = [f"{r['task']}:{r['versus']}" for r in ratio_rows if r["models"] == 0]
        if empty:
            raise NoComparablePairs(f"no comparable pairs: no model has both tasks of {', '.join(empty)}")
    else:
        means = {t["task"]: t["mean_energy_per_response_j"] for t in task_rows}
        ratio_rows = []
        for a, b in combinations(sorted(by_task), 2):
            if set(by_task[a]) & set(by_task[b]):
                hi, lo = (a, b) if (means[a], b) >= (means[b], a) else (b, a)
                ratio_rows.append(_ratio_row(hi, lo, by_task, task_index))
    return TaskAggregatesResult(gpu, sel, minima, task_rows, ratio_rows)
