"""GPU request styles → the sbatch options the real SLURM plugin builds from them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from jouleflow.plan.gpurequest import GpuRequestError, gpu_request
from snakemake_executor_plugin_slurm.utils import set_gres_string


class _Resources(dict):
    """What the plugin reads: `.get(name)` and attribute access."""

    def __getattr__(self, name: str) -> object:
        return self[name]


def sbatch_gpu_options(resources: dict) -> str:
    return set_gres_string(SimpleNamespace(resources=_Resources(resources))).strip()


@pytest.mark.parametrize(
    ("settings", "expected_resources", "expected_sbatch"),
    [
        (None, {"gpu": 2, "gpu_model": "h100", "gres": ""}, "--gpus=h100:2"),
        ({"gpu_request": "gpus"}, {"gpu": 2, "gpu_model": "h100", "gres": ""}, "--gpus=h100:2"),
        (
            {"gpu_request": "gpus", "gpu_types": {"H100": "nvidia_h100_80gb_hbm3"}},
            {"gpu": 2, "gpu_model": "nvidia_h100_80gb_hbm3", "gres": ""},
            "--gpus=nvidia_h100_80gb_hbm3:2",
        ),
        ({"gpu_request": "gres"}, {"gpu": 0, "gpu_model": "", "gres": "gpu:h100:2"}, "--gres=gpu:h100:2"),
        ({"gpu_request": "count"}, {"gpu": 2, "gpu_model": "", "gres": ""}, "--gpus=2"),
        ({"gpu_request": "none"}, {"gpu": 0, "gpu_model": "", "gres": ""}, ""),
    ],
)
def test_each_style_gives_exactly_one_gpu_option(
    settings: dict | None, expected_resources: dict, expected_sbatch: str
) -> None:
    resources = gpu_request(2, "H100", settings)
    assert resources == expected_resources
    options = sbatch_gpu_options(resources)
    assert options == expected_sbatch
    # sbatch rejects --gpus together with --gres=gpu:...
    assert not ("--gpus" in options and "--gres" in options)


def test_default_type_name_is_lower_case_with_underscores() -> None:
    assert gpu_request(1, "A100-40GB")["gpu_model"] == "a100_40gb"
    assert gpu_request(8, "L40S", {"gpu_request": "gres"})["gres"] == "gpu:l40s:8"


def test_unknown_style_names_the_key() -> None:
    with pytest.raises(
        GpuRequestError, match=r"slurm\.gpu_request: 'tres' is not one of gpus, gres, count, none"
    ):
        gpu_request(1, "H100", {"gpu_request": "tres"})


def test_invalid_mapped_type_name_names_the_key_and_type() -> None:
    with pytest.raises(GpuRequestError, match=r"slurm\.gpu_types: 'h100:80gb' \(for GPU type 'H100'\)"):
        gpu_request(1, "H100", {"gpu_types": {"H100": "h100:80gb"}})


def test_zero_gpus_is_rejected() -> None:
    with pytest.raises(GpuRequestError, match="num_gpus=0"):
        gpu_request(0, "H100")
