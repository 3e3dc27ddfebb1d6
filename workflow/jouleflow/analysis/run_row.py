"""One traces.SUMMARY row per run: config fields from run.json, figures from summary.json, and where
the joules go from the attribution.json beside that summary.json (LLM runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jouleflow import traces
from jouleflow.attribution_record import ATTRIBUTION_JSON, AttributionRecord, no_attribution_columns
from jouleflow.gpus import gpu_short_name
from jouleflow.records import RunRecord, SummaryRecord, read_run


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _output_lengths_from(run: RunRecord) -> str | None:
    # run.json's `request_set` (older runs recorded it under config)
    rs = run.request_set or run.config.get("request_set")
    synthetic = rs.get("synthetic") if isinstance(rs, dict) else None
    if not synthetic or not synthetic.get("histogram"):
        return None
    return synthetic["histogram"] + (" (fallback)" if synthetic.get("histogram_fallback") else "")


def attribution_columns(summary_path: Path, diffusion: bool) -> dict[str, Any]:
    """The attribution's headline columns from the attribution.json beside summary.json (the pipeline's
    rule `attribute` writes it there); nulls, with the reason in the note columns, where there is none."""
    if diffusion:
        return no_attribution_columns("diffusion run: the attribution is for LLM runs")
    path = summary_path.parent / ATTRIBUTION_JSON
    if not path.is_file():
        return no_attribution_columns(
            f"no {ATTRIBUTION_JSON} beside the summary (jouleflow attribute not run)"
        )
    return AttributionRecord.read(path).summary_columns()


def summary_row(run_dir: str | Path, summary_path: str | Path | None = None) -> dict[str, Any]:
    """The run's row in the campaign summary table (every traces.SUMMARY column, nulls where unknown)."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    summary_path = Path(summary_path) if summary_path is not None else run_dir / traces.SUMMARY_JSON
    summary = SummaryRecord.read(summary_path)
    config = run.config
    gpu = run.gpus[0] if run.gpus else {}
    diffusion = summary.window_source == "batches" or run.is_diffusion
    row: dict[str, Any] = {
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
        "num_gpus": _int(config.get("num_gpus") or len(run.gpus) or None),
        "batch_size": _int(config.get("batch_size")),
        "parallelism": config.get("parallelism"),
        "load_format": run.load_format,
        "status": run.status,
        "valid": bool(summary.valid),
        "flags": ",".join(summary.flags or []),
        "energy_per_token_j": summary.energy_per_token_j,
        "energy_per_response_j": summary.energy_per_image_j if diffusion else summary.energy_per_request_j,
        "mean_output_tokens": summary.mean_output_tokens,
        "tokens_per_s": summary.tokens_per_s,
        "mean_power_w": summary.mean_power_w,
        "gpu_tdp_w": _float(gpu.get("default_power_limit_w", gpu.get("power_limit_w"))),
        "median_itl_s": summary.median_itl_s,
        "p90_itl_s": summary.p90_itl_s,
        "p95_itl_s": summary.p95_itl_s,
        "p99_itl_s": summary.p99_itl_s,
        "median_tpot_s": summary.median_tpot_s,
        "median_ttft_s": summary.median_ttft_s,
        "median_e2e_s": summary.median_e2e_s,
        "p90_e2e_s": summary.p90_e2e_s,
        "batch_latency_s": summary.batch_latency_s,
        "mean_batch_size": summary.mean_batch_size if diffusion else summary.mean_running,
        "steady_duration_s": summary.steady_duration_s,
        "energy_per_token_ci_rel": summary.energy_per_token_ci_rel,
        "energy_per_token_ci_intervals": summary.energy_per_token_ci_intervals,
        "reason": run.reason,
        "output_lengths_from": _output_lengths_from(run),
        "output_tokens_from": None if diffusion else summary.output_tokens_from,
        **attribution_columns(summary_path, diffusion),
        "gpu_uuids": ",".join(sorted(str(g["uuid"]) for g in run.gpus if g.get("uuid"))) or None,
    }
    return {name: row.get(name) for name in traces.SUMMARY.names}
