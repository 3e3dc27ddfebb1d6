"""Each model's minimum-energy configuration: the building block of the per-task aggregates.

The task-aggregates, modality, memory-batch and spread analyses all start from one row per model
(and task, and whatever else they group by): the configuration with the least energy, after
repeated runs of one configuration are averaged. Ties are broken by fewer GPUs, then smaller
batch, then GPU type and parallelism names, so the choice does not depend on row order.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import polars as pl

from jouleflow.analysis.compare.common import (
    CONFIG_KEYS,
    NotInSummary,
    collapse_repeats,
    filter_tasks,
    require_columns,
    require_gpu_types,
    usable_rows,
    with_config_keys,
)

# Values carried along with a minimum-energy configuration (averaged over repeats when present).
CARRIED = ("energy_per_token_j", "energy_per_response_j", "mean_output_tokens")
TIE_BREAK = ("num_gpus", "batch_size", "gpu", "parallelism", "precision")


def prepare(
    df: pl.DataFrame,
    energy_column: str,
    analysis: str,
    tasks: Sequence[str] | None = None,
    gpu: str | None = None,
) -> pl.DataFrame:
    """One row per configuration (repeats averaged) with a positive `energy_column`.

    `tasks` and `gpu` restrict the rows; an unknown task or GPU type is a CompareError naming it.
    """
    require_columns(df, ["task", "model", "gpu", "num_gpus", "batch_size", energy_column], analysis)
    df = with_config_keys(df)
    if "precision" not in df.columns:
        df = df.with_columns(pl.lit("").alias("precision"))
    df = filter_tasks(df, tasks)
    if "status" in df.columns:  # as load_summary: only runs that finished carry energy
        df = df.filter(pl.col("status").is_null() | (pl.col("status") == "ok"))
    if gpu is not None:
        require_gpu_types(df, [gpu])
        df = df.filter(pl.col("gpu") == gpu)
    for col in CARRIED:
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.Float64).alias(col))
    df = usable_rows(df, [energy_column])
    # A null or NaN optional value (e.g. no output tokens for diffusion) must not poison the mean.
    df = df.with_columns([pl.col(c).cast(pl.Float64).fill_nan(None) for c in CARRIED])
    return collapse_repeats(df, CONFIG_KEYS, CARRIED)


def minimum_per(configs: pl.DataFrame, keys: Sequence[str], energy_column: str) -> pl.DataFrame:
    """The least-energy configuration per `keys` (e.g. task and model): exactly one row each."""
    order = [energy_column, *TIE_BREAK]
    return configs.sort(order).unique(list(keys), keep="first", maintain_order=True).sort(list(keys))


def config_label(row: dict[str, Any]) -> str:
    """`2x H100 b128 tp2`: where a minimum-energy configuration ran."""
    par = f" {row['parallelism']}" if row.get("parallelism") else ""
    return f"{row['num_gpus']}x {row['gpu']} b{row['batch_size']}{par}"


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the present values; None when there are none."""
    present = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return statistics.fmean(present) if present else None


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def spread_stats(values: Sequence[float]) -> dict[str, float | None]:
    """min / median / max of ratios (None when empty); the median of an even count is the mid-mean."""
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def require_models(df: pl.DataFrame, models: Sequence[str], what: str) -> None:
    present = set(df["model"].drop_nulls().to_list())
    unknown = sorted({m for m in models if m not in present})
    if unknown:
        # Nothing to compare on them (a campaign whose runs of the model are not measured yet); the
        # planner checks the ids against the config's models.
        raise NotInSummary(
            f"{what} names model(s) not in the summary: {', '.join(unknown)} "
            f"({len(present)} model(s) present)"
        )
