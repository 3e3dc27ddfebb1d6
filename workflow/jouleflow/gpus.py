"""GPU names and thermal design power (TDP), for importers and the TDP-based energy estimate.

The TDP is the vendor's maximum board power for the form factor the published data was measured
on. Sources: NVIDIA data sheets (A100 40GB SXM4: 400 W; H100 SXM5 80GB: 700 W; H200 SXM 141GB:
700 W; B200 (HGX B200): 1000 W). PCIe cards have lower limits (A100 PCIe 250 W, H100 PCIe 350 W)
and are listed so that a name that says PCIe is never credited with the SXM figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GPUType:
    short: str  # the summary table's `gpu` value: H100, A100, B200, ...
    tdp_w: float  # per GPU


# Ordered: the first pattern that matches a full device name wins (PCIe before the generic SXM entry).
_GPU_PATTERNS: tuple[tuple[re.Pattern[str], GPUType], ...] = (
    (re.compile(r"A100.*PCIE", re.I), GPUType("A100", 250.0)),
    (re.compile(r"A100", re.I), GPUType("A100", 400.0)),
    (re.compile(r"H100.*(PCIE|NVL)", re.I), GPUType("H100", 350.0)),
    (re.compile(r"H100", re.I), GPUType("H100", 700.0)),
    (re.compile(r"H200.*NVL", re.I), GPUType("H200", 600.0)),
    (re.compile(r"H200", re.I), GPUType("H200", 700.0)),
    (re.compile(r"B200", re.I), GPUType("B200", 1000.0)),
)

# TDP by short name, for rows that carry only the short name (the SXM board of each generation).
TDP_BY_SHORT_NAME: dict[str, float] = {"A100": 400.0, "H100": 700.0, "H200": 700.0, "B200": 1000.0}


def gpu_type(name: str) -> GPUType:
    """Map a device name ("NVIDIA H100 80GB HBM3", "A100-SXM4-40GB", "B200") to its short name and TDP.

    Raises KeyError naming the device when the GPU is not in the table (add it there, with a source).
    """
    for pattern, kind in _GPU_PATTERNS:
        if pattern.search(name):
            return kind
    known = ", ".join(sorted(TDP_BY_SHORT_NAME))
    raise KeyError(f"GPU {name!r} is not in jouleflow's GPU table (known: {known})")


def tdp_w(gpu: str) -> float | None:
    """TDP of a GPU given by short or full name; None when unknown (the estimate is then left empty)."""
    if gpu in TDP_BY_SHORT_NAME:
        return TDP_BY_SHORT_NAME[gpu]
    try:
        return gpu_type(gpu).tdp_w
    except KeyError:
        return None
