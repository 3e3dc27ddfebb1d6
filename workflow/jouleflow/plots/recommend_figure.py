"""Figure of `jouleflow recommend --all --figure FIG.png`: per task, one panel; per model (and
precision), one group of horizontal bars, one per deadline, from zero to the chosen configuration's
energy per response, labelled with that configuration (GPU ×count, batch). A deadline no
configuration meets gets a label instead of a bar, so a missing bar never reads as zero energy."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from matplotlib.patches import Patch

from jouleflow import labels
from jouleflow.plots.style import new_figure, placeholder, save, style, styled
from jouleflow.units import format_duration

_BAR = 0.8  # height shared by one model's bars (rows are 1 apart)


def _row_label(model: str, precision: str | None) -> str:
    return f"{model} ({precision})" if precision else model


def _why_not(r: dict) -> str:
    if r["status"] != "unreachable":
        return f" {r['status']}"
    best = r.get("best_latency_s")
    if best is None or not r.get("latency_metric"):
        return " unreachable"
    return f" unreachable (fastest {format_duration(best)})"


def _panel(ax, task: str, rows: list[dict]) -> None:
    deadlines = sorted({r["latency_target_s"] for r in rows})
    groups = sorted({(r["model"], r["precision"]) for r in rows})
    width = _BAR / len(deadlines)
    top = len(groups) - 1  # first model at the top
    peak = max((r["energy_per_response_j"] or 0.0 for r in rows if r["status"] == "ok"), default=0.0)
    for r in rows:
        i = deadlines.index(r["latency_target_s"])
        y = top - groups.index((r["model"], r["precision"])) + _BAR / 2 - width * (i + 0.5)
        if r["status"] == "ok":
            energy = r["energy_per_response_j"]
            ax.barh(y, energy, width, color=style(i)["color"])
            label = f" {r['gpu']} ×{r['num_gpus']}, batch {r['batch_size']}"
            ax.text(energy, y, label, va="center", fontsize=6)
        else:
            ax.text(0, y, _why_not(r), va="center", fontsize=6, color="0.35", style="italic")
    # Legend handles drawn off the axes, so ax.patches holds only the chosen configurations.
    handles = [
        Patch(color=style(i)["color"], label=f"≤ {format_duration(d)}") for i, d in enumerate(deadlines)
    ]
    metrics = sorted({r["latency_metric"] for r in rows if r.get("latency_metric")})
    ax.legend(handles=handles, title=f"{' / '.join(labels.name(m) for m in metrics) or 'Latency'} deadline",
              fontsize=6, title_fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1))  # fmt: skip
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels([_row_label(*g) for g in reversed(groups)], fontsize=7)
    ax.set_ylim(-0.6, len(groups) - 0.4)
    ax.set_xlim(0, (peak or 1.0) * 1.6)  # room for the configuration labels
    noun = task.rsplit("-to-", 1)[1] if "-to-" in task else None  # text-to-image: energy per image
    ax.set_xlabel(labels.label("energy_per_response_j", noun=noun), fontsize=7)
    ax.set_title(task, fontsize=9)
    ax.grid(False, axis="y")


@styled
def recommend_figure(table: pl.DataFrame, path: str | Path, title: str) -> list[Path]:
    """One panel per task of `recommend_all`'s table; PNG and SVG next to each other."""
    stem = Path(path).with_suffix("")
    rows = table.to_dicts()
    if not rows:
        return placeholder(title, "no recommendations: the summary has no rows left", stem)
    tasks = sorted({r["task"] for r in rows})
    by_task = {t: [r for r in rows if r["task"] == t] for t in tasks}
    heights = [0.8 + 0.3 * len({(r["model"], r["precision"]) for r in rs}) for rs in by_task.values()]
    fig, axes = new_figure(7.5, 0.5 + sum(heights), nrows=len(tasks), height_ratios=heights)
    for ax, task in zip(axes, tasks, strict=True):
        _panel(ax, task, by_task[task])
    fig.suptitle(title, fontsize=10)
    return save(fig, stem)
