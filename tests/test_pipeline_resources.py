"""What the measurement jobs of the DAG ask the scheduler for (the SLURM executor's sbatch options).

Resources are read from the jobs of a dry run through Snakemake's Python API, at the first attempt
and at a retry; expected values are written out by hand from each config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pipeline_helpers import BASE_SWEEP, QWEN, QWEN_ENTRY, QWEN_SWEEP, _on_path, copy_workflow, with_qwen
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings,
    DAGSettings,
    OutputSettings,
    Quietness,
    ResourceSettings,
    StorageSettings,
)

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
KEYS = ("gpu", "gpu_model", "gres", "runtime", "mem_mb", "cpus_per_task")


def measure_resources(workdir: Path, config: dict[str, Any]) -> dict[str, tuple[dict, dict]]:
    """Run key → (resources at attempt 1, at attempt 2) of every planned `measure` job."""
    configfile = workdir / "config" / "test-resources.yaml"
    configfile.write_text(yaml.safe_dump(config))
    found = {}
    with _on_path(workdir), SnakemakeApi(OutputSettings(quiet={Quietness.ALL}, dryrun=True)) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[configfile]),
            storage_settings=StorageSettings(),
            snakefile=workdir / "Snakefile",
            workdir=workdir,
        )
        wf.dag(DAGSettings()).execute_workflow(executor="dryrun")
        for job in wf._workflow.dag.needrun_jobs(exclude_finished=False):
            if job.rule.name != "measure":
                continue
            w = job.wildcards_dict
            key = "/".join(str(w[k]) for k in ("task", "model", "gpu", "parallelism", "batch"))
            first = {k: job.resources[k] for k in KEYS}
            job.attempt = 2  # what Snakemake does before resubmitting a failed job
            found[key] = (first, {k: job.resources[k] for k in KEYS})
    return found


def test_uniform_grid_asks_for_gpus_of_its_type_and_more_on_retry(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "repo")
    got = measure_resources(workdir, with_qwen())
    first = {"gpu": 1, "gpu_model": "h100", "gres": "", "runtime": 120, "mem_mb": 65536, "cpus_per_task": 8}
    retry = {**first, "runtime": 240, "mem_mb": 131072}
    qwen = QWEN.replace("/", "--")
    assert got == {f"lm-arena-chat/{qwen}/H100/tp1/{b}": (first, retry) for b in (32, 64)}


def test_mixed_grid_with_gres_style_gets_per_point_requests(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "repo")
    config = {
        "models": {QWEN: {**QWEN_ENTRY, "runtime_min": 30, "mem_mb": 4000}},
        "sweeps": [
            BASE_SWEEP,  # bundled: copied, not measured
            {**QWEN_SWEEP, "gpus": ["H100", "A100-40GB"], "parallelism": ["tp1", "tp2"], "batch_sizes": [32]},
            {**BASE_SWEEP, "name": "llama-a100", "source": "measure", "gpus": ["A100"], "batch_sizes": [64]},
        ],
        "slurm": {"gpu_request": "gres", "gpu_types": {"A100-40GB": "a100_40g"}},
    }
    got = measure_resources(workdir, config)
    qwen, llama = QWEN.replace("/", "--"), LLAMA.replace("/", "--")

    def expect(gres: str, runtime: int, mem_mb: int) -> tuple[dict, dict]:
        first = {
            "gpu": 0,
            "gpu_model": "",
            "gres": gres,
            "runtime": runtime,
            "mem_mb": mem_mb,
            "cpus_per_task": 8,
        }
        return first, {**first, "runtime": 2 * runtime, "mem_mb": 2 * mem_mb}

    assert got == {
        f"lm-arena-chat/{qwen}/H100/tp1/32": expect("gpu:h100:1", 30, 4000),
        f"lm-arena-chat/{qwen}/H100/tp2/32": expect("gpu:h100:2", 30, 4000),
        f"lm-arena-chat/{qwen}/A100-40GB/tp1/32": expect("gpu:a100_40g:1", 30, 4000),
        f"lm-arena-chat/{qwen}/A100-40GB/tp2/32": expect("gpu:a100_40g:2", 30, 4000),
        f"lm-arena-chat/{llama}/A100/tp1/64": expect("gpu:a100:1", 120, 65536),
    }
