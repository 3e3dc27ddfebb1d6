"""Run directories built by hand, with answers that can be worked out on paper.

The reference scenario (`reference_run`): B = 2, N = 6 requests all sent at t = 1000 s.

    request  first token  end    chunks (1 token each, every whole second first..end)
    r0       1010         1030   21
    r1       1011         1040   30
    r2       1030         1041   12
    r3       1040         1043    4
    r4       1041         1044    4
    r5       1043         1046    4

Active requests (first token received, not ended): 1 from 1010, 2 from 1011 to 1044, then 1, 0.
Server `running` sampled every 0.5 s from 1000 to 1050, equal to the active count.
Two GPUs at a constant 500 W, sampled every 1 s at 1000.3 + k, counter = 500 * (t - 1000) J
(its exact integral), power limit 700 W.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jouleflow.traces import RunDirWriter

SEND = 1000.0
BATCH = 2
# (first token, end) per request.
SCHEDULE = [(1010, 1030), (1011, 1040), (1030, 1041), (1040, 1043), (1041, 1044), (1043, 1046)]


def chunks_for(schedule: list[tuple[float, float]]) -> list[dict]:
    rows = []
    for rid, (first, end) in enumerate(schedule):
        t = first
        while t <= end:
            rows.append({"request_id": rid, "t": float(t), "n_tokens": 1})
            t += 1
    return rows


def requests_for(schedule: list[tuple[float, float]], tokens: list[dict]) -> list[dict]:
    counts: dict[int, int] = {}
    for row in tokens:
        counts[row["request_id"]] = counts.get(row["request_id"], 0) + row["n_tokens"]
    return [
        {
            "request_id": rid,
            "t_send": SEND,
            "t_first_token": float(first),
            "t_end": float(end),
            "input_tokens": 100,
            "output_tokens": counts.get(rid, 0),
            "ok": True,
            "error": None,
        }
        for rid, (first, end) in enumerate(schedule)
    ]


def active_at(schedule: list[tuple[float, float]], t: float) -> int:
    return sum(1 for first, end in schedule if first <= t < end)


def server_for(
    schedule: list[tuple[float, float]], t_from: float = 1000.0, t_to: float = 1050.0
) -> list[dict]:
    rows, t = [], t_from
    while t <= t_to:
        rows.append(
            {
                "t": t,
                "running": float(active_at(schedule, t)),
                "waiting": 0.0,
                "kv_cache_usage": 0.1,
                "preemptions": 0.0,
                "generation_tokens": 0.0,
            }
        )
        t += 0.5
    return rows


def constant_power(watts: float = 500.0, gpus: int = 2, t_from: float = 1000.3, n: int = 60) -> list[dict]:
    return [
        {
            "t": t_from + k,
            "gpu": g,
            "power_w": watts,
            "energy_j": watts * (t_from + k - 1000.0),
            "temp_c": 50.0,
        }
        for g in range(gpus)
        for k in range(n)
    ]


def run_json(
    batch: int = BATCH, status: str = "ok", gpus: int = 2, power_limit_w: float = 700.0, **provenance: Any
) -> dict:
    return {
        "status": status,
        "reason": None if status == "ok" else "test reason",
        "config": {
            "task": "lm-arena-chat",
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "gpu": "H100",
            "num_gpus": gpus,
            "batch_size": batch,
            "parallelism": "tp2" if gpus == 2 else "tp1",
            "precision": "bf16",
            "load_format": "dummy",
            "num_requests": 6,
            "engine": "vllm",
        },
        "config_hash": "0" * 64,
        "provenance": {
            "gpus": [
                {
                    "index": i,
                    "name": "NVIDIA H100 80GB HBM3",
                    "power_limit_w": power_limit_w,
                    "default_power_limit_w": power_limit_w,
                }
                for i in range(gpus)
            ],
            "energy_source": "nvml-via-zeus",
            "load_format": "dummy",
            **provenance,
        },
    }


def write_run(
    run_dir: Path,
    *,
    schedule: list[tuple[float, float]] | None = None,
    tokens: list[dict] | None = None,
    requests: list[dict] | None = None,
    power: list[dict] | None = None,
    server: list[dict] | None = None,
    meta: dict | None = None,
) -> Path:
    """Write a complete run directory; pass None for power/server to leave those files out."""
    schedule = schedule if schedule is not None else SCHEDULE
    tokens = tokens if tokens is not None else chunks_for(schedule)
    requests = requests if requests is not None else requests_for(schedule, tokens)
    writer = RunDirWriter(run_dir)
    writer.write_trace("requests.parquet", requests)
    writer.write_trace("tokens.parquet", tokens)
    if power is not None:
        writer.write_trace("power.parquet", power)
    if server is not None:
        writer.write_trace("server.parquet", server)
    return writer.commit(meta if meta is not None else run_json())


def reference_run(run_dir: Path, **overrides: Any) -> Path:
    """The scenario of the module docstring; keyword arguments replace any part of it."""
    parts: dict[str, Any] = {"power": constant_power(), "server": server_for(SCHEDULE)}
    parts.update(overrides)
    return write_run(run_dir, **parts)
