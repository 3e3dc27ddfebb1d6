"""A grid point's job spec (what `jouleflow measure llm --config` reads), the spec values that
define a measurement, and the scheduler resources of its job. Stdlib + records and diffusion_pipelines
(parsed per Snakemake run).

The spec file's record and the keys that define a measurement (IDENTITY_KEYS, MEASURED_KEYS,
OPTIONAL_MEASURED_KEYS) are records.JobSpec's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jouleflow.diffusion_pipelines import FAMILIES, GENERATION_KEYS, generation_defaults
from jouleflow.plan.gpurequest import gpu_request
from jouleflow.records import IDENTITY_KEYS, MEASURED_KEYS

if TYPE_CHECKING:
    from jouleflow.plan.grid import GridPoint

# An hf request set's keys in a job spec (`hf_request_set`; measure.hfsource.HFSource's).
HF_SPEC_KEYS = (
    "repo", "revision", "split", "config", "data_files", "fields", "seed", "max_tokens", "fixed_output_len",
)  # fmt: skip

# Scheduler resources that grow with the attempt number: a retried job (after a timeout or running
# out of memory) gets base × attempt.
ATTEMPT_SCALED = ("runtime", "mem_mb")


def resources(config: Mapping[str, Any], point: GridPoint, attempt: int = 1) -> dict[str, Any]:
    """A measurement job's Snakemake resources: the GPU request in the cluster's style
    (gpurequest: `gpu` + `gpu_model`, or `gres`, never both), CPUs, memory (MB) and time (min)."""
    meas = config["measurement"]
    model = config["models"][point.model]
    base = {
        "runtime": model.get("runtime_min") or meas["runtime_min"],
        "mem_mb": model.get("mem_mb") or meas["mem_mb"],
    }
    return {
        **gpu_request(point.num_gpus, point.gpu, config.get("slurm")),
        **{key: base[key] * attempt for key in ATTEMPT_SCALED},
        "cpus_per_task": meas["cpus_per_task"],
    }


def job_spec(config: Mapping[str, Any], point: GridPoint) -> dict[str, Any]:
    """The job spec of `jouleflow measure <kind> --config`: exactly that command's keys."""
    if point.modality == "diffusion":
        return diffusion_spec(config, point)
    return llm_spec(config, point)


def llm_spec(config: Mapping[str, Any], point: GridPoint) -> dict[str, Any]:
    """`jouleflow measure llm --config` (llmconfig.LLMJobConfig's keys, nothing else)."""
    model, task, meas = config["models"][point.model], config["tasks"][point.task], config["measurement"]
    par = point.parallelism
    fields = _template_fields(point)
    rs = task["request_set"]
    synthetic = rs["kind"] != "hf"  # an hf set's lengths are in its own section
    server_args = [*meas["server_args"], *model["server_args"], *multimodal_args(model.get("multimodal"))]
    sampling = dict(task["sampling"])
    extra_body = sampling.pop("extra_body", {})
    spec = {
        "task": point.task,
        "model": point.model,
        "model_path": _fill(model.get("path"), fields),
        "engine": model.get("engine") or "vllm",
        "gpu": point.gpu,
        "num_gpus": point.num_gpus,
        "batch_size": point.batch_size,
        "tensor_parallel": par.tensor,
        "pipeline_parallel": par.pipeline,
        "data_parallel": par.data,
        "expert_parallel": par.expert,
        "precision": point.precision,
        # Another precision than the checkpoint's: vLLM quantizes online.
        "quantization": None if point.precision == point.native_precision else point.precision,
        "load_format": model["load_format"],
        "max_model_len": model.get("max_model_len"),
        "server_args": server_args,
        "env": {**meas["env"], **model["env"]},
        "num_requests": num_requests(task, point.batch_size),
        "request_set": _fill(rs.get("path"), fields) if rs["kind"] == "parquet" else None,
        "synthetic": {
            "output_lengths": _fill(rs.get("output_lengths"), fields) if synthetic else None,
            "fixed_output_len": rs.get("fixed_output_len") if synthetic else None,
            "prompt_len": rs["prompt_len"],
            "seed": rs["seed"],
        },
        "endpoint": task.get("endpoint") or "chat",
        "sampling": sampling,
        "extra_body": extra_body,
        "request_timeout_s": meas["request_timeout_s"],
        "health_timeout_s": meas["health_timeout_s"],
        "power_period_s": meas["power_period_s"],
        **_engine_settings(meas, engine=model.get("engine") or "vllm"),
        # Only where set: the specs of configs without them stay as they were.
        **{k: meas[k] for k in ("latent_period_s", "idle_baseline_s") if meas.get(k) is not None},
    }
    if model.get("launcher"):
        spec["launcher"] = list(model["launcher"])  # only then: other specs stay as they were
    if synthetic and rs.get("media"):
        spec["synthetic"]["media"] = dict(rs["media"])  # only then: text specs stay as they were
    if rs["kind"] == "hf":
        # Only then: the specs of synthetic and parquet request sets stay as they were.
        spec["hf_request_set"] = {
            **{key: rs.get(key) for key in HF_SPEC_KEYS},
            "output_lengths": _fill(rs.get("output_lengths"), fields),
        }
    load = effective_load(config, point.task)
    if load.pop("arrival", "burst") == "saturate":
        # Only then: specs (and the run rules' params) of burst campaigns stay as they were.
        spec.update(arrival="saturate", saturate=load)
    return spec


def effective_load(config: Mapping[str, Any], task: str) -> dict[str, Any]:
    """How a task's LLM requests arrive: measurement.load with tasks.<task>.load's keys over it
    (the task's win), a new dict. The one home of the merge: a task without a load of its own gets
    measurement.load as it is, so its specs stay as they were."""
    return {**(config["measurement"].get("load") or {}), **(config["tasks"][task].get("load") or {})}


# models.<id>.multimodal keys -> vLLM's flag (each value passed as JSON).
MULTIMODAL_FLAGS = {
    "limit_mm_per_prompt": "--limit-mm-per-prompt",
    "mm_processor_kwargs": "--mm-processor-kwargs",
    "media_io_kwargs": "--media-io-kwargs",
    "mm_processor_cache_gb": "--mm-processor-cache-gb",
}


def multimodal_args(mm: Mapping[str, Any] | None) -> list[str]:
    """vLLM's multimodal preprocessing flags of a model's `multimodal:` section (max_pixels goes into
    --mm-processor-kwargs, where the Qwen-VL image processors read it)."""
    if not mm:
        return []
    mm = dict(mm)
    if mm.get("max_pixels") is not None:
        mm["mm_processor_kwargs"] = {
            **(mm.get("mm_processor_kwargs") or {}),
            "max_pixels": mm.pop("max_pixels"),
        }
    out: list[str] = []
    for key, flag in MULTIMODAL_FLAGS.items():
        if mm.get(key) is not None:
            out += [flag, json.dumps(mm[key], sort_keys=True)]
    return out


def _engine_settings(meas: Mapping[str, Any], engine: str) -> dict[str, Any]:
    """engine_cache_dir (any engine) and cudagraph_max_capture (vLLM), only where set."""
    out = {}
    if meas.get("engine_cache_dir") is not None:
        out["engine_cache_dir"] = meas["engine_cache_dir"]
    if meas.get("cudagraph_max_capture") is not None and engine == "vllm":
        out["cudagraph_max_capture"] = meas["cudagraph_max_capture"]
    return out


def num_requests(task: Mapping[str, Any], batch_size: int) -> int:
    """N: the task's num_requests, raised to requests_per_batch x B where that is set. With all N
    submitted at once, the server runs B requests until fewer than B are left: about
    (N / B - 1) mean response times, whatever the GPU's speed."""
    per_batch = task.get("requests_per_batch")
    return max(task["num_requests"], per_batch * batch_size) if per_batch else task["num_requests"]


def diffusion_spec(config: Mapping[str, Any], point: GridPoint) -> dict[str, Any]:
    """`jouleflow measure diffusion --config` (diffusion_config.DiffusionJobConfig's keys)."""
    model, task, meas = config["models"][point.model], config["tasks"][point.task], config["measurement"]
    gen = task["generation"]
    par = point.parallelism
    fields = _template_fields(point)
    spec = {
        "task": point.task,
        "model": point.model,
        "model_path": _fill(model.get("path"), fields),
        "pipeline": model.get("pipeline"),
        "gpu": point.gpu,
        "num_gpus": point.num_gpus,
        "batch_size": point.batch_size,
        "ulysses_degree": par.ulysses,
        "ring_degree": par.ring,
        "cfg_parallel": par.cfg == 2,
        "pipefusion_degree": par.pipefusion,
        "precision": point.precision,
        "load_format": model["load_format"],
        "steps": gen.get("steps"),
        "height": gen.get("height"),
        "width": gen.get("width"),
        "num_frames": gen.get("num_frames"),
        "guidance_scale": gen.get("guidance_scale"),
        "seed": gen["seed"],
        "num_batches": gen["num_batches"],
        "warmup_batches": gen["warmup_batches"],
        "prompts": _fill(gen.get("prompts"), fields),
        "cycle_prompts": gen["cycle_prompts"],
        "xfuser_args": [*meas["xfuser_args"], *model["server_args"]],
        "env": {**meas["env"], **model["env"]},
        "timeout_s": meas["health_timeout_s"] + meas["request_timeout_s"],
        "power_period_s": meas["power_period_s"],
    }
    if model.get("launcher"):
        # Replaces `torchrun ... --module <worker>` ({nproc}: the world size); only then, so other
        # specs stay as they were. Not a measured setting.
        spec["launcher"] = list(model["launcher"])
    return spec


def identity_of(spec: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The spec values whose change must not go unnoticed (a params rerun trigger of the run rules).

    A diffusion spec's generation value that equals the default of the family the spec names is
    null here, as when the config leaves it unset: naming the default reruns nothing (the run guard
    compares a finished run with the same defaults, diffusion_pipelines.generation_defaults)."""
    keys = IDENTITY_KEYS if source == "reference" else MEASURED_KEYS
    identity = {k: spec[k] for k in keys if k in spec}
    family = identity.get("pipeline")
    if isinstance(family, str) and family in FAMILIES:
        defaults = generation_defaults(family)
        for key in GENERATION_KEYS:
            if identity.get(key) is not None and identity[key] == defaults[key]:
                identity[key] = None
    return identity


TEMPLATE_FIELDS = ("task", "model", "model_file", "model_slug", "gpu", "num_gpus", "batch_size")


def template_error(value: Any) -> str | None:
    """Why a path template cannot be filled (an unknown {placeholder}), or None."""
    if not isinstance(value, str):
        return None
    try:
        value.format_map(dict.fromkeys(TEMPLATE_FIELDS, "x"))
    except KeyError as exc:
        return f"unknown placeholder {{{exc.args[0]}}} (known: {', '.join(TEMPLATE_FIELDS)})"
    except (ValueError, IndexError) as exc:
        return f"not a valid path template ({exc})"
    return None


def request_files(config: Mapping[str, Any], point: GridPoint) -> dict[str, str]:
    """Files the point's measurement will read, by config key (checked before anything runs)."""
    task = config["tasks"][point.task]
    fields = _template_fields(point)
    if point.modality == "diffusion":
        prompts = task["generation"].get("prompts")
        return {f"tasks.{point.task}.generation.prompts": _fill(prompts, fields)} if prompts else {}
    rs = task["request_set"]
    key = f"tasks.{point.task}.request_set"
    if rs["kind"] == "parquet":
        return {f"{key}.path": _fill(rs["path"], fields)}
    if rs.get("output_lengths"):
        return {f"{key}.output_lengths": _fill(rs["output_lengths"], fields)}
    return {}


def _template_fields(point: GridPoint) -> dict[str, str]:
    return {
        "task": point.task,
        "model": point.model,
        "model_file": point.model.replace("/", "__"),  # ML.ENERGY v3's file naming
        "model_slug": point.model_slug,
        "gpu": point.gpu,
        "num_gpus": str(point.num_gpus),
        "batch_size": str(point.batch_size),
    }


def _fill(value: Any, fields: Mapping[str, str]) -> Any:
    if isinstance(value, str) and "{" in value:
        return value.format_map(fields)
    return value
