"""ML.ENERGY Leaderboard v3.0 (Dec 2025): the leaderboard's `public/data` directory.

Layout: `index.json` (model metadata, task → architecture class), `tasks/<task>.json` (one object per
configuration under "configurations"), `models/<org>__<model>__<task>.json` (the same rows plus
output-length histograms; not needed for the summary). Latencies are published in ms, stored in s.
Field mapping and assumptions are documented in docs/analysis.md ("Importers").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jouleflow.importers.common import PublishedDataError, integer, known_gpu, load_json, number, text

SOURCE = "mlenergy-v3"

_PRECISIONS = {
    "bfloat16": "bf16",
    "bf16": "bf16",
    "float16": "fp16",
    "fp16": "fp16",
    "fp8": "fp8",
    "mxfp4": "mxfp4",
}
_ARCHITECTURES = {"Dense Transformer": "dense", "MoE": "moe", "Mamba-Transformer Hybrid": "hybrid"}
_MS = 1e-3


def is_v3_dir(root: Path) -> bool:
    return (root / "index.json").is_file() and (root / "tasks").is_dir()


def read_v3(root: Path) -> list[dict[str, Any]]:
    """One traces.SUMMARY row per configuration in tasks/*.json; run_dir = '<file>#/configurations/<i>'."""
    index_path = root / "index.json"
    index = load_json(index_path)
    if not isinstance(index, dict) or not isinstance(index.get("models"), dict):
        raise PublishedDataError(f"{index_path}: expected an object with a 'models' mapping")
    diffusion_tasks = set(index.get("architectures", {}).get("diffusion", []))
    task_files = sorted((root / "tasks").glob("*.json"))
    if not task_files:
        raise PublishedDataError(f"{root / 'tasks'}: no task files (*.json)")
    rows: list[dict[str, Any]] = []
    for path in task_files:
        doc = load_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("configurations"), list):
            raise PublishedDataError(f"{path}: expected an object with a 'configurations' list")
        task = text(doc, "task", str(path))
        diffusion = task in diffusion_tasks or doc.get("architecture") == "diffusion"
        rel = path.relative_to(root).as_posix()
        for i, record in enumerate(doc["configurations"]):
            where = f"{path} configurations[{i}]"
            if not isinstance(record, dict):
                raise PublishedDataError(f"{where}: expected an object")
            row = _common(record, where, task, index["models"], diffusion)
            row["run_dir"] = f"{rel}#/configurations/{i}"
            row.update(_diffusion_fields(record, where) if diffusion else _llm_fields(record, where))
            rows.append(row)
    return rows


def _normalized(table: dict[str, str], value: Any, key: str, where: str) -> str | None:
    if value is None:
        return None
    if value not in table:
        raise PublishedDataError(f"{where}: unknown {key} {value!r} (known: {', '.join(sorted(table))})")
    return table[value]


def _common(record: dict, where: str, task: str, models: dict, diffusion: bool) -> dict[str, Any]:
    model = text(record, "model_id", where)
    meta = models.get(model) if isinstance(models.get(model), dict) else {}
    kind = known_gpu(text(record, "gpu_model", where), where)
    precision = meta.get("weight_precision", record.get("weight_precision"))
    architecture = meta.get("architecture", record.get("architecture"))
    return {
        "source": SOURCE,
        "task": task,
        "model": model,
        # Multimodal LLMs (image-chat, video-chat) are served and measured like LLMs.
        "modality": "diffusion" if diffusion else "llm",
        "precision": _normalized(_PRECISIONS, precision, "weight_precision", where),
        "architecture": _normalized(_ARCHITECTURES, architecture, "architecture", where),
        "total_params_b": meta.get("total_params_billions", record.get("total_params_billions")),
        "active_params_b": meta.get("activated_params_billions", record.get("activated_params_billions")),
        "gpu": kind.short,
        "gpu_tdp_w": kind.tdp_w,
        "num_gpus": integer(record, "num_gpus", where),
        "load_format": "real",
        "status": "ok",  # the leaderboard publishes stable runs only
        "valid": True,
        "flags": "",
        "mean_power_w": number(record, "avg_power_watts", where),
    }


def llm_parallelism(tp: int, dp: int, ep: int, num_gpus: int, where: str) -> str:
    """jouleflow's spelling of v3's (tensor, data, expert) degrees: tp2, tp8-ep, dp4-ep.

    vLLM forms expert parallelism over the TP × DP ranks, so v3's rows with tensor_parallel 1,
    data_parallel 1 and expert_parallel E on E GPUs are attention TP over E GPUs with experts
    sharded: tpE-ep. Rows with data_parallel D > 1 are DP attention with EP experts: dpD-ep.
    """
    attention_tp = tp if (ep == 1 or dp > 1 or tp > 1) else num_gpus
    if attention_tp * dp != num_gpus:
        raise PublishedDataError(
            f"{where}: tensor_parallel={tp}, data_parallel={dp}, expert_parallel={ep} do not fit num_gpus={num_gpus}"
        )
    parts = []
    if attention_tp > 1 or dp == 1:
        parts.append(f"tp{attention_tp}")
    if dp > 1:
        parts.append(f"dp{dp}")
    if ep > 1:
        parts.append("ep")
    return "-".join(parts)


def _ms(record: dict, key: str, where: str, *, required: bool = False) -> float | None:
    value = number(record, key, where, required=required)
    return None if value is None else value * _MS


def _llm_fields(record: dict, where: str) -> dict[str, Any]:
    tp, dp, ep = (integer(record, k, where) for k in ("tensor_parallel", "data_parallel", "expert_parallel"))
    return {
        "batch_size": integer(record, "max_num_seqs", where),
        "parallelism": llm_parallelism(tp, dp, ep, integer(record, "num_gpus", where), where),
        "energy_per_token_j": number(record, "energy_per_token_joules", where),
        "energy_per_response_j": number(record, "energy_per_request_joules", where),
        "mean_output_tokens": number(record, "avg_output_len", where),
        "tokens_per_s": number(record, "output_throughput_tokens_per_sec", where),
        "median_itl_s": _ms(record, "median_itl_ms", where, required=True),
        "p90_itl_s": _ms(record, "p90_itl_ms", where),
        "p95_itl_s": _ms(record, "p95_itl_ms", where),
        "p99_itl_s": _ms(record, "p99_itl_ms", where),
        "mean_batch_size": number(record, "avg_batch_size", where, required=False),
    }


def _diffusion_fields(record: dict, where: str) -> dict[str, Any]:
    key = "energy_per_video_joules" if "energy_per_video_joules" in record else "energy_per_image_joules"
    ulysses = integer(record, "ulysses_degree", where)
    ring = integer(record, "ring_degree", where)
    return {
        "batch_size": integer(record, "batch_size", where),
        "parallelism": f"uly{ulysses}-ring{ring}",
        "energy_per_response_j": number(record, key, where),
        "batch_latency_s": number(record, "batch_latency_s", where),
    }
