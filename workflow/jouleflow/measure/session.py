"""One measured LLM serving session: engine + load + power + server metrics -> one run directory.

Order: resolve and validate the config (bad input ends here, nothing written) -> GPU allocation
hook -> power sampler and the whole-session Zeus check -> launch the engine, wait healthy ->
metrics scraper -> the load, with a live display -> stop everything -> traces + run.json, renamed
into place atomically. A start-up OOM is a result (status "infeasible", committed at the final
path). Every failure once the engine was launched (it fails to start, exits during the load, the
power sampler breaks down, anything raised) goes through one path, session_common.Failure: the
load stops, everything is torn down and the traces gathered so far are committed next to the
final path as `<name>.failed-<time>` with the reason, then SessionFailed is raised (details in
session.log). Bad input before the launch, and Ctrl-C / SIGTERM at any time, tear everything
down and leave no directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any

from jouleflow import traces
from jouleflow.gpus import gpu_short_name
from jouleflow.measure import requestset
from jouleflow.measure.engines import base
from jouleflow.measure.gpualloc import GpuAllocationError
from jouleflow.measure.jobconfig import LLMJobConfig, config_hash, parallelism_label
from jouleflow.measure.load import LoadSettings, LoadStats, run_load, token_columns
from jouleflow.measure.load import request_rows as load_request_rows
from jouleflow.measure.provenance import PhaseTimer, base_provenance
from jouleflow.measure.server_metrics import MetricsScraper
from jouleflow.measure.session_common import (
    Failure,
    RunFailed,
    attach_session_log,
    collect_foreign,
    detach_session_log,
    failed_run_dir,
    open_power,
    record_allocation,
    session_gpu_indices,
    stop_power,
)
from jouleflow.measure.session_setup import (
    architecture,
    engine_spec,
    gpu_allocation,
    needs_gpu,
    prepare_requests,
    resolve_model,
    validate_engine,
)
from jouleflow.records import RunRecord, Timing

log = logging.getLogger(__name__)

ENERGY_SOURCE = "nvml-via-zeus"
# Fields that say where things ran, not what was measured: excluded from the config hash.
UNHASHED = ("host", "port", "model_path", "launcher", "health_timeout_s", "after")


class SessionError(RuntimeError):
    """The session could not run (no GPU, bad setup): user-facing, nothing was written."""


class SessionFailed(RunFailed):
    """The session ran and failed; `run_dir` holds what was recorded (status "failed")."""


class Session:
    """Holds the live resources so that every exit path tears them down."""

    def __init__(self, cfg: LLMJobConfig, out_dir: Path, model_cache: Path | None = None) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.model_cache = model_cache
        self.timer = PhaseTimer()
        self.server: base.ServerProcess | None = None
        self.sampler: Any = None
        self.check: Any = None
        self.scraper: MetricsScraper | None = None
        self.power_rows: list[dict] = []
        self.notes: list[str] = []
        self.foreign: list[dict] = []
        self.gpu_indices: list[int] = []
        self.gpus: Any = None  # gpualloc.AllocatedGpus while the GPUs are held
        self.model_config: dict | None = None
        self.failure = Failure(self.notes)

    # --- energy -------------------------------------------------------------------------------
    def start_power(self) -> list[dict]:
        cfg = self.cfg
        if cfg.no_energy:
            self.notes.append("no energy measured (--no-energy): no power.parquet, energy_source null")
            return []
        from jouleflow.measure import power

        self.gpu_indices = session_gpu_indices(self.gpus, cfg.effective_num_gpus)
        try:
            self.sampler, self.check, inventory = open_power(self.gpu_indices, cfg.power_period_s, self.notes)
        except power.NoGPUError as exc:
            hint = "" if needs_gpu(cfg) else " (a CPU engine can run without energy: --no-energy)"
            raise SessionError(f"no GPU energy sensor for GPUs {self.gpu_indices}: {exc}{hint}") from exc
        return inventory

    def check_foreign(self) -> None:
        if self.sampler is None:
            return
        own = {os.getpid()} | (self.server.group_pids() if self.server else set())
        collect_foreign(self.foreign, self.gpu_indices, own)

    # --- teardown -----------------------------------------------------------------------------
    def teardown(self) -> dict | None:
        """Stop scraper, server, sampler (in that order); idempotent. Returns the Zeus check result.

        A second Ctrl-C / SIGTERM (SLURM repeats it) waits until the teardown is done.
        """
        with base.signals_deferred():
            return self._teardown()

    def _teardown(self) -> dict | None:
        # Each step runs even if an earlier one raised; what raised is the run's failure.
        for step in (self.scraper and self.scraper.stop, self.server and self.server.stop):
            try:
                if step:
                    step()
            except Exception as exc:
                self.failure.add(f"teardown: {type(exc).__name__}: {exc}", traceback.format_exc())
        check_result = None
        if self.sampler is not None:
            sampler, self.sampler = self.sampler, None
            self.power_rows, check_result, failure = stop_power(sampler, self.check)
            self.check = None
            if failure:
                self.failure.add(failure)
        return check_result

    # --- failures -----------------------------------------------------------------------------
    def live_failure(self) -> str | None:
        """Why the load must stop now: the engine exited or the power sampler broke down."""
        server, sampler = self.server, self.sampler
        if server is not None and not server.is_alive():
            return f"{self.cfg.engine} server exited with code {server.exit_code()} during the load"
        failure = sampler.failure() if sampler is not None else None
        return f"power sampler failed: {failure}" if failure else None

    def check_after_load(self, load_result: Any) -> None:
        server = self.server
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

    # --- the session --------------------------------------------------------------------------
    def run(self, display: bool = True) -> Path:
        cfg = self.cfg
        writer = traces.RunDirWriter(self.out_dir)
        handler = self.failure.handler = attach_session_log(writer)
        prov: dict[str, Any] = {"start_time": time.time()}
        status, reason, load_result, check_result, spec, inventory = "ok", None, None, None, None, []
        rs_info: dict | None = None
        try:
            with base.sigterm_raises():
                with self.timer.phase("prepare"):
                    prov.update(base_provenance(cfg.engine))
                    resolve_model(cfg, self.model_cache)
                    self.model_config = validate_engine(cfg)
                    specs, rs_info = prepare_requests(cfg, writer)
                    fallback = ((rs_info or {}).get("synthetic") or {}).get("histogram_fallback")
                    if fallback:
                        self.notes.append(f"output lengths: {fallback}")
                with gpu_allocation(cfg) if needs_gpu(cfg) else contextlib.nullcontext() as alloc:
                    self.gpus = alloc
                    record_allocation(prov, alloc)
                    with self.timer.phase("power_start"):
                        inventory = self.start_power()
                    try:
                        with self.timer.phase("server_start"):
                            port = cfg.port or base.free_port(cfg.host)
                            if cfg.port:
                                base.check_port_free(cfg.host, cfg.port)
                            spec = engine_spec(cfg, port, self.gpus)
                            self.server = base.ServerProcess(spec, writer.path("server.log"))
                            self.server.start()
                            prov["health_wait_s"] = self.server.wait_healthy(cfg.health_timeout_s)
                        self.check_foreign()
                        load_result = self._load(spec, specs, display)
                        self.check_after_load(load_result)
                        self.check_foreign()
                    except base.ServerStartError as exc:
                        if exc.status == "infeasible":
                            status, reason = exc.status, exc.reason
                            log.warning("server start infeasible: %s", exc.reason)
                        else:
                            self.failure.add(exc.reason)
                        if exc.log_tail:
                            self.failure.detail(f"server.log tail:\n{exc.log_tail}")
                    finally:
                        with self.timer.phase("teardown"):
                            check_result = self.teardown()
        except KeyboardInterrupt as exc:
            if self.server is None:  # nothing launched: nothing measured worth keeping
                self.abort(writer, handler)
                log.error("session interrupted: %s; torn down, nothing written", exc)
                raise
            # The engine ran (a cancelled job, a time limit): keep what was gathered as a failed run,
            # so that the pipeline records why the point ended, then stop as interrupted.
            self.teardown()
            self.failure.add(f"interrupted: {exc}")
            prov.update(end_time=time.time(), phases=self.timer.phases, gpus=inventory)
            try:
                self._commit(writer, status, reason, prov, spec, load_result, check_result, rs_info)
            except SessionFailed as failed:
                exc.kept = failed.run_dir  # type: ignore[attr-defined]  # for the CLI's message
                log.error("session interrupted: %s; torn down, failed run kept in %s", exc, failed.run_dir)
            finally:
                detach_session_log(handler)
            raise
        except Exception as exc:
            bad_input = (SessionError, GpuAllocationError, ValueError, FileNotFoundError)
            if isinstance(exc, bad_input) and not (self.server and self.server.proc):
                self.abort(writer, handler)  # the errors name the thing; nothing was measured
                raise
            self.teardown()
            self.failure.add(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        prov["end_time"] = time.time()
        prov["phases"] = self.timer.phases
        prov["gpus"] = inventory
        try:
            return self._commit(writer, status, reason, prov, spec, load_result, check_result, rs_info)
        finally:
            detach_session_log(handler)

    def abort(self, writer: traces.RunDirWriter, handler: Any) -> None:
        self.teardown()
        detach_session_log(handler)
        writer.abort()

    def _load(self, spec: base.ServerSpec, specs: list[requestset.RequestSpec], display: bool):
        cfg = self.cfg
        if spec.metrics_path:
            self.scraper = MetricsScraper(spec.base_url + spec.metrics_path, cfg.metrics_period_s)
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
                return await run_load(requests, settings, stats, abort_check)
            finally:
                if progress is not None:
                    progress.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await progress

        log.info("load: %d requests, arrival %s, endpoint %s", len(requests), cfg.arrival, cfg.endpoint)
        with self.timer.phase("load"):
            result = asyncio.run(drive())
        ok = sum(r.ok for r in result.results)
        log.info("load done: %d ok, %d failed, %d tokens", ok, len(result.results) - ok, stats.tokens)
        return result

    def _write_trace(self, writer: traces.RunDirWriter, name: str, rows: Any) -> None:
        try:  # one trace that cannot be written must not cost the others
            writer.write_trace(name, rows() if callable(rows) else rows)
        except Exception as exc:
            writer.path(name).unlink(missing_ok=True)
            self.failure.add(f"cannot write {name}: {type(exc).__name__}: {exc}", traceback.format_exc())

    def _commit(self, writer, status, reason, prov, spec, load_result, check_result, rs_info) -> Path:
        cfg = self.cfg
        if load_result is not None:
            self._write_trace(writer, "requests.parquet", lambda: load_request_rows(load_result.results))
            self._write_trace(writer, "tokens.parquet", lambda: token_columns(load_result.results))
        if self.scraper is not None or (spec is not None and spec.metrics_path is None):
            self._write_trace(writer, "server.parquet", self.scraper.rows if self.scraper else [])
        energy_source = None
        if self.power_rows:
            self._write_trace(writer, "power.parquet", self.power_rows)
            energy_source = ENERGY_SOURCE
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
                "load_format": cfg.load_format,
                "energy_source": energy_source,
                "zeus_session_check": check_result,
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
            }
            if load_result is not None
            else None,
        )
        if status == "failed":
            writer.final_dir = failed_run_dir(self.out_dir)
            path = writer.commit(doc)
            log.info("failed run kept in %s", path)
            raise SessionFailed(reason or "failed", path)
        path = writer.commit(doc)
        log.info("run %s: %s%s", status, path, f" ({reason})" if reason else "")
        return path


def run_llm_session(
    cfg: LLMJobConfig, out_dir: str | Path, *, display: bool = True, model_cache: Path | None = None
) -> Path:
    """Measure one grid point; returns the committed run directory (status ok or infeasible)."""
    return Session(cfg, Path(out_dir), model_cache).run(display=display)
