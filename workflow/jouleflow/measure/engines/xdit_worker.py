"""The batch-generation worker, one process per GPU under torchrun: xfuser pipeline -> timed batches.

    torchrun --standalone --nproc_per_node=N --module jouleflow.measure.engines.xdit_worker \\
        <xfuser options: --model ... --ulysses_degree ... --height ...> --jouleflow_spec spec.json

xfuser's own parser (xFuserArgs.add_cli_args) reads the engine and input options and
`create_config()` initialises the distributed groups; the spec (written by the parent) carries
the pipeline family, dtype, the batches of prompts, the number of warm-up batches and where rank
0 writes its events (protocol: jouleflow.measure.engines.xdit_protocol). Every batch is bracketed by a
CUDA synchronise and a barrier on all ranks, so its [t_start, t_end] covers every GPU's work.
torch and xfuser are imported in main() only: the module imports on machines without them.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SPEC_KEYS = ("pipeline", "dtype", "batches", "warmup_batches", "events_path", "output_type")


class SpecError(ValueError):
    """The worker spec is unusable; the message names the file and key."""


def load_spec(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the worker spec ({exc})") from exc
    missing = [k for k in SPEC_KEYS if k not in spec]
    if missing:
        raise SpecError(f"{path}: missing key(s) {', '.join(missing)}")
    batches = spec["batches"]
    if not batches or not all(
        isinstance(b, list) and b and all(isinstance(p, str) for p in b) for b in batches
    ):
        raise SpecError(f"{path}: batches must be a non-empty list of non-empty lists of prompts")
    return spec


def schedule(batches: list[list[str]], warmup_batches: int) -> Iterator[tuple[str, int, list[str]]]:
    """(phase, index, prompts): warm-up batches first (reusing the timed batches' prompts), then timed."""
    for i in range(warmup_batches):
        yield "warmup", i, batches[i % len(batches)]
    for i, prompts in enumerate(batches):
        yield "timed", i, prompts


def call_kwargs(
    pipeline: dict[str, Any], input_config: Any, prompts: list[str], output_type: str = "pil"
) -> dict[str, Any]:
    """Keyword arguments of one pipeline __call__ (the generator is added by the caller)."""
    kwargs: dict[str, Any] = {
        "prompt": list(prompts),
        "height": input_config.height,
        "width": input_config.width,
        "num_inference_steps": input_config.num_inference_steps,
        "guidance_scale": input_config.guidance_scale,
        "output_type": output_type,
    }
    if pipeline.get("frames_kwarg"):
        kwargs[pipeline["frames_kwarg"]] = input_config.num_frames
    if pipeline.get("resolution_binning"):
        kwargs["use_resolution_binning"] = input_config.use_resolution_binning
    kwargs.update(pipeline.get("call_kwargs") or {})
    return kwargs


def is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return "OutOfMemoryError" in text or "out of memory" in text.lower()


def _versions() -> dict[str, Any]:
    from importlib import metadata

    out: dict[str, Any] = {}
    for name in ("torch", "xfuser", "diffusers", "transformers", "yunchang", "flash-attn", "accelerate"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _attention_backends() -> dict[str, Any]:
    try:
        from xfuser.envs import PACKAGES_CHECKER

        info = PACKAGES_CHECKER.get_packages_info()
        return {k: info.get(k) for k in ("has_flash_attn", "has_long_ctx_attn", "has_aiter")}
    except Exception as exc:  # older/newer xfuser: record that it is unknown, never fail the run
        return {"unknown": str(exc)}


def main(argv: list[str] | None = None) -> int:
    t_process = time.time()
    import torch
    import xfuser
    from xfuser.config import FlexibleArgumentParser
    from xfuser.core.distributed import get_runtime_state, get_world_group

    from jouleflow.measure.engines.xdit_protocol import EventWriter

    parser = FlexibleArgumentParser(description="jouleflow xDiT batch worker")
    xfuser.xFuserArgs.add_cli_args(parser)
    parser.add_argument("--jouleflow_spec", required=True, help="worker spec JSON written by jouleflow")
    args = parser.parse_args(argv)
    spec = load_spec(args.jouleflow_spec)
    pipeline = spec["pipeline"]
    engine_args = xfuser.xFuserArgs.from_cli_args(args)
    engine_config, input_config = engine_args.create_config()  # initialises torch.distributed
    world = get_world_group()
    rank, local_rank = world.rank, world.local_rank
    writer = EventWriter(spec["events_path"]) if rank == 0 else None

    def emit(event: str, **fields: Any) -> None:
        if writer is not None:
            writer.write(event, **fields)

    def fail(phase: str, index: int | None, exc: BaseException) -> None:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        # Every rank says so in the shared log: a rank other than 0 may be the one that failed.
        print(f"[jouleflow xdit worker rank {rank}] {phase} failed: {text}", file=sys.stderr, flush=True)
        emit("error", phase=phase, batch_index=index, error=text, oom=is_oom(exc))

    emit("start", world_size=world.world_size, t_process=t_process)
    dtype = getattr(torch, spec["dtype"])
    engine_config.runtime_config.dtype = dtype
    try:
        cls = getattr(xfuser, pipeline["xfuser_class"])
        pipe = cls.from_pretrained(
            pretrained_model_name_or_path=engine_config.model_config.model,
            engine_config=engine_config,
            torch_dtype=dtype,
        ).to(f"cuda:{local_rank}")
    except BaseException as exc:
        fail("load", None, exc)
        raise
    with contextlib.suppress(Exception):  # per-step progress bars would flood worker.log
        pipe.set_progress_bar_config(disable=True)
    par = engine_config.parallel_config
    emit(
        "loaded",
        load_s=time.time() - t_process,
        versions=_versions(),
        cuda_runtime=torch.version.cuda,
        attention=_attention_backends(),
        device_name=torch.cuda.get_device_name(local_rank),
        dtype=spec["dtype"],
        pipeline_class=type(pipe).__name__,
        parallel={
            "world_size": par.world_size,
            "dp": par.dp_degree,
            "cfg": par.cfg_degree,
            "ulysses": par.ulysses_degree,
            "ring": par.ring_degree,
            "pipefusion": par.pp_degree,
            "tp": getattr(par, "tp_degree", 1),
        },
        parameter_memory_gib=torch.cuda.max_memory_allocated(local_rank) / 2**30,
    )

    for phase, index, prompts in schedule(spec["batches"], int(spec["warmup_batches"])):
        kwargs = call_kwargs(pipeline, input_config, prompts, spec["output_type"])
        torch.cuda.reset_peak_memory_stats(local_rank)
        torch.cuda.synchronize(local_rank)
        world.barrier()
        t_start = time.time()
        emit("batch_start", phase=phase, batch_index=index, batch_size=len(prompts), t_start=t_start)
        try:
            generator = torch.Generator(device="cuda").manual_seed(input_config.seed + index)
            pipe(generator=generator, **kwargs)
            torch.cuda.synchronize(local_rank)
        except BaseException as exc:
            emit(
                "batch", phase=phase, batch_index=index, batch_size=len(prompts), t_start=t_start,
                t_end=time.time(), ok=False, error=str(exc).strip()[:2000], oom=is_oom(exc),
            )  # fmt: skip
            fail(phase, index, exc)
            raise
        world.barrier()
        t_end = time.time()
        emit(
            "batch", phase=phase, batch_index=index, batch_size=len(prompts), t_start=t_start,
            t_end=t_end, ok=True, error=None,
            peak_memory_gib=torch.cuda.max_memory_allocated(local_rank) / 2**30,
        )  # fmt: skip

    emit("done")
    if writer is not None:
        writer.close()
    get_runtime_state().destroy_distributed_env()
    return 0


if __name__ == "__main__":
    sys.exit(main())
