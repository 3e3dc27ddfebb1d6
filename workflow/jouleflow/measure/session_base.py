"""The lifecycle every measured session shares (LLM serving, xDiT diffusion): one template method.

`MeasuredSession.run`: resolve (bad input ends here, nothing written) -> the run directory writer
and session.log -> prepare -> GPU allocation -> power sampler and the whole-session Zeus check ->
measure (launch the engine, drive it) -> teardown (the engine side, then the sampler) -> record the
traces and run.json, renamed into place atomically. A subclass implements the steps that differ:
`resolve`, `prepare`, `measure`, `record`, and where needed `allocate` and `stop_steps`.

Every failure once the engine was launched goes through one path, session_common.Failure: the
session is torn down and what was gathered is committed next to the final path as
`<name>.failed-<time>` with the reason, then `failed_error` is raised. Bad input before the launch
tears everything down and leaves no directory; so does Ctrl-C / SIGTERM, except that a session with
`keeps_interrupted_runs` keeps what a launched engine gathered as a failed run.

Like session_common, nothing here may pull in the LLM load generator (the diffusion environment
has no aiohttp).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from jouleflow import traces
from jouleflow.measure.engines import base
from jouleflow.measure.gpualloc import AllocatedGpus, GpuAllocationError, session_gpus
from jouleflow.measure.provenance import PhaseTimer
from jouleflow.measure.session_common import (
    Failure,
    RunFailed,
    SessionSetupError,
    attach_session_log,
    detach_session_log,
    failed_run_dir,
)
from jouleflow.records import RunRecord

# Errors that name what is wrong with the input: before the launch they end the session unrecorded.
BAD_INPUT = (SessionSetupError, GpuAllocationError, ValueError, FileNotFoundError)


class MeasuredSession:
    """Holds the live resources so that every exit path tears them down."""

    setup_error: type[SessionSetupError] = SessionSetupError
    failed_error: type[RunFailed] = RunFailed
    no_energy_option = "no_energy"  # how the job config's no_energy is spelled in the note
    keeps_interrupted_runs = False

    def __init__(self, cfg: Any, out_dir: str | Path) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.log = logging.getLogger(type(self).__module__)
        self.timer = PhaseTimer()
        self.process: base.ServerProcess | None = None  # the engine: LLM server or xDiT worker
        self.spec: base.ServerSpec | None = None
        self.sampler: Any = None
        self.check: Any = None
        self.check_result: dict | None = None  # the Zeus cross-check, once torn down
        self.power_rows: list[dict] = []
        self.inventory: list[dict] = []
        self.notes: list[str] = []
        self.foreign: list[dict] = []
        self.gpu_indices: list[int] = []
        self.gpus: AllocatedGpus | None = None  # held while measuring
        self.failure = Failure(self.notes)

    # --- the steps a modality implements -------------------------------------------------------
    def resolve(self) -> None:
        """Checks before the run directory exists; bad input raises here."""

    def prepare(self, writer: traces.RunDirWriter, prov: dict[str, Any]) -> None:
        """Before the GPUs are allocated; bad input raises here, nothing is kept."""
        raise NotImplementedError

    def allocate(self) -> AbstractContextManager[AllocatedGpus | None]:
        """Disjoint GPUs per local job (file locks), or exactly the GPUs SLURM gave the job."""
        cfg = self.cfg
        return session_gpus(cfg.effective_num_gpus, cfg.gpu, energy=not cfg.no_energy)

    def measure(self, writer: traces.RunDirWriter, prov: dict[str, Any]) -> None:
        """Launch the engine (as self.process) and drive it; the teardown follows whatever happens."""
        raise NotImplementedError

    def stop_steps(self) -> list[Callable[[], Any] | None]:
        """What stops the engine side, in order (before the sampler)."""
        return [self.process and self.process.stop]

    def record(self, writer: traces.RunDirWriter, prov: dict[str, Any]) -> tuple[str, str | None, RunRecord]:
        """Write the traces; return (status, reason, run.json's record)."""
        raise NotImplementedError

    def no_sensor_hint(self) -> str:
        return ""

    # --- energy ---------------------------------------------------------------------------------
    def start_power(self) -> list[dict]:
        """Start the power sampler (the energy source) and the Zeus cross-check; the GPU inventory.

        The cross-check is optional: zeus.monitor needs scikit-learn, which GPU hosts may lack; its
        absence is noted, never fatal.
        """
        cfg = self.cfg
        if cfg.no_energy:
            self.notes.append(
                f"no energy measured ({self.no_energy_option}): no power.parquet, energy_source null"
            )
            return []
        from jouleflow.measure import power

        self.gpu_indices = list(self.gpus) if self.gpus is not None else list(range(cfg.effective_num_gpus))
        try:
            sampler = power.PowerSampler(gpu_indices=self.gpu_indices, period_s=cfg.power_period_s)
            inventory = power.gpu_inventory(self.gpu_indices)
            try:
                check = power.SessionEnergyCheck(self.gpu_indices)
                check.begin()
            except ImportError as exc:
                check = None
                self.notes.append(f"no ZeusMonitor session cross-check: {exc}")
                logging.getLogger("jouleflow.measure.session").warning(
                    "no ZeusMonitor session cross-check: %s", exc
                )
            sampler.start()
        except power.NoGPUError as exc:
            raise self.setup_error(
                f"no GPU energy sensor for GPUs {self.gpu_indices}: {exc}{self.no_sensor_hint()}"
            ) from exc
        self.sampler, self.check = sampler, check
        return inventory

    def stop_power(self) -> dict | None:
        """Stop the sampler and end the Zeus cross-check (its result is returned); a sampler
        breakdown is the run's failure, and the rows recorded up to it are kept."""
        from jouleflow.measure.power import PowerSamplingError

        sampler, check, self.sampler, self.check = self.sampler, self.check, None, None
        try:
            self.power_rows = sampler.stop()
        except PowerSamplingError:
            self.power_rows = sampler.rows()
        result = None
        if check is not None:
            with contextlib.suppress(Exception):  # only a cross-check: never lose the measured rows
                result = check.end()
        failure = sampler.failure()
        if failure:
            self.failure.add(f"power sampler failed: {failure}")
        return result

    def check_foreign(self) -> None:
        """Add the processes on the session's GPUs that are not ours to `foreign` (each once)."""
        if self.sampler is None:
            return
        from jouleflow.measure import power

        own = {os.getpid()} | (self.process.group_pids() if self.process else set())
        for proc in power.foreign_processes(self.gpu_indices, own):
            if proc not in self.foreign:
                self.foreign.append(proc)

    # --- teardown -------------------------------------------------------------------------------
    def teardown(self) -> dict | None:
        """Stop the engine side, then the sampler; idempotent. Returns the Zeus cross-check result."""
        # Each step runs even if an earlier one raised; what raised is the run's failure.
        for step in self.stop_steps():
            try:
                if step:
                    step()
            except Exception as exc:  # the sampler must still stop and its rows be kept
                self.failure.add(f"teardown: {type(exc).__name__}: {exc}", traceback.format_exc())
        return self.stop_power() if self.sampler is not None else None

    def abort(self, writer: traces.RunDirWriter, handler: logging.Handler) -> None:
        self.teardown()
        detach_session_log(handler)
        writer.abort()

    # --- the session ----------------------------------------------------------------------------
    def run(self) -> Path:
        """Measure; returns the committed run directory (status ok or infeasible)."""
        self.resolve()
        writer = traces.RunDirWriter(self.out_dir)
        handler = self.failure.handler = attach_session_log(writer)
        prov: dict[str, Any] = {"start_time": time.time()}
        try:
            with base.sigterm_raises():
                self.prepare(writer, prov)
                with self.allocate() as alloc:
                    self.gpus = alloc
                    record_allocation(prov, alloc)
                    with self.timer.phase("power_start"):
                        self.inventory = self.start_power()
                    try:
                        self.measure(writer, prov)
                    finally:
                        with self.timer.phase("teardown"):
                            self.check_result = self.teardown()
        except KeyboardInterrupt as exc:
            if not self.keeps_interrupted_runs or self.process is None:
                self.abort(writer, handler)  # nothing measured worth keeping
                self.log.error("session interrupted: %s; torn down, nothing written", exc)
                raise
            # The engine ran (a cancelled job, a time limit): keep what was gathered as a failed run,
            # so that the pipeline records why the point ended, then stop as interrupted.
            self.teardown()
            self.failure.add(f"interrupted: {exc}")
            prov.update(end_time=time.time(), gpus=self.inventory)
            try:
                self.commit(writer, prov)
            except self.failed_error as failed:
                exc.kept = failed.run_dir  # type: ignore[attr-defined]  # for the CLI's message
                self.log.error(
                    "session interrupted: %s; torn down, failed run kept in %s", exc, failed.run_dir
                )
            finally:
                detach_session_log(handler)
            raise
        except Exception as exc:
            if isinstance(exc, BAD_INPUT) and not (self.process and self.process.proc):
                self.abort(writer, handler)  # the errors name the thing; nothing was measured
                raise
            self.teardown()
            self.failure.add(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        prov.update(end_time=time.time(), gpus=self.inventory)
        try:
            return self.commit(writer, prov)
        finally:
            detach_session_log(handler)

    def commit(self, writer: traces.RunDirWriter, prov: dict[str, Any]) -> Path:
        """run.json last; a failed run is kept beside the final path and raised."""
        status, reason, doc = self.record(writer, prov)
        if status == "failed":
            writer.final_dir = failed_run_dir(self.out_dir)
            path = writer.commit(doc)
            if self.failure.reason is not None and reason == self.failure.reason:  # logged already
                self.log.info("failed run kept in %s", path)
            else:
                self.log.error("run failed: %s (kept in %s)", reason, path)
            raise self.failed_error(reason or "failed", path)
        path = writer.commit(doc)
        self.log.info("run %s: %s%s", status, path, f" ({reason})" if reason else "")
        return path


def record_allocation(prov: dict[str, Any], alloc: AllocatedGpus | None) -> None:
    """Provenance of the GPUs the session holds."""
    if alloc is not None:
        prov["allocated_gpus"] = list(alloc)
        prov["allocated_device_ids"] = alloc.device_ids
    prov["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
