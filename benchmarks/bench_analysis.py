"""Analysis at campaign scale: summary table, frontiers and recommendations for a 2,000-run campaign.

Synthesizes 2,000 run directories (run.json + summary.json, realistic values, fixed seed) in a temp
dir, then times: building the summary table from them, the frontier of every (task, model,
precision), and recommendations for every group × default latency target. Target: ≤ 30 s in all
on 2 cores. Prints the figures; docs/benchmarks.md records them.

    python benchmarks/bench_analysis.py [--runs 2000] [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

GPUS = {"H100": (700.0, 1.0), "B200": (1000.0, 1.7)}  # TDP, relative speed
LLM_TASKS = {"lm-arena-chat": 600.0, "gpqa": 6000.0, "sourcegraph-fim": 250.0}  # mean output tokens
DIFFUSION_TASKS = {"text-to-image": 1.0, "text-to-video": 60.0}  # relative work per output
BATCHES_LLM = (8, 16, 32, 64, 128, 256, 512, 1024)
BATCHES_DIFFUSION = (1, 2, 4, 8, 16)


def _llm_models(rng: random.Random) -> list[dict[str, Any]]:
    models = []
    for i in range(16):
        total = rng.choice((8, 14, 32, 70, 120, 235))
        moe = total >= 120 or rng.random() < 0.3
        active = total / 10 if moe else total
        models.append({"model": f"org{i % 5}/llm-{i}-{total}B", "total": total, "active": active, "moe": moe,
                       "precision": "fp8" if rng.random() < 0.25 else "bf16"})  # fmt: skip
    return models


def _llm_figures(
    rng: random.Random, m: dict, gpu: str, n: int, batch: int, out_tokens: float
) -> dict[str, Any]:
    tdp, speed = GPUS[gpu]
    base_itl = (0.003 + 0.00025 * m["active"] / n) / speed
    itl = base_itl * (1 + batch / 96) * rng.uniform(0.95, 1.05)
    tokens_per_s = batch / itl * rng.uniform(0.85, 0.95)
    per_gpu_w = 120 + (tdp - 120) * min(1.0, 0.35 + 0.65 * batch / (batch + 48)) * rng.uniform(0.9, 1.0)
    power = per_gpu_w * n
    ept = power / tokens_per_s
    return {
        "energy_per_token_j": ept,
        "energy_per_request_j": ept * out_tokens,
        "mean_output_tokens": out_tokens * rng.uniform(0.9, 1.1),
        "tokens_per_s": tokens_per_s,
        "mean_power_w": power,
        "median_itl_s": itl,
        "p90_itl_s": itl * 1.4,
        "p95_itl_s": itl * 1.7,
        "p99_itl_s": itl * 3.0,
        "median_tpot_s": itl * 1.05,
        "median_ttft_s": 0.05 + batch * 0.002,
        "median_e2e_s": itl * out_tokens,
        "p90_e2e_s": itl * out_tokens * 1.8,
        "mean_running": batch * rng.uniform(0.86, 0.99),
        "steady_duration_s": rng.uniform(40, 400),
    }


def _diffusion_figures(rng: random.Random, work: float, gpu: str, n: int, batch: int) -> dict[str, Any]:
    tdp, speed = GPUS[gpu]
    latency = work * 2.0 * batch**0.9 / (speed * n**0.8) * rng.uniform(0.95, 1.05)
    power = (150 + (tdp - 150) * min(1.0, 0.6 + 0.1 * batch)) * n
    return {
        "energy_per_request_j": power * latency / batch,
        "batch_latency_s": latency,
        "mean_power_w": power,
        "steady_duration_s": latency * 8,
    }


def synthesize(root: Path, runs: int, seed: int = 7) -> list[Path]:
    """Write `runs` run directories (run.json + summary.json) under root/runs; return their paths."""
    rng = random.Random(seed)
    points: list[dict[str, Any]] = []
    for m in _llm_models(rng):
        for task, out_tokens in LLM_TASKS.items():
            for gpu in GPUS:
                for n in (1, 2, 4, 8):
                    for batch in BATCHES_LLM:
                        points.append(
                            {
                                "kind": "llm",
                                "m": m,
                                "task": task,
                                "gpu": gpu,
                                "n": n,
                                "batch": batch,
                                "out": out_tokens,
                            }
                        )
    for i in range(10):
        for task, work in DIFFUSION_TASKS.items():
            for gpu in GPUS:
                for n in (1, 2, 4, 8):
                    for batch in BATCHES_DIFFUSION:
                        points.append({"kind": "diffusion", "model": f"org{i % 3}/diffusion-{i}", "task": task,
                                       "gpu": gpu, "n": n, "batch": batch, "work": work})  # fmt: skip
    rng.shuffle(points)
    dirs = []
    for p in points[:runs]:
        dirs.append(_write_run(root, rng, p))
    return dirs


def _write_run(root: Path, rng: random.Random, p: dict[str, Any]) -> Path:
    llm = p["kind"] == "llm"
    model = p["m"]["model"] if llm else p["model"]
    parallelism = (
        (f"tp{p['n']}" + ("-ep" if p["m"]["moe"] and p["n"] > 1 else "")) if llm else f"uly{p['n']}-ring1"
    )
    run_dir = root / "runs" / p["task"] / model.replace("/", "--") / p["gpu"] / parallelism / str(p["batch"])
    run_dir.mkdir(parents=True)
    infeasible = llm and p["m"]["total"] * 2 > 80 * p["n"] * (2.3 if p["gpu"] == "B200" else 1.0)
    config = {
        "task": p["task"], "model": model, "gpu": p["gpu"], "num_gpus": p["n"], "batch_size": p["batch"],
        "parallelism": parallelism, "precision": p["m"]["precision"] if llm else "bf16", "load_format": "real",
    }  # fmt: skip
    status = "infeasible" if infeasible else "ok"
    (run_dir / "run.json").write_text(json.dumps({"schema_version": 1, "status": status, "config": config}))
    if infeasible:  # `jouleflow energy` gives such runs a summary.json with null figures
        (run_dir / "summary.json").write_text(json.dumps({"valid": False, "flags": ["infeasible"]}))
        return run_dir
    figures = (
        _llm_figures(rng, p["m"], p["gpu"], p["n"], p["batch"], p["out"])
        if llm
        else _diffusion_figures(rng, p["work"], p["gpu"], p["n"], p["batch"])
    )
    valid = rng.random() > 0.05
    summary = {"steady_start": 1.7e9, "steady_end": 1.7e9 + figures["steady_duration_s"], "valid": valid,
               "flags": [] if valid else ["low-running"], **figures}  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def summary_row_own(run_dir: Path) -> dict[str, Any]:
    """Our own reading of one run (used when jouleflow.analysis.energy.summary_row is not available)."""
    run = json.loads((run_dir / "run.json").read_text())
    config = run["config"]
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text()) if path.is_file() else {}
    flags = summary.get("flags") or []
    return {
        "source": "jouleflow", "run_dir": str(run_dir), "status": run["status"],
        "modality": "diffusion" if config["parallelism"].startswith("uly") else "llm",
        **{k: config.get(k) for k in ("task", "model", "precision", "gpu", "num_gpus", "batch_size", "parallelism", "load_format")},
        "valid": bool(summary.get("valid", False)), "flags": ",".join(flags),
        "energy_per_response_j": summary.get("energy_per_request_j"),
        "mean_batch_size": summary.get("mean_running"),
        **{k: summary.get(k) for k in ("energy_per_token_j", "mean_output_tokens", "tokens_per_s", "mean_power_w",
                                       "median_itl_s", "p90_itl_s", "p95_itl_s", "p99_itl_s", "median_tpot_s",
                                       "median_ttft_s", "median_e2e_s", "p90_e2e_s", "batch_latency_s", "steady_duration_s")},
    }  # fmt: skip


def _reader() -> tuple[Any, str]:
    try:
        energy = importlib.import_module("jouleflow.analysis.energy")
        return energy.summary_row, "jouleflow.analysis.energy.summary_row"
    except (ImportError, AttributeError):
        return summary_row_own, "benchmark's own reader (jouleflow.analysis.energy.summary_row not available)"


def timed(func, repeat: int) -> tuple[float, float, Any]:
    """(first run, best of `repeat`, result): the first run includes cold caches and lazy imports."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t)
    return times[0], min(times), result


def time_cli(summary: Path, root: Path) -> float:
    """Wall time of `jouleflow frontier ... --recommendations` as a user (or a Snakemake rule) runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    cmd = [sys.executable, "-m", "jouleflow", "frontier", "--summary", str(summary), "-o", str(root / "frontier.parquet"),
           "--recommendations", str(root / "recommendations.csv")]  # fmt: skip
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument(
        "--threads", type=int, default=2, help="POLARS_MAX_THREADS (the target machine has 2 cores)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N for each timed step")
    args = parser.parse_args()
    os.environ["POLARS_MAX_THREADS"] = str(args.threads)
    import polars as pl  # after POLARS_MAX_THREADS: the pool size is fixed at import
    from jouleflow import traces
    from jouleflow.analysis.recommendations import frontier_table, recommendation_table

    with tempfile.TemporaryDirectory(prefix="jouleflow-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        dirs = synthesize(root, args.runs)
        synth_s = time.perf_counter() - t
        read_row, reader_name = _reader()
        schema = pl.from_arrow(traces.table_from_rows([], traces.SUMMARY)).schema

        def build_summary() -> pl.DataFrame:
            rows = [read_row(d) for d in dirs]
            return pl.DataFrame(rows, schema=schema, orient="row", strict=False)

        read = timed(build_summary, args.repeat)
        summary = read[2]
        out = root / "summary.parquet"
        write = timed(lambda: traces.write_table(summary.to_arrow(), out), args.repeat)
        load = timed(lambda: pl.read_parquet(out), args.repeat)
        summary = load[2]
        front = timed(lambda: frontier_table(summary), args.repeat)
        recs_t = timed(lambda: recommendation_table(summary), args.repeat)
        table, recs = front[2], recs_t[2]
        cli_s = time_cli(out, root)

    groups = summary.select("task", "model", "precision").unique().height
    total_first = read[0] + write[0] + front[0] + recs_t[0]
    total = read[1] + write[1] + front[1] + recs_t[1]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs visible, POLARS_MAX_THREADS={args.threads}, "
          f"polars {pl.__version__}, Python {platform.python_version()}")  # fmt: skip
    print(f"runs: {len(dirs)} directories ({summary.filter(pl.col('status') == 'ok').height} ok), "
          f"{groups} (task, model, precision) groups; synthesized in {synth_s:.2f} s")  # fmt: skip
    print(f"summary reader: {reader_name}")
    print(f"{'step':<58}{'first':>9}{'best of ' + str(args.repeat):>12}")
    rows = [
        (f"summary table build ({len(dirs)} x run.json + summary.json)", read),
        ("summary.parquet write", write),
        ("summary.parquet read", load),
        (f"frontiers ({table.frontier.height} rows; {table.excluded.total} runs excluded)", front),
        (f"recommendations ({recs.height} group x target rows)", recs_t),
    ]
    for name, (first, best, _) in rows:
        print(f"{name:<58}{first:>8.3f}s{best:>11.3f}s")
    print(
        f"{'total: build + write + frontiers + recommendations':<58}{total_first:>8.3f}s{total:>11.3f}s  (target <= 30 s)"
    )
    print(f"{'CLI: jouleflow frontier --recommendations (incl. startup)':<58}{cli_s:>8.3f}s")
    return 0 if total_first <= 30 else 1


if __name__ == "__main__":
    raise SystemExit(main())
