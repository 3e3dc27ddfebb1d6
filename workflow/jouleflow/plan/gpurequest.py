"""How a measurement job asks the scheduler for its GPUs: Snakemake resources per grid point.

snakemake-executor-plugin-slurm turns resources into sbatch options:
`gpu` + `gpu_model` → `--gpus=<model>:<n>`, `gpu` alone → `--gpus=<n>`, `gres` → `--gres=<gres>`.
sbatch rejects `--gpus` together with `--gres=gpu:...`, so exactly one style is emitted and the
other resources are set to their "off" values (0 / ""), which the plugin skips.

Clusters differ: most accept `--gpus=<type>:<n>` (select/cons_tres); some only `--gres`; GPU type
names are site-specific and case-sensitive ("h100", "nvidia_h100_80gb_hbm3"). Both are settings
of the campaign's `slurm` config section (`gpu_request`, `gpu_types`), see docs/slurm.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

STYLES = ("gpus", "gres", "count", "none")
DEFAULT_STYLE = "gpus"
# What the SLURM plugin accepts as a GPU model / GRES type name.
_TYPE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
_INVALID = re.compile(r"[^A-Za-z0-9_.]")


class GpuRequestError(ValueError):
    """A `slurm` config section that cannot produce a valid request."""


def gpu_request(
    num_gpus: int, gpu_type: str, settings: Mapping[str, Any] | None = None
) -> dict[str, int | str]:
    """Resources `gpu`, `gpu_model`, `gres` for one measurement job.

    settings: the config's `slurm` section — `gpu_request` (gpus | gres | count | none,
    default gpus) and `gpu_types` (jouleflow GPU type → the cluster's GRES type name; default:
    the jouleflow name in lower case: H100 → h100).
    """
    settings = settings or {}
    style = settings.get("gpu_request", DEFAULT_STYLE)
    if style not in STYLES:
        raise GpuRequestError(f"config slurm.gpu_request: {style!r} is not one of {', '.join(STYLES)}")
    if num_gpus < 1:
        raise GpuRequestError(f"a measurement job needs at least one GPU, got num_gpus={num_gpus}")
    types = settings.get("gpu_types") or {}
    # Default: the common convention (lower case, "_" for other characters): A100-40GB → a100_40gb.
    # A wrong guess fails loudly at sbatch ("Requested node configuration is not available").
    name = str(types.get(gpu_type) or _INVALID.sub("_", gpu_type.lower()))
    if style in ("gpus", "gres") and not _TYPE_NAME.match(name):
        raise GpuRequestError(
            f"config slurm.gpu_types: {name!r} (for GPU type {gpu_type!r}) is not a valid SLURM type name "
            "(letters, digits, _ and . only)"
        )
    off: dict[str, int | str] = {"gpu": 0, "gpu_model": "", "gres": ""}
    if style == "gpus":
        return {**off, "gpu": num_gpus, "gpu_model": name}
    if style == "count":
        return {**off, "gpu": num_gpus}
    if style == "gres":
        return {**off, "gres": f"gpu:{name}:{num_gpus}"}
    return off
