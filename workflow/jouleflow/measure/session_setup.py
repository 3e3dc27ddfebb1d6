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
    else:
        s = cfg.synthetic
        hist = None
        if s.output_lengths is not None:
            gpu = s.histogram_gpu or cfg.gpu
            try:
                hist = synthetic.load_histogram(
                    s.output_lengths,
                    gpu,
                    s.histogram_num_gpus or cfg.effective_num_gpus,
                    s.histogram_max_num_seqs or cfg.batch_size,
                )
            except synthetic.HistogramError as exc:
                hint = "" if gpu else " (set --gpu or --histogram-gpu to pick the GPU's histogram)"
                raise synthetic.HistogramError(f"{exc}{hint}") from exc
        tok = Path(cfg.model_path) / "tokenizer.json" if cfg.model_path else None
        specs = synthetic.generate(
            cfg.num_requests,
            histogram=hist,
            fixed_output_len=s.fixed_output_len,
            prompt_len=s.prompt_len,
            seed=s.seed,
            endpoint=cfg.endpoint,
            tokenizer_json=tok if tok and tok.is_file() else None,
        )
        path = writer.path("request_set.parquet")
        requestset.write_request_set(specs, path)
        info = {
            "path": "request_set.parquet",
            "sha256": requestset.sha256_file(path),
            "synthetic": {
                **vars(s),
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


def engine_spec(cfg: LLMJobConfig, port: int, gpus: AllocatedGpus | None = None) -> base.ServerSpec:
    """The server to launch; with `gpus`, the server sees exactly the allocated GPUs."""
    if cfg.engine == "vllm":
        from jouleflow.measure.engines import vllm

        spec = vllm.server_spec(cfg, port)
    else:
        from jouleflow.measure.engines import transformers_serve

        spec = transformers_serve.server_spec(cfg, port)
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
            binds=cfg.container.binds,
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
