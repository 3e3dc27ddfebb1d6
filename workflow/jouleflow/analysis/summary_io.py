"""Reading a summary table (traces.SUMMARY rows) for analysis, with errors that name the file and column."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl


class SummaryError(ValueError):
    """A summary table that is missing, unreadable or lacks a needed column."""


def read_summary(path: str | Path, required: Sequence[str] = ()) -> pl.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SummaryError(f"{path}: summary table is missing")
    try:
        df = pl.read_parquet(path)
    except Exception as exc:  # polars raises several error types for truncated/corrupt files
        raise SummaryError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SummaryError(f"{path}: missing column(s) {', '.join(missing)}")
    return df
