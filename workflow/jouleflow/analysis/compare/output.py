"""Writing an analysis's table (CSV + Markdown) and figure (PNG + SVG), byte-for-byte reproducibly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from jouleflow.traces import write_atomic

# Column formats for Markdown: "pct" (signed percent), "ratio" (x), "g" (4 significant digits),
# "int", "str" (default).
Formats = Mapping[str, str]
CHANGE_HEADERS = {"median_change": "median change", "min_change": "min", "max_change": "max"}


def format_value(value: Any, kind: str = "str") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if kind == "pct":
        return f"{value * 100:+.1f}%"
    if kind == "share":
        return f"{value * 100:.0f}%"
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "g":
        return f"{value:.4g}"
    if kind == "int":
        return str(int(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def markdown_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    formats: Formats | None = None,
    headers: Mapping[str, str] | None = None,
) -> str:
    """A GitHub pipe table; numeric columns right-aligned."""
    formats = formats or {}
    headers = headers or {}
    head = [headers.get(c, c) for c in columns]
    body = [
        [format_value(row.get(c), formats.get(c, "str")).replace("|", "\\|") for c in columns] for row in rows
    ]
    numeric = {c for c in columns if formats.get(c, "str") != "str"}
    align = ["---:" if c in numeric else ":---" for c in columns]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def write_text(path: str | Path, text: str) -> None:
    write_atomic(Path(path), lambda tmp: Path(tmp).write_text(text))


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """CSV of `rows` restricted to `columns` (header only when there are no rows)."""
    data = {c: [row.get(c) for row in rows] for c in columns}
    frame = pl.DataFrame(data, strict=False) if rows else pl.DataFrame({c: [] for c in columns})
    write_atomic(Path(path), lambda tmp: frame.write_csv(tmp))


def figure_paths(path: str | Path) -> tuple[Path, Path]:
    """`fig.png` -> (`fig.png`, `fig.svg`); any other suffix gets both siblings."""
    path = Path(path)
    return path.with_suffix(".png"), path.with_suffix(".svg")


def save_figure(fig: Any, path: str | Path) -> tuple[Path, Path]:
    """Save PNG and SVG without timestamps, so equal inputs give identical files."""
    import matplotlib.pyplot as plt

    png, svg = figure_paths(path)
    try:
        write_atomic(
            png,
            lambda tmp: fig.savefig(
                tmp, format="png", dpi=150, bbox_inches="tight", metadata={"Software": None}
            ),
        )
        write_atomic(
            svg,
            lambda tmp: fig.savefig(
                tmp, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None}
            ),
        )
    finally:
        plt.close(fig)
    return png, svg


def new_figure(width: float = 7.0, height: float = 4.0) -> tuple[Any, Any]:
    """A figure with one axes on the non-interactive Agg backend."""
    fig, axes = new_figure_row(width, height, 1)
    return fig, axes[0]


def new_figure_row(width: float, height: float, ncols: int) -> tuple[Any, list[Any]]:
    """A figure with `ncols` axes side by side, on Agg, with the SVG id salt fixed (stable ids)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "jouleflow"
    matplotlib.rcParams["svg.fonttype"] = "path"
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, list(axes[0])


def message_figure(path: str | Path, title: str, message: str) -> tuple[Path, Path]:
    """A figure that states why there is nothing to plot (kept so pipelines have their outputs)."""
    fig, ax = new_figure(7.0, 2.0)
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return save_figure(fig, path)


def dot_plot(ax: Any, groups: Sequence[tuple[str, Sequence[float]]], xlabel: str) -> None:
    """One row per group: each relative change as a dot, the median as a bar, zero as a line.

    Dots are spread vertically by rank (not randomly) so the figure is deterministic.
    """
    import statistics

    ax.axvline(0.0, color="0.4", linewidth=1)
    for i, (_, values) in enumerate(groups):
        y = len(groups) - 1 - i
        pct = sorted(v * 100 for v in values)
        n = len(pct)
        offsets = [(k - (n - 1) / 2) / max(n, 1) * 0.5 for k in range(n)]
        colors = ["tab:green" if v < 0 else "tab:red" for v in pct]
        ax.scatter(pct, [y + o for o in offsets], s=18, c=colors, alpha=0.8, zorder=3)
        if pct:
            med = statistics.median(pct)
            ax.plot([med, med], [y - 0.35, y + 0.35], color="black", linewidth=2.5, zorder=4)
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels([f"{label} (n={len(v)})" for label, v in reversed(groups)])
    ax.set_ylim(-0.7, len(groups) - 0.3)
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", alpha=0.3)
