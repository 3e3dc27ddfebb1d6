"""Parquet schemas, atomic run-directory writes and validated reads.

With jouleflow.records (the JSON files: job spec, run.json, summary.json), this module is the only
meeting point between measurement (engines, load, power) and analysis (steady, energy, frontier,
compare, plots). It depends on pyarrow alone so that it runs on a bare GPU host as well as on a laptop.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

# The one home of file writing is jouleflow.files; its writers are re-exported here, where most
# callers already import the schemas from.
from jouleflow.files import json_text, write_atomic, write_csv, write_json, write_text  # noqa: F401

if TYPE_CHECKING:
    from jouleflow.records import RunRecord

# of the Parquet traces (file metadata; the JSON records' are in records). 2: requests.parquet `stopped`;
# 3: server.parquet `prompt_tokens` and `engine_cpu_s`, gpu_metrics.parquet; 4: the media of multimodal
# requests (request sets' `media_json`, requests.parquet's per-request media sizes); 5: requests.parquet's
# `max_tokens` and `ignore_eos`, the summary table's `output_tokens_from`
SCHEMA_VERSION = 5
# zstd keeps bundled reference runs small; level 9 is a good size/speed trade-off.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 9}

POWER = pa.schema(
    [
        ("t", pa.float64()),  # unix seconds
        ("gpu", pa.int32()),  # index among the job's visible GPUs
        ("power_w", pa.float64()),  # instant power
        ("energy_j", pa.float64()),  # cumulative energy counter since the session started
        ("temp_c", pa.float64()),
    ]
)

# Per-request media: counts, encoded bytes, pixels (frames x width x height; null if unknown), frames.
MEDIA_TOTALS = [
    pa.field(name, pa.int64(), metadata={b"since": b"4"})
    for name in ("num_images", "num_videos", "media_bytes", "media_pixels", "video_frames")
]

REQUESTS = pa.schema(
    [
        ("request_id", pa.int64()),
        ("t_send", pa.float64()),
        ("t_first_token", pa.float64()),  # null when no token arrived
        ("t_end", pa.float64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("ok", pa.bool_()),
        ("error", pa.string()),  # null when ok
        # true: the load stopped it on purpose (arrival saturate; error "stopped: ..." in flight,
        # "not sent: ..." never sent), neither ok nor failed. Null in traces older than version 2.
        pa.field("stopped", pa.bool_(), metadata={b"since": b"2"}),
        # The request's media (measure/media.py totals); null for text requests and before version 4.
        *MEDIA_TOTALS,
        # The request's target as the request set gave it (its output length when ignore_eos is set):
        # what a request stopped in flight would have produced. Null before version 5.
        pa.field("max_tokens", pa.int64(), metadata={b"since": b"5"}),
        pa.field("ignore_eos", pa.bool_(), metadata={b"since": b"5"}),
    ]
)

TOKENS = pa.schema(
    [
        ("request_id", pa.int64()),
        ("t", pa.float64()),
        ("n_tokens", pa.int32()),  # tokens carried by this streamed chunk
    ]
)

SERVER = pa.schema(
    [
        ("t", pa.float64()),
        ("running", pa.float64()),
        ("waiting", pa.float64()),
        ("kv_cache_usage", pa.float64()),  # fraction 0..1
        ("preemptions", pa.float64()),  # cumulative counter
        ("generation_tokens", pa.float64()),  # cumulative counter
        # cumulative counter of prompt (prefill) tokens; null in traces older than version 3
        pa.field("prompt_tokens", pa.float64(), metadata={b"since": b"3"}),
        # cumulative CPU seconds (user + system) of the engine's process tree; null before version 3
        pa.field("engine_cpu_s", pa.float64(), metadata={b"since": b"3"}),
    ]
)

# GPU latent metrics (measure/latents.py), ~2 Hz per GPU; every metric null where not reported.
GPU_METRICS = pa.schema(
    [
        ("t", pa.float64()),  # unix seconds
        ("gpu", pa.int32()),  # index among the job's visible GPUs (as in power.parquet)
        ("util_gpu_pct", pa.float64()),  # NVML utilization: time a kernel ran, last sample period
        ("util_mem_pct", pa.float64()),  # time device memory was read or written
        ("sm_clock_mhz", pa.float64()),
        ("mem_clock_mhz", pa.float64()),
        ("throttle_reasons", pa.int64()),  # NVML clocks-event (throttle) reasons bitmask
    ]
)

# Diffusion runs: one row per generated batch (per-batch windows, eq. 1 of the paper).
BATCHES = pa.schema(
    [
        ("batch_index", pa.int64()),
        ("t_start", pa.float64()),
        ("t_end", pa.float64()),
        ("batch_size", pa.int64()),
        ("ok", pa.bool_()),
        ("error", pa.string()),
    ]
)

# A request set: what the load generator replays. Either `prompt` (completions) or
# `messages_json` (chat; a JSON list of {role, content}, multi-turn allowed; a content may be a list
# of OpenAI parts with image/video data URLs) is set.
REQUEST_SET = pa.schema(
    [
        ("request_id", pa.int64()),
        ("prompt", pa.string()),
        ("messages_json", pa.string()),
        ("input_tokens", pa.int64()),  # as generated / tokenized; null when unknown
        ("max_tokens", pa.int64()),
        ("ignore_eos", pa.bool_()),
        # JSON list of the request's media, one {type, mime, bytes, width, height, frames} per item in
        # message order (measure/media.py); null for text requests and before version 4.
        pa.field("media_json", pa.string(), metadata={b"since": b"4"}),
    ]
)

# One row per run in the campaign summary table, and the target of `jouleflow import mlenergy`.
# Energies in joules, latencies in seconds, power in watts summed over the run's GPUs.
SUMMARY = pa.schema(
    [
        ("source", pa.string()),  # jouleflow | mlenergy-v2 | mlenergy-v3
        ("run_dir", pa.string()),  # provenance: run directory (or published file) behind the row
        ("task", pa.string()),
        ("model", pa.string()),  # HF id, e.g. meta-llama/Llama-3.1-8B-Instruct
        ("modality", pa.string()),  # llm | diffusion
        ("precision", pa.string()),  # bf16 | fp8 | ...
        ("architecture", pa.string()),  # dense | moe (null when unknown)
        ("total_params_b", pa.float64()),
        ("active_params_b", pa.float64()),
        ("gpu", pa.string()),  # GPU type, short: H100, B200, A100
        ("num_gpus", pa.int64()),
        ("batch_size", pa.int64()),  # max_num_seqs for LLMs, images per batch for diffusion
        ("parallelism", pa.string()),  # tp1, tp2-ep, uly2-ring1, ...
        ("load_format", pa.string()),  # real | dummy
        ("status", pa.string()),  # ok | infeasible | failed
        ("valid", pa.bool_()),
        ("flags", pa.string()),  # comma-separated validity flags
        ("energy_per_token_j", pa.float64()),
        ("energy_per_response_j", pa.float64()),  # J/request (LLM), J/image or J/video (diffusion)
        ("mean_output_tokens", pa.float64()),
        ("tokens_per_s", pa.float64()),
        ("mean_power_w", pa.float64()),
        ("gpu_tdp_w", pa.float64()),  # per GPU, for the TDP-estimate comparison
        ("median_itl_s", pa.float64()),
        ("p90_itl_s", pa.float64()),
        ("p95_itl_s", pa.float64()),
        ("p99_itl_s", pa.float64()),
        ("median_tpot_s", pa.float64()),
        ("median_ttft_s", pa.float64()),
        ("median_e2e_s", pa.float64()),
        ("p90_e2e_s", pa.float64()),
        ("batch_latency_s", pa.float64()),  # diffusion
        ("mean_batch_size", pa.float64()),  # mean running requests in the steady window
        ("steady_duration_s", pa.float64()),
        # J/token uncertainty: batch-means 95% CI half-width / mean over the steady window, and the
        # number of intervals behind it (analysis.uncertainty); null when there is no estimate
        ("energy_per_token_ci_rel", pa.float64()),
        ("energy_per_token_ci_intervals", pa.int64()),
        ("reason", pa.string()),  # why a run is infeasible or failed (run.json reason)
        # the published configuration whose output lengths the request set drew from, "(fallback)" when
        # it stood in for an unpublished one (synthetic.load_histogram's rule)
        ("output_lengths_from", pa.string()),
        # what mean_output_tokens is the mean of: "request targets" (the sent requests' max_tokens, all
        # with ignore_eos) or "completed requests" (summary.json output_tokens_from)
        pa.field("output_tokens_from", pa.string(), metadata={b"since": b"5"}),
        # Where the joules go (jouleflow attribute's attribution.json, LLM runs; attribution_record):
        # the idle baseline x window / window energy, null without a baseline (the note says why) ...
        ("static_share", pa.float64()),
        ("static_share_note", pa.string()),
        # ... the per-request attribution's static / prefill / decode shares of the window energy ...
        ("split_static_share", pa.float64()),
        ("split_prefill_share", pa.float64()),
        ("split_decode_share", pa.float64()),
        # ... J per prefill and per decode token with standard errors (null when not identifiable: the
        # note says why), which fit (fixed_static | free), and the diagnosis (memory-bound, ...)
        ("j_per_prefill_token", pa.float64()),
        ("j_per_prefill_token_se", pa.float64()),
        ("j_per_decode_token", pa.float64()),
        ("j_per_decode_token_se", pa.float64()),
        ("token_cost_fit", pa.string()),
        ("token_cost_note", pa.string()),
        ("diagnosis", pa.string()),
        # The physical GPUs behind the row: their NVML UUIDs, comma-separated (run.json provenance.gpus);
        # null for published data. GPUs of one type on different hosts differ by several percent in
        # power at the same point: the comparisons say when a pair's rows ran on different GPUs.
        ("gpu_uuids", pa.string()),
    ]
)

TRACE_SCHEMAS: dict[str, pa.Schema] = {
    "power.parquet": POWER,
    "requests.parquet": REQUESTS,
    "tokens.parquet": TOKENS,
    "server.parquet": SERVER,
    "batches.parquet": BATCHES,
    "gpu_metrics.parquet": GPU_METRICS,
}

RUN_JSON = "run.json"
SUMMARY_JSON = "summary.json"
STATUSES = ("ok", "infeasible", "failed")


class TraceError(ValueError):
    """A trace file is missing, corrupt or does not match its schema. The message names the file."""


def _with_version(schema: pa.Schema) -> pa.Schema:
    return schema.with_metadata({b"jouleflow_schema_version": str(SCHEMA_VERSION).encode()})


def table_from_rows(
    rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]], schema: pa.Schema
) -> pa.Table:
    """Build a table in `schema` from a list of row dicts or a dict of columns (extra columns kept)."""
    if isinstance(rows, Mapping):
        columns = dict(rows)
    else:
        names = list(schema.names)
        for row in rows:
            names.extend(k for k in row if k not in names)
        columns = {name: [row.get(name) for row in rows] for name in names}
    # Counted before any column is taken: a missing field after the last given one still gets every row.
    n = len(next(iter(columns.values()), []))
    arrays, fields = [], []
    for field in schema:
        values = columns.pop(field.name, None)
        if values is None:
            values = [None] * n
        arrays.append(pa.array(values, type=field.type))
        fields.append(field)
    for name, values in columns.items():  # added columns: allowed, the contract names are a floor
        arr = pa.array(values)
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    return pa.Table.from_arrays(arrays, schema=_with_version(pa.schema(fields)))


def write_table(table: pa.Table, path: str | Path) -> None:
    """Write a Parquet file atomically (temp file in the same directory, then rename)."""
    write_atomic(path, lambda tmp: pq.write_table(table, tmp, **PARQUET_OPTIONS))


def read_table(path: str | Path, schema: pa.Schema | None = None) -> pa.Table:
    """Read a Parquet trace and check it carries every column of `schema` with a compatible type."""
    path = Path(path)
    if schema is None:
        schema = TRACE_SCHEMAS.get(path.name)
    if not path.is_file():
        raise TraceError(f"{path}: trace file is missing")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for truncated/corrupt files
        raise TraceError(f"{path}: not a readable Parquet file ({exc})") from exc
    if schema is not None:
        table = _add_newer_columns(table, schema)
        missing = [f.name for f in schema if f.name not in table.column_names]
        if missing:
            raise TraceError(f"{path}: missing column(s) {', '.join(missing)}")
        try:
            table = table.select(
                list(schema.names) + [n for n in table.column_names if n not in schema.names]
            )
            cast = [table.column(f.name).cast(f.type) for f in schema]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise TraceError(f"{path}: column type mismatch ({exc})") from exc
        for i, f in enumerate(schema):
            table = table.set_column(i, f, cast[i])
    return table


def _add_newer_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Null columns for the contract columns added after the file's schema version (older traces read)."""
    raw = (table.schema.metadata or {}).get(b"jouleflow_schema_version", b"1")
    version = int(raw) if raw.isdigit() else 1
    for f in schema:
        since = int((f.metadata or {}).get(b"since", b"1"))
        if f.name not in table.column_names and since > version:
            table = table.append_column(pa.field(f.name, f.type), pa.nulls(table.num_rows, f.type))
    return table


def read_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: file is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}: invalid JSON ({exc})") from exc


def is_complete_run(run_dir: str | Path) -> bool:
    """A run directory is complete when its run.json exists (it is written last, inside the temp dir)."""
    return (Path(run_dir) / RUN_JSON).is_file()


class RunExistsError(FileExistsError):
    """Refuse to overwrite a finished measurement."""


@dataclass
class RunDirWriter:
    """Collects a run's files in a hidden temp directory next to `final_dir`, renamed into place on commit.

    A killed or failed session leaves only `.<name>.partial-<host>-<pid>` behind, never a directory
    that looks complete. An existing complete run is never overwritten: commit() raises instead.
    """

    final_dir: Path

    def __post_init__(self) -> None:
        self.final_dir = Path(self.final_dir)
        if is_complete_run(self.final_dir):
            raise RunExistsError(
                f"{self.final_dir}: a finished run is already there; move it away to re-measure"
            )
        self.final_dir.parent.mkdir(parents=True, exist_ok=True)
        tag = f"{socket.gethostname()}-{os.getpid()}"
        self.tmp_dir = self.final_dir.parent / f".{self.final_dir.name}.partial-{tag}"
        if self.tmp_dir.exists():
            shutil.rmtree(self.tmp_dir)
        self.tmp_dir.mkdir(parents=True)

    def path(self, name: str) -> Path:
        return self.tmp_dir / name

    def write_trace(self, name: str, rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]) -> Path:
        schema = TRACE_SCHEMAS[name]
        out = self.path(name)
        write_table(table_from_rows(rows, schema), out)
        return out

    def commit(self, run_json: RunRecord | Mapping[str, Any]) -> Path:
        """Write run.json (a records.RunRecord, or its dict, validated) last, then move the
        directory into place atomically."""
        from jouleflow.records import RunRecord  # records builds on this module

        record = run_json if isinstance(run_json, RunRecord) else RunRecord.from_dict(run_json)
        record.write(self.path(RUN_JSON))
        if is_complete_run(self.final_dir):
            raise RunExistsError(
                f"{self.final_dir}: a finished run appeared while measuring; kept {self.tmp_dir}"
            )
        if self.final_dir.exists():  # an empty or incomplete leftover (e.g. made by Snakemake): replace it
            shutil.rmtree(self.final_dir)
        os.replace(self.tmp_dir, self.final_dir)
        return self.final_dir

    def abort(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
