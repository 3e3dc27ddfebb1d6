"""Small hand-made summaries for the cost, recommend --all and power-budget tests, built and
written with the real summary writers (traces.table_from_rows, analysis.summary.write_summary)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from jouleflow import traces
from jouleflow.analysis.summary import write_summary


def llm(name: str, *, model: str = "org/A", gpu: str = "H100", num_gpus: int = 1, batch: int = 64,
        itl: float, tps: float, power: float, ept: float = 0.1, epr: float = 100.0,
        task: str = "chat", precision: str = "bf16", status: str = "ok") -> dict:  # fmt: skip
    return {
        "source": "test", "run_dir": name, "task": task, "model": model, "modality": "llm",
        "precision": precision, "gpu": gpu, "num_gpus": num_gpus, "batch_size": batch,
        "parallelism": f"tp{num_gpus}", "load_format": "real", "status": status, "valid": True,
        "median_itl_s": itl, "tokens_per_s": tps, "mean_power_w": power,
        "energy_per_token_j": ept, "energy_per_response_j": epr,
    }  # fmt: skip


def diffusion(name: str, *, model: str = "org/D", gpu: str = "H100", batch: int, latency: float,
              power: float, epr: float, task: str = "text-to-image") -> dict:  # fmt: skip
    return {
        "source": "test", "run_dir": name, "task": task, "model": model, "modality": "diffusion",
        "precision": "bf16", "gpu": gpu, "num_gpus": 1, "batch_size": batch, "parallelism": "uly1-ring1",
        "load_format": "real", "status": "ok", "valid": True, "batch_latency_s": latency,
        "mean_power_w": power, "energy_per_response_j": epr,
    }  # fmt: skip


def summary(*rows: dict) -> pl.DataFrame:
    frame = pl.from_arrow(traces.table_from_rows(list(rows), traces.SUMMARY))
    assert isinstance(frame, pl.DataFrame)
    return frame


def write(path: Path, *rows: dict) -> Path:
    write_summary(summary(*rows), path)
    return path


# Model A on chat (by hand: tokens/s per W): a1 2000/500 = 4 (ITL 20 ms), a2 6000/600 = 10 (ITL
# 60 ms, misses 50 ms), a3 5000/1000 = 5 (2 GPUs, ITL 40 ms). Model B: 80 ms only (unreachable at
# 50 ms). D on text-to-image: d1 1 image / 2 s / 500 W = 0.001, d4 4 images / 8 s / 800 W = 0.000625.
CHAT = [
    llm("a1", batch=64, itl=0.02, tps=2000, power=500, ept=0.25, epr=250),
    llm("a2", batch=256, itl=0.06, tps=6000, power=600, ept=0.1, epr=100),
    llm("a3", num_gpus=2, batch=128, itl=0.04, tps=5000, power=1000, ept=0.2, epr=200),
    llm("b1", model="org/B", batch=64, itl=0.08, tps=1000, power=500, ept=0.5, epr=500),
]
IMAGE = [
    diffusion("d1", batch=1, latency=2.0, power=500, epr=1000),
    diffusion("d4", batch=4, latency=8.0, power=800, epr=1600),
]
