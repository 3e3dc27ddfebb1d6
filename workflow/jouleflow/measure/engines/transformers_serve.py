"""`transformers serve` with continuous batching: an OpenAI-compatible engine that also runs on CPU.

Used for the CPU end-to-end test and usable in the product (runs are labelled engine="transformers").
Its quirks, handled here and in the session: it rejects `ignore_eos` (fixed output lengths need the
model's generation_config `eos_token_id` null), ends streams without `[DONE]`, has no /metrics
(the steady window then comes from the client's in-flight counts) and wants `model` to be the
served path. It has no max-num-seqs either: the session caps the client's in-flight requests at
the batch size instead.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from jouleflow.measure.engines.base import ServerSpec
from jouleflow.measure.engines.vllm import ModelValidationError
from jouleflow.measure.jobconfig import LLMJobConfig

# Without a bounded KV cache it reserves ~6.7 GB of RAM on CPU; these keep it small.
CPU_DEFAULT_ARGS = ["--cb-num-blocks", "64", "--cb-max-batch-tokens", "512"]


def default_launcher() -> list[str]:
    if shutil.which("transformers"):
        return ["transformers", "serve"]
    return [sys.executable, "-m", "transformers.cli.transformers", "serve"]


def build_command(cfg: LLMJobConfig, port: int, model_dir: str) -> list[str]:
    launcher = list(cfg.launcher) if cfg.launcher else default_launcher()
    argv = [
        *launcher,
        "--continuous-batching",
        "--device",
        cfg.device,
        "--host",
        cfg.host,
        "--port",
        str(port),
    ]
    if cfg.dtype:
        argv += ["--dtype", cfg.dtype]
    user_flags = {a.split("=", 1)[0] for a in cfg.server_args}
    if cfg.device == "cpu":
        for i in range(0, len(CPU_DEFAULT_ARGS), 2):
            if CPU_DEFAULT_ARGS[i] not in user_flags:
                argv += CPU_DEFAULT_ARGS[i : i + 2]
    argv += list(cfg.server_args)
    argv.append(model_dir)
    return argv


def model_dir(cfg: LLMJobConfig) -> str:
    ref = cfg.model_path or cfg.model
    path = Path(ref).expanduser()
    if not path.is_dir():
        raise ModelValidationError(f"transformers engine: model directory {ref} does not exist")
    if not (path / "config.json").is_file():
        raise ModelValidationError(f"transformers engine: model directory {path} has no config.json")
    return str(path)


def validate(cfg: LLMJobConfig) -> None:
    model_dir(cfg)
    if cfg.load_format == "dummy":
        raise ModelValidationError("transformers engine: load_format dummy is not supported (vLLM only)")
    if cfg.tensor_parallel * cfg.pipeline_parallel * cfg.data_parallel != 1 or cfg.expert_parallel:
        raise ModelValidationError("transformers engine: no tensor/pipeline/data/expert parallelism")


def server_spec(cfg: LLMJobConfig, port: int) -> ServerSpec:
    path = model_dir(cfg)
    return ServerSpec(
        engine="transformers",
        argv=build_command(cfg, port, path),
        host=cfg.host,
        port=port,
        served_model=path,
        env=dict(cfg.env),
        health_path="/health",
        metrics_path=None,
        supports_ignore_eos=False,
        caps_batch=False,
        sends_done=False,
    )
