"""Writing an analysis's table (CSV + Markdown), byte-for-byte reproducibly.

Its figure is drawn by jouleflow.plots.compare_figures.
"""

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
