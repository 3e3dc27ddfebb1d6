"""Small hand-made summary frames for the comparison tests."""

from __future__ import annotations

import polars as pl

DEFAULTS = {
    "source": "test",
    "run_dir": "hand-made",
    "task": "chat",
    "model": "org/Model",
    "modality": "llm",
    "precision": "bf16",
    "architecture": "dense",
    "total_params_b": 8.0,
    "active_params_b": 8.0,
    "gpu": "H100",
    "num_gpus": 1,
    "batch_size": 64,
    "parallelism": "tp1",
    "status": "ok",
    "valid": True,
    "energy_per_token_j": 0.1,
    "energy_per_response_j": 100.0,
    "mean_output_tokens": 1000.0,
    "tokens_per_s": 1000.0,
    "mean_power_w": 500.0,
    "gpu_tdp_w": None,
    "median_itl_s": 0.05,
    "batch_latency_s": None,
    "gpu_uuids": None,
}

SCHEMA = {
    "source": pl.String,
    "run_dir": pl.String,
    "task": pl.String,
    "model": pl.String,
    "modality": pl.String,
    "precision": pl.String,
    "architecture": pl.String,
    "total_params_b": pl.Float64,
    "active_params_b": pl.Float64,
    "gpu": pl.String,
    "num_gpus": pl.Int64,
    "batch_size": pl.Int64,
    "parallelism": pl.String,
    "status": pl.String,
    "valid": pl.Boolean,
    "energy_per_token_j": pl.Float64,
    "energy_per_response_j": pl.Float64,
    "mean_output_tokens": pl.Float64,
    "tokens_per_s": pl.Float64,
    "mean_power_w": pl.Float64,
    "gpu_tdp_w": pl.Float64,
    "median_itl_s": pl.Float64,
    "batch_latency_s": pl.Float64,
    "gpu_uuids": pl.String,
}


def row(**overrides) -> dict:
    unknown = set(overrides) - set(DEFAULTS)
    assert not unknown, f"unknown summary fields in a test row: {unknown}"
    return {**DEFAULTS, **overrides}


def frame(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=SCHEMA)
