"""Typed, versioned records of the JSON files the layers exchange: the job spec, run.json, summary.json.

Every module that writes or reads one of these files goes through its record here (attribute
access, not string keys), so a renamed or misspelt key fails where the file is read, naming the
file and the key. Each record has a schema version: a file without one is version 1 (what every
file written before the records says), a file newer than this code is refused. Records are written
through traces' one atomic writer. Imports no layer (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from jouleflow.traces import RUN_JSON, STATUSES, TraceError, json_text, read_json, write_text

SPEC_SCHEMA_VERSION = 1
RUN_SCHEMA_VERSION = 2  # 2: a saturate run's `convergence` and the stop in `load`
SUMMARY_SCHEMA_VERSION = 1
SUMMARY_HOST_MEDIA = ("engine_cpu_cores", "mean_images_per_request", "mean_video_frames_per_request")

# Job-spec keys (run.json `config`) that define a grid point: compared for copied reference runs.
IDENTITY_KEYS = ("task", "model", "gpu", "num_gpus", "batch_size", "precision")
# ... plus what changes a measurement: compared for measured runs, and a change reruns the job (whose
# guard then refuses). model_path is left out on purpose (moving the weights changes nothing
# measured), and so are timeouts and the power sampling period.
LLM_MEASURED_KEYS = (
    "tensor_parallel", "pipeline_parallel", "data_parallel", "expert_parallel", "quantization",
    "load_format", "engine", "endpoint", "num_requests", "max_model_len", "sampling", "extra_body",
    "server_args", "env", "request_set", "synthetic", "arrival", "saturate",
)  # fmt: skip
DIFFUSION_MEASURED_KEYS = (
    "pipeline", "ulysses_degree", "ring_degree", "cfg_parallel", "pipefusion_degree", "load_format",
    "steps", "height", "width", "num_frames", "guidance_scale", "seed", "num_batches", "warmup_batches",
    "prompts", "cycle_prompts", "xfuser_args", "env",
)  # fmt: skip
# Measured keys a spec carries only when the config sets them, so that specs (and the rerun trigger)
# stay as they were without them; absent means null.
OPTIONAL_MEASURED_KEYS = ("cudagraph_max_capture", "server_max_num_seqs", "hf_request_set")
# The guard compares the keys a spec has, so one tuple serves both modalities.
MEASURED_KEYS = (*IDENTITY_KEYS, *LLM_MEASURED_KEYS, *OPTIONAL_MEASURED_KEYS, *DIFFUSION_MEASURED_KEYS)


class RecordError(TraceError):
    """A record file that is not what its schema says; the message names the file and the key."""


def check_version(doc: Mapping[str, Any], source: str, known: int, key: str = "schema_version") -> int:
    """The file's schema version (absent: 1); a newer one than this code knows is refused."""
    version = doc.get(key, 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecordError(f"{source}: {key} must be a positive integer, got {version!r}")
    if version > known:
        raise RecordError(
            f"{source}: schema version {version} is newer than this jouleflow ({known}); update jouleflow"
        )
    return version


def _mapping(doc: Any, source: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise RecordError(f"{source}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _check_keys(doc: Any, source: str, known: set[str], required: tuple[str, ...] | set[str]) -> None:
    _mapping(doc, source)
    missing = sorted(k for k in required if k not in doc)
    if missing:
        raise RecordError(f"{source}: missing key(s) {', '.join(map(repr, missing))}")
    unknown = sorted(k for k in doc if k not in known)
    if unknown:
        raise RecordError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}")


def _typed(doc: Mapping[str, Any], key: str, types: tuple[type, ...], source: str) -> Any:
    value = doc.get(key)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise RecordError(f"{source}: {key!r} must be {names}, got {value!r}")
    return value


# --- the job spec -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    """`results/specs/<run>.json`: what `jouleflow measure llm|diffusion --config` runs.

    The envelope (the keys that identify a grid point) is typed; every other key is in `fields`,
    validated by the job-config builders that own them (measure.jobconfig, measure.diffusion_config).
    The file carries `schema_version` from version 2 on: version-1 files have none, so the specs
    written before the records stay byte-identical and every `jouleflow measure` accepts them.
    """

    task: str
    model: str
    gpu: str
    num_gpus: int
    batch_size: int
    precision: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SPEC_SCHEMA_VERSION

    @property
    def after(self) -> str | None:
        """The run this point is measured after (chained batch sizes), if any."""
        return self.fields.get("after")

    @property
    def load_format(self) -> str | None:
        return self.fields.get("load_format")

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], source: str = "job spec") -> JobSpec:
        version = check_version(_mapping(doc, source), source, SPEC_SCHEMA_VERSION)
        _check_keys(doc, source, set(doc), IDENTITY_KEYS)
        kinds: dict[str, tuple[type, ...]] = {"num_gpus": (int,), "batch_size": (int,)}
        identity = {k: _typed(doc, k, kinds.get(k, (str,)), source) for k in IDENTITY_KEYS}
        rest = {k: v for k, v in doc.items() if k not in IDENTITY_KEYS and k != "schema_version"}
        return cls(**identity, fields=rest, schema_version=version)

    @classmethod
    def read(cls, path: str | Path) -> JobSpec:
        return cls.from_dict(read_json(path), str(path))

    def to_dict(self) -> dict[str, Any]:
        doc = {**self.fields, **{k: getattr(self, k) for k in IDENTITY_KEYS}}
        if self.schema_version > 1:
            doc["schema_version"] = self.schema_version
        return doc

    def to_json(self) -> str:
        return json_text(self.to_dict())

    def write(self, path: str | Path) -> None:
        write_text(self.to_json(), path)


def spec_fields(doc: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A (possibly partial, hand-written) job spec's keys for the job-config builders: the version
    checked and dropped, the rest left to the builder that owns it."""
    check_version(doc, source, SPEC_SCHEMA_VERSION)
    return {k: v for k, v in doc.items() if k != "schema_version"}


# --- run.json ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """The load's first send and last end (LLM), or the timed batches' (diffusion), unix seconds."""

    t0: float | None = None
    t_last_end: float | None = None


@dataclass(frozen=True)
class RunRecord:
    """`run.json`: a run directory's status, reason, effective config and provenance.

    Written by the sessions (measure.session_base commits what measure.session, with
    measure.convergence's section, or measure.diffusion_record builds), the job supervisor
    (plan.attempt) and the run guard (plan.runguard), always through traces.RunDirWriter.commit.
    `config` keeps the job spec's shape (the run guard compares it key by key) plus what the
    session resolved; its keys are the job-config builders' (measure.jobconfig, diffusion_config).
    """

    status: str
    config: dict[str, Any]
    reason: str | None = None
    config_hash: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    foreign_processes: list[Any] = field(default_factory=list)
    request_set: dict[str, Any] | None = None  # LLM: the request set that was replayed (sha256, ...)
    timing: Timing | None = None
    server: dict[str, Any] | None = None  # LLM: the engine's argv, port, metrics
    load: dict[str, Any] | None = None  # LLM: requests sent, ok, aborted (saturate: arrival, the stop)
    worker: dict[str, Any] | None = None  # diffusion: the xDiT worker's argv, exit code, logs
    warmup: list[dict[str, Any]] | None = None  # diffusion: the warm-up batches
    convergence: dict[str, Any] | None = None  # LLM arrival saturate: targets, stop reason, CI reached
    schema_version: int = RUN_SCHEMA_VERSION

    REQUIRED: ClassVar[tuple[str, ...]] = ("status", "config")
    # Sections only some writers have: left out of the file when unset.
    OPTIONAL: ClassVar[tuple[str, ...]] = (
        "request_set", "timing", "server", "load", "worker", "warmup", "convergence",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"run.json status must be one of {STATUSES}, got {self.status!r}")

    @property
    def energy_source(self) -> str | None:
        """Where the energy figures come from; None: the run had no energy sensor."""
        return self.provenance.get("energy_source")

    @property
    def end_time(self) -> float | None:
        return self.provenance.get("end_time")

    @property
    def gpus(self) -> list[dict[str, Any]]:
        """The job's GPUs as the session saw them (index, name, UUID, power limits)."""
        return self.provenance.get("gpus") or []

    @property
    def idle_baseline(self) -> dict[str, Any] | None:
        """LLM: the engine up with no load before the load: {start, end, duration_s, mean_power_w:
        {"<gpu>": W}} (provenance.idle_baseline); None when not taken (older runs, no energy, 0 s)."""
        return self.provenance.get("idle_baseline")

    @property
    def load_format(self) -> str | None:
        return self.config.get("load_format") or self.provenance.get("load_format")

    @property
    def is_diffusion(self) -> bool:
        return self.config.get("modality") == "diffusion"

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], source: str = RUN_JSON) -> RunRecord:
        version = check_version(_mapping(doc, source), source, RUN_SCHEMA_VERSION)
        _check_keys(doc, source, {f.name for f in fields(cls)}, cls.REQUIRED)
        status = doc["status"]
        if status not in STATUSES:
            raise RecordError(f"{source}: status must be one of {STATUSES}, got {status!r}")
        values = {k: v for k, v in doc.items() if k not in ("schema_version", "timing")}
        _typed(doc, "config", (dict,), source)
        for key in ("provenance", "request_set", "server", "load", "worker", "convergence"):
            if doc.get(key) is not None:
                _typed(doc, key, (dict,), source)
        timing = doc.get("timing")
        if timing is not None:
            _check_keys(timing, f"{source}: 'timing'", {"t0", "t_last_end"}, ())
            values["timing"] = Timing(**timing)
        for key in ("provenance", "notes", "foreign_processes"):  # null: the default (empty)
            if key in values and values[key] is None:
                del values[key]
        return cls(**values, schema_version=version)

    @classmethod
    def read(cls, run_dir: str | Path) -> RunRecord:
        """run.json of a run directory (TraceError names the file when missing or invalid)."""
        path = Path(run_dir) / RUN_JSON
        return cls.from_dict(read_json(path), str(path))

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in self.OPTIONAL:
                continue
            doc[f.name] = {"t0": value.t0, "t_last_end": value.t_last_end} if f.name == "timing" else value
        return doc

    def to_json(self) -> str:
        return json_text(self.to_dict())

    def write(self, path: str | Path) -> None:
        write_text(self.to_json(), path)


def read_run(run_dir: str | Path) -> RunRecord:
    """The run record of a run directory (refuses a newer schema, names the file and any bad key)."""
    return RunRecord.read(run_dir)


# --- summary.json -----------------------------------------------------------------------------


@dataclass(slots=True)
class SummaryRecord:
    """`summary.json`: one run's steady-state window, energy, latency figures and validity flags.

    Built field by field by analysis.energy (LLM) and analysis.diffusion; every key is always
    written (null where not computed) but the OPTIONAL ones, left out when unset. Mutable while the
    analysis fills it in; `update()` refuses a name that is not a field. Energies in J, times in s,
    power in W.
    """

    status: str | None = None
    reason: str | None = None
    energy_source: str | None = None
    batch_size: int | None = None
    full_batch: int | None = None
    config_hash: str | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    valid: bool = False
    flags: list[str] = field(default_factory=list)
    flag_details: dict[str, str] = field(default_factory=dict)
    # windows
    window_server: dict[str, Any] | None = None
    window_client: dict[str, Any] | None = None
    window_client_active: dict[str, Any] | None = None
    window_overlap: float | None = None
    window_source: str | None = None
    steady_start: float | None = None
    steady_end: float | None = None
    steady_duration_s: float | None = None
    # throughput and energy
    steady_tokens: int | None = None
    steady_energy_j: float | None = None
    energy_per_token_j: float | None = None
    energy_per_request_j: float | None = None
    energy_per_image_j: float | None = None
    energy_per_gpu_j: dict[str, float] | None = None
    mean_output_tokens: float | None = None
    output_tokens_from: str | None = None  # "request targets" | "completed requests" (analysis.output_tokens)
    tokens_per_s: float | None = None
    mean_power_w: float | None = None
    mean_power_per_gpu_w: dict[str, float] | None = None
    tokens_per_s_per_w: float | None = None
    power_integral_j: float | None = None
    energy_power_mismatch: float | None = None
    mean_running: float | None = None
    mean_running_source: str | None = None
    batch_fraction: float | None = None
    mean_active_client: float | None = None
    num_requests: int | None = None
    num_ok: int | None = None
    num_failed: int | None = None
    num_stopped: int | None = None  # arrival saturate: stopped in flight, neither ok nor failed
    num_not_sent: int | None = None  # ... and never sent
    load_stop_reason: str | None = None  # why a saturate load stopped (run.json load.stopped)
    batch_latency_s: float | None = None
    # J/token uncertainty (analysis.uncertainty): batch-means 95% CI half-width / mean
    energy_per_token_ci_rel: float | None = None
    energy_per_token_ci_intervals: int | None = None
    energy_per_token_ci_interval_s: float | None = None
    energy_per_token_ci_reason: str | None = None
    # latency distributions (analysis.latency): median/mean/p90/p95/p99 and count per metric
    median_ttft_s: float | None = None
    mean_ttft_s: float | None = None
    p90_ttft_s: float | None = None
    p95_ttft_s: float | None = None
    p99_ttft_s: float | None = None
    count_ttft: int = 0
    median_itl_s: float | None = None
    mean_itl_s: float | None = None
    p90_itl_s: float | None = None
    p95_itl_s: float | None = None
    p99_itl_s: float | None = None
    count_itl: int = 0
    median_tpot_s: float | None = None
    mean_tpot_s: float | None = None
    p90_tpot_s: float | None = None
    p95_tpot_s: float | None = None
    p99_tpot_s: float | None = None
    count_tpot: int = 0
    median_e2e_s: float | None = None
    mean_e2e_s: float | None = None
    p90_e2e_s: float | None = None
    p95_e2e_s: float | None = None
    p99_e2e_s: float | None = None
    count_e2e: int = 0
    # left out when unset: engine CPU cores busy in the steady window, the requests' media; diffusion's
    engine_cpu_cores: float | None = None
    mean_images_per_request: float | None = None
    mean_video_frames_per_request: float | None = None
    median_batch_latency_s: float | None = None
    mean_batch_size: float | None = None
    schema_version: int = SUMMARY_SCHEMA_VERSION

    VERSION_KEY: ClassVar[str] = "summary_schema_version"  # the key summary.json has always used
    OPTIONAL: ClassVar[tuple[str, ...]] = (
        *SUMMARY_HOST_MEDIA, "median_batch_latency_s", "mean_batch_size", "output_tokens_from"
    )  # fmt: skip

    def update(self, **values: Any) -> None:
        for name, value in values.items():
            if name not in _SUMMARY_FIELDS or name == "schema_version":
                raise AttributeError(f"summary.json has no field {name!r}")
            setattr(self, name, value)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], source: str = "summary.json") -> SummaryRecord:
        version = check_version(_mapping(doc, source), source, SUMMARY_SCHEMA_VERSION, cls.VERSION_KEY)
        names = set(_SUMMARY_FIELDS) - {"schema_version"}
        _check_keys(doc, source, names | {cls.VERSION_KEY}, names - set(cls.OPTIONAL))
        return cls(**{k: v for k, v in doc.items() if k != cls.VERSION_KEY}, schema_version=version)

    @classmethod
    def read(cls, path: str | Path) -> SummaryRecord:
        return cls.from_dict(read_json(path), str(path))

    def to_dict(self) -> dict[str, Any]:
        doc = {name: getattr(self, name) for name in _SUMMARY_FIELDS if name != "schema_version"}
        for name in self.OPTIONAL:
            if doc[name] is None:
                del doc[name]
        return {**doc, self.VERSION_KEY: self.schema_version}

    def to_json(self) -> str:
        return json_text(self.to_dict())

    def write(self, path: str | Path) -> None:
        write_text(self.to_json(), path)


_SUMMARY_FIELDS = tuple(f.name for f in fields(SummaryRecord))
