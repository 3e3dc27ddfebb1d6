"""Batch-size sweep panels for one (task, model): energy, throughput, latency and power vs batch size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

from jouleflow import labels
from jouleflow.analysis.frontier import FrontierError, modality_of, require_columns, select_group
from jouleflow.plots.style import log_if_wide, new_figure, note_dummy_weights, save, style, styled

SERIES_COLS = ("gpu", "num_gpus", "parallelism")


@dataclass(frozen=True)
class Panel:
    column: str  # summary column (or derived column) on the y axis
    label: str  # axis label with unit
    scale: float = 1.0  # multiply values for display (s → ms)


def _panel(rows: pl.DataFrame, column: str, noun: str | None = None) -> Panel:
    """A summary column with its label from jouleflow.labels (ML.ENERGY v2's mean TPOT says "Mean")."""
    sources = rows.get_column("source").to_list() if "source" in rows.columns else []
    return Panel(column, labels.label(column, sources, noun=noun), labels.scale(column)[0])


def _latency_panel(rows: pl.DataFrame) -> Panel:
    for column in ("median_itl_s", "median_tpot_s"):
        if column in rows.columns and rows.get_column(column).drop_nulls().len():
            return _panel(rows, column)
    require_columns(rows, ["median_itl_s"], "sweep plot")
    return _panel(rows, "median_itl_s")


def panels_for(rows: pl.DataFrame) -> list[Panel]:
    diffusion = modality_of(rows) == "diffusion"
    if diffusion:
        unit = "video" if rows.get_column("task").str.contains("video").any() else "image"
        require_columns(rows, ["energy_per_response_j", "batch_latency_s", "mean_power_w"], "sweep plot")
        return [
            _panel(rows, "energy_per_response_j", noun=unit),
            Panel("outputs_per_s", f"Throughput ({unit}s/s)"),
            _panel(rows, "batch_latency_s"),
            _panel(rows, "mean_power_w"),
        ]
    require_columns(rows, ["energy_per_token_j", "tokens_per_s", "mean_power_w"], "sweep plot")
    return [
        _panel(rows, "energy_per_token_j"),
        _panel(rows, "tokens_per_s"),
        _latency_panel(rows),
        _panel(rows, "mean_power_w"),
    ]


def _series_label(key: dict) -> str:
    return f"{key['gpu']} ×{key['num_gpus']} ({key['parallelism']})"


def batch_ticks(batches: list[int], min_gap: float | None = None) -> list[int]:
    """The batch sizes to label on a log2 axis: every power of two, others only where their label
    keeps `min_gap` doublings from each kept one (1536 beside 2048 overprinted)."""
    values = sorted({b for b in batches if b and b > 0})
    if not values:
        return []
    span = math.log2(values[-1] / values[0]) if len(values) > 1 else 1.0
    gap = span / 18 if min_gap is None else min_gap
    kept = [b for b in values if b & (b - 1) == 0]
    for b in values:
        if b not in kept and all(abs(math.log2(b / k)) >= gap for k in kept):
            kept.append(b)
    return sorted(kept)


def _batch_axis(ax: Axes, batches: list[int]) -> None:
    ax.set_xscale("log", base=2)
    labelled = batch_ticks(batches)
    ax.xaxis.set_major_locator(FixedLocator(labelled))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    # The other measured batch sizes: unlabelled ticks.
    ax.xaxis.set_minor_locator(FixedLocator(sorted(set(batches) - set(labelled))))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelrotation=45 if len(labelled) > 8 else 0)
    ax.set_xlabel(labels.label("batch_size"))


def _draw_panel(ax: Axes, rows: pl.DataFrame, panel: Panel, series: list[dict]) -> None:
    values: list[float] = []
    for i, key in enumerate(series):
        part = rows.filter(*(pl.col(c) == key[c] for c in SERIES_COLS)).sort("batch_size")
        part = part.filter(pl.col(panel.column).is_not_null())
        if part.height == 0:
            continue
        y = [v * panel.scale for v in part.get_column(panel.column).to_list()]
        values.extend(y)
        st = style(i)
        ax.plot(part.get_column("batch_size").to_list(), y, label=_series_label(key), **st)
        invalid = part.filter(~pl.col("valid").fill_null(False))
        if invalid.height:  # hollow markers for runs flagged invalid
            yi = [v * panel.scale for v in invalid.get_column(panel.column).to_list()]
            ax.plot(
                invalid.get_column("batch_size").to_list(),
                yi,
                ls="none",
                marker=st["marker"],
                mfc="white",
                mec=st["color"],
            )
    ax.set_ylabel(panel.label)
    if not values:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="#777777")
    log_if_wide(ax, "y", values)
    _batch_axis(ax, rows.get_column("batch_size").to_list())


@styled
def plot_sweep(
    summary: pl.DataFrame, task: str, model: str, out: str | Path, precision: str | None = None
) -> list[Path]:
    """2×2 panels vs batch size, one line per GPU type × count (× parallelism). Writes PNG + SVG."""
    require_columns(summary, ["task", "model", "status", "valid", "batch_size", *SERIES_COLS], "sweep plot")
    rows = select_group(summary, task, model, precision).filter(pl.col("status") == "ok")
    rows = rows.filter(pl.col("batch_size").is_not_null())
    if rows.height == 0:
        raise FrontierError(f"{task} / {model}: no completed runs to plot")
    panels = panels_for(rows)
    if any(p.column == "outputs_per_s" for p in panels):
        rows = rows.with_columns(outputs_per_s=pl.col("batch_size") / pl.col("batch_latency_s"))
    series = rows.select(SERIES_COLS).unique().sort(SERIES_COLS, nulls_last=True).to_dicts()
    fig, axes = new_figure(7.0, 5.2, 2, 2)
    for ax, panel in zip(axes, panels, strict=True):
        _draw_panel(ax, rows, panel, series)
    note_dummy_weights(
        axes[0], rows.get_column("load_format").to_list() if "load_format" in rows.columns else []
    )
    precisions = (
        ", ".join(sorted(rows.get_column("precision").drop_nulls().unique().to_list()))
        if "precision" in rows.columns
        else ""
    )
    fig.suptitle(f"{model} · {task}" + (f" · {precisions}" if precisions else ""), fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)))
    return save(fig, out)
