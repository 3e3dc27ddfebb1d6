"""GPU names: the short type label of a device name, and its thermal design power (TDP).

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
# The model must start a word, so "GH200" (a Grace Hopper superchip, other power limits) is no H200.
_GPU_PATTERNS: tuple[tuple[re.Pattern[str], GPUType], ...] = (
    (re.compile(r"(?<![A-Z0-9])A100.*PCIE", re.I), GPUType("A100", 250.0)),
    (re.compile(r"(?<![A-Z0-9])A100", re.I), GPUType("A100", 400.0)),
    (re.compile(r"(?<![A-Z0-9])H100.*(PCIE|NVL)", re.I), GPUType("H100", 350.0)),
    (re.compile(r"(?<![A-Z0-9])H100", re.I), GPUType("H100", 700.0)),
    (re.compile(r"(?<![A-Z0-9])H200.*NVL", re.I), GPUType("H200", 600.0)),
    (re.compile(r"(?<![A-Z0-9])H200", re.I), GPUType("H200", 700.0)),
    (re.compile(r"(?<![A-Z0-9])B200", re.I), GPUType("B200", 1000.0)),
)

# Vendor and product-line words that carry no model information (for GPUs not in the table).
_NOISE_WORDS = {"NVIDIA", "AMD", "GEFORCE", "INSTINCT", "TESLA", "RADEON"}
_PREFIX_WORDS = {"RTX", "QUADRO", "TITAN"}  # kept together with the following word: "RTX 4090" -> "RTX4090"

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


def gpu_short_name(name: str | None) -> str | None:
    """The type label a run and the summary table carry: 'NVIDIA H100 80GB HBM3' -> 'H100'.

    GPUs in the table get its short name; others the model word of the device name
    ('NVIDIA GeForce RTX 4090' -> 'RTX4090', 'AMD Instinct MI300X' -> 'MI300X').
    """
    if not name:
        return None
    try:
        return gpu_type(name).short
    except KeyError:
        pass
    words = [w for w in re.split(r"[\s_]+", name.strip()) if w and w.upper() not in _NOISE_WORDS]
    if not words:
        return name.strip()
    if words[0].upper() in _PREFIX_WORDS and len(words) > 1:
        return (words[0] + words[1].split("-")[0]).upper()
    return words[0].split("-")[0].upper()


def tdp_w(gpu: str) -> float | None:
    """TDP of a GPU given by short or full name; None when unknown (the estimate is then left empty)."""
    if gpu in TDP_BY_SHORT_NAME:
        return TDP_BY_SHORT_NAME[gpu]
    try:
        return gpu_type(gpu).tdp_w
    except KeyError:
        return None
