"""Spread across models within a task, and images vs videos.

Per task: each model's minimum energy (per response by default: J/request, J/image, J/video) over
its configurations, then the least and most energetic model and their ratio. Contrasts (e.g.
video-chat vs image-chat, text-to-video vs text-to-image) divide the video task's minimum, median
and maximum by the image task's, and, for the models that ran both, give the per-model ratios.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from jouleflow.analysis.compare import output
from jouleflow.analysis.compare.common import CompareError, NoComparablePairs, metric_column
from jouleflow.analysis.compare.minimum import config_label, minimum_per, prepare, ratio, spread_stats
from jouleflow.analysis.compare.task_aggregates import parse_task_pairs

DEFAULT_CONTRASTS = (("video-chat", "image-chat"), ("text-to-video", "text-to-image"))
TABLE_COLUMNS = (
    "kind",
    "task",
    "versus",
    "models",
    "min_energy",
    "min_model",
    "min_config",
    "median_energy",
    "max_energy",
    "max_model",
    "max_config",
    "max_over_min",
    "min_ratio",
    "median_ratio",
    "max_ratio",
    "common_models",
    "min_model_ratio",
    "median_model_ratio",
    "max_model_ratio",
)
FORMATS = {
    "models": "int", "min_energy": "g", "median_energy": "g", "max_energy": "g", "max_over_min": "ratio",
    "min_ratio": "ratio", "median_ratio": "ratio", "max_ratio": "ratio", "common_models": "int",
    "min_model_ratio": "ratio", "median_model_ratio": "ratio", "max_model_ratio": "ratio",
}  # fmt: skip


@dataclass
class SpreadResult:
    energy_column: str
    gpu: str | None
    tasks: list[dict[str, Any]]
    contrasts: list[dict[str, Any]]
    skipped: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return [{"kind": "task", **t} for t in self.tasks] + [
            {"kind": "contrast", **c} for c in self.contrasts
        ]

    def summary(self) -> dict[str, Any]:
        return {"energy_metric": self.energy_column, "gpu": self.gpu, "tasks": self.tasks,
                "contrasts": self.contrasts, "skipped_contrasts": self.skipped}  # fmt: skip

    def markdown(self) -> str:
        where = f"on {self.gpu}" if self.gpu else "over every GPU type"
        lines = [
            "# Spread across models within a task\n",
            f"Each model's minimum {self.energy_column} ({where}); least and most energetic model per task.\n",
            output.markdown_table(
                self.tasks,
                ["task", "models", "min_energy", "min_model", "median_energy", "max_energy", "max_model", "max_over_min"],
                FORMATS,
                {"min_energy": "min", "min_model": "least", "median_energy": "median", "max_energy": "max",
                 "max_model": "most", "max_over_min": "max / min"},
            ),
            "\n## Images vs videos\n",
            output.markdown_table(
                self.contrasts,
                ["task", "versus", "min_ratio", "median_ratio", "max_ratio", "common_models", "min_model_ratio",
                 "median_model_ratio", "max_model_ratio"],
                FORMATS,
                {"versus": "vs", "min_ratio": "min / min", "median_ratio": "median / median",
                 "max_ratio": "max / max", "common_models": "models in both", "min_model_ratio": "per model: min",
                 "median_model_ratio": "median", "max_model_ratio": "max"},
            ),
        ]  # fmt: skip
        if self.skipped:
            lines.append("\nNot contrasted: " + "; ".join(self.skipped) + "\n")
        return "\n".join(lines)


def _contrast(
    a: str, b: str, per_task: dict[str, dict[str, float]], stats: dict[str, dict]
) -> dict[str, Any]:
    common = sorted(set(per_task[a]) & set(per_task[b]))
    per_model = spread_stats([per_task[a][m] / per_task[b][m] for m in common])
    return {
        "task": a,
        "versus": b,
        "min_ratio": ratio(stats[a]["min_energy"], stats[b]["min_energy"]),
        "median_ratio": ratio(stats[a]["median_energy"], stats[b]["median_energy"]),
        "max_ratio": ratio(stats[a]["max_energy"], stats[b]["max_energy"]),
        "common_models": len(common),
        "min_model_ratio": per_model["min"],
        "median_model_ratio": per_model["median"],
        "max_model_ratio": per_model["max"],
    }


def compare_spread(
    df: pl.DataFrame,
    energy: str = "energy_per_response",
    tasks: Sequence[str] | None = None,
    gpu: str | None = None,
    contrasts: Sequence[tuple[str, str]] | None = None,
) -> SpreadResult:
    """Per-task spread of per-model minimum energy, and video/image contrasts. See the module docstring.

    `contrasts` (VIDEO_TASK, IMAGE_TASK) default to DEFAULT_CONTRASTS, each kept only when both of
    its tasks have data; given explicitly, a task without data is an error.
    """
    en = metric_column(energy, "energy")
    configs = prepare(df, en, "spread", tasks=tasks, gpu=gpu)
    if configs.height == 0:
        raise NoComparablePairs(f"no comparable pairs: no configuration has a positive {en}")
    minima = minimum_per(configs, ["task", "model"], en).to_dicts()
    per_task: dict[str, dict[str, float]] = {}
    rows_by_task: dict[str, list[dict[str, Any]]] = {}
    for r in minima:
        per_task.setdefault(r["task"], {})[r["model"]] = r[en]
        rows_by_task.setdefault(r["task"], []).append(r)
    task_rows, stats = [], {}
    for task, rows in sorted(rows_by_task.items()):
        lo = min(rows, key=lambda r: (r[en], r["model"]))
        hi = max(rows, key=lambda r: (r[en], r["model"]))
        entry = {
            "task": task, "models": len(rows), "min_energy": lo[en], "min_model": lo["model"],
            "min_config": config_label(lo), "median_energy": statistics.median(r[en] for r in rows),
            "max_energy": hi[en], "max_model": hi["model"], "max_config": config_label(hi),
            "max_over_min": hi[en] / lo[en],
        }  # fmt: skip
        stats[task] = entry
        task_rows.append(entry)
    contrast_rows, skipped = [], []
    for a, b in contrasts if contrasts is not None else DEFAULT_CONTRASTS:
        missing = [t for t in (a, b) if t not in per_task]
        if missing and contrasts is not None:
            raise CompareError(f"contrast {a}:{b}: task(s) {', '.join(missing)} have no usable configuration")
        if missing:
            skipped.append(f"{a} vs {b} ({', '.join(missing)} absent)")
            continue
        contrast_rows.append(_contrast(a, b, per_task, stats))
    return SpreadResult(en, gpu, task_rows, contrast_rows, skipped)


__all__ = ["DEFAULT_CONTRASTS", "SpreadResult", "compare_spread", "parse_task_pairs"]
