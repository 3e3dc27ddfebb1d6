"""Time–energy frontier of one (task, model): every configuration, the Pareto line, the recommendations.

Every latency target is drawn (a line each, the recommended configuration starred in the line's
colour), and what it saves is said in the legend below the plot, not in text placed over the data:
labels beside the points overprinted the title and each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
from matplotlib.axes import Axes
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D

from jouleflow import labels
from jouleflow.analysis.frontier import (
    ENERGY_COL,
    FrontierError,
    Recommendation,
    TargetUnreachableError,
    default_latency_metric,
    frontier_flags,
    published_rows,
    recommend,
    require_columns,
    resolve_latency_metric,
    select_group,
    usable_rows,
)
from jouleflow.plots.style import (
    PALETTE,
    log_if_wide,
    new_figure,
    note_dummy_weights,
    response_noun,
    save,
    style,
    styled,
)
from jouleflow.units import format_duration

# One colour and dash per target (neighbouring targets stay apart); unreachable ones in vermillion.
_TARGET_COLOURS = ("#4D4D4D", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
# ML.ENERGY's published points: open markers, a shape per GPU type and a muted colour per GPU count, so
# that no two of a figure's published series look alike (two GPU types x four counts for PixArt-Sigma).
_PUBLISHED_COLOURS = ("#7F7F7F", "#B07AA1", "#9C755F", "#76B7B2")
_PUBLISHED_MARKERS = ("D", "s", "^", "v", "p", "h")


def _published_points(
    ax: Axes, published: pl.DataFrame, task: str, model: str, precision: str | None, metric: str, scale: float
) -> list[tuple[float, float]]:
    """ML.ENERGY's published configurations of the same task, model (and precision), as open markers
    labelled as published; returns the (latency, energy) drawn, for the axes' ranges."""
    theirs = published_rows(published, task, [model], metric, precision)
    if theirs.is_empty():
        return []
    drawn = []
    series = theirs.select("gpu", "num_gpus").unique().sort("gpu", "num_gpus", nulls_last=True).to_dicts()
    gpus = sorted({str(key["gpu"]) for key in series})
    counts = sorted({key["num_gpus"] for key in series}, key=lambda n: (n is None, n))
    for key in series:
        part = theirs.filter((pl.col("gpu") == key["gpu"]) & (pl.col("num_gpus") == key["num_gpus"]))
        source = str(part.get_column("source")[0]) if "source" in part.columns else "published"
        xs = [v * scale for v in part.get_column(metric).to_list()]
        ys = part.get_column(ENERGY_COL).to_list()
        colour = _PUBLISHED_COLOURS[counts.index(key["num_gpus"]) % len(_PUBLISHED_COLOURS)]
        marker = _PUBLISHED_MARKERS[gpus.index(str(key["gpu"])) % len(_PUBLISHED_MARKERS)]
        ax.plot(xs, ys, ls="none", marker=marker, ms=4, mfc="none", mec=colour, mew=0.9, zorder=2,
                label=f"{key['gpu']} ×{key['num_gpus']} · ML.ENERGY {source.removeprefix('mlenergy-')} (published)")  # fmt: skip
        drawn += list(zip(xs, ys, strict=True))
    return drawn


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


def _mark_baseline(ax: Axes, rec: Recommendation, scale: float) -> None:
    b = rec.baseline
    ax.plot([b.latency * scale], [b.energy], ls="none", marker="o", ms=10, mfc="none", mec="#777777", mew=1.0,
            zorder=3, label="minimum latency")  # fmt: skip


def _mark_target(
    ax: Axes, index: int, target_s: float, rec: Recommendation | None, fastest_s: float | None, scale: float
) -> tuple[tuple[Line2D, ...], str]:
    """The target's line and, when reachable, its recommended configuration: one legend row."""
    when = f"target {format_duration(target_s)}"
    if rec is None:
        fastest = f" (fastest {format_duration(fastest_s)})" if fastest_s is not None else ""
        line = ax.axvline(
            target_s * scale, color=PALETTE[3], ls="--", lw=0.9, zorder=0, gid=f"target-{index}"
        )
        return (line,), f"{when}: unreachable{fastest}"
    colour = _TARGET_COLOURS[index % len(_TARGET_COLOURS)]
    c = rec.config
    line = ax.axvline(target_s * scale, color=colour, ls=("--", ":", "-.")[index % 3], lw=0.9, zorder=0,
                      gid=f"target-{index}")  # fmt: skip
    (star,) = ax.plot([c.latency * scale], [c.energy], ls="none", marker="*", ms=13 - 2 * min(index, 3), mfc="none",
                      mec=colour, mew=1.2, zorder=4, gid=f"recommended-{index}")  # fmt: skip
    saving = (
        f"−{rec.savings_fraction:.0%} energy vs minimum latency"
        if rec.savings_fraction > 0.005
        else "the minimum-latency configuration"
    )
    return (line, star), f"{when}: recommended {c.gpu} ×{c.num_gpus}, batch {c.batch_size}, {saving}"


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
    latency_targets_s: Sequence[float] = (),
    published: pl.DataFrame | None = None,
) -> list[Path]:
    """Scatter of all usable configurations, the Pareto frontier, and each target's recommendation.

    `latency_target_s` (one) and `latency_targets_s` (several) add up; every one is drawn. `published`
    (ML.ENERGY's imported rows) adds their points of the same task and model, labelled as published;
    the frontier and the recommendations stay the campaign's own.
    """
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
    scale, _ = labels.scale(metric)
    targets = sorted({*(() if latency_target_s is None else (latency_target_s,)), *latency_targets_s})
    fig, (ax,) = new_figure(5.0, 3.9 + 0.17 * len(targets))  # the legend below grows with the targets
    _frontier_lines(ax, points, metric, scale)
    _scatter(ax, points, metric, scale)
    theirs = (
        [] if published is None else _published_points(ax, published, task, model, precision, metric, scale)
    )
    baseline_drawn, rows = False, []
    for index, target in enumerate(targets):
        rec, fastest = None, None
        try:
            rec = recommend(summary, task, model, target, metric, precision=precision)
        except TargetUnreachableError as exc:
            fastest = exc.best_latency_s
        if rec is not None and not baseline_drawn:
            _mark_baseline(ax, rec, scale)
            baseline_drawn = True
        rows.append(_mark_target(ax, index, target, rec, fastest, scale))
    log_if_wide(ax, "x", [v * scale for v in points.get_column(metric).to_list()] + [x for x, _ in theirs])
    log_if_wide(ax, "y", points.get_column(ENERGY_COL).to_list() + [y for _, y in theirs])
    sources = points.get_column("source").to_list() if "source" in points.columns else []
    ax.set_xlabel(labels.label(metric, sources))
    ax.set_ylabel(labels.label(ENERGY_COL, noun=response_noun(points, task)))
    ax.set_title(f"{model} · {task}", loc="left", fontsize=9)
    note_dummy_weights(
        ax, points.get_column("load_format").to_list() if "load_format" in points.columns else []
    )
    if excluded.total:
        ax.text(
            0.99, 0.02, excluded.describe(), transform=ax.transAxes, ha="right", fontsize=6.5, color="#777777"
        )
    handles, names = ax.get_legend_handles_labels()
    handles += [h for h, _ in rows]
    names += [n for _, n in rows]
    fig.legend(handles, names, loc="outside lower center", ncols=1, fontsize=7,
               handler_map={tuple: HandlerTuple(ndivide=None)})  # fmt: skip
    return save(fig, out)
