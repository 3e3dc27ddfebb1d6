"""Figures of the per-task aggregate analyses (task-aggregates, modality, memory-batch, spread).

Drawn with the toolkit of every other figure (plots.style). Importing this module registers the
figures in compare_figures.FIGURES, so `compare_figures.draw` handles these results too; kept in
a module of its own so that the analyses can be added without touching the others' figures.
"""

from __future__ import annotations

from pathlib import Path

from jouleflow.analysis.compare.memory_batch import MemoryBatchResult
from jouleflow.analysis.compare.modality import ModalityResult
from jouleflow.analysis.compare.spread import SpreadResult
from jouleflow.analysis.compare.task_aggregates import TaskAggregatesResult
from jouleflow.plots.compare_figures import BLUE, FIGURES, GREY, ORANGE, VERMILLION
from jouleflow.plots.style import new_figure, placeholder, save, styled


def _stem(path: str | Path) -> Path:
    return Path(path).with_suffix("")


def _short(model: str) -> str:
    return model.split("/")[-1]


@styled
def task_aggregates_figure(result: TaskAggregatesResult, path: str | Path) -> list[Path]:
    tasks = result.tasks
    fig, (ax,) = new_figure(1.5 + 1.0 * len(tasks), 4.2)
    x = list(range(len(tasks)))
    ax.bar(x, [t["mean_energy_per_response_j"] for t in tasks], 0.6, color=BLUE)
    for i, t in enumerate(tasks):
        tokens = f"\n{t['mean_output_tokens']:,.0f} tok" if t["mean_output_tokens"] is not None else ""
        label = f"{t['mean_energy_per_response_j']:,.4g} J{tokens}\nn={t['models']}"
        ax.text(i, t["mean_energy_per_response_j"], label, ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([t["task"] for t in tasks], rotation=25, ha="right")
    ax.set_ylabel("mean energy per response over models (J, log)")
    ax.set_title(f"Per-task mean of each model's minimum ({result.gpu or 'all GPUs'})")
    ax.margins(y=0.3)
    ax.grid(False, axis="x")
    return save(fig, _stem(path))


@styled
def modality_figure(result: ModalityResult, path: str | Path) -> list[Path]:
    rows = result.rows()
    fig, (ax,) = new_figure(7.0, 1.5 + 0.32 * len(rows))
    y = list(range(len(rows)))[::-1]
    ax.axvline(1.0, color="0.4", linewidth=1)
    ax.scatter([r["jpt_ratio"] for r in rows], y, color=BLUE, label="J/token", zorder=3)
    ax.scatter([r["jpr_ratio"] for r in rows], y, color=ORANGE, marker="s", label="J/response", zorder=3)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{_short(r['model'])} ({r['task']}, {r['gpu']})" for r in rows], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"multimodal / text sibling on {result.text_task} (log)")
    ax.set_title("Multimodal vs text sibling, minimum energy")
    ax.legend(loc="lower right")
    ax.grid(False, axis="y")
    return save(fig, _stem(path))


@styled
def memory_batch_figure(result: MemoryBatchResult, path: str | Path) -> list[Path]:
    rows = result.flagged()
    if not rows:
        return placeholder(
            "Memory capacity unlocks batch", "no GPU count lowers energy by a larger batch", _stem(path)
        )
    fig, (ax,) = new_figure(7.5, 1.5 + 0.45 * len(rows))
    y = list(range(len(rows)))[::-1]
    ax.barh([v + 0.2 for v in y], [r["fewer_min_energy"] for r in rows], 0.4, color=GREY, label="fewer GPUs")
    ax.barh([v - 0.2 for v in y], [r["min_energy"] for r in rows], 0.4, color=BLUE, label="more GPUs")
    for v, r in zip(y, rows, strict=True):
        note = f" b{r['fewer_max_batch']}@{r['fewer_gpus']} -> b{r['min_energy_batch']}@{r['num_gpus']}"
        ax.text(r["fewer_min_energy"], v, note, va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{_short(r['model'])}\n{r['task']}, {r['gpu']}" for r in rows], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"minimum {result.energy_column} (log)")
    ax.set_title("More GPUs, larger batch, less energy")
    ax.legend(loc="lower right")
    ax.grid(False, axis="y")
    return save(fig, _stem(path))


@styled
def spread_figure(result: SpreadResult, path: str | Path) -> list[Path]:
    tasks = result.tasks
    fig, (ax,) = new_figure(7.0, 1.2 + 0.5 * len(tasks))
    y = list(range(len(tasks)))[::-1]
    for v, t in zip(y, tasks, strict=True):
        ax.plot([t["min_energy"], t["max_energy"]], [v, v], color=GREY, linewidth=3, zorder=2)
        ax.scatter([t["min_energy"], t["max_energy"]], [v, v], color=BLUE, zorder=3)
        ax.scatter([t["median_energy"]], [v], color=VERMILLION, marker="|", s=200, zorder=4)
        ax.text(t["max_energy"], v, f"  {t['max_over_min']:.1f}x (n={t['models']})", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([t["task"] for t in tasks])
    ax.set_xscale("log")
    ax.set_xlabel(f"per-model minimum {result.energy_column} (log; bar: median)")
    ax.set_title(f"Spread across models ({result.gpu or 'all GPUs'})")
    ax.margins(x=0.2)
    ax.grid(False, axis="y")
    return save(fig, _stem(path))


FIGURES.update(
    {
        TaskAggregatesResult: task_aggregates_figure,
        ModalityResult: modality_figure,
        MemoryBatchResult: memory_batch_figure,
        SpreadResult: spread_figure,
    }
)
