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


def report(paths: list[Path]) -> int:
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0
