"""What a diffusion run directory says about itself: run.json's config, provenance, status and timing.

Pure functions of what the session gathered, so every field is tested without a GPU. The config
records the values that actually ran (family defaults filled in), `modality: diffusion` and the
parallelism label that jouleflow.analysis.energy / run_row read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jouleflow.gpus import gpu_short_name
from jouleflow.measure.diffusion_config import DiffusionJobConfig, generation_record
from jouleflow.measure.diffusion_prompts import PromptSet
from jouleflow.measure.engines.xdit import Generation, PipelineFamily
from jouleflow.measure.engines.xdit_protocol import EVENTS_FILE, Outcome, WorkerReport, phase_windows
from jouleflow.measure.jobconfig import config_hash
from jouleflow.measure.provenance import package_version
from jouleflow.records import RunRecord, Timing

ENERGY_SOURCE = "nvml-via-zeus"
# Where things ran, not what was measured: left out of the config hash.
UNHASHED = ("model_path", "launcher", "timeout_s", "after")


def run_config(
    cfg: DiffusionJobConfig,
    family: PipelineFamily,
    gen: Generation,
    prompts: PromptSet,
    gpu_names: list[str | None],
) -> dict[str, Any]:
    """The effective config: the job spec with defaults resolved, plus what the analysis reads."""
    config = cfg.to_dict()
    names = {n for n in gpu_names if n}
    gpu = cfg.gpu or (gpu_short_name(next(iter(names))) if len(names) == 1 else None)
    degrees = cfg.degrees
    config.update(
        modality="diffusion",
        engine="xdit",
        pipeline=family.name,
        gpu=gpu,
        num_gpus=cfg.effective_num_gpus,
        parallelism=degrees.label(),
        cfg_degree=degrees.cfg_degree,
        **generation_record(gen, cfg.timed_batches),
        dtype=cfg.dtype,
        num_prompts=cfg.timed_batches * cfg.batch_size,
        load_format=cfg.load_format,
        prompt_set=prompts.record(cfg.batch_size, cfg.timed_batches),
    )
    if config["container"] is None:
        config.pop("container")
    return config


def portable_argv(argv: list[str], tmp_dir: Path) -> list[str]:
    """The worker command with the temporary run-dir path written as {run_dir} (it is renamed after)."""
    return [arg.replace(str(tmp_dir), "{run_dir}") for arg in argv]


def hashed_config(config: dict[str, Any]) -> str:
    return config_hash({k: v for k, v in config.items() if k not in UNHASHED})


def run_document(
    *,
    config: dict[str, Any],
    outcome: Outcome,
    report: WorkerReport,
    provenance: dict[str, Any],
    phases: dict[str, list[float | None]],
    energy_source: str | None,
    zeus_check: dict | None,
    power_period_s: float | None,
    worker_argv: list[str] | None,
    exit_code: int | None,
    foreign: list[dict],
    notes: list[str],
) -> RunRecord:
    """run.json's record."""
    prov = dict(provenance)
    prov.update(
        engine="xdit",
        engine_version=package_version("xfuser") or prov.get("engine_version"),
        diffusers_version=package_version("diffusers"),
        transformers_version=package_version("transformers"),
        phases={**phases, **phase_windows(report)},
        load_format=config.get("load_format"),
        energy_source=energy_source,
        zeus_session_check=zeus_check,
        power_period_s=power_period_s if energy_source else None,
        # What the worker saw inside its environment (or container): the versions that really ran.
        worker=report.loaded,
    )
    timed = [b for b in report.timed if b.get("ok")]
    return RunRecord(
        status=outcome.status,
        reason=outcome.reason,
        config=config,
        config_hash=hashed_config(config),
        provenance=prov,
        notes=notes,
        foreign_processes=foreign,
        worker={
            "argv": worker_argv,
            "exit_code": exit_code,
            "log": "worker.log",
            "events": EVENTS_FILE,
            "error": report.error,
        },
        warmup=[
            {k: b.get(k) for k in ("batch_index", "batch_size", "t_start", "t_end", "ok", "peak_memory_gib")}
            for b in report.warmup
        ],
        timing=Timing(
            t0=min((b["t_start"] for b in timed), default=None),
            t_last_end=max((b["t_end"] for b in timed), default=None),
        ),
    )
