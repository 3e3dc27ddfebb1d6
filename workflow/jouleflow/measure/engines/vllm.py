"""vLLM's OpenAI-compatible server: command construction and pre-launch validation.

Nothing here imports vllm: the measuring process only launches it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from jouleflow.measure.engines import batch_limit
from jouleflow.measure.engines.base import ServerSpec
from jouleflow.measure.jobconfig import ConfigError, LLMJobConfig

log = logging.getLogger(__name__)


class ModelValidationError(ValueError):
    """The model or its parallel layout cannot work; the message names the model and sizes."""


def default_launcher() -> list[str]:
    """`vllm serve` when the console script is on PATH, else the same CLI through this Python."""
    if shutil.which("vllm"):
        return ["vllm", "serve"]
    return [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve"]


def model_source(cfg: LLMJobConfig) -> str:
    """What vLLM is told to load: the local directory when given, else the HF id."""
    return cfg.model_path or cfg.model


def build_command(cfg: LLMJobConfig, port: int, model_ref: str | None = None) -> list[str]:
    """`vllm serve MODEL --host --port --served-model-name ...` from the job config (no container)."""
    launcher = list(cfg.launcher) if cfg.launcher else default_launcher()
    argv = [*launcher, model_ref or model_source(cfg)]
    argv += ["--host", cfg.host, "--port", str(port), "--served-model-name", cfg.model]
    argv += ["--max-num-seqs", str(cfg.server_max_num_seqs or cfg.batch_size)]
    argv += ["--tensor-parallel-size", str(cfg.tensor_parallel)]
    if cfg.pipeline_parallel > 1:
        argv += ["--pipeline-parallel-size", str(cfg.pipeline_parallel)]
    if cfg.data_parallel > 1:
        argv += ["--data-parallel-size", str(cfg.data_parallel)]
    if cfg.expert_parallel:
        argv.append("--enable-expert-parallel")
    argv += ["--load-format", "dummy" if cfg.load_format == "dummy" else "auto"]
    if cfg.max_model_len is not None:
        argv += ["--max-model-len", str(cfg.max_model_len)]
    if cfg.dtype:
        argv += ["--dtype", cfg.dtype]
    if cfg.quantization:
        argv += ["--quantization", cfg.quantization]
    if cfg.max_num_batched_tokens is not None:
        argv += ["--max-num-batched-tokens", str(cfg.max_num_batched_tokens)]
    if cfg.async_scheduling is not None:
        argv.append("--async-scheduling" if cfg.async_scheduling else "--no-async-scheduling")
    if cfg.batch_limit_file is not None:
        # The scheduler subclass must match async scheduling (batch_limit.scheduler_cls); when the
        # config leaves it to vLLM, ask for it explicitly so that vLLM refuses a setup without it
        # instead of running an async scheduler on a synchronous engine.
        async_scheduling = _async_scheduling(cfg)
        if async_scheduling is None:
            argv.append("--async-scheduling")
        argv += ["--scheduler-cls", batch_limit.scheduler_cls(async_scheduling is not False)]
    if cfg.gpu_memory_utilization is not None:
        argv += ["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]
    argv += compilation_server_args(cfg.server_args, cfg.cudagraph_max_capture)
    return argv


def _async_scheduling(cfg: LLMJobConfig) -> bool | None:
    """Async scheduling as the server args (the last flag wins, as in argparse) or the config set it."""
    flags = [a for a in cfg.server_args if a in ("--async-scheduling", "--no-async-scheduling")]
    if flags:
        return flags[-1] == "--async-scheduling"
    return cfg.async_scheduling


# --- compilation config --------------------------------------------------------------------------

COMPILATION_FLAGS = ("--compilation-config", "-cc")
CAPTURE_KEYS = ("max_cudagraph_capture_size", "cudagraph_capture_sizes")


def compilation_server_args(server_args: list[str], max_capture: int | None) -> list[str]:
    """`server_args` with max_cudagraph_capture_size = `max_capture` in vLLM's compilation config:
    merged into a `--compilation-config JSON` the args already have, else appended. Raises
    ConfigError when the args set the capture sizes themselves or cannot be merged."""
    args = list(server_args)
    if max_capture is None:
        return args
    key = "cudagraph_max_capture"
    for i, arg in enumerate(args):
        flag, eq, inline = arg.partition("=")
        if flag.startswith(tuple(f"{f}." for f in COMPILATION_FLAGS)):  # -cc.KEY=VALUE form
            if flag.split(".", 1)[1] in CAPTURE_KEYS:
                raise ConfigError(f"{key}: server_args set {flag} too; set the capture sizes in one place")
            continue
        if flag not in COMPILATION_FLAGS:
            continue
        if not eq and i + 1 >= len(args):
            raise ConfigError(f"{key}: server_args end with {arg} and no value")
        value = inline if eq else args[i + 1]
        try:
            merged = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{key}: cannot merge into server_args {flag} {value!r} (not JSON: {exc})"
            ) from exc
        if not isinstance(merged, dict):
            raise ConfigError(f"{key}: cannot merge into server_args {flag} {value!r} (not a JSON object)")
        clash = [k for k in CAPTURE_KEYS if k in merged]
        if clash:
            raise ConfigError(
                f"{key}: server_args {flag} sets {', '.join(clash)} too; set the capture sizes in one place"
            )
        merged["max_cudagraph_capture_size"] = max_capture
        text = json.dumps(merged, separators=(",", ":"))
        if eq:
            args[i] = f"{flag}={text}"
        else:
            args[i + 1] = text
        return args
    return [*args, "--compilation-config", json.dumps({"max_cudagraph_capture_size": max_capture})]


def server_spec(cfg: LLMJobConfig, port: int, cache_env: dict[str, str] | None = None) -> ServerSpec:
    """The vLLM server spec (the caller may wrap argv in a container afterwards).

    `cache_env`: engine_cache.cache_env's variables (persistent compile caches), added to the env.
    """
    env = {**cfg.env, **(cache_env or {})}
    if cfg.batch_limit_file is not None:
        env[batch_limit.ENV_VAR] = str(Path(cfg.batch_limit_file).expanduser().resolve())
    return ServerSpec(
        engine="vllm",
        argv=build_command(cfg, port),
        host=cfg.host,
        port=port,
        served_model=cfg.model,
        env=env,
        health_path="/health",
        metrics_path="/metrics",
    )


# --- validation --------------------------------------------------------------------------------


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or os.path.exists(ref)


def find_model_config(model_ref: str) -> Path | None:
    """config.json of a local model dir, or of an HF id in the local HF cache; None when not found."""
    if _looks_like_path(model_ref):
        path = Path(model_ref).expanduser()
        if not path.is_dir():
            raise ModelValidationError(f"model directory {path} does not exist")
        cfg = path / "config.json"
        if not cfg.is_file():
            raise ModelValidationError(f"model directory {path} has no config.json")
        return cfg
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cached = try_to_load_from_cache(model_ref, "config.json")
    return Path(cached) if isinstance(cached, str) else None


def read_json_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelValidationError(f"{path}: cannot read model config ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelValidationError(f"{path}: model config is not a JSON object")
    return data


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """Multimodal configs nest the language model's sizes under text_config."""
    inner = config.get("text_config")
    return inner if isinstance(inner, dict) and "num_attention_heads" in inner else config


def is_moe(config: dict[str, Any]) -> bool:
    c = text_config(config)
    return any(c.get(k) for k in ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts"))


def validate_parallelism(model: str, config: dict[str, Any], tp: int, pp: int, ep: bool) -> None:
    c = text_config(config)
    heads = c.get("num_attention_heads")
    if isinstance(heads, int) and heads % tp != 0:
        raise ModelValidationError(
            f"{model}: tensor_parallel={tp} does not divide num_attention_heads={heads}"
        )
    kv = c.get("num_key_value_heads")
    if isinstance(kv, int) and kv > 0 and kv % tp != 0 and tp % kv != 0:
        raise ModelValidationError(
            f"{model}: tensor_parallel={tp} and num_key_value_heads={kv}: neither divides the other"
        )
    layers = c.get("num_hidden_layers")
    if isinstance(layers, int) and pp > layers:
        raise ModelValidationError(f"{model}: pipeline_parallel={pp} exceeds num_hidden_layers={layers}")
    if ep and not is_moe(config):
        raise ModelValidationError(f"{model}: expert_parallel requested but the model has no experts (dense)")


def tokenizer_vocab_size(model_dir: Path) -> int | None:
    """Vocabulary size (with added tokens) of tokenizer.json in `model_dir`; None when there is none."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ModelValidationError(f"{path}: cannot load tokenizer ({exc})") from exc
    return tok.get_vocab_size(with_added_tokens=True)


CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def validate_chat(cfg: LLMJobConfig, model_dir: Path, config: dict[str, Any]) -> None:
    """The chat endpoint needs a chat template (vLLM refuses every request without one) and a
    vision-language model its image processor's config: both checked before the launch."""
    if (
        isinstance(config.get("vision_config"), dict)
        and not (model_dir / "preprocessor_config.json").is_file()
    ):
        raise ModelValidationError(
            f"{model_dir}: no preprocessor_config.json; the engine's image processor of this vision-language "
            "model needs it (`jouleflow prepare model` adds the bundled one)"
        )
    if cfg.endpoint != "chat" or any(a.split("=")[0] == "--chat-template" for a in cfg.server_args):
        return
    tok_cfg = model_dir / "tokenizer_config.json"
    if not tok_cfg.is_file() or any((model_dir / name).is_file() for name in CHAT_TEMPLATE_FILES):
        return
    if not read_json_file(tok_cfg).get("chat_template"):
        raise ModelValidationError(
            f"{tok_cfg}: no chat_template (nor {' / '.join(CHAT_TEMPLATE_FILES)}) and the task's endpoint is "
            "chat; use endpoint: completions or pass --chat-template in server_args"
        )


def validate(cfg: LLMJobConfig) -> dict[str, Any] | None:
    """Check what can be checked before a long launch; returns the model config when found."""
    compilation_server_args(cfg.server_args, cfg.cudagraph_max_capture)  # a clash is bad input
    ref = model_source(cfg)
    config_path = find_model_config(ref)
    if config_path is None:
        if os.environ.get("HF_HUB_OFFLINE") == "1" or cfg.env.get("HF_HUB_OFFLINE") == "1":
            raise ModelValidationError(
                f"model {ref}: not a local directory and not in the HF cache (offline)"
            )
        if cfg.load_format == "dummy":
            raise ModelValidationError(
                f"model {ref}: dummy weights need a local model dir with config.json and tokenizer "
                "(`jouleflow prepare model`)"
            )
        log.warning("model %s: config not cached locally; vLLM will download it, checks skipped", ref)
        return None
    config = read_json_file(config_path)
    validate_parallelism(cfg.model, config, cfg.tensor_parallel, cfg.pipeline_parallel, cfg.expert_parallel)
    validate_chat(cfg, config_path.parent, config)
    if cfg.load_format == "dummy":
        vocab = text_config(config).get("vocab_size")
        have = tokenizer_vocab_size(config_path.parent)
        if have is None:
            raise ModelValidationError(
                f"{config_path.parent}: no tokenizer.json; dummy weights need one covering vocab_size={vocab} "
                "(`jouleflow prepare model`)"
            )
        if isinstance(vocab, int) and have < vocab:
            raise ModelValidationError(
                f"{config_path.parent}/tokenizer.json: {have} tokens do not cover the model's vocab_size={vocab}; "
                "random weights would emit ids the tokenizer cannot decode"
            )
    return config
