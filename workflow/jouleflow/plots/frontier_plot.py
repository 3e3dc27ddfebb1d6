"""Time–energy frontier of one (task, model): every configuration, the Pareto line, the recommendation."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from matplotlib.axes import Axes

from jouleflow.analysis.frontier import (
    ENERGY_COL,
    FrontierError,
    Recommendation,
    TargetUnreachableError,
    default_latency_metric,
    frontier_flags,
    modality_of,
    recommend,
    require_columns,
    resolve_latency_metric,
    select_group,
    usable_rows,
)
from jouleflow.plots.style import log_if_wide, new_figure, note_dummy_weights, save, style, styled
from jouleflow.units import format_duration

_METRIC_LABELS = {
    "median_itl_s": "Median ITL",
    "p90_itl_s": "P90 ITL",
    "p95_itl_s": "P95 ITL",
    "p99_itl_s": "P99 ITL",
    "median_tpot_s": "Median TPOT",
    "median_ttft_s": "Median TTFT",
    "median_e2e_s": "Median end-to-end latency",
    "p90_e2e_s": "P90 end-to-end latency",
    "batch_latency_s": "Batch latency",
}
_MS_METRICS = {"median_itl_s", "p90_itl_s", "p95_itl_s", "p99_itl_s", "median_tpot_s"}


def _scatter(ax: Axes, points: pl.DataFrame, metric: str, scale: float) -> None:
    series = points.select("gpu", "num_gpus").unique().sort("gpu", "num_gpus", nulls_last=True).to_dicts()
    for i, key in enumerate(series):
        part = points.filter((pl.col("gpu") == key["gpu"]) & (pl.col("num_gpus") == key["num_gpus"]))
        st = style(i)
        ax.plot(
            [v * scale for v in part.get_column(metric).to_list()],
            part.get_column(ENERGY_COL).to_list(),
            ls="none",
            marker=st["marker"],
            color=st["color"],
            alpha=0.85,
            label=f"{key['gpu']} ×{key['num_gpus']}",
        )


def _frontier_lines(ax: Axes, points: pl.DataFrame, metric: str, scale: float) -> None:
    precisions = sorted(points.get_column("precision").unique().to_list(), key=lambda p: (p is None, p or ""))
    for j, precision in enumerate(precisions):
        part = points.filter(pl.col("precision").eq_missing(precision))
        front = part.filter(frontier_flags(part, metric, ENERGY_COL)).sort(metric, ENERGY_COL)
        label = "Pareto frontier" + (f" ({precision})" if len(precisions) > 1 else "")
        ax.plot(
            [v * scale for v in front.get_column(metric).to_list()],
            front.get_column(ENERGY_COL).to_list(),
            color="black",
            lw=1.0,
            ls=("-", "--", ":", "-.")[j % 4],
            drawstyle="steps-post",
            zorder=1,
            label=label,
        )


def _mark_recommendation(ax: Axes, rec: Recommendation, scale: float, unit: str) -> None:
    ax.axvline(rec.latency_target_s * scale, color="#555555", ls="--", lw=0.9, zorder=0)
    ax.annotate(
        f"target {format_duration(rec.latency_target_s)}",
        (rec.latency_target_s * scale, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(3, -3),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize=7,
        color="#555555",
    )
    c, b = rec.config, rec.baseline
    ax.plot([c.latency * scale], [c.energy], ls="none", marker="*", ms=13, mfc="none", mec="black", mew=1.2, zorder=3,
            label=f"recommended ({c.gpu} ×{c.num_gpus}, batch {c.batch_size})")  # fmt: skip
    ax.plot([b.latency * scale], [b.energy], ls="none", marker="o", ms=10, mfc="none", mec="#777777", mew=1.0, zorder=3,
            label="minimum latency")  # fmt: skip
    ax.annotate(
        f"{c.latency * scale:.3g} {unit}, −{rec.savings_fraction:.0%} energy\nvs minimum latency",
        (c.latency * scale, c.energy),
        xytext=(8, 10),
        textcoords="offset points",
        fontsize=7,
    )


def _response_noun(rows: pl.DataFrame, task: str) -> str:
    diffusion = modality_of(rows) == "diffusion"
    return ("video" if "video" in task else "image") if diffusion else "response"


@styled
def plot_frontier(
    summary: pl.DataFrame,
    task: str,
    model: str,
    out: str | Path,
    *,
    latency_target_s: float | None = None,
    latency_metric: str | None = None,
    precision: str | None = None,
) -> list[Path]:
    """Scatter of all usable configurations, the Pareto frontier, and (with a target) the recommendation."""
    require_columns(
        summary,
        ["task", "model", "status", "valid", "gpu", "num_gpus", "precision", ENERGY_COL],
        "frontier plot",
    )
    rows = select_group(summary, task, model, precision)
    metric = resolve_latency_metric(latency_metric) if latency_metric else default_latency_metric(task, rows)
    points, excluded = usable_rows(rows, metric)
    if points.height == 0:
        raise FrontierError(f"{task} / {model}: nothing to plot for {metric}; {excluded.describe()}")
    scale, unit = (1e3, "ms") if metric in _MS_METRICS else (1.0, "s")
    fig, (ax,) = new_figure(5.0, 3.6)
    _frontier_lines(ax, points, metric, scale)
    _scatter(ax, points, metric, scale)
    rec = None
    if latency_target_s is not None:
        try:
            rec = recommend(summary, task, model, latency_target_s, metric, precision=precision)
        except TargetUnreachableError as exc:
            ax.axvline(latency_target_s * scale, color="#D55E00", ls="--", lw=0.9)
            ax.text(
                0.01, 0.02, f"target unreachable: {exc}", transform=ax.transAxes, fontsize=7, color="#D55E00"
            )
        if rec is not None:
            _mark_recommendation(ax, rec, scale, unit)
    log_if_wide(ax, "x", [v * scale for v in points.get_column(metric).to_list()])
    log_if_wide(ax, "y", points.get_column(ENERGY_COL).to_list())
    ax.set_xlabel(f"{_METRIC_LABELS.get(metric, metric)} ({unit})")
    ax.set_ylabel(f"Energy per {_response_noun(points, task)} (J)")
    ax.set_title(f"{model} · {task}", fontsize=9)
    note_dummy_weights(
        ax, points.get_column("load_format").to_list() if "load_format" in points.columns else []
    )
    if excluded.total:
        ax.text(
            0.99, 0.02, excluded.describe(), transform=ax.transAxes, ha="right", fontsize=6.5, color="#777777"
        )
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.93), fontsize=7)
    return save(fig, out)
