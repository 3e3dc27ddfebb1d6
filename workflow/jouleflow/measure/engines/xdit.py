"""xDiT (xfuser) engine: pipeline family detection, parallel degrees and the batch worker's launch command.

A diffusion measurement runs `jouleflow.measure.engines.xdit_worker` under `torchrun` (xDiT needs a
distributed launch even on one GPU): one process per GPU, world size = Ulysses x ring x CFG x
PipeFusion degree. Everything here is plain data and argument lists, so it imports without
torch or xfuser and is tested on any machine; the worker is the only module that imports them.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jouleflow
from jouleflow.diffusion_pipelines import FAMILIES, PipelineFamily  # the families: a shared fact

# The worker's module; the default launcher runs it with `torchrun --module`.
WORKER_MODULE = "jouleflow.measure.engines.xdit_worker"
# `{nproc}` in a launcher item is replaced by the world size. `--standalone` picks a free rendezvous
# port, so two jobs on one host never collide. torchrun starts each rank in a session of its own:
# base.ServerProcess's supervisor (a child subreaper) still reaches them, also if jouleflow dies.
TORCHRUN_ARGS = ("--standalone", "--nproc_per_node={nproc}", "--module", WORKER_MODULE)
# The worker's own option, next to xfuser's (FlexibleArgumentParser turns dashes into underscores).
SPEC_OPTION = "--jouleflow_spec"


# xfuser options the config owns: an extra argument may not set them (argparse's last value would win
# silently and run.json would record something else).
OWNED_OPTIONS = {
    "--model": "model",
    "--ulysses_degree": "ulysses_degree",
    "--ring_degree": "ring_degree",
    "--use_cfg_parallel": "cfg_parallel",
    "--pipefusion_parallel_degree": "pipefusion_degree",
    "--data_parallel_degree": "num_gpus (data parallelism is not measured as one job)",
    "--tensor_parallel_degree": "num_gpus (tensor parallelism is not measured as one job)",
    "--height": "height",
    "--width": "width",
    "--num_inference_steps": "steps",
    "--guidance_scale": "guidance_scale",
    "--seed": "seed",
    "--num_frames": "num_frames",
    "--prompt": "prompts",
}


class XDiTConfigError(ValueError):
    """The diffusion job cannot run as configured; the message names the key."""


def _read_class_name(index_file: Path) -> str | None:
    try:
        data = json.loads(index_file.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    name = data.get("_class_name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def _cached_model_index(model: str) -> Path | None:
    """model_index.json of an HF id from the local HF cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(model, "model_index.json")
    except Exception:  # an id that is not a valid repo name: nothing cached
        return None
    return Path(found) if isinstance(found, str) else None


def detect_family(model: str, model_path: str | None = None) -> PipelineFamily:
    """The pipeline family from model_index.json (local dir, else HF cache), else from the HF id."""
    by_class = {f.diffusers_class: f for f in FAMILIES.values()}
    index = Path(model_path) / "model_index.json" if model_path else _cached_model_index(model)
    class_name = _read_class_name(index) if index is not None and index.is_file() else None
    if class_name is not None:
        if class_name in by_class:
            return by_class[class_name]
        raise XDiTConfigError(
            f"pipeline: {index} names {class_name!r}, which xfuser 0.4.5 does not wrap "
            f"(supported: {', '.join(sorted(by_class))})"
        )
    lowered = model.lower()
    for family in FAMILIES.values():
        if any(re.search(p, lowered) for p in family.model_patterns):
            return family
    raise XDiTConfigError(
        f"pipeline: cannot tell the xDiT pipeline of model {model!r} (no model_index.json found); "
        f"set pipeline to one of {', '.join(FAMILIES)}"
    )


def family_by_name(name: str) -> PipelineFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise XDiTConfigError(f"pipeline: unknown {name!r} (one of {', '.join(FAMILIES)})") from None


@dataclass(frozen=True)
class ParallelDegrees:
    """xDiT's hybrid parallelism for one job; the world size is their product."""

    ulysses: int = 1
    ring: int = 1
    cfg_parallel: bool = False  # splits the conditional/unconditional batch over 2 GPUs
    pipefusion: int = 1

    @property
    def cfg_degree(self) -> int:
        return 2 if self.cfg_parallel else 1

    @property
    def world_size(self) -> int:
        return self.ulysses * self.ring * self.cfg_degree * self.pipefusion

    def label(self) -> str:
        """ "uly2-ring1" as in ML.ENERGY's runs, then "-cfg2" / "-pf2" when used."""
        parts = [f"uly{self.ulysses}", f"ring{self.ring}"]
        if self.cfg_parallel:
            parts.append("cfg2")
        if self.pipefusion > 1:
            parts.append(f"pf{self.pipefusion}")
        return "-".join(parts)

    def describe(self) -> str:
        return (
            f"ulysses {self.ulysses} x ring {self.ring} x cfg {self.cfg_degree} x "
            f"pipefusion {self.pipefusion} = {self.world_size}"
        )

    def validate(self, num_gpus: int, family: PipelineFamily | None = None) -> None:
        for key, value in (("ulysses_degree", self.ulysses), ("ring_degree", self.ring)):
            if not _pos_int(value):
                raise XDiTConfigError(f"{key}: must be a positive integer, got {value!r}")
        if not _pos_int(self.pipefusion):
            raise XDiTConfigError(f"pipefusion_degree: must be a positive integer, got {self.pipefusion!r}")
        if self.world_size != num_gpus:
            raise XDiTConfigError(
                f"num_gpus: the parallel degrees multiply to {self.describe()} GPUs, "
                f"but num_gpus is {num_gpus}"
            )
        if family is None:
            return
        if self.cfg_parallel and not family.cfg_parallel:
            raise XDiTConfigError(f"cfg_parallel: xDiT's {family.name} pipeline has no CFG parallelism")
        if self.ulysses * self.ring > 1 and not family.sequence_parallel:
            raise XDiTConfigError(
                f"ulysses_degree/ring_degree: xDiT's {family.name} pipeline has no sequence parallelism"
            )
        if self.pipefusion > 1 and not family.pipefusion:
            raise XDiTConfigError(f"pipefusion_degree: xDiT's {family.name} pipeline has no PipeFusion")


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def check_extra_args(args: Sequence[str]) -> None:
    """Extra xfuser arguments may not set what the config owns (model, degrees, sizes, steps...)."""
    for arg in args:
        if not isinstance(arg, str):
            raise XDiTConfigError(f"xfuser_args: every item must be a string, got {arg!r}")
        option = "--" + arg.split("=", 1)[0][2:].replace("-", "_") if arg.startswith("--") else None
        if option in OWNED_OPTIONS:
            raise XDiTConfigError(
                f"xfuser_args: {arg!r} is set by the config key {OWNED_OPTIONS[option]}, not by extra arguments"
            )


@dataclass(frozen=True)
class Generation:
    """What every batch generates (xfuser's input options)."""

    steps: int
    height: int
    width: int
    guidance_scale: float
    seed: int = 0
    num_frames: int | None = None  # video only


def xfuser_args(
    model: str, degrees: ParallelDegrees, gen: Generation, extra: Sequence[str] = ()
) -> list[str]:
    """The options xfuser's own parser (xFuserArgs.add_cli_args) reads in the worker."""
    args = [
        f"--model={model}",
        f"--ulysses_degree={degrees.ulysses}",
        f"--ring_degree={degrees.ring}",
        f"--pipefusion_parallel_degree={degrees.pipefusion}",
        f"--height={gen.height}",
        f"--width={gen.width}",
        f"--num_inference_steps={gen.steps}",
        f"--guidance_scale={gen.guidance_scale!r}",
        f"--seed={gen.seed}",
    ]
    if degrees.cfg_parallel:
        args.append("--use_cfg_parallel")
    if gen.num_frames is not None:
        args.append(f"--num_frames={gen.num_frames}")
    return args + list(extra)


def default_launcher(in_container: bool) -> list[str]:
    """torchrun from this interpreter (the xdit environment; no PATH lookup), or the image's torchrun."""
    head = ["torchrun"] if in_container else [sys.executable, "-m", "torch.distributed.run"]
    return [*head, *TORCHRUN_ARGS]


def worker_argv(
    launcher: Sequence[str] | None,
    world_size: int,
    xfuser: Sequence[str],
    spec_path: str | Path,
    in_container: bool = False,
) -> list[str]:
    """`torchrun ... --module jouleflow.measure.engines.xdit_worker <xfuser options> --jouleflow_spec FILE`."""
    template = list(launcher) if launcher else default_launcher(in_container)
    head = [item.replace("{nproc}", str(world_size)) for item in template]
    return [*head, *xfuser, f"{SPEC_OPTION}={spec_path}"]


def worker_env(extra: Mapping[str, str]) -> dict[str, str]:
    """Environment added for the worker: unbuffered output (the log shows progress as it happens)."""
    return {"PYTHONUNBUFFERED": "1", **extra}


def package_root() -> str:
    """The directory holding the `jouleflow` package (bound into a container and put on PYTHONPATH)."""
    return str(Path(jouleflow.__file__).resolve().parent.parent)


def in_container(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    runtime: str,
    image: str,
    model_path: str | None,
    binds: Sequence[str],
    extra_args: Sequence[str],
    num_gpus: int,
    run_dir: str,
    name: str,
) -> tuple[list[str], list[str] | None, dict[str, str]]:
    """Wrap the worker for apptainer/singularity/docker (engines.container): argv, stop argv, client env.

    The checkout's package dir and the run directory are bound at the same paths, so the image
    needs xfuser but not jouleflow; PYTHONPATH points the worker at the bound package.
    """
    from jouleflow.measure.engines import container

    root = package_root()
    inner_env = {**env, "PYTHONPATH": root}
    wrapped = container.wrap(
        list(argv),
        runtime=runtime,
        image=image,
        env=inner_env,
        model_dir=model_path,
        hf_cache=container.default_hf_cache(),
        binds=[f"{root}:{root}", f"{run_dir}:{run_dir}", *binds],
        extra_args=list(extra_args),
        gpu_ids=container.visible_gpu_ids(num_gpus),
        name=name,
    )
    return wrapped.argv, wrapped.stop_argv, dict(wrapped.env)


def container_name(pid: int | None = None) -> str:
    return f"jouleflow-xdit-{pid or os.getpid()}"
