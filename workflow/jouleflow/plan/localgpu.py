"""`gpus: [local]` in a sweep: the type of this machine's GPUs, detected when the workflow is planned.

The quickstart measures on whatever NVIDIA GPU the machine has: its sweep says `local`, and the
grid gets the detected type (H100, H200, ...) as if it had been written there, so run directories
and the summary carry the real type. Detection reads NVML (nvidia-ml-py) for the GPUs this process
may use (CUDA_VISIBLE_DEVICES, when it lists indices). It runs only for configs that say `local`;
on a cluster, name the type (the planning host usually has no GPU). JOULEFLOW_LOCAL_GPU=<type>
plans `local` as that type without asking NVML (a dry run elsewhere).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

from jouleflow.gpus import gpu_short_name

LOCAL = "local"
# Plans `local` as this GPU type without asking NVML (a dry run on a machine without the GPU).
LOCAL_ENV = "JOULEFLOW_LOCAL_GPU"


class LocalGpuError(ValueError):
    """No GPU, mixed GPU types, or a type the config has no entry for; names the config key."""


def uses_local(config: Mapping[str, Any]) -> bool:
    return any(LOCAL in (sweep.get("gpus") or []) for sweep in config.get("sweeps") or [])


def detect_types() -> list[str]:
    """Short type of every GPU this process may use, in NVML order (raises LocalGpuError)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError, or nvidia-ml-py missing
        raise LocalGpuError(
            f"sweeps[*].gpus: `local` needs an NVIDIA GPU on this machine, NVML says: {exc}"
        ) from exc
    try:
        indices = list(range(pynvml.nvmlDeviceGetCount()))
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and all(v.strip().isdigit() for v in visible.split(",") if v.strip()):
            indices = [int(v) for v in visible.split(",") if v.strip() and int(v) in indices]
        names = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in indices]
    finally:
        pynvml.nvmlShutdown()
    return [gpu_short_name(n.decode() if isinstance(n, bytes) else n) or "" for n in names]


def resolve_local(config: Mapping[str, Any], types: list[str] | None = None) -> dict[str, Any]:
    """A copy of the config with `local` replaced by the detected GPU type in every sweep."""
    out = copy.deepcopy(dict(config))
    if not uses_local(out):
        return out
    if types is None:
        forced = os.environ.get(LOCAL_ENV, "").strip()
        types = [forced] if forced else detect_types()
    kinds = sorted(set(types))
    if not kinds:
        raise LocalGpuError("sweeps[*].gpus: `local` found no GPU on this machine")
    if len(kinds) > 1:
        raise LocalGpuError(
            f"sweeps[*].gpus: `local` found several GPU types ({', '.join(kinds)}); name one in the sweep "
            "and restrict the GPUs with CUDA_VISIBLE_DEVICES"
        )
    (kind,) = kinds
    if kind not in out.get("gpus", {}):
        raise LocalGpuError(
            f"gpus.{kind}: this machine's GPUs are {kind}, which has no entry under `gpus:` "
            f"(add `{kind}: {{memory_gb: ..., tdp_w: ..., per_node: {len(types)}}}`)"
        )
    # Jobs parse the workflow again (a SLURM job step on another node, with other visible GPUs):
    # they inherit the environment, so they plan the same type as this process did.
    os.environ[LOCAL_ENV] = kind
    for sweep in out["sweeps"]:
        gpus = sweep.get("gpus") or []
        sweep["gpus"] = list(dict.fromkeys(kind if g == LOCAL else g for g in gpus))
    return out
