"""One measured LLM serving session: engine + load + power + server metrics -> one run directory.

The lifecycle is session_base.MeasuredSession's; this is what an LLM session does in it. Prepare:
resolve and validate the config and the request set (bad input ends here, nothing written).
Measure: launch the engine, wait healthy -> the idle baseline (power with no load) -> metrics
scraper -> the load, with a live display. GPU latent metrics are sampled beside the power. The
teardown stops the scraper, the server, the latent sampler, then the power sampler. A start-up
OOM is a result (status "infeasible", committed at the final path); every other failure once the
engine was launched (it fails to start, exits during the idle baseline or the load, the power
sampler breaks down, anything raised) is kept as `<name>.failed-<time>` with the reason and raised
as SessionFailed (details in session.log).
Ctrl-C / SIGTERM once the engine was launched keeps what was gathered the same way, then stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jouleflow import traces
from jouleflow.gpus import gpu_short_name
from jouleflow.measure import requestset
from jouleflow.measure.engines import base
from jouleflow.measure.gpualloc import AllocatedGpus
from jouleflow.measure.jobconfig import LLMJobConfig, config_hash, parallelism_label
from jouleflow.measure.latents import idle_baseline, tree_cpu_s
from jouleflow.measure.load import LoadSettings, LoadStats, run_load
from jouleflow.measure.load_rows import request_rows as load_request_rows
from jouleflow.measure.load_rows import token_columns
from jouleflow.measure.progress import wait_healthy_shown
from jouleflow.measure.provenance import base_provenance
from jouleflow.measure.server_metrics import MetricsScraper
from jouleflow.measure.session_base import MeasuredSession
from jouleflow.measure.session_common import RunFailed, SessionSetupError
from jouleflow.measure.session_setup import (
    architecture,
    engine_cache,
    engine_log_provenance,
    engine_spec,
    needs_gpu,
    prepare_requests,
    resolve_model,
    validate_engine,
)
from jouleflow.records import RunRecord, Timing

if TYPE_CHECKING:
    from jouleflow.measure.reuse import SharedEngine

log = logging.getLogger(__name__)

ENERGY_SOURCE = "nvml-via-zeus"
# Fields that say where things ran, not what was measured: excluded from the config hash (so are the
# latent-metrics and idle-baseline settings, which came later: hashes of the same point stay the same).
UNHASHED = (
    "host", "port", "model_path", "launcher", "health_timeout_s", "after", "engine_cache_dir", "batch_limit_file",
    "latent_period_s", "idle_baseline_s",
)  # fmt: skip


class SessionError(SessionSetupError):
    """The session could not run (no GPU, bad setup): user-facing, nothing was written."""


class SessionFailed(RunFailed):
    """The session ran and failed; `run_dir` holds what was recorded (status "failed")."""


class Session(MeasuredSession):
    """An LLM serving session: the engine is an OpenAI-compatible server (self.process)."""

    setup_error = SessionError
    failed_error = SessionFailed
    no_energy_option = "--no-energy"
    keeps_interrupted_runs = True

    def __init__(
        self,
        cfg: LLMJobConfig,
        out_dir: Path,
        model_cache: Path | None = None,
        shared: SharedEngine | None = None,
    ) -> None:
        super().__init__(cfg, out_dir)
        self.shared = shared  # a running server measured by several sessions (measure/reuse.py)
        self.cfg: LLMJobConfig = cfg
        self.model_cache = model_cache
        self.display = True
        self.scraper: MetricsScraper | None = None
        self.model_config: dict | None = None
        self.specs: list[requestset.RequestSpec] = []
        self.rs_info: dict | None = None
        self.load_result: Any = None
        self.status, self.reason = "ok", None
        self.convergence: Any = None  # arrival=saturate: its stopping rule (measure.convergence)
        self.cache: Any = None  # engine_cache.EngineCache when measurement.engine_cache_dir is set
        self.latents: Any = None  # latents.LatentSampler beside the power sampler
        self.idle_span: tuple[float, float] | None = None

    def run(self, display: bool = True) -> Path:
        self.display = display
        return super().run()

    # --- the steps of the lifecycle -----------------------------------------------------------
    def prepare(self, writer: traces.RunDirWriter, prov: dict[str, Any]) -> None:
        cfg = self.cfg
        with self.timer.phase("prepare"):
            prov.update(base_provenance(cfg.engine))
            resolve_model(cfg, self.model_cache)
            self.model_config = validate_engine(cfg)
            self.cache = engine_cache(cfg, prov["engine_version"])
            prov["engine_cache"] = self.cache.provenance() if self.cache else None
            self.specs, self.rs_info = prepare_requests(cfg, writer)
            fallback = ((self.rs_info or {}).get("synthetic") or {}).get("histogram_fallback")
            if fallback:
                self.notes.append(f"output lengths: {fallback}")

    def allocate(self) -> AbstractContextManager[AllocatedGpus | None]:
        if self.shared is not None:  # the sweep holds the GPUs its server runs on
            return contextlib.nullcontext(self.shared.gpus)
        return super().allocate() if needs_gpu(self.cfg) else contextlib.nullcontext()

    def no_sensor_hint(self) -> str:
        return "" if needs_gpu(self.cfg) else " (a CPU engine can run without energy: --no-energy)"

    def start_power(self) -> list[dict]:
        inventory = super().start_power()
        if self.sampler is not None and self.cfg.latent_period_s > 0:
            from jouleflow.measure.latents import LatentSampler

            try:  # a latent metric never costs the measurement
                self.latents = LatentSampler(self.gpu_indices, self.cfg.latent_period_s)
                self.latents.start()
            except Exception as exc:
                self.latents = None
                self.notes.append(f"no GPU latent metrics: {type(exc).__name__}: {exc}")
        return inventory

    def wait_idle_baseline(self) -> str | None:
        """The engine up and no load for idle_baseline_s: its power is the session's idle baseline.
        Returns why it stopped early (the engine exited, the sampler broke down), else None."""
        with self.timer.phase("idle_baseline"):
            end = time.time() + self.cfg.idle_baseline_s
            while (failure := self.live_failure()) is None and (left := end - time.time()) > 0:
                time.sleep(min(left, 0.2))
        self.idle_span = tuple(self.timer.phases["idle_baseline"])  # type: ignore[assignment]
        return failure

    def measure(self, writer: traces.RunDirWriter, prov: dict[str, Any]) -> None:
        cfg = self.cfg
        try:
            with self.timer.phase("server_start"):
                if self.shared is None:
                    port = cfg.port or base.free_port(cfg.host)
                    if cfg.port:
                        base.check_port_free(cfg.host, cfg.port)
                    self.spec = engine_spec(cfg, port, self.gpus, self.cache)
                    self.process = base.ServerProcess(self.spec, writer.path("server.log"))
                    self.process.start()
                    prov["health_wait_s"] = wait_healthy_shown(
                        self.process, cfg.health_timeout_s, self.display
                    )
                else:
                    self.spec, self.process = self.shared.spec, self.shared.server
                    prov["shared_engine"] = self.shared.provenance()
                    if self.shared.start_error is not None:  # recorded as a dedicated start would be
                        raise self.shared.start_error
                    if not self.process.is_alive():
                        raise base.ServerStartError("failed", f"the shared {cfg.engine} server is gone")
            self.check_foreign()
            if self.sampler is not None and cfg.idle_baseline_s > 0:
                failure = self.wait_idle_baseline()
                if failure:  # no load on a dead engine or without energy
                    gone = not self.process.is_alive()
                    self.failure.add(
                        f"{failure} (idle baseline)",
                        f"server.log tail:\n{base.tail(self.process.log_path)}" if gone else None,
                    )
                    return
            self.load_result = self._load(self.spec, self.specs, self.display)
            self.check_after_load(self.load_result)
            self.check_foreign()
        except base.ServerStartError as exc:
            if exc.status == "infeasible":
                self.status, self.reason = exc.status, exc.reason
                log.warning("server start infeasible: %s", exc.reason)
            else:
                self.failure.add(exc.reason)
            if exc.log_tail:
                self.failure.detail(f"server.log tail:\n{exc.log_tail}")

    def stop_steps(self) -> list[Callable[[], Any] | None]:
        if self.shared is not None:  # the sweep stops its server after the last point
            return [self.scraper and self.scraper.stop, self.latents and self.latents.stop]
        return [self.scraper and self.scraper.stop, *super().stop_steps(), self.latents and self.latents.stop]

    def teardown(self) -> dict | None:
        """Stop scraper, server, sampler (in that order); idempotent. Returns the Zeus check result.

        A second Ctrl-C / SIGTERM (SLURM repeats it) waits until the teardown is done.
        """
        with base.signals_deferred():
            return super().teardown()

    # --- failures -----------------------------------------------------------------------------
    def live_failure(self) -> str | None:
        """Why the load must stop now: the engine exited or the power sampler broke down."""
        server, sampler = self.process, self.sampler
        if server is not None and not server.is_alive():
            return f"{self.cfg.engine} server exited with code {server.exit_code()} during the load"
        failure = sampler.failure() if sampler is not None else None
        return f"power sampler failed: {failure}" if failure else None

    def check_after_load(self, load_result: Any) -> None:
        server = self.process
        assert server is not None
        if not all(r.ok for r in load_result.results):
            server.wait_exit(1.0)  # failed requests may mean the engine is dying: let its exit show
        reason = self.live_failure() or (
            f"load aborted: {load_result.aborted}" if load_result.aborted else None
        )
        if reason:
            engine_gone = not server.is_alive()
            self.failure.add(
                reason, f"server.log tail:\n{base.tail(server.log_path)}" if engine_gone else None
            )

    # --- the load -----------------------------------------------------------------------------
    def _load(self, spec: base.ServerSpec, specs: list[requestset.RequestSpec], display: bool):
        cfg = self.cfg
        if spec.metrics_path:
            server = self.process
            self.scraper = MetricsScraper(
                spec.base_url + spec.metrics_path,
                cfg.metrics_period_s,
                cpu_s=(lambda: tree_cpu_s(server.tree_pids())) if server is not None else None,
            )
            self.scraper.start()
        else:
            self.notes.append(
                f"{cfg.engine} has no /metrics: server.parquet is empty; the window uses client counts"
            )
        if not spec.supports_ignore_eos and any(s.ignore_eos for s in specs):
            self.notes.append(
                f"{cfg.engine} rejects ignore_eos: not sent; lengths rely on max_tokens and a null EOS"
            )
        arrival, max_concurrency = cfg.arrival, cfg.max_concurrency
        if not spec.caps_batch and arrival == "burst":
            arrival, max_concurrency = "concurrency", cfg.batch_size
            self.notes.append(
                f"{cfg.engine} has no max-num-seqs: the client capped in-flight requests at batch_size={cfg.batch_size}"
            )
        settings = LoadSettings(
            base_url=spec.base_url,
            model=spec.served_model,
            endpoint=cfg.endpoint,
            sampling=dict(cfg.sampling),
            extra_body=dict(cfg.extra_body),
            send_ignore_eos=spec.supports_ignore_eos,
            arrival=arrival,
            max_concurrency=max_concurrency,
            rate=cfg.rate,
            seed=cfg.arrival_seed,
            request_timeout_s=cfg.request_timeout_s,
            chunk_timeout_s=cfg.chunk_timeout_s,
        )
        if arrival == "saturate":
            from jouleflow.measure.convergence import saturate_load

            self.convergence = saturate_load(
                cfg, settings, spec.caps_batch, self.scraper, self.sampler, self.notes, specs
            )
        requests = [s.to_load_request(cfg.endpoint) for s in specs]
        stats = LoadStats()

        def abort_check() -> str | None:
            return self.live_failure()

        async def drive():
            from jouleflow.measure.progress import Progress

            sampler, scraper = self.sampler, self.scraper
            watts = (lambda: sum(sampler.latest().values()) or None) if sampler is not None else None
            running = (lambda: (scraper.latest() or {}).get("running")) if scraper is not None else None
            progress = asyncio.create_task(Progress(stats, watts, running).run()) if display else None
            try:
                top_up = self.convergence.top_up if self.convergence is not None else None
                return await run_load(
                    requests,
                    settings,
                    stats,
                    abort_check,
                    stop_check=self.convergence,
                    in_flight_check=top_up,
                )
            finally:
                if progress is not None:
                    progress.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await progress

        log.info("load: %d requests, arrival %s, endpoint %s", len(requests), cfg.arrival, cfg.endpoint)
        with self.timer.phase("load"):
            result = asyncio.run(drive())
        ok, stopped = sum(r.ok for r in result.results), sum(r.stopped for r in result.results)
        log.info("load done: %d ok, %d failed, %d stopped by its end (in flight or not sent), %d tokens",
                 ok, len(result.results) - ok - stopped, stopped, stats.tokens)  # fmt: skip
        return result

    def _write_trace(self, writer: traces.RunDirWriter, name: str, rows: Any) -> None:
        try:  # one trace that cannot be written must not cost the others
            writer.write_trace(name, rows() if callable(rows) else rows)
        except Exception as exc:
            writer.path(name).unlink(missing_ok=True)
            self.failure.add(f"cannot write {name}: {type(exc).__name__}: {exc}", traceback.format_exc())

    def record(self, writer: traces.RunDirWriter, prov: dict[str, Any]) -> tuple[str, str | None, RunRecord]:
        cfg = self.cfg
        status, reason = self.status, self.reason
        spec, load_result, rs_info = self.spec, self.load_result, self.rs_info
        prov["phases"] = self.timer.phases
        if self.shared is not None:  # the shared server's log so far: its start-up and every point
            writer.path("server.log").write_bytes(self.shared.log_bytes())
        if load_result is not None:
            self._write_trace(writer, "requests.parquet", lambda: load_request_rows(load_result.results))
            self._write_trace(writer, "tokens.parquet", lambda: token_columns(load_result.results))
        if self.scraper is not None or (spec is not None and spec.metrics_path is None):
            self._write_trace(writer, "server.parquet", self.scraper.rows if self.scraper else [])
        energy_source = None
        if self.power_rows:
            self._write_trace(writer, "power.parquet", self.power_rows)
            energy_source = ENERGY_SOURCE
        if self.latents is not None:
            self._write_trace(writer, "gpu_metrics.parquet", self.latents.rows)
            prov["gpu_metrics"] = self.latents.info()
        if self.idle_span is not None and self.power_rows:
            prov["idle_baseline"] = idle_baseline(self.power_rows, *self.idle_span)
        if self.failure.reason:
            status, reason = "failed", self.failure.reason
        gpu_names = {g.get("name") for g in prov.get("gpus") or []}
        if cfg.gpu is None:
            cfg.gpu = gpu_short_name(next(iter(gpu_names))) if len(gpu_names) == 1 else None
            if cfg.gpu is None and not needs_gpu(cfg):
                cfg.gpu = "cpu"
        config = cfg.to_dict()
        config["num_gpus"] = cfg.effective_num_gpus
        config["architecture"] = architecture(self.model_config)
        config["parallelism"] = parallelism_label(
            cfg.tensor_parallel, cfg.pipeline_parallel, cfg.data_parallel, cfg.expert_parallel
        )
        # `config` stays the job spec's shape (the run guard compares it with the spec, key by key);
        # what the request set turned out to be is recorded beside it.
        hashed = {k: v for k, v in config.items() if k not in UNHASHED}
        if rs_info:
            hashed["request_set_sha256"] = rs_info["sha256"]
        prov.update(
            {
                # What the engine says it ran with (vLLM: CUDA-graph capture sizes, async scheduling).
                "engine_settings": engine_log_provenance(cfg, writer.path("server.log")) if spec else None,
                "load_format": cfg.load_format,
                "energy_source": energy_source,
                "zeus_session_check": self.check_result,
                "power_period_s": cfg.power_period_s if energy_source else None,
            }
        )
        doc = RunRecord(
            status=status,
            reason=reason,
            config=config,
            config_hash=config_hash(hashed),
            request_set=rs_info,
            provenance=prov,
            notes=self.notes,
            foreign_processes=self.foreign,
            server={"argv": spec.argv, "port": spec.port, "metrics": spec.metrics_path is not None}
            if spec
            else None,
            timing=Timing(load_result.t0, load_result.t_last_end) if load_result else Timing(),
            load={
                "requests": len(load_result.results),
                "ok": sum(r.ok for r in load_result.results),
                "aborted": load_result.aborted,
                "client": load_result.client,
            }
            if load_result is not None
            else None,
        )
        if load_result is not None and self.convergence is not None:
            doc = self.convergence.add_to_run(doc, load_result)
        return status, reason, doc


def run_llm_session(
    cfg: LLMJobConfig, out_dir: str | Path, *, display: bool = True, model_cache: Path | None = None
) -> Path:
    """Measure one grid point; returns the committed run directory (status ok or infeasible)."""
    return Session(cfg, Path(out_dir), model_cache).run(display=display)
