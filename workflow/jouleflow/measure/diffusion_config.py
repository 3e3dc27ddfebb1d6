"""The configuration of one diffusion measurement (one grid point): xDiT pipeline, batches, parallelism.

A job spec (YAML/JSON) uses exactly these field names; unknown keys are rejected by name, and
every error names its key. Precedence when the CLI builds a config: defaults < `--config` file
< explicit flags. Fields left null are resolved from the pipeline family (steps, size, frames,
guidance) so that run.json always records the values that actually ran.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jouleflow.diffusion_pipelines import GENERATION_KEYS
from jouleflow.measure.engines.xdit import (
    Generation,
    ParallelDegrees,
    PipelineFamily,
    XDiTConfigError,
    check_extra_args,
    detect_family,
    family_by_name,
)
from jouleflow.measure.jobconfig import (
    CONTAINER_RUNTIMES,
    ConfigError,
    ContainerConfig,
    build_job_config,
    is_pos_int,
)

TASKS = {"text-to-image": "image", "text-to-video": "video"}
PRECISIONS = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
OUTPUT_TYPES = ("pil", "pt", "np", "latent")
LOAD_FORMATS = ("real", "dummy")
# Written into a model dir by benchmarks/xdit_dummy_model.py: its weights are random.
DUMMY_MARKER = "jouleflow_dummy.json"


@dataclass
class DiffusionJobConfig:
    model: str  # HF id, e.g. PixArt-alpha/PixArt-Sigma-XL-2-1024-MS
    batch_size: int  # prompts per pipeline call (B of eq. 1)
    model_path: str | None = None  # local diffusers dir; null = the HF id (HF cache)
    task: str = "text-to-image"
    pipeline: str | None = None  # xDiT pipeline family (engines.xdit.FAMILIES); null = detected
    gpu: str | None = None  # GPU type label (H100); null = derived from the GPU name at run time
    num_gpus: int | None = None  # null = the product of the parallel degrees
    ulysses_degree: int = 1
    ring_degree: int = 1
    cfg_parallel: bool = False
    pipefusion_degree: int = 1
    steps: int | None = None  # denoising steps; null = the family's default
    height: int | None = None
    width: int | None = None
    num_frames: int | None = None  # text-to-video only
    guidance_scale: float | None = None  # null = the pipeline's default
    seed: int = 0  # batch i uses seed + i
    precision: str = "bf16"
    load_format: str = "real"  # "dummy": random weights of the real architecture (a label; see docs)
    num_batches: int | None = None  # timed batches; null = num_prompts / batch_size, else 10
    num_prompts: int | None = None  # alternative to num_batches (must be a multiple of batch_size)
    warmup_batches: int = 1  # untimed batches first (same shapes; kernels, allocator, autotuning)
    prompts: str | None = None  # prompt file (.txt, .jsonl, .json, .parquet); null = bundled set
    cycle_prompts: bool = False  # reuse the prompts when the file has fewer than needed
    output_type: str = "pil"  # decoded images/frames, as a user gets them (VAE decode measured)
    xfuser_args: list[str] = field(default_factory=list)  # extra xfuser options (not the owned ones)
    env: dict[str, str] = field(default_factory=dict)
    launcher: list[str] | None = None  # replaces `torchrun ... --module <worker>`; "{nproc}" = world size
    container: ContainerConfig | None = None
    timeout_s: float = 7200.0  # whole worker run: load + warm-up + batches
    power_period_s: float = 0.1
    # Pipeline bookkeeping, not a measured setting: the run this point was scheduled after.
    after: str | None = None
    no_energy: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # --- derived -------------------------------------------------------------------------------
    @property
    def degrees(self) -> ParallelDegrees:
        return ParallelDegrees(
            self.ulysses_degree, self.ring_degree, self.cfg_parallel, self.pipefusion_degree
        )

    @property
    def effective_num_gpus(self) -> int:
        return self.num_gpus if self.num_gpus is not None else self.degrees.world_size

    @property
    def parallelism(self) -> str:
        return self.degrees.label()

    @property
    def dtype(self) -> str:
        return PRECISIONS[self.precision]

    @property
    def modality(self) -> str:
        return TASKS[self.task]

    def family(self) -> PipelineFamily:
        if self.pipeline is not None:
            return family_by_name(self.pipeline)
        return detect_family(self.model, self.model_path)

    def generation(self) -> Generation:
        """Steps, size, frames and guidance with the family's defaults filled in
        (PipelineFamily.generation_defaults: the run guard compares with the same ones)."""
        fam = self.family()
        defaults = fam.generation_defaults()
        values = {k: defaults[k] if getattr(self, k) is None else getattr(self, k) for k in GENERATION_KEYS}
        return Generation(
            steps=values["steps"],
            height=values["height"],
            width=values["width"],
            guidance_scale=float(values["guidance_scale"]),
            seed=self.seed,
            num_frames=values["num_frames"] if fam.modality == "video" else None,
        )

    @property
    def timed_batches(self) -> int:
        if self.num_batches is not None:
            return self.num_batches
        if self.num_prompts is not None:
            return self.num_prompts // self.batch_size
        return 10

    # --- validation ----------------------------------------------------------------------------
    def validate(self) -> None:
        def need(cond: bool, key: str, msg: str) -> None:
            if not cond:
                raise ConfigError(f"{key}: {msg}")

        need(isinstance(self.model, str) and bool(self.model), "model", "must be a non-empty string")
        need(self.task in TASKS, "task", f"must be one of {tuple(TASKS)}, got {self.task!r}")
        for key in ("batch_size", "ulysses_degree", "ring_degree", "pipefusion_degree"):
            need(
                is_pos_int(getattr(self, key)), key, f"must be a positive integer, got {getattr(self, key)!r}"
            )
        for key in ("num_gpus", "steps", "height", "width", "num_frames", "num_batches", "num_prompts"):
            value = getattr(self, key)
            need(value is None or is_pos_int(value), key, f"must be a positive integer, got {value!r}")
        need(
            isinstance(self.warmup_batches, int) and self.warmup_batches >= 0,
            "warmup_batches",
            f"must be an integer >= 0, got {self.warmup_batches!r}",
        )
        need(
            isinstance(self.seed, int) and self.seed >= 0,
            "seed",
            f"must be an integer >= 0, got {self.seed!r}",
        )
        if self.num_prompts is not None:
            need(
                self.num_prompts % self.batch_size == 0,
                "num_prompts",
                f"{self.num_prompts} is not a multiple of batch_size {self.batch_size} (every batch has B prompts)",
            )
            need(
                self.num_batches is None or self.num_batches * self.batch_size == self.num_prompts,
                "num_batches",
                f"{self.num_batches} x batch_size {self.batch_size} != num_prompts {self.num_prompts}",
            )
        need(
            self.precision in PRECISIONS,
            "precision",
            f"must be one of {tuple(PRECISIONS)}, got {self.precision!r}",
        )
        need(self.output_type in OUTPUT_TYPES, "output_type", f"must be one of {OUTPUT_TYPES}")
        need(self.load_format in LOAD_FORMATS, "load_format", f"must be one of {LOAD_FORMATS}")
        need(
            self.load_format == "dummy"
            or not self.model_path
            or not (Path(self.model_path) / DUMMY_MARKER).is_file(),
            "load_format",
            f"{self.model_path} holds random weights ({DUMMY_MARKER}): set load_format to dummy",
        )
        need(
            self.guidance_scale is None or isinstance(self.guidance_scale, (int, float)),
            "guidance_scale",
            f"must be a number, got {self.guidance_scale!r}",
        )
        need(isinstance(self.cfg_parallel, bool), "cfg_parallel", "must be true or false")
        for key in ("timeout_s", "power_period_s"):
            value = getattr(self, key)
            need(isinstance(value, (int, float)) and value > 0, key, "must be > 0")
        need(isinstance(self.env, dict), "env", "must be a mapping of strings")
        self.env = {str(k): str(v) for k, v in self.env.items()}
        need(
            isinstance(self.xfuser_args, list) and all(isinstance(a, str) for a in self.xfuser_args),
            "xfuser_args",
            "must be a list of strings",
        )
        if self.launcher is not None:
            need(
                isinstance(self.launcher, list)
                and bool(self.launcher)
                and all(isinstance(a, str) for a in self.launcher),
                "launcher",
                "must be a non-empty list of strings",
            )
        if self.container is not None:
            need(
                self.container.runtime in CONTAINER_RUNTIMES,
                "container.runtime",
                f"must be one of {CONTAINER_RUNTIMES}, got {self.container.runtime!r}",
            )
            need(bool(self.container.image), "container.image", "an image is required")
        try:
            check_extra_args(self.xfuser_args)
            fam = self.family()
            self.degrees.validate(self.effective_num_gpus, fam)
        except XDiTConfigError as exc:
            raise ConfigError(str(exc)) from exc
        need(
            fam.modality == self.modality,
            "task",
            f"{self.task} needs a {self.modality} pipeline; {self.model!r} is xDiT's {fam.name} ({fam.modality})",
        )
        need(
            self.num_frames is None or fam.modality == "video",
            "num_frames",
            f"only text-to-video takes frames ({fam.name} makes images)",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_from_dict(data: dict[str, Any], source: str = "config") -> DiffusionJobConfig:
    """Build a config from a mapping, naming unknown/missing keys (and `source`, e.g. the file) in errors."""
    return build_job_config(DiffusionJobConfig, data, source, {"container": ContainerConfig})


def generation_record(gen: Generation, num_batches: int) -> dict[str, Any]:
    """Generation settings as recorded in --print-config and run.json (defaults resolved)."""
    return {
        "steps": gen.steps,
        "height": gen.height,
        "width": gen.width,
        "num_frames": gen.num_frames,
        "guidance_scale": gen.guidance_scale,
        "num_batches": num_batches,
    }
