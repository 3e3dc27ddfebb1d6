"""A minimal, independent loader: ML.ENERGY v3 leaderboard `tasks/*.json` -> a summary-shaped frame.

Test-only. It lets the comparison tests run on the published v3 data without depending on the
product's importer, and it is deliberately plain (one dict per row, units converted by hand).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

ARCH = {"MoE": "moe", "Dense Transformer": "dense"}
PRECISION = {"bfloat16": "bf16", "fp8": "fp8", "mxfp4": "mxfp4"}


def _parallelism(r: dict) -> str:
    if "ulysses_degree" in r:
        return f"uly{r['ulysses_degree']}-ring{r['ring_degree']}"
    tp, dp, ep = r["tensor_parallel"], r["data_parallel"], r["expert_parallel"]
    text = f"tp{tp}" + (f"-dp{dp}" if dp > 1 else "") + ("-ep" if ep > 1 else "")
    return text


def v3_rows(data_dir: Path) -> list[dict]:
    rows = []
    for path in sorted((data_dir / "tasks").glob("*.json")):
        doc = json.loads(path.read_text())
        for r in doc["configurations"]:
            diffusion = "batch_latency_s" in r
            energy = (
                r.get("energy_per_request_joules")
                or r.get("energy_per_image_joules")
                or r.get("energy_per_video_joules")
            )
            rows.append(
                {
                    "source": "mlenergy-v3",
                    "run_dir": f"tasks/{path.name}",
                    "task": doc["task"],
                    "model": r["model_id"],
                    "modality": "diffusion" if diffusion else "llm",
                    "precision": PRECISION.get(r["weight_precision"], r["weight_precision"]),
                    "architecture": ARCH.get(r.get("architecture")),
                    "total_params_b": r["total_params_billions"],
                    "active_params_b": r["activated_params_billions"],
                    "gpu": r["gpu_model"],
                    "num_gpus": r["num_gpus"],
                    "batch_size": r["batch_size"] if diffusion else r["max_num_seqs"],
                    "parallelism": _parallelism(r),
                    "status": "ok",
                    "valid": True,
                    "energy_per_token_j": r.get("energy_per_token_joules"),
                    "energy_per_response_j": energy,
                    "mean_output_tokens": r.get("avg_output_len"),
                    "tokens_per_s": r.get("output_throughput_tokens_per_sec"),
                    "mean_power_w": r["avg_power_watts"],
                    "median_itl_s": r["median_itl_ms"] / 1000 if "median_itl_ms" in r else None,
                    "batch_latency_s": r.get("batch_latency_s"),
                }
            )
    return rows


def v3_frame(data_dir: Path) -> pl.DataFrame:
    return pl.DataFrame(v3_rows(data_dir), infer_schema_length=None)
