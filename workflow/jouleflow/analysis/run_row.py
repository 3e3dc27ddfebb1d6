"""One traces.SUMMARY row per run: config fields from run.json, figures from summary.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jouleflow import traces
from jouleflow.gpus import gpu_short_name


def _first_gpu(meta: dict[str, Any]) -> dict[str, Any]:
    gpus = meta.get("provenance", {}).get("gpus") or []
    return gpus[0] if gpus else {}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _output_lengths_from(meta: dict[str, Any]) -> str | None:
    # run.json's `request_set` (older runs recorded it under config)
    rs = meta.get("request_set") or meta.get("config", {}).get("request_set")
    synthetic = rs.get("synthetic") if isinstance(rs, dict) else None
    if not synthetic or not synthetic.get("histogram"):
        return None
    return synthetic["histogram"] + (" (fallback)" if synthetic.get("histogram_fallback") else "")


def summary_row(run_dir: str | Path, summary_path: str | Path | None = None) -> dict[str, Any]:
    """The run's row in the campaign summary table (every traces.SUMMARY column, nulls where unknown)."""
    run_dir = Path(run_dir)
    meta = traces.read_run(run_dir)
    summary = traces.read_json(
        Path(summary_path) if summary_path is not None else run_dir / traces.SUMMARY_JSON
    )
    config = meta.get("config", {})
    gpu = _first_gpu(meta)
    diffusion = summary.get("window_source") == "batches" or config.get("modality") == "diffusion"
    figures = {name: summary.get(name) for name in traces.SUMMARY.names}
    row: dict[str, Any] = {
        **figures,
        "source": "jouleflow",
        "run_dir": str(run_dir),
        "task": config.get("task"),
        "model": config.get("model"),
        "modality": "diffusion" if diffusion else "llm",
        "precision": config.get("precision"),
        "architecture": config.get("architecture"),
        "total_params_b": _float(config.get("total_params_b")),
        "active_params_b": _float(config.get("active_params_b")),
        "gpu": gpu_short_name(gpu.get("name")) or config.get("gpu"),
        "num_gpus": _int(config.get("num_gpus") or len(meta.get("provenance", {}).get("gpus") or []) or None),
        "batch_size": _int(config.get("batch_size")),
        "parallelism": config.get("parallelism"),
        "load_format": config.get("load_format") or meta.get("provenance", {}).get("load_format"),
        "status": meta.get("status"),
        "valid": bool(summary.get("valid")),
        "flags": ",".join(summary.get("flags") or []),
        "energy_per_response_j": summary.get("energy_per_image_j" if diffusion else "energy_per_request_j"),
        "gpu_tdp_w": _float(gpu.get("default_power_limit_w", gpu.get("power_limit_w"))),
        "mean_batch_size": summary.get("mean_batch_size" if diffusion else "mean_running"),
        "reason": meta.get("reason"),
        "output_lengths_from": _output_lengths_from(meta),
    }
    return {name: row.get(name) for name in traces.SUMMARY.names}
