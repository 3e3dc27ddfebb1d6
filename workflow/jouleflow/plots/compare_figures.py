"""Figures of the cross-configuration analyses (`jouleflow compare ... --figure FIG.png`).

One function per analysis result of jouleflow.analysis.compare, drawn and written with the
toolkit of every other figure (plots.style: rcParams, palette, PNG + SVG at 200 dpi). Axis text
comes from jouleflow.labels (never a raw column name); bars start at zero, and quantities spanning
decades are drawn as marks on a log axis instead of bars.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes

from jouleflow import labels
from jouleflow.analysis.compare.common import format_duration
from jouleflow.analysis.compare.gpus import GpuComparisonResult
from jouleflow.analysis.compare.moe import MoeResult
from jouleflow.analysis.compare.precision import PrecisionResult
from jouleflow.analysis.compare.scaling import ScalingResult
from jouleflow.analysis.compare.tasks import TasksResult
from jouleflow.analysis.compare.tdp import TdpResult
from jouleflow.plots.style import (
    PALETTE,
    engineering,
    is_wide,
    large_number_ticks,
    log_axis,
    new_figure,
    placeholder,
    save,
    styled,
)

BLUE, ORANGE, GREEN, VERMILLION = PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[3]
GREY = "#999999"


def _lower_first(text: str) -> str:
    """ "Median ITL" → "median ITL" inside a sentence (acronyms kept)."""
    return text[:1].lower() + text[1:]


def _stem(path: str | Path) -> Path:
    """`--figure FIG.png` (any suffix) names FIG.png and FIG.svg."""
    return Path(path).with_suffix("")


def dot_plot(ax: Axes, groups: Sequence[tuple[str, Sequence[float]]], xlabel: str) -> None:
    """One row per group: each relative change as a dot, the median as a bar, zero as a line.

    Dots are spread vertically by rank (not randomly) so the figure is deterministic.
    """
    ax.axvline(0.0, color="0.4", linewidth=1)
    for i, (_, values) in enumerate(groups):
        y = len(groups) - 1 - i
        pct = sorted(v * 100 for v in values)
        n = len(pct)
        offsets = [(k - (n - 1) / 2) / max(n, 1) * 0.5 for k in range(n)]
        colors = [GREEN if v < 0 else VERMILLION for v in pct]
        ax.scatter(pct, [y + o for o in offsets], s=18, c=colors, alpha=0.8, zorder=3)
        if pct:
            med = statistics.median(pct)
            ax.plot([med, med], [y - 0.35, y + 0.35], color="black", linewidth=2.5, zorder=4)
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels([f"{label} (n={len(v)})" for label, v in reversed(groups)])
    ax.set_ylim(-0.7, len(groups) - 0.3)
    ax.set_xlabel(xlabel)
    ax.grid(False, axis="y")


@styled
def gpus_figure(result: GpuComparisonResult, path: str | Path) -> list[Path]:
    groups = [
        (format_duration(d), [c.change for c in result.comparisons if c.deadline_s == d])
        for d in result.deadlines_s
    ]
    fig, (ax,) = new_figure(7.0, 1.2 + 0.8 * len(groups))
    energy = labels.name(result.energy_column)
    dot_plot(ax, groups, f"Change in {_lower_first(energy)}, {result.gpu_b} vs {result.gpu_a} (%)")
    ax.set_ylabel(f"{labels.name(result.latency_column)} deadline")
    s = result.stats
    ax.set_title(f"{result.gpu_b} vs {result.gpu_a}: {result.gpu_b} lower in {s.wins}/{s.total}")
    return save(fig, _stem(path))


@styled
def precision_figure(result: PrecisionResult, path: str | Path) -> list[Path]:
    groups = [(f"batch {b.label}", [p.change for p in result.bucket_pairs(b)]) for b in result.buckets]
    fig, (ax,) = new_figure(7.0, 1.2 + 0.8 * len(groups))
    metric = labels.name(result.metric_column)
    dot_plot(ax, groups, f"Change in {_lower_first(metric)}, FP8 vs BF16 (%)")
    ax.set_title(f"FP8 vs BF16 ({metric}); dots left of 0: FP8 lower")
    return save(fig, _stem(path))


@styled
def scaling_figure(result: ScalingResult, path: str | Path) -> list[Path]:
    tallies = [*result.by_gpu(), result.overall()]
    fig, (ax,) = new_figure(6.0, 3.6)
    x = range(len(tallies))
    width = 0.38
    rises = [100 * t["energy_rises_share"] for t in tallies]
    falls = [100 * t["latency_falls_share"] for t in tallies]
    ax.bar([i - width / 2 for i in x], rises, width, label="energy rises", color=VERMILLION)
    ax.bar([i + width / 2 for i in x], falls, width, label="latency falls", color=BLUE)
    for i, t in enumerate(tallies):
        ax.text(i, 102, f"n={t['cases']}", ha="center", fontsize=9)
    ax.set_xticks(list(x))
    ax.set_xticklabels([t["gpu"] for t in tallies])
    ax.set_ylim(0, 112)
    ax.set_ylabel("Share of cases (%)")
    ax.set_title("More GPUs at the same batch size")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    ax.grid(False, axis="x")
    return save(fig, _stem(path))


@styled
def tasks_figure(result: TasksResult, path: str | Path) -> list[Path]:
    fig, axes = new_figure(1.0 + 4.0 * len(result.groups), 4.0, ncols=len(result.groups))
    for ax, g in zip(axes, result.groups, strict=True):
        tasks = [r["task"] for r in g.rows]
        x = list(range(len(tasks)))
        values = [r["jpr"] for r in g.rows]
        ax.bar(x, values, 0.6, color=BLUE)  # from zero: a bar's length is its value
        for i, r in enumerate(g.rows):
            label = f"{engineering(r['jpr'], 'J')}\n{r['jpt_max']:.3g} J/token @ batch {r['max_batch']}"
            ax.text(i, r["jpr"], label, ha="center", va="bottom", fontsize=8)
        large_number_ticks(ax, "y", values)
        ax.set_ylim(0, max(values) * 1.25)
        ax.set_xticks(x)
        ax.set_xticklabels(tasks, rotation=20, ha="right")
        ax.set_ylabel(labels.label("energy_per_response_j"))
        ax.set_title(f"{g.num_gpus}× {g.gpu}")
        ax.grid(False, axis="x")
    fig.suptitle(result.model)
    return save(fig, _stem(path))


@styled
def moe_figure(result: MoeResult, path: str | Path) -> list[Path]:
    rows = result.rows()
    fig, (ax,) = new_figure(7.0, 1.5 + 0.45 * len(rows))
    names = [
        f"{r['moe_model'].split('/')[-1]} vs {r['dense_model'].split('/')[-1]}\n{r['task']}, {r['gpu']}"
        for r in rows
    ]
    y = list(range(len(rows)))[::-1]
    ax.barh([v + 0.2 for v in y], [r["dense_energy"] for r in rows], 0.4, label="dense", color=GREY)
    ax.barh([v - 0.2 for v in y], [r["moe_energy"] for r in rows], 0.4, label="MoE", color=ORANGE)
    unit = labels.scale(result.energy_column)[1]
    for v, r in zip(y, rows, strict=True):
        for offset, value in ((0.2, r["dense_energy"]), (-0.2, r["moe_energy"])):
            ax.text(value, v + offset, f" {value:.3g} {unit}", va="center", fontsize=7)
    top = max(max(r["dense_energy"], r["moe_energy"]) for r in rows)
    ax.set_xlim(0, top * 1.3)  # from zero: a bar's length is its value
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel(labels.label(result.energy_column))
    ratios = ", ".join(f"{r['dense_over_moe']:.2f}×" for r in rows)
    ax.set_title(f"MoE vs dense of similar total size (dense / MoE: {ratios})" if len(rows) <= 3 else
                 "MoE vs dense of similar total size")  # fmt: skip
    ax.legend(loc="lower right")
    ax.grid(False, axis="y")
    return save(fig, _stem(path))


@styled
def tdp_figure(result: TdpResult, path: str | Path) -> list[Path]:
    """Estimate and measurement per (task, GPU) as two marks joined by a line: the groups span
    six decades (chat to video), so a log axis, and on a log axis marks rather than bars."""
    groups = result.by_task()
    fig, (ax,) = new_figure(1.5 + 0.9 * len(groups), 4.2)
    x = list(range(len(groups)))
    estimates = [g["median_estimate_j"] for g in groups]
    measured = [g["median_measured_j"] for g in groups]
    for i, (e, m) in enumerate(zip(estimates, measured, strict=True)):
        ax.plot([i, i], [m, e], color="0.7", lw=2, zorder=1)
    ax.plot(x, estimates, ls="none", marker="D", color="0.45", label="TDP-based estimate", zorder=2)
    ax.plot(x, measured, ls="none", marker="o", color=BLUE, label="measured", zorder=3)
    for i, g in enumerate(groups):
        ax.annotate(f"×{g['median_ratio']:.1f}", (i, g["median_estimate_j"]), xytext=(0, 5),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8)  # fmt: skip
    if is_wide([*estimates, *measured]):
        log_axis(ax, "y", [*estimates, *measured])
        scale_note = ", log scale"
    else:
        ax.set_ylim(0, max(estimates + measured) * 1.2)
        scale_note = ""
    ax.set_xticks(x)
    ax.set_xticklabels([f"{g['task']}\n{g['gpu']}" for g in groups], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(labels.label("energy_per_response_j", extra=f"median over models{scale_note}"))
    ax.set_title("TDP-based estimate vs measured")
    ax.legend(loc="upper left")
    ax.margins(x=0.03, y=0.15)
    ax.grid(False, axis="x")
    return save(fig, _stem(path))


FIGURES = {
    GpuComparisonResult: gpus_figure,
    PrecisionResult: precision_figure,
    ScalingResult: scaling_figure,
    TasksResult: tasks_figure,
    MoeResult: moe_figure,
    TdpResult: tdp_figure,
}


def draw(result: Any, path: str | Path) -> list[Path]:
    """The figure of any compare result, as FIG.png and FIG.svg."""
    return FIGURES[type(result)](result, path)


def no_pairs_figure(path: str | Path, title: str) -> list[Path]:
    """The figure of an analysis with nothing comparable (--allow-empty): it says so."""
    return placeholder(title, "no comparable pairs", _stem(path))
