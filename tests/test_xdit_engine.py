"""xDiT engine: parallel degrees, pipeline families, xfuser options, the worker and container commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jouleflow.measure.engines import xdit
from jouleflow.measure.engines.xdit import Generation, ParallelDegrees, XDiTConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("degrees", "world", "label"),
    [
        (ParallelDegrees(), 1, "uly1-ring1"),
        (ParallelDegrees(2, 1), 2, "uly2-ring1"),
        (ParallelDegrees(2, 4), 8, "uly2-ring4"),
        (ParallelDegrees(1, 1, cfg_parallel=True), 2, "uly1-ring1-cfg2"),
        (ParallelDegrees(2, 1, cfg_parallel=True, pipefusion=2), 8, "uly2-ring1-cfg2-pf2"),
    ],
)
def test_world_size_and_label(degrees, world, label):
    assert degrees.world_size == world
    assert degrees.label() == label
    degrees.validate(world)  # consistent: no error


def test_degrees_not_matching_num_gpus_names_every_degree_and_the_count():
    with pytest.raises(XDiTConfigError) as err:
        ParallelDegrees(2, 2, cfg_parallel=True).validate(4)
    message = str(err.value)
    assert message.startswith("num_gpus:")
    for part in ("ulysses 2", "ring 2", "cfg 2", "pipefusion 1", "= 8", "num_gpus is 4"):
        assert part in message


@pytest.mark.parametrize(
    ("degrees", "key"),
    [(ParallelDegrees(0, 1), "ulysses_degree"), (ParallelDegrees(1, -2), "ring_degree"),
     (ParallelDegrees(1, 1, pipefusion=0), "pipefusion_degree")],
)  # fmt: skip
def test_non_positive_degree_is_named(degrees, key):
    with pytest.raises(XDiTConfigError, match=f"^{key}:"):
        degrees.validate(1)


@pytest.mark.parametrize(
    ("family", "degrees", "key"),
    [
        ("flux", ParallelDegrees(1, 1, cfg_parallel=True), "cfg_parallel"),
        ("sdxl", ParallelDegrees(2, 1), "ulysses_degree/ring_degree"),
        ("cogvideox", ParallelDegrees(1, 1, pipefusion=2), "pipefusion_degree"),
    ],
)
def test_parallelism_the_pipeline_lacks_is_refused(family, degrees, key):
    with pytest.raises(XDiTConfigError, match=key):
        degrees.validate(degrees.world_size, xdit.FAMILIES[family])


# The diffusion models of ML.ENERGY v3 (tests/data/mlenergy-v3/tasks) that xfuser 0.4.5 wraps.
@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("PixArt-alpha/PixArt-Sigma-XL-2-1024-MS", "pixart-sigma"),
        ("PixArt-alpha/PixArt-XL-2-1024-MS", "pixart-alpha"),
        ("stabilityai/stable-diffusion-3.5-medium", "sd3"),
        ("stabilityai/stable-diffusion-3.5-large", "sd3"),
        ("black-forest-labs/FLUX.1-dev", "flux"),
        ("Tencent-Hunyuan/HunyuanDiT-v1.2-Diffusers", "hunyuandit"),
        ("Efficient-Large-Model/SANA1.5_4.8B_1024px_diffusers", "sana"),
        ("stabilityai/stable-diffusion-xl-base-1.0", "sdxl"),
        ("zai-org/CogVideoX-2b", "cogvideox"),
        ("zai-org/CogVideoX1.5-5B", "cogvideox"),
        ("maxin-cn/Latte-1", "latte"),
    ],
)
def test_family_from_the_hf_id(model, family, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))  # an empty cache
    assert xdit.detect_family(model).name == family


def test_unwrapped_model_names_the_pipeline_key(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(XDiTConfigError, match=r"^pipeline: .*Wan-AI/Wan2.1-T2V-14B-Diffusers.*flux"):
        xdit.detect_family("Wan-AI/Wan2.1-T2V-14B-Diffusers")


def test_model_index_of_a_local_dir_wins_over_the_name(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    assert xdit.detect_family("someone/pixart-sigma-finetune", str(tmp_path)).name == "flux"
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    with pytest.raises(XDiTConfigError, match="'WanPipeline', which xfuser 0.4.5 does not wrap"):
        xdit.detect_family("someone/pixart-sigma-finetune", str(tmp_path))


def test_model_index_from_the_hf_cache(tmp_path, monkeypatch):
    # The HF cache layout: models--org--name/{refs/main, snapshots/<sha>/...}.
    repo = tmp_path / "models--acme--mystery-model"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    (snapshot / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusion3Pipeline"}))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    assert xdit.detect_family("acme/mystery-model").name == "sd3"


def test_unknown_family_name_lists_the_known_ones():
    with pytest.raises(XDiTConfigError, match="pipeline: unknown 'wan'.*pixart-sigma"):
        xdit.family_by_name("wan")


def test_xfuser_options_for_a_video_job():
    gen = Generation(steps=50, height=480, width=720, guidance_scale=6.0, seed=7, num_frames=49)
    args = xdit.xfuser_args(
        "zai-org/CogVideoX-2b", ParallelDegrees(2, 2, cfg_parallel=True), gen, ["--use_torch_compile"]
    )
    assert args == [
        "--model=zai-org/CogVideoX-2b",
        "--ulysses_degree=2",
        "--ring_degree=2",
        "--pipefusion_parallel_degree=1",
        "--height=480",
        "--width=720",
        "--num_inference_steps=50",
        "--guidance_scale=6.0",
        "--seed=7",
        "--use_cfg_parallel",
        "--num_frames=49",
        "--use_torch_compile",
    ]


def test_image_job_passes_no_frames_and_no_cfg_flag():
    gen = Generation(steps=20, height=1024, width=1024, guidance_scale=4.5)
    args = xdit.xfuser_args("m", ParallelDegrees(), gen)
    assert not any(a.startswith("--num_frames") or a == "--use_cfg_parallel" for a in args)


def test_default_worker_command_is_torchrun_with_the_world_size():
    argv = xdit.worker_argv(None, 4, ["--model=m"], "/runs/x/worker_spec.json")
    assert argv == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4",
        "--module", "jouleflow.measure.engines.xdit_worker", "--model=m", "--jouleflow_spec=/runs/x/worker_spec.json",
    ]  # fmt: skip
    # In a container the host's interpreter means nothing: the image's torchrun runs it.
    in_image = xdit.worker_argv(None, 2, [], "s.json", in_container=True)
    assert in_image[:3] == ["torchrun", "--standalone", "--nproc_per_node=2"]


def test_custom_launcher_gets_the_world_size():
    argv = xdit.worker_argv(["srun", "--ntasks={nproc}", "python", "w.py"], 8, [], "s.json")
    assert argv == ["srun", "--ntasks=8", "python", "w.py", "--jouleflow_spec=s.json"]


@pytest.mark.parametrize(
    ("arg", "key"),
    [("--ulysses_degree=2", "ulysses_degree"), ("--ulysses-degree=2", "ulysses_degree"),
     ("--ring_degree", "ring_degree"), ("--use-cfg-parallel", "cfg_parallel"),
     ("--height=512", "height"), ("--num_inference_steps=4", "steps"), ("--model=x", "model"),
     ("--data_parallel_degree=2", "num_gpus"), ("--prompt", "prompts"), ("--num-frames=9", "num_frames")],
)  # fmt: skip
def test_extra_args_may_not_set_what_the_config_owns(arg, key):
    with pytest.raises(XDiTConfigError, match=f"'{arg}' is set by the config key {key}"):
        xdit.check_extra_args([arg])


def test_other_extra_args_pass():
    xdit.check_extra_args(["--use_torch_compile", "--warmup_steps=2", "--use_parallel_vae", "4"])


def test_docker_wrapping_binds_the_package_and_run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    argv, stop, client_env = xdit.in_container(
        ["torchrun", "--nproc_per_node=2", "--module", xdit.WORKER_MODULE, "--model=m"],
        {"PYTHONUNBUFFERED": "1"},
        runtime="docker", image="xdit:0.4.5", model_path="/models/pixart", binds=["/data:/data"],
        extra_args=["--shm-size=16g"], num_gpus=2, run_dir="/runs/r1", name="jf-test",
    )  # fmt: skip
    root = xdit.package_root()
    assert argv[:2] == ["docker", "run"]
    assert argv[argv.index("--gpus") + 1] == "device=4,5"
    for bind in (f"{root}:{root}", "/runs/r1:/runs/r1", "/models/pixart:/models/pixart", "/data:/data"):
        assert argv[argv.index(bind) - 1] == "-v"
    assert f"PYTHONPATH={root}" in argv and "PYTHONUNBUFFERED=1" in argv
    tail = argv[argv.index("--entrypoint") :]
    assert tail == [
        "--entrypoint",
        "torchrun",
        "xdit:0.4.5",
        "--nproc_per_node=2",
        "--module",
        xdit.WORKER_MODULE,
        "--model=m",
    ]
    assert stop == ["docker", "stop", "-t", "30", "jf-test"]
    assert client_env == {}
    assert (Path(root) / "jouleflow" / "measure" / "engines" / "xdit_worker.py").is_file()


def test_apptainer_wrapping_passes_the_job_gpus_to_the_client(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    argv, stop, client_env = xdit.in_container(
        ["torchrun"], {}, runtime="apptainer", image="xdit.sif", model_path=None, binds=[],
        extra_args=[], num_gpus=1, run_dir="/r", name="n",
    )  # fmt: skip
    assert argv[:3] == ["apptainer", "exec", "--nv"]
    assert argv[-2:] == ["xdit.sif", "torchrun"]
    assert stop is None
    assert client_env == {"CUDA_VISIBLE_DEVICES": "2"}


def test_measurement_modules_import_without_torch_or_xfuser():
    code = (
        "import sys\n"
        "import jouleflow.measure.engines.xdit, jouleflow.measure.engines.xdit_worker, jouleflow.measure.engines.xdit_protocol\n"
        "import jouleflow.measure.diffusion_session, jouleflow.cli.measure_diffusion\n"
        "bad = sorted(m for m in ('torch', 'xfuser', 'diffusers', 'polars', 'matplotlib') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
