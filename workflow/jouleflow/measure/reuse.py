"""Several batch sizes on one vLLM server, each measured as its own run directory.

ML.ENERGY's protocol starts one server per batch size (`--max-num-seqs B`); on an H200 the start-up
is half of a point's GPU time. Capping the client's concurrency on one big server is not faithful
(docs/method.md): the engine's CUDA-graph capture range and its scheduler then differ from a
dedicated server's. Here the batch limit is enforced *inside* the engine: the server runs jouleflow's
scheduler subclass (`engines.vllm_batch_limit`), started with `--max-num-seqs` = the largest batch
size, which reads the current limit from a control file before every scheduling step. Between points
the limit is switched, the prefix cache reset (vLLM's dev endpoint: a later point must not reuse an
earlier point's prompts) and the server left to go idle; then an ordinary `Session` measures the point
on the running server (its own power sampling, load, traces and run.json, which records the shared
server in `provenance.shared_engine` and the server's `max_num_seqs` in its config).

Whether this measures what a dedicated server would is an empirical question, answered per engine
version by `benchmarks/campaign_cost.py` (docs/method.md has the figures).
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jouleflow.measure.engines import base
from jouleflow.measure.jobconfig import LLMJobConfig

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 120.0

# What the server is started with: every point of one server must agree on these (the rest, such as
# the batch size, the request set and the load, is each point's own).
SERVER_FIELDS = (
    "model", "model_path", "engine", "gpu", "num_gpus", "tensor_parallel", "pipeline_parallel",
    "data_parallel", "expert_parallel", "precision", "dtype", "quantization", "load_format",
    "max_model_len", "max_num_batched_tokens", "async_scheduling", "gpu_memory_utilization",
    "cudagraph_max_capture", "engine_cache_dir", "server_args", "env", "launcher", "container", "host",
    "port",
)  # fmt: skip


def server_mismatch(configs: list[LLMJobConfig]) -> str | None:
    """Why these points cannot share one server (the first setting they differ in), or None."""
    first = configs[0]
    for cfg in configs[1:]:
        for key in SERVER_FIELDS:
            if getattr(cfg, key) != getattr(first, key):
                return (
                    f"{key}: one server cannot measure both batch size {first.batch_size}"
                    f" ({getattr(first, key)!r}) and {cfg.batch_size} ({getattr(cfg, key)!r})"
                )
    return None


@dataclass
class SharedEngine:
    """A server started once and measured by several sessions, in order."""

    server: base.ServerProcess
    spec: base.ServerSpec
    gpus: Any  # gpualloc.AllocatedGpus | None, held for the whole sweep
    startup_s: float  # launch to healthy
    started_at: float
    points: int
    max_num_seqs: int
    index: int = 0
    switch_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    # Why the server did not start: each point's session records it (infeasible or failed).
    start_error: base.ServerStartError | None = None

    def provenance(self) -> dict[str, Any]:
        return {
            "server_pid": self.server.pid,
            "server_argv": self.spec.argv,
            "server_started_at": self.started_at,
            "server_start_s": self.startup_s,
            "server_max_num_seqs": self.max_num_seqs,
            "batch_limit": "engine scheduler (jouleflow.measure.engines.vllm_batch_limit)",
            "point_index": self.index,
            "points": self.points,
            # What the point is charged for the shared start-up and for switching to it
            # (benchmarks/campaign_cost.py reads these).
            "startup_share_s": self.startup_s / self.points,
            "switch_s": self.switch_s,
            **self.extra,
        }

    def log_bytes(self) -> bytes:
        """The shared server's log so far (each point's run directory keeps a copy: its start-up,
        its effective settings and every point served before)."""
        try:
            return Path(self.server.log_path).read_bytes()
        except OSError:
            return b""


def _get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode("utf-8", "replace")


def reset_prefix_cache(base_url: str) -> None:
    """POST /reset_prefix_cache (served with VLLM_SERVER_DEV_MODE=1); raises when vLLM refuses."""
    req = urllib.request.Request(base_url + "/reset_prefix_cache", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=30) as resp:
        if resp.status != 200:
            raise RuntimeError(f"reset_prefix_cache answered HTTP {resp.status}")


def wait_idle(base_url: str, metrics_path: str, timeout_s: float = IDLE_TIMEOUT_S) -> float:
    """Block until the server reports no running and no waiting request; returns seconds waited."""
    from jouleflow.measure.server_metrics import parse_metrics

    t0 = time.monotonic()
    while True:
        try:
            m = parse_metrics(_get(base_url + metrics_path))
            if not (m.get("running") or 0) and not (m.get("waiting") or 0):
                return time.monotonic() - t0
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"server at {base_url} still busy {timeout_s:.0f} s after the last point")
        time.sleep(0.2)


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its batch size, its request set (None = the spec's) and run dir name."""

    batch_size: int
    request_set: str | None = None
    name: str = ""


def sweep_points(
    batch_sizes: list[int],
    request_sets: list[str] | None = None,
    repeats: int = 1,
    extra: list[tuple[int, str]] | None = None,
) -> list[SweepPoint]:
    """Every batch size x request set, then the `extra` (batch size, request set) points, `repeats`
    times, the repeat outermost (a drift of the server shows as a difference between repeats, not
    between points); each named `<B>[-<set>][-r<k>]` (an extra point always names its set)."""
    if not batch_sizes or any(b < 1 for b in batch_sizes) or len(set(batch_sizes)) != len(batch_sizes):
        raise ValueError(f"batch sizes: expected distinct positive integers, got {batch_sizes}")
    if repeats < 1:
        raise ValueError(f"repeats: expected a positive integer, got {repeats}")
    sets: list[str | None] = list(request_sets) if request_sets else [None]
    stems = [Path(rs).stem if rs else "" for rs in sets]
    if len(sets) > 1 and len(set(stems)) != len(stems):
        raise ValueError(f"request sets: their file names must differ (they name the runs), got {sets}")
    one: list[tuple[int, str | None, str]] = [
        (b, rs, str(b) + (f"-{stem}" if len(sets) > 1 else ""))
        for rs, stem in zip(sets, stems, strict=True)
        for b in batch_sizes
    ]
    for b, rs in extra or []:
        if b < 1:
            raise ValueError(f"point {b}:{rs}: the batch size must be a positive integer")
        one.append((b, rs, f"{b}-{Path(rs).stem}"))
    names = [name for _, _, name in one]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"points: two points would share a run directory name: {', '.join(dup)}")
    return [
        SweepPoint(b, rs, name + (f"-r{k}" if repeats > 1 else ""))
        for k in range(1, repeats + 1)
        for b, rs, name in one
    ]


def request_set_rows(path: str) -> int:
    """Rows of a request-set Parquet file, from its footer."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise ValueError(f"request set {path}: not a readable Parquet file ({exc})") from exc


def sweep_configs(cfg: LLMJobConfig, points: list[SweepPoint]) -> list[LLMJobConfig]:
    """One job config per point: the point's batch size (and request set) on a server sized for
    the largest."""
    if cfg.engine != "vllm":
        raise ValueError(
            f"engine {cfg.engine!r}: one server for several batch sizes needs vllm (the batch limit is"
            " enforced by vLLM's scheduler)"
        )
    for p in points:
        if p.request_set is None:
            continue
        if not Path(p.request_set).is_file():
            raise ValueError(f"request set {p.request_set}: no such file")
        # Checked here, before the server starts: a session would only find out at its point.
        rows = request_set_rows(p.request_set)
        if rows < cfg.num_requests:
            raise ValueError(
                f"request set {p.request_set}: has {rows} requests, the spec's num_requests is"
                f" {cfg.num_requests} (every point draws that many): give a larger set or lower num_requests"
            )
    largest = max(p.batch_size for p in points)
    return [
        replace(
            cfg,
            batch_size=p.batch_size,
            server_max_num_seqs=largest,
            request_set=p.request_set if p.request_set is not None else cfg.request_set,
        )
        for p in points
    ]


def run_sweep(
    cfg: LLMJobConfig,
    sweep: list[SweepPoint],
    out_root: Path,
    *,
    display: bool = True,
    model_cache: Path | None = None,
) -> list[Path]:
    """Measure the sweep's points in order on one server, one run directory each (`out_root/<name>`)."""
    out_root = Path(out_root)
    configs = sweep_configs(cfg, sweep)
    return run_points(
        configs,
        [out_root / p.name for p in sweep],
        out_root / ".shared-server",
        display=display,
        model_cache=model_cache,
    )


def run_points(
    configs: list[LLMJobConfig],
    run_dirs: list[Path],
    work: Path,
    *,
    display: bool = True,
    model_cache: Path | None = None,
) -> list[Path]:
    """Measure the points in order on one server started with `--max-num-seqs` = their largest batch
    size; the server's log and batch-limit file live in `work`.

    A point that fails is kept as a failed run (as a dedicated session would) and the sweep goes on
    while the server lives; the server is stopped after the last point whatever happens. A server
    that does not fit (out of memory at start-up) records the largest point `infeasible`, as a
    dedicated server of that size would, and the rest are measured on a server sized for the next;
    one that fails to start otherwise records every remaining point failed.
    """
    from jouleflow.measure.session import SessionFailed

    if not configs or len(configs) != len(run_dirs):
        raise ValueError("run_points: one run directory per point, at least one point")
    if configs[0].engine != "vllm":
        raise ValueError(
            f"engine {configs[0].engine!r}: a shared server needs vllm (its scheduler holds the batch limit)"
        )
    mismatch = server_mismatch(configs)
    if mismatch:
        raise ValueError(mismatch)
    work.mkdir(parents=True, exist_ok=True)
    done: dict[int, Path] = {}
    left = list(range(len(configs)))
    while left:
        largest = max(configs[i].batch_size for i in left)
        try:
            done.update(_on_one_server([configs[i] for i in left], [run_dirs[i] for i in left], left,
                                       work, display, model_cache))  # fmt: skip
            break
        except _StartFailed as exc:
            # Recorded by a session, with the server's log: infeasible, or failed.
            infeasible = exc.error.status == "infeasible"
            only = [i for i in left if configs[i].batch_size == largest or not infeasible]
            for i in only:
                point = replace(configs[i], server_max_num_seqs=exc.max_num_seqs)
                try:
                    done[i] = _session(point, run_dirs[i], model_cache, exc.engine).run(display)
                except SessionFailed as failed:
                    done[i] = failed.run_dir
            left = [i for i in left if i not in only]
    return [done[i] for i in sorted(done)]


class _StartFailed(Exception):
    def __init__(self, error: base.ServerStartError, engine: SharedEngine, max_num_seqs: int) -> None:
        super().__init__(error.reason)
        self.error, self.engine, self.max_num_seqs = error, engine, max_num_seqs


def _session(cfg: LLMJobConfig, run_dir: Path, model_cache: Path | None, shared: SharedEngine) -> Any:
    from jouleflow.measure.session import Session

    return Session(cfg, run_dir, model_cache, shared=shared)


def _on_one_server(
    configs: list[LLMJobConfig],
    run_dirs: list[Path],
    index: list[int],
    work: Path,
    display: bool,
    model_cache: Path | None,
) -> dict[int, Path]:
    from jouleflow.measure.engines import vllm
    from jouleflow.measure.engines.batch_limit import write_batch_limit
    from jouleflow.measure.gpualloc import session_gpus
    from jouleflow.measure.provenance import base_provenance
    from jouleflow.measure.session import SessionFailed
    from jouleflow.measure.session_setup import engine_cache, engine_spec, resolve_model

    first = configs[0]
    largest = max(c.batch_size for c in configs)
    points = [replace(c, server_max_num_seqs=largest) for c in configs]
    limit_file = work / "batch-limit"
    write_batch_limit(limit_file, points[0].batch_size)
    server_cfg = replace(
        first, batch_size=largest, server_max_num_seqs=None, batch_limit_file=str(limit_file)
    )
    server_cfg.env = {**first.env, "VLLM_SERVER_DEV_MODE": "1"}  # POST /reset_prefix_cache
    resolve_model(server_cfg, model_cache)
    vllm.validate(server_cfg)
    cache = engine_cache(server_cfg, base_provenance(first.engine)["engine_version"])
    done: dict[int, Path] = {}
    # The sweep holds the GPUs (as a session would) and lends them to each point's session.
    with session_gpus(first.effective_num_gpus, first.gpu, energy=not first.no_energy) as gpus:
        spec = engine_spec(server_cfg, server_cfg.port or base.free_port(server_cfg.host), gpus, cache)
        server = base.ServerProcess(spec, work / f"server-{time.strftime('%Y%m%dT%H%M%S')}.log")
        started = time.time()
        shared = SharedEngine(
            server, spec, gpus, 0.0, started, len(points), largest,
            extra={"engine_cache": cache.provenance() if cache else None},
        )  # fmt: skip
        try:
            try:
                server.start()
                server.wait_healthy(first.health_timeout_s)
            except base.ServerStartError as exc:
                shared.start_error = exc
                raise _StartFailed(exc, shared, largest) from exc
            shared.startup_s = time.time() - started
            for i, (point, run_dir) in enumerate(zip(points, run_dirs, strict=True)):
                t_switch = time.time()
                write_batch_limit(limit_file, point.batch_size)
                reset_prefix_cache(spec.base_url)
                wait_idle(spec.base_url, spec.metrics_path or "/metrics")
                shared.index, shared.switch_s = i, time.time() - t_switch
                point.batch_limit_file = str(limit_file)
                point.model_path = server_cfg.model_path
                log.info("shared server: point %d of %d, %s", i + 1, len(points), run_dir)
                try:
                    done[index[i]] = _session(point, run_dir, model_cache, shared).run(display)
                except SessionFailed as exc:
                    log.error("point %s failed: %s", run_dir, exc)
                    done[index[i]] = exc.run_dir
                    if not server.is_alive():
                        raise
        finally:
            server.stop()
    return done
