"""How long `snakemake -n` takes to plan a 2,000-run campaign (target: ≤ 15 s on 2 cores).

    python3 benchmarks/bench_dag.py [--runs-per-model 200] [--repeat 3]

Copies the workflow into a temp dir, writes a campaign of 10 models × 2 tasks × 5 GPU types ×
2 parallelisms × 10 batch sizes = 2,000 measured grid points, and times `snakemake -n --cores 2`
(wall and CPU seconds of the whole process: parse, grid, job specs, DAG, dry-run listing):
as configured by default (figures.timelines: auto, i.e. no per-run timeline at this size), the
same with `--quiet rules`, and with a timeline figure per run forced on (a third job per run).
The first dry run also writes the 2,000 job specs; later ones only compare them.
Prints one line per timing and a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PARTS = ("Snakefile", "rules", "config", "envs", "report", "workflow/jouleflow")
GPUS = {"H100": 80, "H200": 141, "B200": 180, "A100": 80, "L40S": 48}
BATCHES = [8, 16, 32, 64, 96, 128, 192, 256, 384, 512]


def campaign(models: int) -> dict:
    registry = {
        f"bench/model-{i:02d}": {"total_params_b": 8.0, "precision": "bf16", "load_format": "dummy"}
        for i in range(models)
    }
    request_set = {"kind": "synthetic", "fixed_output_len": 256}
    return {
        "source": "measure",
        "results_dir": "results",
        "gpus": {name: {"memory_gb": mem, "tdp_w": 700} for name, mem in GPUS.items()},
        "models": registry,
        "tasks": {"chat": {"request_set": request_set}, "gpqa": {"request_set": request_set}},
        "sweeps": [
            {
                "models": list(registry),
                "tasks": ["chat", "gpqa"],
                "gpus": list(GPUS),
                "parallelism": ["tp1", "tp2"],
                "batch_sizes": BATCHES,
            }
        ],
        "analysis": {"latency_targets": {"chat": ["50ms", "100ms"]}},
    }


def copy_workflow(dest: Path) -> None:
    for part in PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)


def dry_run(workdir: Path, configfile: Path, extra: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (children), planned jobs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile", str(configfile), *extra],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(workdir / "workflow")},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    listing = done.stdout + done.stderr
    total = next((line.split()[-1] for line in listing.splitlines() if line.startswith("total")), "0")
    return wall, cpu, int(total)


VARIANTS = (
    ("default (timelines auto)", None, []),
    ("default, --quiet rules", None, ["--quiet", "rules"]),
    ("timelines: true", True, []),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10, help="models in the campaign (200 runs each)")
    parser.add_argument("--repeat", type=int, default=3, help="timed dry runs per variant")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "wf"
        copy_workflow(workdir)
        runs = args.models * 2 * len(GPUS) * 2 * len(BATCHES)
        for label, timelines, extra in VARIANTS:
            config = campaign(args.models)
            if timelines is not None:
                config["figures"] = {"timelines": timelines}
            configfile = workdir / "config" / f"bench-{len(rows)}.yaml"
            configfile.write_text(yaml.safe_dump(config))
            for attempt in range(args.repeat):
                wall, cpu, jobs = dry_run(workdir, configfile, extra)
                print(
                    f"{runs} runs, {jobs} jobs, {label}, run {attempt + 1}: {wall:.1f} s wall, {cpu:.1f} s CPU",
                    flush=True,
                )
                rows.append((runs, jobs, label, attempt + 1, wall, cpu))
    print("\n| grid points | planned jobs | variant | dry run | wall (s) | CPU (s) |")
    print("|---:|---:|---|---:|---:|---:|")
    for runs, jobs, label, attempt, wall, cpu in rows:
        print(f"| {runs} | {jobs} | {label} | {attempt} | {wall:.1f} | {cpu:.1f} |")
    print(f"\n{os.cpu_count()} CPU(s); Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
