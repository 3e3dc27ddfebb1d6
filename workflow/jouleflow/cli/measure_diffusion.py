"""`jouleflow measure diffusion`: one xDiT grid point (batches of prompts, power) into a run directory.

Every job-spec key of jouleflow.measure.diffusion_config has a flag; `--config job.yaml|json` gives a whole
spec and flags override it. jouleflow.cli.measure registers this with `register_diffusion(kinds)`.
Heavy modules are imported in the handler only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from jouleflow.cli.measure_args import (
    CONTAINER_FLAGS,
    OUT_HELP,
    duration,
    key_value,
    merge_job_spec,
    print_run_status,
    required_out,
)
from jouleflow.measure.engines.xdit import FAMILIES

_SECTIONS = {dest: ("container", key) for dest, key in CONTAINER_FLAGS.items()}


def register_diffusion(kinds: Any) -> None:
    """Add `diffusion` to the `jouleflow measure` sub-commands."""
    p = kinds.add_parser(
        "diffusion",
        help="one diffusion grid point (xDiT text-to-image / text-to-video batches)",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--config", help="job spec (YAML or JSON) with the keys below; flags override it")
    p.add_argument("-o", "--out", help=OUT_HELP)
    g = p.add_argument_group("model and pipeline")
    g.add_argument("--model", help="HF model id, e.g. PixArt-alpha/PixArt-Sigma-XL-2-1024-MS")
    g.add_argument("--model-path", help="local diffusers model dir (default: the HF id, from the HF cache)")
    g.add_argument("--task", choices=["text-to-image", "text-to-video"])
    g.add_argument("--pipeline", choices=sorted(FAMILIES), help="xDiT pipeline (default: from the model)")
    g.add_argument("--precision", choices=["bf16", "fp16", "fp32"])
    g.add_argument("--load-format", choices=["real", "dummy"], help="dummy: the model dir has random weights")
    g.add_argument("--gpu", help="GPU type label (default: from the GPU name)")
    g.add_argument("--num-gpus", type=int, help="default: the product of the parallel degrees")
    par = p.add_argument_group("xDiT parallelism (degrees multiply to num_gpus)")
    par.add_argument("--ulysses", "--ulysses-degree", dest="ulysses_degree", type=int)
    par.add_argument("--ring", "--ring-degree", dest="ring_degree", type=int)
    par.add_argument("--cfg-parallel", action=argparse.BooleanOptionalAction, help="CFG parallel (2 GPUs)")
    par.add_argument("--pipefusion", "--pipefusion-degree", dest="pipefusion_degree", type=int)
    gen = p.add_argument_group("generation")
    gen.add_argument("-b", "--batch-size", type=int, help="prompts per batch (B)")
    gen.add_argument("--num-batches", type=int, help="timed batches (default 10)")
    gen.add_argument("--num-prompts", type=int, help="N prompts = B x num_batches (instead of --num-batches)")
    gen.add_argument("--warmup-batches", type=int, help="untimed batches first (default 1)")
    gen.add_argument("--steps", type=int, help="denoising steps (default: the pipeline's)")
    gen.add_argument("--height", type=int)
    gen.add_argument("--width", type=int)
    gen.add_argument("--num-frames", type=int, help="frames per video (text-to-video)")
    gen.add_argument("--guidance-scale", type=float)
    gen.add_argument("--seed", type=int, help="batch i uses seed + i (default 0)")
    gen.add_argument("--prompts", help="prompt file: .txt, .jsonl, .json or .parquet (default: bundled)")
    gen.add_argument("--cycle-prompts", action="store_true", help="reuse prompts when the file is short")
    gen.add_argument("--output-type", choices=["pil", "pt", "np", "latent"])
    eng = p.add_argument_group("engine")
    eng.add_argument(
        "--xfuser-arg", dest="xfuser_args", action="append", help="one extra xfuser option (repeat)"
    )
    eng.add_argument(
        "--xfuser-args", dest="xfuser_args_str", help="extra xfuser options as one quoted string"
    )
    eng.add_argument("--env", dest="env_kv", type=key_value, action="append", help="KEY=VALUE (repeat)")
    eng.add_argument("--launcher", help="replaces 'torchrun ... --module <worker>'; {nproc} = world size")
    eng.add_argument("--container-runtime", choices=["apptainer", "singularity", "docker"])
    eng.add_argument("--container-image")
    eng.add_argument("--container-bind", action="append")
    eng.add_argument("--container-arg", action="append")
    eng.add_argument("--timeout", dest="timeout_s", type=duration, help="whole worker run (default 2h)")
    m = p.add_argument_group("measurement")
    m.add_argument("--power-period", dest="power_period_s", type=duration, help="default 100ms")
    m.add_argument("--no-energy", action="store_true", help="no power sensor: no energy numbers")
    m.add_argument("--print-config", action="store_true", help="print the effective config and exit")
    p.set_defaults(func=run_measure_diffusion)


def job_dict(args: argparse.Namespace) -> dict[str, Any]:
    """Merge the job spec file (if any) and the flags into one job-spec dict."""
    return merge_job_spec(vars(args), skip=set(), sections=_SECTIONS, extra_args="xfuser_args")


def effective(cfg: Any) -> dict[str, Any]:
    """The config with the pipeline's defaults resolved (what --print-config shows)."""
    from jouleflow.measure.diffusion_config import generation_record

    out = cfg.to_dict()
    out.update(
        pipeline=cfg.family().name,
        num_gpus=cfg.effective_num_gpus,
        parallelism=cfg.parallelism,
        **generation_record(cfg.generation(), cfg.timed_batches),
    )
    return out


def run_measure_diffusion(args: argparse.Namespace) -> int:
    from jouleflow.cli import CLIError
    from jouleflow.measure.diffusion_config import config_from_dict
    from jouleflow.measure.jobconfig import ConfigError

    try:
        cfg = config_from_dict(job_dict(args), source=getattr(args, "config", "command line"))
    except ConfigError as exc:
        raise CLIError(str(exc)) from exc
    if getattr(args, "print_config", False):
        json.dump(effective(cfg), sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    out = required_out(args)
    from jouleflow.measure.diffusion_session import (
        DiffusionSessionError,
        DiffusionSessionFailed,
        run_diffusion_session,
    )
    from jouleflow.measure.gpualloc import GpuAllocationError
    from jouleflow.traces import RunExistsError

    try:
        run_dir = run_diffusion_session(cfg, out)
    except (DiffusionSessionError, GpuAllocationError, RunExistsError) as exc:
        raise CLIError(str(exc)) from exc
    except DiffusionSessionFailed as exc:
        print(f"jouleflow measure diffusion: run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"jouleflow measure diffusion: {exc or 'interrupted'}; nothing written", file=sys.stderr)
        return 130 if type(exc) is KeyboardInterrupt else 143
    print_run_status(run_dir)
    return 0
