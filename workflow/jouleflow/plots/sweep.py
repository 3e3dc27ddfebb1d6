"""Batch-size sweep panels for one (task, model): energy, throughput, latency and power vs batch size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from jouleflow.analysis.frontier import FrontierError, modality_of, require_columns, select_group
from jouleflow.plots.style import log_if_wide, new_figure, note_dummy_weights, save, style, styled

SERIES_COLS = ("gpu", "num_gpus", "parallelism")


@dataclass(frozen=True)
class Panel:
    column: str  # summary column (or derived column) on the y axis
    label: str  # axis label with unit
    scale: float = 1.0  # multiply values for display (s → ms)


def _latency_panel(rows: pl.DataFrame) -> Panel:
    for column in ("median_itl_s", "median_tpot_s"):
        if column in rows.columns and rows.get_column(column).drop_nulls().len():
            name = "ITL" if column == "median_itl_s" else "TPOT"
            # ML.ENERGY v2 publishes the mean TPOT; say so instead of calling it a median.
            v2_only = "source" in rows.columns and set(rows.get_column("source").to_list()) == {"mlenergy-v2"}
            stat = "Mean" if v2_only and name == "TPOT" else "Median"
            return Panel(column, f"{stat} {name} (ms)", 1e3)
    require_columns(rows, ["median_itl_s"], "sweep plot")
    return Panel("median_itl_s", "Median ITL (ms)", 1e3)


def panels_for(rows: pl.DataFrame) -> list[Panel]:
    diffusion = modality_of(rows) == "diffusion"
    if diffusion:
        unit = "video" if rows.get_column("task").str.contains("video").any() else "image"
        require_columns(rows, ["energy_per_response_j", "batch_latency_s", "mean_power_w"], "sweep plot")
        return [
            Panel("energy_per_response_j", f"Energy per {unit} (J)"),
            Panel("outputs_per_s", f"Throughput ({unit}s/s)"),
            Panel("batch_latency_s", "Batch latency (s)"),
            Panel("mean_power_w", "Power, all GPUs (W)"),
        ]
    require_columns(rows, ["energy_per_token_j", "tokens_per_s", "mean_power_w"], "sweep plot")
    return [
        Panel("energy_per_token_j", "Energy per token (J)"),
        Panel("tokens_per_s", "Throughput (tokens/s)"),
        _latency_panel(rows),
        Panel("mean_power_w", "Power, all GPUs (W)"),
    ]


def _series_label(key: dict) -> str:
    return f"{key['gpu']} ×{key['num_gpus']} ({key['parallelism']})"


def _batch_axis(ax: Axes, batches: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(batches))))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", labelrotation=45 if len(set(batches)) > 8 else 0)
    ax.set_xlabel("Batch size (max concurrent requests)")


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
