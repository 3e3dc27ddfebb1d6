"""Run the Snakemake workflow on a copy of the repository through Snakemake's Python API.

Tests copy the workflow (Snakefile, rules, config, envs, report, the jouleflow package and the
small resources it needs) into a tmp dir, with tests/data/reference-fixture as the bundled
reference campaign, so nothing in the repository is written. Planned jobs are read from the DAG
of a dry run (rule name + wildcards), not from logs.

The whole default campaign, run once per session with the user's command (`snakemake --cores all`,
as a base install runs it), is conftest.py's `bundled_campaign`: tests read it, or copy it
(`copy_campaign`) before changing anything in it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings,
    DAGSettings,
    OutputSettings,
    Quietness,
    ResourceSettings,
    StorageSettings,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "reference-fixture"
WORKFLOW_PARTS = (
    "Snakefile",
    "rules",
    "config",
    "envs",
    "report",
    "workflow/jouleflow",
    "resources/mlenergy-v3",
)
BASE_KEY = "lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H100/tp1"
# The default config's H200 sweeps: the bundle's real H200 runs (copied as they are into the copy).
H200_KEY = "lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H200/tp1"
H200_FP8_KEY = "lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct@fp8/H200/tp1"
QWEN_H200_KEY = "lm-arena-chat/Qwen--Qwen3-8B/H200/tp1"
VL_H200_KEY = "image-chat/Qwen--Qwen3-VL-8B-Instruct/H200/tp1"
GPQA_H200_KEY = "gpqa-lengths/Qwen--Qwen3-8B/H200/tp1"
MOE_H200_KEY = "lm-arena-chat/Qwen--Qwen3-30B-A3B-Instruct-2507/H200/tp1"
DENSE32_H200_KEY = "lm-arena-chat/Qwen--Qwen3-32B/H200/tp1"
PIXART_H200_KEY = "text-to-image/PixArt-alpha--PixArt-Sigma-XL-2-1024-MS/H200/uly1-ring1"
H200_BATCHES = (8, 16, 32, 64, 128, 256, 512)
H200_RUNS = {
    H200_KEY: H200_BATCHES,
    H200_FP8_KEY: H200_BATCHES,
    QWEN_H200_KEY: (16, 64, 256),
    VL_H200_KEY: (16, 64, 256),
    GPQA_H200_KEY: (16, 64),
    MOE_H200_KEY: (16, 64, 256),
    DENSE32_H200_KEY: (16, 64, 256),
    PIXART_H200_KEY: (1, 2, 4, 8, 16),
}
H200_KEYS = tuple(H200_RUNS)
H200_POINTS = {f"{key}/{b}" for key, batches in H200_RUNS.items() for b in batches}
MEASURE_RULES = {"fetch_reference", "measure"}
# What `snakemake --cores all` uses: every core this process may run on.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

# A second model for "add a model" tests: the default config's Qwen3-8B (bundled on the H200 only),
# measured on the H100 by the tests' added sweep.
QWEN = "Qwen/Qwen3-8B"
QWEN_ENTRY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"][QWEN]
BASE_SWEEP = {
    "name": "llama-3.1-8b-h100",
    "models": ["meta-llama/Llama-3.1-8B-Instruct"],
    "tasks": ["lm-arena-chat"],
    "gpus": ["H100"],
    "parallelism": ["tp1"],
    "batch_sizes": [64, 128, 256],
}
QWEN_SWEEP = {
    "name": "qwen3-8b-h100",
    "source": "measure",
    "models": [QWEN],
    "tasks": ["lm-arena-chat"],
    "gpus": ["H100"],
    "parallelism": ["tp1"],
    "batch_sizes": [32, 64],
}


def copy_workflow(dest: Path) -> Path:
    """A runnable copy of the workflow with the fixture as resources/reference."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)
    shutil.copytree(FIXTURE / "runs", dest / "resources" / "reference" / "runs")
    # The fixture stands in for the bundle's H100 runs; the default config's H200 sweep copies the
    # bundle's own (real, thinned) H200 runs.
    for key in H200_KEYS:
        h200 = f"runs/{key}"
        shutil.copytree(REPO / "resources" / "reference" / h200, dest / "resources" / "reference" / h200)
    # The added model of the tests draws its output lengths from Llama's published histograms.
    histograms = dest / "resources" / "mlenergy-v3" / "models"
    shutil.copy2(
        histograms / "meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json",
        histograms / "Qwen__Qwen3-8B__lm-arena-chat.json",
    )
    _write_launcher(dest)
    return dest


def _write_launcher(dest: Path) -> None:
    """`jouleflow` on PATH for the rules' shell commands: the copied package, this interpreter."""
    bin_dir = dest / ".test-bin"
    bin_dir.mkdir(exist_ok=True)
    launcher = bin_dir / "jouleflow"
    launcher.write_text(
        f'#!/bin/sh\nPYTHONPATH="{dest / "workflow"}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" -m jouleflow "$@"\n'
    )
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)


@contextmanager
def _on_path(workdir: Path):
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{workdir / '.test-bin'}{os.pathsep}{old}"
    try:
        yield
    finally:
        os.environ["PATH"] = old


def _api_run(
    workdir: Path,
    executor: str,
    config: Mapping[str, Any] | None,
    targets: Iterable[str],
    forcerun: Iterable[str] = (),
):
    quiet = {Quietness.ALL} if executor == "dryrun" else {Quietness.PROGRESS}
    configfiles = [_overrides_file(workdir, config)] if config else []
    with _on_path(workdir), SnakemakeApi(OutputSettings(quiet=quiet, dryrun=executor == "dryrun")) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(cores=1 if executor == "dryrun" else CORES),
            config_settings=ConfigSettings(configfiles=configfiles),
            storage_settings=StorageSettings(),
            snakefile=workdir / "Snakefile",
            workdir=workdir,
        )
        dag = wf.dag(DAGSettings(targets=set(targets), forcerun=set(forcerun)))
        dag.execute_workflow(executor=executor)
        return [
            (job.rule.name, dict(job.wildcards_dict))
            for job in wf._workflow.dag.needrun_jobs(exclude_finished=False)
        ]


def _overrides_file(workdir: Path, config: Mapping[str, Any]) -> Path:
    """Config changes go in a file, as a user's `--configfile` would (merged over config/config.yaml)."""
    text = yaml.safe_dump(dict(config), sort_keys=True)
    path = workdir / "config" / f"test-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    path.write_text(text)
    return path


def plan(
    workdir: Path, config: Mapping[str, Any] | None = None, targets: Iterable[str] = ()
) -> list[tuple[str, dict]]:
    """The jobs a dry run would execute: (rule, wildcards) pairs."""
    return _api_run(workdir, "dryrun", config, targets)


def execute(
    workdir: Path,
    config: Mapping[str, Any] | None = None,
    targets: Iterable[str] = (),
    forcerun: Iterable[str] = (),
) -> None:
    """Really run the workflow (local executor, every core, as `--cores all`)."""
    _api_run(workdir, "local", config, targets, forcerun)


def run_dirs(
    key: str = BASE_KEY, batches: Iterable[int] = (64, 128, 256), results: str = "results"
) -> list[str]:
    return [f"{results}/runs/{key}/{b}" for b in batches]


def default_run_dirs(results: str = "results") -> list[str]:
    """Every run of the default config: the fixture's H100 runs and the bundle's H200 runs."""
    return run_dirs(results=results) + [
        d for key, bs in H200_RUNS.items() for d in run_dirs(key, bs, results)
    ]


def rules_of(jobs: list[tuple[str, dict]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rule, _ in jobs:
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def points_of(jobs: list[tuple[str, dict]], rules: Iterable[str]) -> set[str]:
    """Run keys (task/model/gpu/parallelism/batch) of the planned jobs of these rules."""
    rules = set(rules)
    return {
        "/".join(w[k] for k in ("task", "model", "gpu", "parallelism", "batch"))
        for rule, w in jobs
        if rule in rules
    }


def with_qwen() -> dict[str, Any]:
    """Config overrides that add Qwen3-8B (measured) next to the default config's sweeps."""
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return {"models": {QWEN: QWEN_ENTRY}, "sweeps": [*default["sweeps"], QWEN_SWEEP]}


@dataclass(frozen=True)
class BundledCampaign:
    """The default campaign of a fresh copy of the workflow, run by `snakemake --cores all`."""

    workdir: Path
    env: dict[str, str]  # the base install's environment it ran in (tests/base_install.py)
    result: subprocess.CompletedProcess  # Snakemake's exit status and output

    def check(self) -> None:
        """It ran to the end; else Snakemake's output and every rule's log."""
        logs = "\n".join(f"{p}:\n{p.read_text()}" for p in sorted((self.workdir / "logs").rglob("*.log")))
        assert self.result.returncode == 0, self.result.stdout + self.result.stderr + logs


def run_bundled_campaign(root: Path) -> BundledCampaign:
    """Copy the workflow under root and run its default campaign as a user with a base install does:
    `snakemake --cores all`, every package of the extras blocked (tests/base_install.py)."""
    from base_install import blocked_env

    workdir = copy_workflow(root / "wf")
    env = blocked_env(root, workdir / "workflow")
    env["PATH"] = f"{workdir / '.test-bin'}{os.pathsep}{env['PATH']}"
    cmd = [sys.executable, "-m", "snakemake", "--cores", "all", "--nocolor"]
    result = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    return BundledCampaign(workdir, env, result)


def copy_campaign(campaign: BundledCampaign, dest: Path) -> Path:
    """A private copy of the campaign's workflow (files, mtimes and Snakemake's metadata)."""
    return shutil.copytree(campaign.workdir, dest, symlinks=True)
