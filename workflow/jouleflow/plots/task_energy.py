"""Energy per response by task, with the TDP-based estimate behind each bar.

One panel per task, one horizontal bar per model: by default the model's minimum-energy
configuration among ok + valid runs (or its minimum-latency one; optionally on one GPU type). Behind it, a wider light bar shows the TDP estimate
for that same configuration (formula in jouleflow.analysis.tdp); the ratio estimate / measured is printed.
Bars start at zero on a linear axis (a bar's length is its value: on a truncated or log axis 24.9 J
vs 26 J looked several-fold), and each measured bar carries its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from jouleflow import labels
from jouleflow.analysis.compare.common import is_bf16
from jouleflow.analysis.frontier import ENERGY_COL, FrontierError, default_latency_metric, require_columns
from jouleflow.analysis.tdp import REQUIRED_COLUMNS, with_tdp_estimate
from jouleflow.plots.style import (
    PALETTE,
    engineering,
    large_number_ticks,
    new_figure,
    response_noun,
    save,
    styled,
)

_NEEDED = ("task", "model", "status", "valid", "gpu", "load_format", ENERGY_COL, *REQUIRED_COLUMNS)


SELECTIONS = ("min-energy", "min-latency")


def task_energy_table(
    summary: pl.DataFrame,
    tasks: Sequence[str] | None = None,
    gpu: str | None = None,
    select: str = "min-energy",
) -> pl.DataFrame:
    """Per (task, model): the selected ok/valid configuration with its TDP estimate and ratio.

    select="min-energy" takes the configuration with the least energy per response; "min-latency"
    the fastest one under the task's default latency metric (what a latency-first operator runs).
    """
    if select not in SELECTIONS:
        raise FrontierError(f"unknown selection {select!r} (known: {', '.join(SELECTIONS)})")
    require_columns(summary, _NEEDED, "task-energy plot")
    rows = summary.filter(
        (pl.col("status") == "ok") & pl.col("valid").fill_null(False) & (pl.col(ENERGY_COL) > 0)
    )
    if tasks:
        known = set(summary.get_column("task").drop_nulls().to_list())
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise FrontierError(
                f"unknown task(s) {', '.join(unknown)}; the summary has: {', '.join(sorted(known))}"
            )
        rows = rows.filter(pl.col("task").is_in(list(tasks)))
    if gpu:
        gpus = sorted(summary.get_column("gpu").drop_nulls().unique().to_list())
        if gpu not in gpus:
            raise FrontierError(f"unknown GPU {gpu!r}; the summary has: {', '.join(gpus)}")
        rows = rows.filter(pl.col("gpu") == gpu)
    if rows.height == 0:
        raise FrontierError("no ok, valid rows with energy to plot")
    if select == "min-latency":
        parts = []
        for task, part in sorted(rows.partition_by("task", as_dict=True).items()):
            metric = default_latency_metric(task[0], part)
            parts.append(
                part.filter(pl.col(metric).is_not_null()).with_columns(_key=pl.col(metric).cast(pl.Float64))
            )
        rows = pl.concat(parts, how="diagonal_relaxed")
    else:
        rows = rows.with_columns(_key=pl.col(ENERGY_COL))
    best = rows.sort(["task", "model", "_key", ENERGY_COL, "gpu", "num_gpus", "batch_size"], nulls_last=True)
    best = best.group_by(["task", "model"], maintain_order=True).first().drop("_key")
    return with_tdp_estimate(best).sort(["task", ENERGY_COL, "model"])


def _precision_suffix(model: str, precision: str | None) -> str:
    """` FP8` where the minimum-energy configuration ran the model at a precision its id does not name
    (jouleflow's `precisions: [bf16, fp8]` sweeps keep one id; ML.ENERGY's FP8 checkpoints end in -FP8)."""
    if not precision or is_bf16(precision) or model.lower().endswith(precision.lower()):
        return ""
    return f" {precision.upper()}"


def _nouns(table: pl.DataFrame) -> str:
    nouns = sorted({response_noun(p, t[0]) for t, p in table.partition_by("task", as_dict=True).items()})
    return nouns[0] if len(nouns) == 1 else " or ".join(nouns)


@styled
def plot_task_energy(
    summary: pl.DataFrame,
    out: str | Path,
    tasks: Sequence[str] | None = None,
    gpu: str | None = None,
    select: str = "min-energy",
) -> list[Path]:
    table = task_energy_table(summary, tasks, gpu, select)
    task_names = table.get_column("task").unique(maintain_order=True).to_list()
    counts = [table.filter(pl.col("task") == t).height for t in task_names]
    height = 0.9 + sum(0.22 * c + 0.45 for c in counts)
    fig, axes = new_figure(6.5, height, len(task_names), 1, height_ratios=[c + 2 for c in counts])
    fig.get_layout_engine().set(hspace=0.04)
    for ax, task in zip(axes, task_names, strict=True):
        part = table.filter(pl.col("task") == task)
        y = list(range(part.height))
        precisions = (
            part.get_column("precision").to_list() if "precision" in part.columns else [None] * part.height
        )
        model_labels = [
            m + _precision_suffix(m, p) + (" (dummy weights)" if lf == "dummy" else "")
            for m, p, lf in zip(
                part.get_column("model").to_list(),
                precisions,
                part.get_column("load_format").to_list(),
                strict=True,
            )
        ]
        estimates = part.get_column("tdp_estimate_j").to_list()
        measured = part.get_column(ENERGY_COL).to_list()
        ax.barh(y, [e or 0 for e in estimates], height=0.8, color="#D9D9D9", label="TDP-based estimate")
        ax.barh(y, measured, height=0.45, color=PALETTE[0], label="measured")
        ratios = part.get_column("tdp_overestimation").to_list()
        for yi, value, est, ratio in zip(y, measured, estimates, ratios, strict=True):
            # One label per row, at the longer bar's end: the measured value and the estimate's ratio.
            text = engineering(value, "J") + (
                f" · estimate ×{ratio:.1f}" if est is not None and ratio is not None else ""
            )
            ax.annotate(
                text,
                (max(value, est or 0), yi),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
        ends = [max(m, e or 0) for m, e in zip(measured, estimates, strict=True)]
        ax.set_yticks(y, model_labels)
        ax.invert_yaxis()
        large_number_ticks(ax, "x", ends)
        ax.set_xlim(0, max(ends) * 1.5)  # from zero: a bar's length is its value; room for the label
        ax.grid(axis="y", visible=False)
        ax.set_title(f"{task} (J per {response_noun(part, task)})", loc="left", fontsize=9)
    which = "minimum-energy" if select == "min-energy" else "minimum-latency"
    axes[-1].set_xlabel(
        labels.label("energy_per_response_j", noun=_nouns(table), extra=f"{which} configuration per model")
        + (f" on {gpu}" if gpu else "")
    )
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=2)
    return save(fig, out)
