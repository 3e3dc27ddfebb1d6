"""Helpers shared by the analysis commands (frontier, recommend, plot): CLI errors for bad input."""

from __future__ import annotations

import sys
from pathlib import Path

from jouleflow.cli import CLIError


def duration(text: str, option: str) -> float:
    from jouleflow.units import DurationError, parse_duration

    try:
        return parse_duration(text, what=option)
    except DurationError as exc:
        raise CLIError(str(exc)) from exc


def summary(path: Path):
    from jouleflow.analysis.summary_io import SummaryError, read_summary

    try:
        return read_summary(path)
    except SummaryError as exc:
        raise CLIError(str(exc)) from exc


def published(path: Path | None):
    """ML.ENERGY's published results to overlay: a v2/v3 directory (imported) or an imported summary
    Parquet; None without a path."""
    if path is None:
        return None
    if path.is_file():
        return summary(path)
    import polars as pl

    from jouleflow.importers.mlenergy import import_mlenergy

    if not path.is_dir():
        raise CLIError(f"--published {path}: no such file or directory")
    return pl.from_arrow(import_mlenergy(path))


def report(paths: list[Path]) -> int:
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0
