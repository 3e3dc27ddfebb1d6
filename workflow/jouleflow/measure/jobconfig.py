"""The configuration of one LLM measurement (one grid point), with validation and a canonical form.

A job spec (YAML/JSON) uses exactly these field names; unknown keys are rejected by name.
Precedence when the CLI builds a config: defaults < `--config` file < explicit flags.
ConfigError and the nested sections (container, synthetic, saturate) are in measure.config_sections;
importing them from here works as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from jouleflow.measure.config_sections import (
    ConfigError,
    ContainerConfig,
    SaturateConfig,
    SyntheticConfig,
)

ENGINES = ("vllm", "transformers")
ENDPOINTS = ("chat", "completions")
LOAD_FORMATS = ("real", "dummy")
ARRIVALS = ("burst", "concurrency", "poisson", "saturate")
CONTAINER_RUNTIMES = ("apptainer", "singularity", "docker")

_Config = TypeVar("_Config")


@dataclass
class LLMJobConfig:
    model: str  # HF id, e.g. meta-llama/Llama-3.1-8B-Instruct
    batch_size: int  # vLLM --max-num-seqs
    model_path: str | None = None  # local dir; null = the HF id (or the bundled dummy config when dummy)
    task: str = "lm-arena-chat"
    engine: str = "vllm"
    gpu: str | None = None  # GPU type label (H100); null = derived from the GPU name at run time
    num_gpus: int | None = None  # null = tensor x pipeline x data parallel
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    data_parallel: int = 1
    expert_parallel: bool = False
    precision: str = "bf16"
    dtype: str | None = None  # vLLM --dtype; null = engine default
    quantization: str | None = None
    load_format: str = "real"
    max_model_len: int | None = None
    max_num_batched_tokens: int | None = None
    async_scheduling: bool | None = None  # null = engine default
    gpu_memory_utilization: float | None = None
    # vLLM's max_cudagraph_capture_size (--compilation-config); null = vLLM's min(2 x max_num_seqs, 512).
    cudagraph_max_capture: int | None = None
    # Persistent compile caches kept across points (measure/engine_cache.py); null = the engine's own.
    engine_cache_dir: str | None = None
    # A control file whose integer caps the running requests of a live vLLM server (engines/batch_limit.py).
    batch_limit_file: str | None = None
    # Measured on a server shared by several batch sizes (measure/reuse.py): that server's
    # --max-num-seqs, the batch size enforced inside it by the batch-limit scheduler; null = a
    # dedicated server started with --max-num-seqs = batch_size.
    server_max_num_seqs: int | None = None
    server_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    launcher: list[str] | None = None  # e.g. ["vllm", "serve"]; null = auto
    container: ContainerConfig | None = None
    device: str = "cpu"  # transformers engine only
    num_requests: int = 1024
    request_set: str | None = None  # Parquet request set; null = synthetic (or hf_request_set)
    # A pinned Hugging Face dataset mapped to requests (measure.hfsource.HFSource's keys); null = none.
    hf_request_set: dict[str, Any] | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    endpoint: str = "chat"
    sampling: dict[str, Any] = field(default_factory=lambda: {"temperature": 0.8, "top_p": 0.95})
    extra_body: dict[str, Any] = field(default_factory=dict)
    arrival: str = "burst"
    max_concurrency: int | None = None
    rate: float | None = None  # requests/s for poisson
    arrival_seed: int = 0
    saturate: SaturateConfig | None = None  # arrival=saturate only; null there = the defaults
    request_timeout_s: float = 1800.0
    chunk_timeout_s: float = 300.0  # longest silence on one stream
    health_timeout_s: float = 3600.0  # big models load for many minutes
    power_period_s: float = 0.1
    metrics_period_s: float = 0.5
    # GPU latent metrics (gpu_metrics.parquet) sampling period; 0 = not sampled.
    latent_period_s: float = 0.5
    # Power sampled with the server up and no load, before the load (run.json idle_baseline); 0 = skipped.
    idle_baseline_s: float = 5.0
    no_energy: bool = False
    host: str = "127.0.0.1"
    port: int | None = None  # null = a free port
    # Pipeline bookkeeping, not a measured setting: the run directory of the next-smaller batch size
    # this point was scheduled after (recorded in run.json so that a later insertion changes nothing).
    after: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def effective_num_gpus(self) -> int:
        if self.num_gpus is not None:
            return self.num_gpus
        return self.tensor_parallel * self.pipeline_parallel * self.data_parallel

    @property
    def parallelism(self) -> str:
        return parallelism_label(
            self.tensor_parallel, self.pipeline_parallel, self.data_parallel, self.expert_parallel
        )

    def validate(self) -> None:
        def need(cond: bool, key: str, msg: str) -> None:
            if not cond:
                raise ConfigError(f"{key}: {msg}")

        need(isinstance(self.model, str) and bool(self.model), "model", "must be a non-empty string")
        need(
            is_pos_int(self.batch_size), "batch_size", f"must be a positive integer, got {self.batch_size!r}"
        )
        for key in ("tensor_parallel", "pipeline_parallel", "data_parallel", "num_requests"):
            need(
                is_pos_int(getattr(self, key)), key, f"must be a positive integer, got {getattr(self, key)!r}"
            )
        need(self.engine in ENGINES, "engine", f"must be one of {ENGINES}, got {self.engine!r}")
        need(self.endpoint in ENDPOINTS, "endpoint", f"must be one of {ENDPOINTS}, got {self.endpoint!r}")
        need(
            self.load_format in LOAD_FORMATS,
            "load_format",
            f"must be one of {LOAD_FORMATS}, got {self.load_format!r}",
        )
        need(self.arrival in ARRIVALS, "arrival", f"must be one of {ARRIVALS}, got {self.arrival!r}")
        if self.arrival == "concurrency":
            need(
                is_pos_int(self.max_concurrency),
                "max_concurrency",
                "must be a positive integer for arrival=concurrency",
            )
        if self.arrival == "poisson":
            need(
                isinstance(self.rate, (int, float)) and self.rate > 0,
                "rate",
                "must be > 0 for arrival=poisson",
            )
        if self.arrival == "saturate":
            self.saturate = self.saturate or SaturateConfig()
            self.saturate.validate()
        else:
            need(self.saturate is None, "saturate", f"only used with arrival=saturate, not {self.arrival!r}")
        parallel = self.tensor_parallel * self.pipeline_parallel * self.data_parallel
        if self.num_gpus is not None:
            need(is_pos_int(self.num_gpus), "num_gpus", f"must be a positive integer, got {self.num_gpus!r}")
            if self.engine == "vllm":
                need(
                    self.num_gpus == parallel,
                    "num_gpus",
                    f"{self.num_gpus} != tensor_parallel x pipeline_parallel x data_parallel = {parallel}",
                )
        need(
            isinstance(self.server_args, list) and all(isinstance(a, str) for a in self.server_args),
            "server_args",
            "must be a list of strings",
        )
        need(isinstance(self.env, dict), "env", "must be a mapping of strings")
        self.env = {str(k): str(v) for k, v in self.env.items()}
        self._validate_engine_settings(need)
        for key in (
            "request_timeout_s",
            "chunk_timeout_s",
            "health_timeout_s",
            "power_period_s",
            "metrics_period_s",
        ):
            need(isinstance(getattr(self, key), (int, float)) and getattr(self, key) > 0, key, "must be > 0")
        for key in ("latent_period_s", "idle_baseline_s"):
            value = getattr(self, key)
            need(
                isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0,
                key,
                "must be >= 0",
            )
        need(isinstance(self.sampling, dict), "sampling", "must be a mapping")
        need(isinstance(self.extra_body, dict), "extra_body", "must be a mapping")
        if self.launcher is not None:
            need(
                isinstance(self.launcher, list) and bool(self.launcher),
                "launcher",
                "must be a non-empty list",
            )
        if self.container is not None:
            need(
                self.container.runtime in CONTAINER_RUNTIMES,
                "container.runtime",
                f"must be one of {CONTAINER_RUNTIMES}, got {self.container.runtime!r}",
            )
        s = self.synthetic
        if self.hf_request_set is not None:
            from jouleflow.measure.hfsource import HFSource, HFSourceError

            need(self.request_set is None, "request_set", "give request_set or hf_request_set, not both")
            try:
                HFSource.from_mapping(dict(self.hf_request_set), "hf_request_set", self.endpoint)
            except HFSourceError as exc:
                raise ConfigError(str(exc)) from exc
        elif self.request_set is None:
            need(
                s.output_lengths is not None or is_pos_int(s.fixed_output_len),
                "synthetic",
                "no request_set: set synthetic.output_lengths (histogram file) or synthetic.fixed_output_len",
            )

    def _validate_engine_settings(self, need: Any) -> None:
        if self.cudagraph_max_capture is not None:
            need(
                is_pos_int(self.cudagraph_max_capture),
                "cudagraph_max_capture",
                f"must be a positive integer or null, got {self.cudagraph_max_capture!r}",
            )
        for key in ("cudagraph_max_capture", "batch_limit_file"):
            if getattr(self, key) is not None:
                need(self.engine == "vllm", key, f"vLLM only, not engine {self.engine!r}")
        if self.server_max_num_seqs is not None:
            need(
                is_pos_int(self.server_max_num_seqs) and self.server_max_num_seqs >= self.batch_size,
                "server_max_num_seqs",
                f"must be an integer >= batch_size ({self.batch_size}) or null, got {self.server_max_num_seqs!r}",
            )
            need(self.engine == "vllm", "server_max_num_seqs", f"vLLM only, not engine {self.engine!r}")
        for key in ("engine_cache_dir", "batch_limit_file"):
            value = getattr(self, key)
            need(value is None or (isinstance(value, str) and bool(value)), key, "must be a path or null")
        if self.engine_cache_dir is not None:
            from jouleflow.measure.engine_cache import conflicting_env

            clash = conflicting_env(self.env)
            need(
                not clash, "engine_cache_dir", f"env sets {', '.join(clash)} too; set the caches in one place"
            )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if out["saturate"] is None:  # other arrivals record (and hash) what they always did
            del out["saturate"]
        if out["hf_request_set"] is None:  # so do synthetic and parquet request sets
            del out["hf_request_set"]
        return out

    def saturate_headroom(self) -> int:
        """Requests kept waiting beyond B in arrival=saturate (the default keeps a few queued)."""
        headroom = self.saturate.headroom if self.saturate else None
        return max(4, self.batch_size // 8) if headroom is None else headroom


def parallelism_label(tp: int, pp: int, dp: int, ep: bool) -> str:
    """ "tp1", "tp2-ep", "tp2-pp2", "dp2": the degrees above 1 (tp always when nothing else is)."""
    parts = []
    if tp > 1 or (pp == 1 and dp == 1):
        parts.append(f"tp{tp}")
    if pp > 1:
        parts.append(f"pp{pp}")
    if dp > 1:
        parts.append(f"dp{dp}")
    if ep:
        parts.append("ep")
    return "-".join(parts)


def is_pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


_NESTED = {"container": ContainerConfig, "synthetic": SyntheticConfig, "saturate": SaturateConfig}


def build_job_config(
    cls: type[_Config], data: dict[str, Any], source: str, nested: dict[str, type]
) -> _Config:
    """Build a job-spec dataclass from a mapping; errors name `source` (e.g. the file) and the key.

    `nested` maps the keys whose value is itself a config section to that section's dataclass.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a job spec must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}")
    kwargs = dict(data)
    for key, section in nested.items():
        value = kwargs.get(key)
        if value is None or isinstance(value, section):
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping")
        sub_known = {f.name for f in dataclasses.fields(section)}
        bad = sorted(set(value) - sub_known)
        if bad:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(f'{key}.{b}' for b in bad)}")
        try:
            kwargs[key] = section(**value)
        except TypeError as exc:
            raise ConfigError(f"{source}: {key}: {exc}") from exc
    for key in ("model", "batch_size"):
        if key not in kwargs:
            raise ConfigError(f"{source}: missing required key {key}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def config_from_dict(data: dict[str, Any], source: str = "config") -> LLMJobConfig:
    """Build a config from a mapping, naming unknown/missing keys (and `source`, e.g. the file) in errors."""
    return build_job_config(LLMJobConfig, data, source, _NESTED)


def load_job_spec(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON job spec into a dict (validated later, merged with CLI flags)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: job spec file not found")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise ConfigError(f"{path}: cannot parse job spec ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a job spec must be a mapping")
    from jouleflow.records import RecordError, spec_fields

    try:
        return spec_fields(data, str(path))  # a spec newer than this jouleflow is refused
    except RecordError as exc:
        raise ConfigError(str(exc)) from None


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config_dict: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config_dict).encode()).hexdigest()
