"""Where the joules go across batch sizes, for one (task, model): energy per response stacked as static,
prefill and decode (the attribution's split, summary columns split_*_share), one panel per GPU type ×
count × parallelism, each bar labelled with the run's diagnosis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from jouleflow.analysis.frontier import FrontierError, require_columns, select_group
from jouleflow.plots.style import PALETTE, new_figure, note_dummy_weights, save, styled

SERIES_COLS = ("gpu", "num_gpus", "parallelism")
PARTS = (
    ("split_static_share", "static", PALETTE[5]),
    ("split_prefill_share", "prefill", PALETTE[1]),
    ("split_decode_share", "decode", PALETTE[0]),
)
COLUMNS = (
    "batch_size",
    "energy_per_response_j",
    "valid",
    "diagnosis",
    "static_share",
    *(c for c, _, _ in PARTS),
)


def _draw(ax, part: pl.DataFrame) -> None:
    x = np.arange(part.height)
    total = np.asarray(part.get_column("energy_per_response_j").to_list(), float)
    split = part.get_column("split_decode_share").is_not_null().to_numpy()
    bottom = np.zeros(part.height)
    for column, label, color in PARTS:
        share = np.nan_to_num(np.asarray(part.get_column(column).to_list(), float))
        ax.bar(x, total * share, bottom=bottom, color=color, label=label, width=0.7)
        bottom += total * share
    rest = np.where(split, total - bottom, 0.0)  # the unattributed joules (no resident request)
    if np.any(np.abs(rest) > 0.005 * total):
        ax.bar(x, rest, bottom=bottom, color="#bbbbbb", label="unattributed", width=0.7)
    # attributed, but no fit resolved the token costs: static, then the dynamic rest unsplit
    unsplit = ~split & part.get_column("split_static_share").is_not_null().to_numpy()
    if unsplit.any():
        ax.bar(x[unsplit], (total - bottom)[unsplit], bottom=bottom[unsplit], color="#dddddd",
               edgecolor="#777777", hatch="..", width=0.7, label="dynamic (prefill/decode not resolved)")  # fmt: skip
    gone = ~split & ~unsplit
    if gone.any():
        ax.bar(x[gone], total[gone], color="white", edgecolor="#777777", hatch="//", width=0.7,
               label="not attributed")  # fmt: skip
    for xi, height, label in zip(x, total, part.get_column("diagnosis").to_list(), strict=True):
        ax.text(xi, height, f" {label or 'no diagnosis'}", rotation=90, ha="center", va="bottom", fontsize=6)
    ax.margins(y=0.45)
    if part.get_column("static_share").is_null().any():  # no idle baseline: static is the fitted s
        ax.text(0.01, 0.99, "static without an idle baseline: the fitted s", transform=ax.transAxes,
                ha="left", va="top", fontsize=6, style="italic", color="#555555")  # fmt: skip
    ticks = [
        f"{b}" if valid else f"{b}*"
        for b, valid in zip(
            part.get_column("batch_size"), part.get_column("valid").fill_null(False), strict=True
        )
    ]
    ax.set_xticks(x, ticks)
    ax.set_xlabel("Batch size (* flagged invalid)")


@styled
def plot_energy_split(
    summary: pl.DataFrame, task: str, model: str, out: str | Path, precision: str | None = None
) -> list[Path]:
    """Stacked bars per batch size; a run without an attribution is a hatched bar of its total."""
    require_columns(summary, ["task", "model", "status", *SERIES_COLS, *COLUMNS], "energy-split plot")
    rows = select_group(summary, task, model, precision).filter(pl.col("status") == "ok")
    rows = rows.filter(pl.col("batch_size").is_not_null() & pl.col("energy_per_response_j").is_not_null())
    if rows.height == 0:
        raise FrontierError(f"{task} / {model}: no completed run with an energy per response")
    series = rows.select(SERIES_COLS).unique().sort(SERIES_COLS, nulls_last=True).to_dicts()
    fig, axes = new_figure(max(3.5, 3.0 * len(series)), 3.4, 1, len(series))
    for ax, key in zip(axes, series, strict=True):
        part = rows.filter(*(pl.col(c) == key[c] for c in SERIES_COLS)).sort("batch_size")
        _draw(ax, part)
        ax.set_title(f"{key['gpu']} ×{key['num_gpus']} ({key['parallelism']})", fontsize=9)
    axes[0].set_ylabel("Energy per response (J)")
    note_dummy_weights(
        axes[0], rows.get_column("load_format").to_list() if "load_format" in rows.columns else []
    )
    fig.suptitle(f"Where the joules go · {model} · {task}", fontsize=10)
    handles, labels = [], []
    for ax in axes:  # a legend entry per part, from whichever panel drew it
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    return save(fig, out)
