"""Run an engine command inside a container (apptainer/singularity or docker), as ML.ENERGY does.

The model directory and the HF cache are bound at the same paths, the job's GPUs are passed
through (`--nv` plus CUDA_VISIBLE_DEVICES for apptainer; `--gpus device=...` for docker, which
renumbers them from 0 inside), and the job's env is set explicitly. Docker's client process is
not the server: teardown must `docker stop` the named container (`stop_argv`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class ContainerCommand:
    argv: list[str]
    stop_argv: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)  # env for the client process itself


def _bind_args(flag: str, binds: Sequence[str]) -> list[str]:
    out: list[str] = []
    for b in binds:
        out += [flag, b]
    return out


def wrap(
    argv: Sequence[str],
    *,
    runtime: str,
    image: str,
    env: Mapping[str, str],
    model_dir: str | None = None,
    hf_cache: str | None = None,
    binds: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    gpu_ids: Sequence[str] | None = None,
    name: str = "jouleflow-engine",
) -> ContainerCommand:
    """Wrap `argv` (e.g. `vllm serve ...`) for `runtime`. `gpu_ids` are host GPU ids (CUDA_VISIBLE_DEVICES)."""
    if not image:
        raise ValueError("container.image: an image is required")
    all_binds = [f"{p}:{p}" for p in (model_dir, hf_cache) if p] + list(binds)
    if runtime in ("apptainer", "singularity"):
        cmd = [runtime, "exec", "--nv", *_bind_args("--bind", all_binds)]
        child_env: dict[str, str] = {}
        for k, v in env.items():
            cmd += ["--env", f"{k}={v}"]
        if gpu_ids is not None:
            # --nv exposes all GPUs; CUDA inside the container honours the inherited variable.
            child_env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
        if hf_cache:
            cmd += ["--env", f"HF_HOME={hf_cache}"]
        cmd += [*extra_args, image, *argv]
        return ContainerCommand(argv=cmd, env=child_env)
    if runtime == "docker":
        gpus = "all" if gpu_ids is None else f"device={','.join(gpu_ids)}"
        cmd = [
            "docker",
            "run",
            "--rm",
            "--name",
            name,
            "--gpus",
            gpus,
            "--ipc=host",  # NCCL and PyTorch shared memory
            "--network=host",  # the server's port on the host's loopback, as without a container
            *_bind_args("-v", all_binds),
        ]
        for k, v in env.items():
            cmd += ["-e", f"{k}={v}"]
        if hf_cache:
            cmd += ["-e", f"HF_HOME={hf_cache}"]
        cmd += [*extra_args, "--entrypoint", argv[0], image, *argv[1:]]
        return ContainerCommand(argv=cmd, stop_argv=["docker", "stop", "-t", "30", name])
    raise ValueError(f"container.runtime: unknown runtime {runtime!r} (apptainer, singularity, docker)")


def visible_gpu_ids(count: int) -> list[str]:
    """The host ids of the first `count` GPUs this job may use (CUDA_VISIBLE_DEVICES, else 0..count-1)."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd:
        ids = [x.strip() for x in cvd.split(",") if x.strip()]
        return ids[:count]
    return [str(i) for i in range(count)]


def default_hf_cache() -> str:
    return os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
