"""GPU names → short name and TDP (NVIDIA data-sheet values)."""

from __future__ import annotations

import pytest
from jouleflow.gpus import gpu_short_name, gpu_type, tdp_w


@pytest.mark.parametrize(
    ("name", "short", "tdp"),
    [
        ("NVIDIA A100-SXM4-40GB", "A100", 400.0),
        ("A100-SXM4-40GB", "A100", 400.0),
        ("NVIDIA A100 80GB PCIe", "A100", 250.0),
        ("NVIDIA H100 80GB HBM3", "H100", 700.0),
        ("NVIDIA H100 PCIe", "H100", 350.0),
        ("NVIDIA H200", "H200", 700.0),
        ("B200", "B200", 1000.0),
        ("NVIDIA B200", "B200", 1000.0),
    ],
)
def test_gpu_type(name: str, short: str, tdp: float) -> None:
    kind = gpu_type(name)
    assert (kind.short, kind.tdp_w) == (short, tdp)


def test_unknown_gpu() -> None:
    with pytest.raises(KeyError, match="'Tesla T4'"):
        gpu_type("Tesla T4")
    assert tdp_w("Tesla T4") is None
    assert tdp_w("H100") == 700.0


def test_model_must_start_a_word() -> None:
    # A Grace Hopper superchip has other power limits than an H200 board: not credited with its TDP.
    with pytest.raises(KeyError, match="GH200"):
        gpu_type("NVIDIA GH200 480GB")
    assert gpu_short_name("NVIDIA GH200 480GB") == "GH200"


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H100 PCIe", "H100"),
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("NVIDIA H200 NVL", "H200"),
        ("B200", "B200"),
        ("NVIDIA GeForce RTX 4090", "RTX4090"),
        ("Tesla T4", "T4"),
        ("", None),
    ],
)
def test_gpu_short_name(name: str, short: str | None) -> None:
    assert gpu_short_name(name) == short
