"""Engine command construction and pre-launch validation (vLLM, transformers serve, containers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jouleflow.measure.dummy_model import make_dummy_model
from jouleflow.measure.engines import container, transformers_serve, vllm
from jouleflow.measure.engines.vllm import ModelValidationError
from jouleflow.measure.jobconfig import ConfigError, LLMJobConfig, config_from_dict, parallelism_label

LLAMA8B = Path(__file__).resolve().parents[1] / "resources" / "models" / "meta-llama--Llama-3.1-8B-Instruct"
QWEN_MOE = Path(__file__).resolve().parents[1] / "resources" / "models" / "Qwen--Qwen3-30B-A3B-Instruct-2507"


def cfg(**kw) -> LLMJobConfig:
    base = {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "batch_size": 64,
        "synthetic": {"fixed_output_len": 8},
    }
    base.update(kw)
    return config_from_dict(base)


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_vllm_command_from_config():
    c = cfg(
        model_path="/models/llama",
        tensor_parallel=2,
        pipeline_parallel=2,
        load_format="dummy",
        max_model_len=20000,
        dtype="bfloat16",
        max_num_batched_tokens=8192,
        async_scheduling=True,
        gpu_memory_utilization=0.9,
        server_args=["--enforce-eager"],
        launcher=["python3", "-m", "vllm.entrypoints.openai.api_server"],
        env={"VLLM_USE_FLASHINFER_SAMPLER": "0"},
    )
    argv = vllm.build_command(c, 8123)
    assert argv[:4] == ["python3", "-m", "vllm.entrypoints.openai.api_server", "/models/llama"]
    assert _flag(argv, "--port") == "8123" and _flag(argv, "--host") == "127.0.0.1"
    assert _flag(argv, "--served-model-name") == "meta-llama/Llama-3.1-8B-Instruct"
    assert _flag(argv, "--max-num-seqs") == "64"
    assert _flag(argv, "--tensor-parallel-size") == "2" and _flag(argv, "--pipeline-parallel-size") == "2"
    assert "--data-parallel-size" not in argv and "--enable-expert-parallel" not in argv
    assert _flag(argv, "--load-format") == "dummy" and _flag(argv, "--max-model-len") == "20000"
    assert _flag(argv, "--dtype") == "bfloat16" and _flag(argv, "--max-num-batched-tokens") == "8192"
    assert "--async-scheduling" in argv and _flag(argv, "--gpu-memory-utilization") == "0.9"
    assert argv[-1] == "--enforce-eager"
    spec = vllm.server_spec(c, 8123)
    assert spec.env == {"VLLM_USE_FLASHINFER_SAMPLER": "0"} and spec.metrics_path == "/metrics"
    assert (
        spec.served_model == "meta-llama/Llama-3.1-8B-Instruct" and spec.base_url == "http://127.0.0.1:8123"
    )


def test_vllm_command_defaults_and_ep_dp():
    c = cfg(data_parallel=2, expert_parallel=True, async_scheduling=False)
    argv = vllm.build_command(c, 9000)
    assert argv[len(vllm.default_launcher())] == "meta-llama/Llama-3.1-8B-Instruct"  # the HF id without a dir
    assert _flag(argv, "--data-parallel-size") == "2" and "--enable-expert-parallel" in argv
    assert _flag(argv, "--load-format") == "auto" and "--no-async-scheduling" in argv
    for absent in ("--max-model-len", "--dtype", "--quantization", "--max-num-batched-tokens"):
        assert absent not in argv


def test_default_launcher_falls_back_to_python_module(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    launcher = vllm.default_launcher()
    assert launcher[1:] == ["-m", "vllm.entrypoints.cli.main", "serve"]
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/vllm")
    assert vllm.default_launcher() == ["vllm", "serve"]


def test_parallelism_labels():
    assert parallelism_label(1, 1, 1, False) == "tp1"
    assert parallelism_label(2, 1, 1, True) == "tp2-ep"
    assert parallelism_label(2, 2, 1, False) == "tp2-pp2"
    assert parallelism_label(1, 1, 2, False) == "dp2"


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown key.*batchsize"):
        config_from_dict({"model": "m", "batchsize": 8}, "job.yaml")
    with pytest.raises(ConfigError, match="job.yaml: missing required key batch_size"):
        config_from_dict({"model": "m"}, "job.yaml")
    with pytest.raises(ConfigError, match="num_gpus: 2 != tensor_parallel"):
        cfg(num_gpus=2)
    with pytest.raises(ConfigError, match="max_concurrency"):
        cfg(arrival="concurrency")
    with pytest.raises(ConfigError, match="synthetic.bogus"):
        cfg(synthetic={"bogus": 1})


def _model_dir(tmp_path: Path, src: Path = LLAMA8B, tokenizer: bool = True) -> Path:
    if tokenizer:
        return make_dummy_model(src, tmp_path / "m")
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(src / "config.json", d / "config.json")
    return d


def test_validate_tp_must_divide_heads(tmp_path):
    d = _model_dir(tmp_path, tokenizer=False)
    with pytest.raises(
        ModelValidationError,
        match=r"Llama-3.1-8B-Instruct: tensor_parallel=3 does not divide num_attention_heads=32",
    ):
        vllm.validate(cfg(model_path=str(d), tensor_parallel=3))
    # tp=16 divides 32 heads and is a multiple of the 8 kv heads (replicated): allowed
    assert vllm.validate(cfg(model_path=str(d), tensor_parallel=16))["num_attention_heads"] == 32
    config = json.loads((d / "config.json").read_text())
    config["num_attention_heads"] = 24  # tp=12 divides 24 heads, but 12 and 8 kv heads divide neither way
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelValidationError, match="tensor_parallel=12 and num_key_value_heads=8"):
        vllm.validate(cfg(model_path=str(d), tensor_parallel=12))
    with pytest.raises(ModelValidationError, match="pipeline_parallel=40 exceeds num_hidden_layers=32"):
        vllm.validate(cfg(model_path=str(d), pipeline_parallel=40))


def test_validate_model_dir_and_ep(tmp_path):
    with pytest.raises(ModelValidationError, match="does not exist"):
        vllm.validate(cfg(model_path=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelValidationError, match="has no config.json"):
        vllm.validate(cfg(model_path=str(tmp_path / "empty")))
    d = _model_dir(tmp_path, tokenizer=False)
    with pytest.raises(ModelValidationError, match="expert_parallel requested but the model has no experts"):
        vllm.validate(cfg(model_path=str(d), expert_parallel=True))
    moe = tmp_path / "moe"
    moe.mkdir()
    shutil.copy(QWEN_MOE / "config.json", moe / "config.json")
    assert (
        vllm.validate(
            cfg(
                model="Qwen/Qwen3-30B-A3B-Instruct-2507",
                model_path=str(moe),
                tensor_parallel=2,
                expert_parallel=True,
            )
        )["num_experts"]
        == 128
    )


def test_validate_dummy_needs_covering_tokenizer(tmp_path):
    d = _model_dir(tmp_path)
    assert vllm.validate(cfg(model_path=str(d), load_format="dummy"))["vocab_size"] == 128256
    config = json.loads((d / "config.json").read_text())
    config["vocab_size"] = 128300  # tokenizer now 44 ids short
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ModelValidationError, match="128256 tokens do not cover the model's vocab_size=128300"
    ):
        vllm.validate(cfg(model_path=str(d), load_format="dummy"))
    (d / "tokenizer.json").unlink()
    with pytest.raises(ModelValidationError, match="no tokenizer.json"):
        vllm.validate(cfg(model_path=str(d), load_format="dummy"))


def test_validate_unknown_hf_id_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelValidationError, match="no-such-org/no-such-model: not a local directory"):
        vllm.validate(cfg(model="no-such-org/no-such-model"))


def test_transformers_serve_command(tmp_path):
    d = _model_dir(tmp_path, tokenizer=False)
    c = cfg(engine="transformers", model_path=str(d), launcher=["transformers", "serve"])
    spec = transformers_serve.server_spec(c, 7000)
    assert spec.argv == [
        "transformers",
        "serve",
        "--continuous-batching",
        "--device",
        "cpu",
        "--host",
        "127.0.0.1",
        "--port",
        "7000",
        "--cb-num-blocks",
        "64",
        "--cb-max-batch-tokens",
        "512",
        str(d),
    ]
    assert spec.served_model == str(d) and spec.metrics_path is None
    assert not spec.supports_ignore_eos and not spec.sends_done
    c2 = cfg(engine="transformers", model_path=str(d), launcher=["t"], server_args=["--cb-num-blocks=128"])
    argv = transformers_serve.build_command(c2, 1, str(d))
    assert (
        "64" not in argv and "--cb-num-blocks=128" in argv and _flag(argv, "--cb-max-batch-tokens") == "512"
    )
    with pytest.raises(ModelValidationError, match="no tensor/pipeline"):
        transformers_serve.validate(cfg(engine="transformers", model_path=str(d), tensor_parallel=2))


def test_apptainer_wrapping():
    w = container.wrap(
        ["vllm", "serve", "/models/m"],
        runtime="apptainer",
        image="vllm.sif",
        env={"A": "1"},
        model_dir="/models/m",
        hf_cache="/hf",
        binds=["/data:/data:ro"],
        gpu_ids=["2", "3"],
    )
    assert w.argv == [
        "apptainer",
        "exec",
        "--nv",
        "--bind",
        "/models/m:/models/m",
        "--bind",
        "/hf:/hf",
        "--bind",
        "/data:/data:ro",
        "--env",
        "A=1",
        "--env",
        "HF_HOME=/hf",
        "vllm.sif",
        "vllm",
        "serve",
        "/models/m",
    ]
    assert w.env == {"CUDA_VISIBLE_DEVICES": "2,3"} and w.stop_argv is None


def test_docker_wrapping():
    w = container.wrap(
        ["vllm", "serve", "/models/m", "--port", "8000"],
        runtime="docker",
        image="vllm/vllm-openai:v0.11.1",
        env={"A": "1"},
        model_dir="/models/m",
        gpu_ids=["1"],
        name="jf-1",
    )
    assert w.argv == [
        "docker",
        "run",
        "--rm",
        "--name",
        "jf-1",
        "--gpus",
        "device=1",
        "--ipc=host",
        "--network=host",
        "-v",
        "/models/m:/models/m",
        "-e",
        "A=1",
        "--entrypoint",
        "vllm",
        "vllm/vllm-openai:v0.11.1",
        "serve",
        "/models/m",
        "--port",
        "8000",
    ]
    assert w.stop_argv == ["docker", "stop", "-t", "30", "jf-1"]
    with pytest.raises(ValueError, match="container.runtime"):
        container.wrap(["x"], runtime="podman", image="i", env={})


def test_visible_gpu_ids(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert container.visible_gpu_ids(2) == ["4", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert container.visible_gpu_ids(2) == ["0", "1"]
