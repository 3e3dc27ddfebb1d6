"""Diffusion job config: defaults resolved from the pipeline family, validation naming each key."""

from __future__ import annotations

import pytest
from jouleflow.measure.diffusion_config import DiffusionJobConfig, config_from_dict
from jouleflow.measure.jobconfig import ConfigError

PIXART = "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS"
COGVIDEO = "zai-org/CogVideoX-2b"


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))


def test_image_defaults_come_from_the_family():
    cfg = config_from_dict({"model": PIXART, "batch_size": 4, "ulysses_degree": 2})
    gen = cfg.generation()
    assert (gen.steps, gen.height, gen.width, gen.num_frames, gen.guidance_scale) == (
        20,
        1024,
        1024,
        None,
        4.5,
    )
    assert cfg.family().name == "pixart-sigma"
    assert (cfg.effective_num_gpus, cfg.parallelism, cfg.timed_batches, cfg.dtype) == (
        2,
        "uly2-ring1",
        10,
        "bfloat16",
    )


def test_video_defaults_and_explicit_values_win():
    cfg = config_from_dict(
        {
            "model": COGVIDEO,
            "batch_size": 1,
            "task": "text-to-video",
            "num_frames": 81,
            "steps": 4,
            "guidance_scale": 1,
        }
    )
    gen = cfg.generation()
    assert (gen.steps, gen.height, gen.width, gen.num_frames, gen.guidance_scale) == (4, 480, 720, 81, 1.0)


def test_num_prompts_sets_the_number_of_batches():
    assert config_from_dict({"model": PIXART, "batch_size": 8, "num_prompts": 64}).timed_batches == 8


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"num_prompts": 10, "batch_size": 4}, "num_prompts: 10 is not a multiple of batch_size 4"),
        ({"num_prompts": 16, "num_batches": 3}, r"num_batches: 3 x batch_size 4 != num_prompts 16"),
        ({"batch_size": 0}, "batch_size: must be a positive integer"),
        ({"steps": 2.5}, "steps: must be a positive integer"),
        ({"warmup_batches": -1}, "warmup_batches: must be an integer >= 0"),
        ({"precision": "int4"}, "precision: must be one of"),
        ({"task": "image-to-video"}, "task: must be one of"),
        ({"task": "text-to-video"}, r"task: text-to-video needs a video pipeline; .* pixart-sigma \(image\)"),
        ({"num_frames": 16}, "num_frames: only text-to-video takes frames"),
        (
            {"ulysses_degree": 2, "num_gpus": 4},
            "num_gpus: the parallel degrees multiply to .* = 2 GPUs, but num_gpus is 4",
        ),
        ({"xfuser_args": ["--height=512"]}, "xfuser_args: '--height=512' is set by the config key height"),
        ({"pipeline": "wan"}, "pipeline: unknown 'wan'"),
        ({"timeout_s": 0}, "timeout_s: must be > 0"),
        ({"launcher": []}, "launcher: must be a non-empty list"),
        ({"container": {"runtime": "podman", "image": "x"}}, "container.runtime: must be one of"),
    ],
)
def test_bad_values_are_named(extra, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"model": PIXART, "batch_size": 4, **extra}, source="job.yaml")


def test_unknown_and_missing_keys_name_the_source():
    with pytest.raises(ConfigError, match=r"^job.yaml: unknown key\(s\) denoise_steps, tp$"):
        config_from_dict({"model": PIXART, "batch_size": 1, "tp": 2, "denoise_steps": 5}, source="job.yaml")
    with pytest.raises(ConfigError, match="^job.yaml: missing required key batch_size$"):
        config_from_dict({"model": PIXART}, source="job.yaml")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) container.gpus"):
        config_from_dict(
            {"model": PIXART, "batch_size": 1, "container": {"runtime": "docker", "image": "i", "gpus": 2}}
        )


def test_an_unrecognised_model_asks_for_the_pipeline_key():
    with pytest.raises(ConfigError, match="pipeline: cannot tell the xDiT pipeline of model 'acme/dreamer'"):
        DiffusionJobConfig(model="acme/dreamer", batch_size=1)
    assert DiffusionJobConfig(model="acme/dreamer", batch_size=1, pipeline="sd3").family().name == "sd3"


def test_a_random_weight_model_dir_must_be_labelled_dummy(tmp_path):
    model = tmp_path / "pixart-dummy"
    model.mkdir()
    (model / "model_index.json").write_text('{"_class_name": "PixArtSigmaPipeline"}')
    (model / "jouleflow_dummy.json").write_text('{"random_weights": true}')
    spec = {"model": PIXART, "model_path": str(model), "batch_size": 1}
    with pytest.raises(
        ConfigError, match=r"load_format: .*pixart-dummy holds random weights \(jouleflow_dummy.json\)"
    ):
        config_from_dict(spec)
    assert config_from_dict({**spec, "load_format": "dummy"}).load_format == "dummy"
    (model / "jouleflow_dummy.json").unlink()
    assert config_from_dict(spec).load_format == "real"
