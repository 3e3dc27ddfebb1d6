"""Setting up one measured session: model dir, request set, engine spec, GPU allocation hook.

Split from jouleflow.measure.session so that each piece stays small; everything here runs before the
engine starts, so every error raised here ends the session with nothing written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from jouleflow import traces
from jouleflow.measure import requestset, synthetic
from jouleflow.measure.dummy_model import ensure_dummy_model
from jouleflow.measure.engine_cache import EngineCache
from jouleflow.measure.engines import base
from jouleflow.measure.gpualloc import AllocatedGpus
from jouleflow.measure.jobconfig import LLMJobConfig

log = logging.getLogger(__name__)


def default_model_cache() -> Path:
    return Path(os.environ.get("JOULEFLOW_MODEL_CACHE") or Path.home() / ".cache" / "jouleflow" / "models")


def needs_gpu(cfg: LLMJobConfig) -> bool:
    return cfg.engine == "vllm" or cfg.device != "cpu"


def resolve_model(cfg: LLMJobConfig, cache_dir: Path | None) -> None:
    """Dummy weights without a model dir: build one from the bundled architecture config."""
    if cfg.load_format == "dummy" and cfg.model_path is None and cfg.engine == "vllm":
        cfg.model_path = str(ensure_dummy_model(cfg.model, cache_dir or default_model_cache()))
        log.info("dummy model dir for %s: %s", cfg.model, cfg.model_path)


def prepare_requests(
    cfg: LLMJobConfig, writer: traces.RunDirWriter
) -> tuple[list[requestset.RequestSpec], dict]:
    """The request set to replay (first num_requests rows) and its provenance entry."""
    if cfg.request_set is not None:
        path = Path(cfg.request_set)
        specs = requestset.read_request_set(path)
        info = {"path": str(path), "sha256": requestset.sha256_file(path), "synthetic": None}
    elif cfg.hf_request_set is not None:
        specs, info = _hf_requests(cfg, writer)
    else:
        s = cfg.synthetic
        hist = _histogram(cfg, s.output_lengths)
        tok = _tokenizer(cfg)
        specs = synthetic.generate(
            cfg.num_requests,
            histogram=hist,
            fixed_output_len=s.fixed_output_len,
            prompt_len=s.prompt_len,
            seed=s.seed,
            endpoint=cfg.endpoint,
            tokenizer_json=tok,
            media=synthetic.MediaSpec.from_mapping(s.media, "synthetic.media") if s.media else None,
        )
        path = writer.path("request_set.parquet")
        requestset.write_request_set(specs, path)
        info = {
            "path": "request_set.parquet",
            "sha256": requestset.sha256_file(path),
            "synthetic": {
                # media only where set: a text run's provenance stays as it was
                **{k: v for k, v in vars(s).items() if k != "media" or v is not None},
                "histogram": hist.source if hist else None,
                # Another configuration's lengths stood in (synthetic.load_histogram's rule), or None.
                "histogram_fallback": hist.fallback if hist else None,
            },
        }
    if len(specs) < cfg.num_requests:
        raise requestset.RequestSetError(
            f"{info['path']}: has {len(specs)} requests, num_requests={cfg.num_requests}"
        )
    return specs[: cfg.num_requests], info


def _histogram(cfg: LLMJobConfig, path: str | None) -> synthetic.Histogram | None:
    """The point's published output-length histogram (synthetic.load_histogram's fallback rule)."""
    if path is None:
        return None
    s = cfg.synthetic
    gpu = s.histogram_gpu or cfg.gpu
    try:
        return synthetic.load_histogram(
            path,
            gpu,
            s.histogram_num_gpus or cfg.effective_num_gpus,
            s.histogram_max_num_seqs or cfg.batch_size,
        )
    except synthetic.HistogramError as exc:
        hint = "" if gpu else " (set --gpu or --histogram-gpu to pick the GPU's histogram)"
        raise synthetic.HistogramError(f"{exc}{hint}") from exc


def _tokenizer(cfg: LLMJobConfig) -> Path | None:
    """The model's tokenizer.json, to count input tokens exactly, when the model dir has one."""
    tok = Path(cfg.model_path) / "tokenizer.json" if cfg.model_path else None
    return tok if tok is not None and tok.is_file() else None


def _hf_requests(cfg: LLMJobConfig, writer: traces.RunDirWriter) -> tuple[list[requestset.RequestSpec], dict]:
    """An hf request set: the pinned revision from the Hub cache (HF_HUB_OFFLINE works after one
    prefetch), mapped and sampled, written into the run dir with its provenance."""
    from jouleflow.measure import hfrequests
    from jouleflow.measure.hfsource import HFSource

    where = f"tasks.{cfg.task}.request_set"  # the config key the spec's hf_request_set comes from
    source = HFSource.from_mapping(dict(cfg.hf_request_set or {}), where, cfg.endpoint)
    specs, prov = hfrequests.from_hub(
        source,
        endpoint=cfg.endpoint,
        num_requests=cfg.num_requests,
        where=where,
        histogram=_histogram(cfg, source.output_lengths),
        tokenizer_json=_tokenizer(cfg),
    )
    path = writer.path("request_set.parquet")
    requestset.write_request_set(specs, path, hfrequests.metadata(prov))
    info = {
        "path": "request_set.parquet",
        "sha256": requestset.sha256_file(path),
        "synthetic": None,
        "hf": prov,
    }
    return specs, info


def engine_cache(cfg: LLMJobConfig, engine_version: str | None) -> EngineCache | None:
    """The persistent compile caches of engine_cache_dir, created and checked before the engine
    starts (an unwritable directory is bad input); None without engine_cache_dir."""
    if cfg.engine_cache_dir is None:
        return None
    from jouleflow.measure import engine_cache as ec

    cache = ec.prepare(cfg.engine_cache_dir, cfg.engine, engine_version)
    log.info("engine caches: %s (%s)", cache.path, "warm" if cache.warm else "cold")
    return cache


def engine_log_provenance(cfg: LLMJobConfig, server_log: Path) -> dict | None:
    """The engine's effective settings as its log states them (vLLM only; see engines/vllm_log)."""
    if cfg.engine != "vllm":
        return None
    from jouleflow.measure.engines.vllm_log import read_effective_settings

    return read_effective_settings(server_log)


def engine_spec(
    cfg: LLMJobConfig, port: int, gpus: AllocatedGpus | None = None, cache: EngineCache | None = None
) -> base.ServerSpec:
    """The server to launch; with `gpus`, the server sees exactly the allocated GPUs; with `cache`,
    its compile caches are there."""
    from jouleflow.measure.engine_cache import cache_env

    env = cache_env(cfg.engine, cache.path) if cache is not None else {}
    if cfg.engine == "vllm":
        from jouleflow.measure.engines import vllm

        spec = vllm.server_spec(cfg, port, env)
    else:
        from jouleflow.measure.engines import transformers_serve

        spec = transformers_serve.server_spec(cfg, port)
        spec.env = {**spec.env, **env}
    if gpus is not None:
        spec.env = {**spec.env, "CUDA_VISIBLE_DEVICES": gpus.cuda_visible_devices}
    if cfg.container is not None:
        from jouleflow.measure.engines import container

        wrapped = container.wrap(
            spec.argv,
            runtime=cfg.container.runtime,
            image=cfg.container.image,
            env=spec.env,
            model_dir=cfg.model_path,
            hf_cache=container.default_hf_cache(),
            # The caches and the batch limit file's folder at the same paths inside.
            binds=[*cfg.container.binds, *_engine_binds(cfg, cache)],
            extra_args=cfg.container.args,
            gpu_ids=(
                [str(d) for d in gpus.device_ids]
                if gpus is not None
                else container.visible_gpu_ids(cfg.effective_num_gpus)
            ),
            name=f"jouleflow-{os.getpid()}-{port}",
        )
        spec.argv, spec.stop_argv = wrapped.argv, wrapped.stop_argv
        spec.env = {**spec.env, **wrapped.env}
    return spec


def _engine_binds(cfg: LLMJobConfig, cache: EngineCache | None) -> list[str]:
    paths = [cache.path] if cache is not None else []
    if cfg.batch_limit_file is not None:
        paths.append(Path(cfg.batch_limit_file).expanduser().resolve().parent)
    return [f"{p}:{p}" for p in paths]


def validate_engine(cfg: LLMJobConfig) -> dict | None:
    """Engine-specific checks before launch; returns the model's HF config when it was found."""
    from jouleflow.measure.engines import vllm

    if cfg.engine == "vllm":
        return vllm.validate(cfg)
    from jouleflow.measure.engines import transformers_serve

    transformers_serve.validate(cfg)
    return vllm.read_json_file(Path(transformers_serve.model_dir(cfg)) / "config.json")


def architecture(model_config: dict | None) -> str | None:
    """ "moe" | "dense" from the HF config (None when the config was not available)."""
    if model_config is None:
        return None
    from jouleflow.measure.engines.vllm import is_moe

    return "moe" if is_moe(model_config) else "dense"
