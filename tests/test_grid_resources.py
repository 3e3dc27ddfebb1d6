"""A measurement job's scheduler resources from its grid row and the config's `slurm` section.

Expected values are written out by hand from each config (tests/test_grid.py's BASE campaign).
"""

from __future__ import annotations

import copy
import re

import pytest
from jouleflow.plan.config import ConfigSchemaError, validate_config
from jouleflow.plan.grid import GridError, build_grid
from test_grid import BASE, SCHEMA

SWEEP = {
    "models": ["org/small"],
    "tasks": ["chat"],
    "gpus": ["H100", "B200"],
    "parallelism": ["tp1", "tp4"],
    "batch_sizes": [8],
}


def resources_by_key(attempt: int = 1, **changes) -> dict[str, dict]:
    config = copy.deepcopy(BASE)
    config.update(copy.deepcopy(changes))
    config["sweeps"] = [SWEEP]
    grid = build_grid(validate_config(config, SCHEMA))
    return {p.key: grid.resources(p, attempt) for p in grid.points}


def test_default_request_is_gpus_of_the_lower_case_type():
    got = resources_by_key()
    assert {k: (r["gpu"], r["gpu_model"], r["gres"]) for k, r in got.items()} == {
        "chat/org--small/H100/tp1/8": (1, "h100", ""),
        "chat/org--small/H100/tp4/8": (4, "h100", ""),
        "chat/org--small/B200/tp1/8": (1, "b200", ""),
        "chat/org--small/B200/tp4/8": (4, "b200", ""),
    }


def test_gres_style_with_site_type_names_sets_gres_only():
    slurm = {"gpu_request": "gres", "gpu_types": {"H100": "nvidia_h100_80gb_hbm3"}}
    got = resources_by_key(slurm=slurm)
    assert {k: (r["gpu"], r["gpu_model"], r["gres"]) for k, r in got.items()} == {
        "chat/org--small/H100/tp1/8": (0, "", "gpu:nvidia_h100_80gb_hbm3:1"),
        "chat/org--small/H100/tp4/8": (0, "", "gpu:nvidia_h100_80gb_hbm3:4"),
        # B200 is not mapped: the default name.
        "chat/org--small/B200/tp1/8": (0, "", "gpu:b200:1"),
        "chat/org--small/B200/tp4/8": (0, "", "gpu:b200:4"),
    }


@pytest.mark.parametrize(("style", "expected"), [("count", (4, "", "")), ("none", (0, "", ""))])
def test_count_and_none_styles(style, expected):
    r = resources_by_key(slurm={"gpu_request": style})["chat/org--small/H100/tp4/8"]
    assert (r["gpu"], r["gpu_model"], r["gres"]) == expected


def test_runtime_and_memory_grow_with_the_attempt_cpus_do_not():
    models = copy.deepcopy(BASE["models"])
    models["org/small"]["runtime_min"] = 30  # the model's own limit wins over measurement's 120
    first = resources_by_key(1, models=models)["chat/org--small/H100/tp1/8"]
    third = resources_by_key(3, models=models)["chat/org--small/H100/tp1/8"]
    assert (first["runtime"], first["mem_mb"], first["cpus_per_task"]) == (30, 65536, 8)
    assert (third["runtime"], third["mem_mb"], third["cpus_per_task"]) == (90, 196608, 8)
    assert (third["gpu"], third["gpu_model"]) == (1, "h100")


def test_gpu_types_entry_for_an_unknown_gpu_names_the_key():
    with pytest.raises(GridError, match=re.escape("slurm.gpu_types.H200: unknown GPU type 'H200'")):
        resources_by_key(slurm={"gpu_types": {"H200": "h200"}})


@pytest.mark.parametrize(
    ("slurm", "message"),
    [
        ({"gpu_request": "tres"}, "slurm.gpu_request: 'tres' is not one of"),
        ({"gpu_types": {"H100": "h100:80gb"}}, "slurm.gpu_types.H100: 'h100:80gb' does not match"),
        ({"gpu_type": {"H100": "h100"}}, r"slurm: Additional .*'gpu_type' was unexpected"),
    ],
)
def test_schema_rejects_bad_slurm_sections(slurm, message):
    with pytest.raises(ConfigSchemaError, match=message):  # schema validation, naming the key
        resources_by_key(slurm=slurm)
