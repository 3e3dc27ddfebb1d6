"""The TDP-based energy estimate that measured numbers are compared against.

A common shortcut estimates inference energy as if every GPU ran at its thermal design power for
the whole time a response occupies it. Per response:

  LLM:        E_TDP = TDP × num_gpus / tokens_per_s × mean_output_tokens
              (tokens_per_s is the run's aggregate output throughput, so 1 / tokens_per_s is the
              GPU-time share of one token; × mean output tokens gives one response's share)
  diffusion:  E_TDP = TDP × num_gpus × batch_latency_s / batch_size

The overestimation ratio is E_TDP / E_measured (> 1 when the shortcut overestimates).
"""

from __future__ import annotations

import polars as pl

REQUIRED_COLUMNS = (
    "modality",
    "gpu_tdp_w",
    "num_gpus",
    "tokens_per_s",
    "mean_output_tokens",
    "batch_latency_s",
    "batch_size",
)


def tdp_estimate_expr() -> pl.Expr:
    """Expression for E_TDP (J per response); null where an input is missing or zero."""
    tdp_power = pl.col("gpu_tdp_w") * pl.col("num_gpus")
    llm = tdp_power / pl.col("tokens_per_s") * pl.col("mean_output_tokens")
    diffusion = tdp_power * pl.col("batch_latency_s") / pl.col("batch_size")
    estimate = pl.when(pl.col("modality") == "diffusion").then(diffusion).otherwise(llm)
    return (
        pl.when(estimate.is_finite() & (estimate > 0)).then(estimate).otherwise(None).alias("tdp_estimate_j")
    )


def with_tdp_estimate(df: pl.DataFrame, energy_col: str = "energy_per_response_j") -> pl.DataFrame:
    """Add tdp_estimate_j and tdp_overestimation (E_TDP / measured energy)."""
    missing = [c for c in (*REQUIRED_COLUMNS, energy_col) if c not in df.columns]
    if missing:
        raise ValueError(f"TDP estimate: summary is missing column(s) {', '.join(missing)}")
    out = df.with_columns(tdp_estimate_expr())
    ratio = pl.col("tdp_estimate_j") / pl.col(energy_col)
    return out.with_columns(
        pl.when(pl.col(energy_col) > 0).then(ratio).otherwise(None).alias("tdp_overestimation")
    )
