"""Config → grid: sweeps as a union of products, overrides, filters, feasibility and key-named errors.

Expected point sets are written out by hand from each config.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jouleflow.plan.config import validate_config
from jouleflow.plan.grid import GridError, build_grid
from jouleflow.plan.parallelism import parse_parallelism
from jouleflow.runkey import model_slug

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema" / "config.schema.yaml"

BASE = {
    "source": "measure",
    "gpus": {
        "H100": {"memory_gb": 80, "tdp_w": 700, "per_node": 8},
        "B200": {"memory_gb": 180, "tdp_w": 1000},
    },
    "models": {
        "org/small": {"total_params_b": 8, "precision": "bf16", "server_args": ["--enforce-eager"]},
        "org/big": {"memory_gb": 140, "precision": "bf16"},
    },
    "tasks": {
        "chat": {
            "request_set": {"kind": "synthetic", "fixed_output_len": 128},
        }
    },
    "sweeps": [
        {
            "models": ["org/small"],
            "tasks": ["chat"],
            "gpus": ["H100"],
            "parallelism": ["tp1"],
            "batch_sizes": [8, 16],
        }
    ],
    "measurement": {"server_args": ["--max-num-batched-tokens", "8192"], "env": {"A": "1"}},
}


def grid_of(base_dir=".", **changes):
    config = copy.deepcopy(BASE)
    config.update(copy.deepcopy(changes))
    return build_grid(validate_config(config, SCHEMA), base_dir)


def keys(grid) -> set[str]:
    return {p.key for p in grid.points}


def test_parallelism_labels_give_gpu_counts():
    assert parse_parallelism("tp1").num_gpus == 1
    tp_pp = parse_parallelism("tp2-pp2")
    assert (tp_pp.num_gpus, tp_pp.gpus_per_replica) == (4, 4)
    dp = parse_parallelism("tp2-dp2")
    assert (dp.num_gpus, dp.gpus_per_replica) == (4, 2)
    ep = parse_parallelism("tp4-ep")
    assert ep.expert and ep.num_gpus == 4
    assert parse_parallelism("uly2-ring2").num_gpus == 4


@pytest.mark.parametrize(
    "label, part", [("tq2", "'tq2'"), ("tp2-tp2", "'tp' given twice"), ("ep", "at least one")]
)
def test_bad_parallelism_label_names_the_part(label, part):
    with pytest.raises(ValueError, match=part):
        parse_parallelism(label)


def test_sweeps_are_a_union_of_products():
    grid = grid_of(
        sweeps=[
            # one GPU: small batches; two GPUs: larger ones (ML.ENERGY's sweeps.yaml idea)
            {
                "models": ["org/small"],
                "tasks": ["chat"],
                "gpus": ["H100"],
                "parallelism": ["tp1"],
                "batch_sizes": [8, 16],
            },
            {
                "models": ["org/small"],
                "tasks": ["chat"],
                "gpus": ["H100", "B200"],
                "parallelism": ["tp2"],
                "batch_sizes": [16, 32],
            },
            # repeats a point of the first sweep: the union has it once
            {
                "models": ["org/small"],
                "tasks": ["chat"],
                "gpus": ["H100"],
                "parallelism": ["tp1"],
                "batch_sizes": [16],
            },
        ]
    )
    assert keys(grid) == {
        "chat/org--small/H100/tp1/8",
        "chat/org--small/H100/tp1/16",
        "chat/org--small/H100/tp2/16",
        "chat/org--small/H100/tp2/32",
        "chat/org--small/B200/tp2/16",
        "chat/org--small/B200/tp2/32",
    }
    assert len(grid.points) == 6
    assert grid.by_key["chat/org--small/B200/tp2/32"].num_gpus == 2


def test_per_model_overrides_replace_axes_for_that_model_only():
    grid = grid_of(
        sweeps=[
            {
                "models": ["org/small", "org/big"],
                "tasks": ["chat"],
                "gpus": ["H100"],
                "parallelism": ["tp1"],
                "batch_sizes": [8, 16],
                "overrides": {"org/big": {"parallelism": ["tp2"], "batch_sizes": [32]}},
            }
        ]
    )
    assert keys(grid) == {
        "chat/org--small/H100/tp1/8",
        "chat/org--small/H100/tp1/16",
        "chat/org--big/H100/tp2/32",
    }


def test_filters_drop_points_with_a_reason():
    grid = grid_of(
        sweeps=[
            {"models": ["org/small"], "tasks": ["chat"], "gpus": ["H100", "B200"], "batch_sizes": [8, 16, 32]}
        ],
        filters={"include": [{"gpu": "H100"}], "exclude": [{"batch_size": [16, 32], "gpu": "H100"}]},
    )
    assert keys(grid) == {"chat/org--small/H100/tp1/8"}
    reasons = {s.point.key: s.reason for s in grid.skipped}
    assert reasons["chat/org--small/H100/tp1/16"] == "excluded by filters.exclude[0]"
    assert reasons["chat/org--small/B200/tp1/8"] == "not matched by filters.include"
    assert len(reasons) == 5


def test_weights_larger_than_a_replicas_gpus_are_skipped_with_the_reason():
    # org/big needs 140 GB: not on one H100 (80 GB), fine on two (160 GB) or one B200 (180 GB);
    # tp1-dp2 still holds a whole copy per GPU; at fp8 the weights halve to 70 GB.
    grid = grid_of(
        sweeps=[
            {
                "models": ["org/big"],
                "tasks": ["chat"],
                "gpus": ["H100", "B200"],
                "parallelism": ["tp1", "tp2", "dp2"],
                "batch_sizes": [8],
                "precisions": ["bf16", "fp8"],
            }
        ]
    )
    skipped = {s.point.key: s.reason for s in grid.skipped}
    assert set(skipped) == {"chat/org--big/H100/tp1/8", "chat/org--big/H100/dp2/8"}
    assert (
        "140.0 GB" in skipped["chat/org--big/H100/tp1/8"] and "80 GB" in skipped["chat/org--big/H100/tp1/8"]
    )
    assert "chat/org--big@fp8/H100/tp1/8" in keys(grid)
    assert "chat/org--big/H100/tp2/8" in keys(grid)
    assert "chat/org--big/B200/dp2/8" in keys(grid)
    assert len(grid.points) == 12 - 2


@pytest.mark.parametrize(
    "sweep_change, message",
    [
        ({"models": ["org/small", "org/none"]}, r"sweeps\[0\]\.models\[1\]: unknown model 'org/none'"),
        ({"tasks": ["nochat"]}, r"sweeps\[0\]\.tasks: unknown task 'nochat'"),
        ({"gpus": ["H999"]}, r"sweeps\[0\]\.gpus: unknown GPU type 'H999'"),
        (
            {"parallelism": ["tp2-pp8"]},
            r"sweeps\[0\]\.parallelism: 'tp2-pp8' needs 16 GPUs .*gpus\.H100\.per_node",
        ),
        ({"parallelism": ["tp2x"]}, r"sweeps\[0\]\.parallelism: parallelism 'tp2x'"),
        (
            {"overrides": {"org/big": {"batch_sizes": [4]}}},
            r"sweeps\[0\]\.overrides\.org/big: model is not in",
        ),
        ({"precisions": ["fp7"]}, r"sweeps\[0\]\.precisions: unknown precision 'fp7'"),
    ],
)
def test_bad_sweeps_fail_naming_the_key(sweep_change, message):
    sweep = {**BASE["sweeps"][0], **sweep_change}
    with pytest.raises(GridError, match=message):
        grid_of(sweeps=[sweep])


def test_one_point_with_two_sources_is_an_error():
    sweep = BASE["sweeps"][0]
    with pytest.raises(
        GridError, match=r"run chat/org--small/H100/tp1/8 is in sweeps\[0\] .* and in sweeps\[1\]"
    ):
        grid_of(sweeps=[sweep, {**sweep, "source": "reference"}])


def test_reference_point_without_bundled_run_names_the_run(tmp_path):
    config = validate_config(
        {**copy.deepcopy(BASE), "source": "reference", "reference_dir": "bundle"}, SCHEMA
    )
    with pytest.raises(GridError, match=r"bundle has no run chat/org--small/H100/tp1/8 .*source: measure"):
        build_grid(config, tmp_path)
    run = tmp_path / "bundle" / "runs" / "chat/org--small/H100/tp1"
    for batch in (8, 16):
        (run / str(batch)).mkdir(parents=True)
        (run / str(batch) / "run.json").write_text("{}")
    assert len(build_grid(config, tmp_path).points) == 2


def test_batches_of_a_measured_group_are_chained_smallest_first():
    sweep = {**BASE["sweeps"][0], "batch_sizes": [32, 8, 16], "gpus": ["H100", "B200"]}
    grid = grid_of(sweeps=[sweep])
    assert grid.predecessor == {
        "chat/org--small/H100/tp1/16": "chat/org--small/H100/tp1/8",
        "chat/org--small/H100/tp1/32": "chat/org--small/H100/tp1/16",
        "chat/org--small/B200/tp1/16": "chat/org--small/B200/tp1/8",
        "chat/org--small/B200/tp1/32": "chat/org--small/B200/tp1/16",
    }
    assert (
        grid.predecessor_run(grid.by_key["chat/org--small/H100/tp1/16"])
        == "results/runs/chat/org--small/H100/tp1/8"
    )
    unchained = grid_of(sweeps=[sweep], measurement={"skip_larger_after_infeasible": False})
    assert unchained.predecessor == {}


def test_job_spec_carries_the_point_and_the_registry(tmp_path):
    (tmp_path / "hist").mkdir()
    (tmp_path / "hist" / "org__small__chat.json").write_text("{}")
    tasks = {
        "chat": {"request_set": {"kind": "synthetic", "output_lengths": "hist/{model_file}__{task}.json"}}
    }
    sweep = {**BASE["sweeps"][0], "parallelism": ["tp2"], "precisions": ["fp8"], "batch_sizes": [16]}
    grid = grid_of(tmp_path, tasks=tasks, sweeps=[sweep])
    (point,) = grid.points
    assert point.model_slug == "org--small@fp8"
    spec = grid.spec(point)
    assert spec["model"] == "org/small" and spec["model_path"] is None
    assert (spec["batch_size"], spec["num_gpus"], spec["tensor_parallel"]) == (16, 2, 2)
    assert (spec["precision"], spec["quantization"]) == ("fp8", "fp8")
    # global server args first, then the model's; model env over global env
    assert spec["server_args"] == ["--max-num-batched-tokens", "8192", "--enforce-eager"]
    assert spec["env"] == {"A": "1"}
    assert spec["synthetic"]["output_lengths"] == "hist/org__small__chat.json"
    assert spec["request_set"] is None and spec["endpoint"] == "chat"
    # SLURM's default GPU request: --gpus=h100:2 (GRES type names are lower case by default).
    assert grid.resources(point) == {
        "gpu": 2,
        "gpu_model": "h100",
        "gres": "",
        "runtime": 120,
        "mem_mb": 65536,
        "cpus_per_task": 8,
    }


@pytest.mark.parametrize(
    "request_set, message",
    [
        ({"kind": "synthetic", "output_lengths": "hist/{model_id}.json"}, r"output_lengths: unknown placeholder \{model_id\}"),
        ({"kind": "synthetic", "output_lengths": "hist/{model_file}.json"}, r"output_lengths: hist/org__small.json does not exist \(needed by run chat/org--small/H100/tp1/8\)"),
        ({"kind": "parquet", "path": "requests/{task}.parquet"}, r"request_set.path: requests/chat.parquet does not exist"),
        ({"kind": "parquet"}, r"tasks.chat.request_set.path: required"),
        ({"kind": "synthetic"}, r"tasks.chat.request_set: synthetic requests need output_lengths"),
    ],
)  # fmt: skip
def test_request_files_are_checked_before_anything_runs(tmp_path, request_set, message):
    with pytest.raises(GridError, match=message):
        grid_of(tmp_path, tasks={"chat": {"request_set": request_set}})


def test_default_config_is_the_bundled_campaign():
    from jouleflow.plan.config import load_config

    config = load_config([REPO / "config" / "config.yaml"], SCHEMA)
    grid = build_grid(config, REPO)
    assert {p.source for p in grid.points} == {"reference"}
    slug = model_slug("meta-llama/Llama-3.1-8B-Instruct")
    h200 = (8, 16, 32, 64, 128, 256, 512)
    assert keys(grid) == {f"lm-arena-chat/{slug}/H100/tp1/{b}" for b in (64, 128, 256)} | {
        f"lm-arena-chat/{m}/H200/tp1/{b}" for m in (slug, f"{slug}@fp8") for b in h200
    } | {
        f"lm-arena-chat/{m}/H200/tp1/{b}"
        for m in ("Qwen--Qwen3-8B", "Qwen--Qwen3-30B-A3B-Instruct-2507", "Qwen--Qwen3-32B")
        for b in (16, 64, 256)
    } | {f"gpqa-lengths/Qwen--Qwen3-8B/H200/tp1/{b}" for b in (16, 64)} | {
        f"image-chat/Qwen--Qwen3-VL-8B-Instruct/H200/tp1/{b}" for b in (16, 64, 256)
    } | {
        f"text-to-image/PixArt-alpha--PixArt-Sigma-XL-2-1024-MS/H200/uly1-ring1/{b}" for b in (1, 2, 4, 8, 16)
    }
    assert grid.latency_metric("lm-arena-chat") == "median_itl_s"


DIFFUSION = {
    "models": {"org/pixart": {"modality": "diffusion", "pipeline": "pixart-sigma", "memory_gb": 12}},
    "tasks": {"text-to-image": {"modality": "diffusion", "generation": {"steps": 20, "num_batches": 4}}},
}


def test_xdit_parallelism_labels():
    par = parse_parallelism("uly2-ring1-cfg2-pf2")
    assert (par.num_gpus, par.gpus_per_replica) == (8, 2)  # PipeFusion splits the weights, the rest copy them
    assert (
        parse_parallelism("tp2-dp2-ep").gpus_per_replica == 4
    )  # experts spread over the data-parallel ranks
    with pytest.raises(ValueError, match="only cfg2"):
        parse_parallelism("uly1-ring1-cfg4")


def test_diffusion_points_get_an_xdit_job_spec():
    sweep = {"models": ["org/pixart"], "tasks": ["text-to-image"], "gpus": ["H100"],
             "parallelism": ["uly1-ring1", "uly2-ring1-cfg2"], "batch_sizes": [4]}  # fmt: skip
    # measurement.server_args are the LLM servers' (vLLM refuses xfuser's options and xfuser vLLM's)
    measurement = {
        "server_args": ["--max-num-batched-tokens", "8192"],
        "xfuser_args": ["--use_torch_compile"],
    }
    diffusion = copy.deepcopy(DIFFUSION)
    diffusion["models"]["org/pixart"]["server_args"] = ["--use_fp8_t5_encoder"]
    grid = grid_of(**diffusion, sweeps=[sweep], measurement=measurement)
    spec = grid.spec(grid.by_key["text-to-image/org--pixart/H100/uly2-ring1-cfg2/4"])
    assert (spec["ulysses_degree"], spec["ring_degree"], spec["cfg_parallel"], spec["pipefusion_degree"]) == (
        2,
        1,
        True,
        1,
    )
    assert (spec["num_gpus"], spec["batch_size"], spec["pipeline"]) == (4, 4, "pixart-sigma")
    assert (spec["steps"], spec["num_batches"], spec["warmup_batches"], spec["height"]) == (20, 4, 1, None)
    assert (
        spec["xfuser_args"] == ["--use_torch_compile", "--use_fp8_t5_encoder"]
        and spec["timeout_s"] == 3600 + 1800
    )
    assert "endpoint" not in spec and "synthetic" not in spec
    assert grid.latency_metric("text-to-image") == "batch_latency_s"
    identity = grid.identity(grid.by_key["text-to-image/org--pixart/H100/uly1-ring1/4"])
    assert identity["cfg_parallel"] is False and "timeout_s" not in identity


@pytest.mark.parametrize(
    "change, message",
    [
        ({"precisions": ["fp8"]}, r"sweeps\[0\]\.precisions: 'fp8' for diffusion model 'org/pixart'"),
        ({"parallelism": ["tp2"]}, r"sweeps\[0\]\.parallelism: 'tp2' does not apply to diffusion model"),
    ],
)
def test_diffusion_sweep_errors_name_the_key(change, message):
    sweep = {"models": ["org/pixart"], "tasks": ["text-to-image"], "gpus": ["H100"], "batch_sizes": [4],
             "parallelism": ["uly1-ring1"], **change}  # fmt: skip
    with pytest.raises(GridError, match=message):
        grid_of(**DIFFUSION, sweeps=[sweep])


def test_task_shape_must_match_its_modality():
    with pytest.raises(
        GridError, match=r"sweeps\[0\]\.parallelism: 'uly2-ring1' does not apply to llm model"
    ):
        grid_of(sweeps=[{**BASE["sweeps"][0], "parallelism": ["uly2-ring1"]}])
    with pytest.raises(GridError, match=r"tasks\.chat\.request_set: required for an llm task"):
        grid_of(tasks={"chat": {}})
    with pytest.raises(GridError, match=r"tasks\.t2i\.request_set: a diffusion task takes `generation:`"):
        grid_of(
            tasks={**BASE["tasks"], "t2i": {"modality": "diffusion", "request_set": {"kind": "synthetic"}}}
        )


def test_default_config_matches_the_bundled_runs():
    from jouleflow.plan.config import load_config

    grid = build_grid(load_config([REPO / "config" / "config.yaml"], SCHEMA), REPO)
    assert {p.source for p in grid.points} == {"reference"} and len(grid.points) == 36
    for point in grid.points:
        recorded = json.loads((REPO / grid.reference_run(point) / "run.json").read_text())["config"]
        assert {k: recorded[k] for k in ("task", "model", "gpu", "num_gpus", "batch_size")} == {
            k: grid.spec(point)[k] for k in ("task", "model", "gpu", "num_gpus", "batch_size")
        }
