"""Shared pieces of the comparison analyses: metric names, summary loading, statistics, parsing.

Metric names on the command line are the summary schema's quantities without their unit suffix
(`median_itl` -> `median_itl_s`, `energy_per_token` -> `energy_per_token_j`, ...); the full column
name is accepted too.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from jouleflow.analysis.summary_io import SummaryError, read_summary
from jouleflow.units import parse_duration

# Short metric name -> traces.SUMMARY column. Latencies are seconds, energies joules.
LATENCY_METRICS: dict[str, str] = {
    "median_itl": "median_itl_s",
    "p90_itl": "p90_itl_s",
    "p95_itl": "p95_itl_s",
    "p99_itl": "p99_itl_s",
    "median_tpot": "median_tpot_s",
    "median_ttft": "median_ttft_s",
    "median_e2e": "median_e2e_s",
    "p90_e2e": "p90_e2e_s",
    "batch_latency": "batch_latency_s",
}
ENERGY_METRICS: dict[str, str] = {
    "energy_per_token": "energy_per_token_j",
    "energy_per_response": "energy_per_response_j",
}
METRICS: dict[str, str] = {**LATENCY_METRICS, **ENERGY_METRICS}

# Columns that identify one configuration (one point of a campaign grid).
CONFIG_KEYS = ("task", "model", "precision", "gpu", "num_gpus", "batch_size", "parallelism")
# The physical GPUs behind a row (traces.SUMMARY; null for published data), and the pairing
# analyses' column saying whether a pair's rows ran on the same ones.
GPU_IDS = "gpu_uuids"
GPU_SAME = "same_gpus"

BF16_NAMES = frozenset({"bf16", "bfloat16"})
# FP8 weights in the precision column, compared lower-case: jouleflow's own sweeps
# (`precisions: [bf16, fp8]`, vLLM online quantization: the same model id) and ML.ENERGY v3 write `fp8`.
FP8_NAMES = frozenset({"fp8", "float8", "fp8_e4m3", "fp8_e5m2", "float8_e4m3fn", "float8_e5m2"})
FP8_SUFFIX = "-fp8"  # ML.ENERGY's FP8 checkpoints: `org/Name-FP8`, a model id of its own


class CompareError(ValueError):
    """Bad input to an analysis: the message names the column, item or value at fault."""


class NoComparablePairs(CompareError):
    """The analysis found nothing to compare; the message says why."""


class NotInSummary(NoComparablePairs):
    """A GPU type or task the analysis names has no row: nothing to compare on it. The CLI still exits 2
    (it may be a typo); with --allow-empty, as in the pipeline, the outputs say why, so a campaign whose
    H200 points are not measured yet still gets its report (the planner checks the names themselves)."""


def metric_column(name: str, kind: str = "any") -> str:
    """Map a metric name (short or full column name) to its summary column.

    `kind` restricts the choice to "latency" or "energy" metrics.
    """
    table = {"latency": LATENCY_METRICS, "energy": ENERGY_METRICS}.get(kind, METRICS)
    if name in table:
        return table[name]
    if name in table.values():
        return name
    what = "metric" if kind == "any" else f"{kind} metric"
    raise CompareError(f"unknown {what} {name!r}; choose one of: {', '.join(table)}")


def require_columns(df: pl.DataFrame, columns: Iterable[str], analysis: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CompareError(
            f"compare {analysis} needs column(s) {', '.join(missing)}, which the summary lacks "
            f"(it has: {', '.join(df.columns)})"
        )


def load_summary(path: str | Path, include_invalid: bool = False) -> pl.DataFrame:
    """Read a summary Parquet (traces.SUMMARY) and keep the rows an analysis may use.

    Rows whose `status` is not "ok" never carry energy; rows flagged `valid == False` are dropped
    unless `include_invalid` (a null `valid`, e.g. in imported data, counts as valid).
    """
    try:
        df = read_summary(path)
    except SummaryError as exc:
        raise CompareError(str(exc)) from exc
    if "status" in df.columns:
        df = df.filter(pl.col("status").is_null() | (pl.col("status") == "ok"))
    if "valid" in df.columns and not include_invalid:
        df = df.filter(pl.col("valid").is_null() | pl.col("valid"))
    return df


def usable_rows(df: pl.DataFrame, metric_columns: Sequence[str]) -> pl.DataFrame:
    """Rows where every metric is present and positive (relative changes divide by them)."""
    cond = pl.lit(True)
    for col in metric_columns:
        cond = cond & pl.col(col).is_not_null() & (pl.col(col) > 0)
        if df.schema[col].is_float():
            cond = cond & pl.col(col).is_not_nan()
    return df.filter(cond)


def with_config_keys(df: pl.DataFrame) -> pl.DataFrame:
    """Uniform configuration keys: an empty `parallelism` when the summary has none, and empty
    strings instead of nulls in the text keys (a null would not group or compare)."""
    if "parallelism" not in df.columns:
        df = df.with_columns(pl.lit("").alias("parallelism"))
    text_keys = [c for c in ("parallelism", "precision") if c in df.columns]
    return df.with_columns([pl.col(c).cast(pl.String).fill_null("") for c in text_keys])


def collapse_repeats(df: pl.DataFrame, keys: Sequence[str], values: Sequence[str]) -> pl.DataFrame:
    """One row per configuration: repeated measurements of the same key are averaged.

    Pairing analyses (precision, scaling, tasks) compare configurations, so a configuration
    measured twice must count once. The `runs` column says how many rows were averaged; `gpu_uuids`,
    where the summary has it, joins the GPUs of every repeat (" + ").
    """
    aggs = [pl.col(v).mean() for v in values] + [pl.len().alias("runs")]
    if GPU_IDS in df.columns and GPU_IDS not in keys:
        aggs.append(pl.col(GPU_IDS).drop_nulls().unique().sort().str.join(" + "))
    out = df.group_by(list(keys), maintain_order=True).agg(aggs).sort(list(keys))
    if GPU_IDS in out.columns:
        out = out.with_columns(pl.when(pl.col(GPU_IDS) != "").then(pl.col(GPU_IDS)).alias(GPU_IDS))
    return out


def same_gpus(*rows: Mapping[str, Any]) -> bool | None:
    """Whether the rows were measured on the same physical GPUs; None when any row's are unknown."""
    ids = [row.get(GPU_IDS) for row in rows]
    if not ids or any(not i for i in ids):
        return None
    return len(set(ids)) == 1


def gpus_column(flags: Sequence[bool | None]) -> list[str]:
    """The Markdown table's `same_gpus` column, where any compared row's GPUs are known."""
    return [GPU_SAME] if any(f is not None for f in flags) else []


def gpus_note(flags: Sequence[bool | None], what: str = "pairs") -> str | None:
    """A Markdown note when some compared rows ran on different physical GPUs of one type."""
    differ = sum(1 for f in flags if f is False)
    if not differ:
        return None
    return (
        f"{differ} of {len(flags)} {what} compare runs on different physical GPUs of one type (same GPUs: "
        "no; the summary's gpu_uuids differ). GPUs of one kind on different hosts draw several percent "
        'more or less power at the same point (docs/method.md, "Hosts"): read such differences with '
        "that margin.\n"
    )


def filter_tasks(df: pl.DataFrame, tasks: Sequence[str] | None) -> pl.DataFrame:
    if not tasks:
        return df
    present = sorted(set(df["task"].drop_nulls().to_list()))
    unknown = [t for t in tasks if t not in present]
    if unknown:
        raise NotInSummary(
            f"task(s) {', '.join(unknown)} not in the summary; present: {', '.join(present) or '(none)'}"
        )
    return df.filter(pl.col("task").is_in(list(tasks)))


def require_gpu_types(df: pl.DataFrame, gpus: Sequence[str]) -> None:
    present = sorted(set(df["gpu"].drop_nulls().to_list()))
    unknown = [g for g in gpus if g not in present]
    if unknown:
        raise NotInSummary(
            f"GPU type(s) {', '.join(unknown)} not in the summary; present: {', '.join(present) or '(none)'}"
        )


def is_bf16(precision: str | None) -> bool:
    return precision is not None and precision.lower() in BF16_NAMES


def is_fp8(precision: str | None) -> bool:
    return precision is not None and precision.lower() in FP8_NAMES


def bf16_sibling(model: str) -> str | None:
    """`org/Name-FP8` -> `org/Name`; None when the id has no `-FP8` suffix."""
    if model.lower().endswith(FP8_SUFFIX):
        return model[: -len(FP8_SUFFIX)]
    return None


def relative_change(new: float, base: float) -> float:
    """new / base - 1: negative when `new` is lower."""
    return new / base - 1.0


@dataclass(frozen=True)
class ChangeStats:
    """Wins (change < 0: the challenger is lower) and the spread of relative changes."""

    wins: int
    total: int
    median: float | None
    min: float | None
    max: float | None

    def as_dict(self, wins_key: str = "wins") -> dict:
        return {
            wins_key: self.wins,
            "total": self.total,
            "median_change": self.median,
            "min_change": self.min,
            "max_change": self.max,
        }


def change_stats(changes: Sequence[float]) -> ChangeStats:
    """Wins and min/median/max; the median of an even count is the mean of the two middle values."""
    values = [float(c) for c in changes]
    if any(math.isnan(v) for v in values):
        raise ValueError("relative changes must not be NaN")
    if not values:
        return ChangeStats(0, 0, None, None, None)
    return ChangeStats(
        wins=sum(1 for v in values if v < 0),
        total=len(values),
        median=statistics.median(values),
        min=min(values),
        max=max(values),
    )


def parse_deadlines(text: str | Sequence[str]) -> list[float]:
    """`50ms,100ms,250ms` -> [0.05, 0.1, 0.25] seconds, sorted and de-duplicated."""
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(s).strip() for s in text]
    if not items or all(not s for s in items):
        raise CompareError("the deadline list is empty")
    seconds = []
    for item in items:
        if not item:
            raise CompareError(f"empty item in deadline list {text!r}")
        try:
            value = parse_duration(item, what=f"deadline list {text!r}")
        except ValueError as exc:  # the message quotes the item and says what a duration looks like
            raise CompareError(str(exc)) from exc
        if not math.isfinite(value) or value <= 0:
            raise CompareError(f"deadline {item!r} must be a positive duration")
        seconds.append(value)
    return sorted(set(seconds))


def parse_list(text: str | Sequence[str] | None) -> list[str] | None:
    """Comma-separated names (or a list) -> list, None when empty."""
    if text is None:
        return None
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(s).strip() for s in text]
    items = [s for s in items if s]
    return items or None


def format_duration(seconds: float) -> str:
    """Label for a deadline: 0.05 -> '50ms', 30.0 -> '30s'."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
