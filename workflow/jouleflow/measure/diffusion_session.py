"""One measured diffusion session: xDiT batch worker + power sampling -> one run directory.

The lifecycle is session_base.MeasuredSession's; this is what a diffusion session does in it.
Resolve: the pipeline, the prompts and the batches (bad input ends here, nothing written).
Measure: launch the worker under torchrun in its own process group -> follow its events (progress,
foreign GPU processes, overall timeout). Record: batches.parquet (timed batches only),
power.parquet, run.json. Out of GPU memory (at load or in any batch) is a result: status
"infeasible", committed at the final path. Any other failure once the worker was launched (it
exits early or times out, the power sampler breaks down, anything raised) is kept as
`<name>.failed-<time>` with what was gathered and raised (details in session.log). Ctrl-C /
SIGTERM at any time tears everything down and leaves no directory.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jouleflow import traces
from jouleflow.measure import diffusion_record as record
from jouleflow.measure.diffusion_config import DiffusionJobConfig
from jouleflow.measure.diffusion_prompts import PromptSet, load_prompt_set
from jouleflow.measure.engines import base, xdit
from jouleflow.measure.engines.xdit_protocol import (
    EVENTS_FILE,
    Outcome,
    WorkerReport,
    batch_rows,
    decide_status,
    read_events,
)
from jouleflow.measure.provenance import base_provenance
from jouleflow.measure.session_base import MeasuredSession
from jouleflow.measure.session_common import RunFailed, SessionSetupError
from jouleflow.records import RunRecord

log = logging.getLogger(__name__)

WORKER_LOG = "worker.log"
WORKER_SPEC = "worker_spec.json"
POLL_S = 0.5


class DiffusionSessionError(SessionSetupError):
    """The session could not run (no GPU, bad setup): user-facing, nothing was written."""


class DiffusionSessionFailed(RunFailed):
    """The session ran and failed; `run_dir` holds what was recorded (status "failed")."""


@dataclass
class Plan:
    """Everything resolved before anything is written or launched."""

    family: xdit.PipelineFamily
    generation: xdit.Generation
    prompts: PromptSet
    batches: list[list[str]]
    xfuser_args: list[str]


def plan(cfg: DiffusionJobConfig) -> Plan:
    family = cfg.family()
    gen = cfg.generation()
    prompts = load_prompt_set(cfg.prompts)
    batches = prompts.batches(cfg.batch_size, cfg.timed_batches, cfg.cycle_prompts or cfg.prompts is None)
    model = cfg.model_path or cfg.model
    return Plan(family, gen, prompts, batches, xdit.xfuser_args(model, cfg.degrees, gen, cfg.xfuser_args))


class DiffusionSession(MeasuredSession):
    """A diffusion session: the engine is the xDiT batch worker (self.process)."""

    setup_error = DiffusionSessionError
    failed_error = DiffusionSessionFailed

    def __init__(self, cfg: DiffusionJobConfig, out_dir: str | Path) -> None:
        super().__init__(cfg, out_dir)
        self.cfg: DiffusionJobConfig = cfg
        self.job: Plan | None = None
        self.report, self.timed_out = WorkerReport(), None

    # --- the steps of the lifecycle -----------------------------------------------------------
    def resolve(self) -> None:
        with self.timer.phase("prepare"):
            self.job = plan(self.cfg)  # bad input raises here, before anything is written

    def prepare(self, writer: traces.RunDirWriter, prov: dict[str, Any]) -> None:
        prov.update(base_provenance("xfuser"))

    def measure(self, writer: traces.RunDirWriter, prov: dict[str, Any]) -> None:
        assert self.job is not None
        with self.timer.phase("worker"):
            self.spec = self.launch(self.job, writer)
            self.report, self.timed_out = self.follow(writer.path(EVENTS_FILE))
        self.check_foreign()

    # --- the worker ---------------------------------------------------------------------------
    def worker_spec(self, p: Plan, events_path: Path) -> dict[str, Any]:
        return {
            "pipeline": p.family.worker_spec(),
            "dtype": self.cfg.dtype,
            "batches": p.batches,
            "warmup_batches": self.cfg.warmup_batches,
            "events_path": str(events_path),
            "output_type": self.cfg.output_type,
        }

    def launch(self, p: Plan, writer: traces.RunDirWriter) -> base.ServerSpec:
        cfg = self.cfg
        spec_path = writer.path(WORKER_SPEC)
        traces.write_json(self.worker_spec(p, writer.path(EVENTS_FILE)), spec_path)
        argv = xdit.worker_argv(
            cfg.launcher, cfg.degrees.world_size, p.xfuser_args, spec_path, cfg.container is not None
        )
        env, stop_argv = xdit.worker_env(cfg.env), None
        if self.gpus is not None:  # the worker sees exactly the allocated GPUs
            env = {**env, "CUDA_VISIBLE_DEVICES": self.gpus.cuda_visible_devices}
        if cfg.container is not None:
            argv, stop_argv, client_env = xdit.in_container(
                argv, env, runtime=cfg.container.runtime, image=cfg.container.image,
                model_path=cfg.model_path, binds=cfg.container.binds, extra_args=cfg.container.args,
                num_gpus=cfg.effective_num_gpus, run_dir=str(writer.tmp_dir), name=xdit.container_name(),
            )  # fmt: skip
            env = client_env
        # ServerProcess keeps its log and tears its tree down (torchrun's ranks too: own sessions).
        spec = base.ServerSpec(
            engine="xdit", argv=argv, host="127.0.0.1", port=0, served_model=cfg.model, env=env,
            metrics_path=None, stop_argv=stop_argv,
        )  # fmt: skip
        self.process = base.ServerProcess(spec, writer.path(WORKER_LOG))
        self.process.start()
        return spec

    def follow(self, events_path: Path) -> tuple[WorkerReport, float | None]:
        """Until the worker exits or the timeout passes: progress lines, foreign-process checks."""
        assert self.process is not None
        from jouleflow.measure.progress import StartupProgress

        t0 = time.monotonic()
        deadline = t0 + self.cfg.timeout_s
        seen, loaded, total = 0, False, self.cfg.timed_batches
        # Until the pipeline is loaded (a minute or more for a large model): phase, time, last log line.
        startup = StartupProgress("xdit", Path(self.process.log_path), phase="loading the pipeline")
        try:
            return self._follow(events_path, startup, t0, deadline, seen, loaded, total)
        finally:
            startup.close()

    def _follow(
        self, events_path: Path, startup: Any, t0: float, deadline: float, seen: int, loaded: bool, total: int
    ) -> tuple[WorkerReport, float | None]:
        assert self.process is not None
        while self.process.is_alive():
            failure = self.sampler.failure() if self.sampler is not None else None
            if failure:  # no energy record any more: stop now, keep what was gathered
                self.failure.add(f"power sampler failed: {failure}")
                return read_events(events_path), None
            report = read_events(events_path)
            if report.loaded is None:
                startup.tick(time.monotonic() - t0)
            elif not loaded:
                loaded = True
                startup.close(time.monotonic() - t0)
                log.info("pipeline loaded in %.1f s", report.loaded.get("load_s", float("nan")))
                self.check_foreign()
            done = report.warmup + report.timed
            for b in done[seen:]:
                watts = sum(self.sampler.latest().values()) if self.sampler is not None else None
                log.info(
                    "%s batch %d%s: %s in %.2f s%s",
                    b["phase"], b["batch_index"] + 1, f"/{total}" if b["phase"] == "timed" else "",
                    "ok" if b.get("ok") else "FAILED", (b.get("t_end") or time.time()) - b["t_start"],
                    f" (GPUs now at {watts:,.0f} W)" if watts else "",
                )  # fmt: skip
                if b["phase"] == "timed":
                    self.check_foreign()
            seen = len(done)
            if time.monotonic() > deadline:
                log.error("worker timed out after %.0f s: stopping it", self.cfg.timeout_s)
                self.process.stop()
                return read_events(events_path), self.cfg.timeout_s
            time.sleep(POLL_S)
        return read_events(events_path), None

    def record(self, writer: traces.RunDirWriter, prov: dict[str, Any]) -> tuple[str, str | None, RunRecord]:
        cfg, p, spec, report = self.cfg, self.job, self.spec, self.report
        assert p is not None
        exit_code = self.process.exit_code() if self.process is not None else None
        log_text = base.tail(writer.path(WORKER_LOG), max_lines=400)
        outcome = decide_status(report, exit_code, log_text, cfg.timed_batches, self.timed_out)
        if self.failure.reason:  # the session's own failure comes first: the worker was stopped for it
            outcome = Outcome("failed", self.failure.reason)
        elif outcome.status == "failed" and exit_code not in (0, None):
            self.failure.detail(f"worker.log tail:\n{base.tail(writer.path(WORKER_LOG))}")
        writer.write_trace("batches.parquet", batch_rows(report, interrupted_reason=outcome.reason))
        energy_source = None
        if self.power_rows:
            writer.write_trace("power.parquet", self.power_rows)
            energy_source = record.ENERGY_SOURCE
        config = record.run_config(
            cfg, p.family, p.generation, p.prompts, [g.get("name") for g in prov["gpus"]]
        )
        doc = record.run_document(
            config=config, outcome=outcome, report=report, provenance=prov, phases=self.timer.phases,
            energy_source=energy_source, zeus_check=self.check_result, power_period_s=cfg.power_period_s,
            worker_argv=record.portable_argv(spec.argv, writer.tmp_dir) if spec else None,
            exit_code=exit_code, foreign=self.foreign,
            notes=self.notes,
        )  # fmt: skip
        return outcome.status, outcome.reason, doc


def run_diffusion_session(cfg: DiffusionJobConfig, out_dir: str | Path) -> Path:
    """Measure one grid point; returns the committed run directory (status ok or infeasible)."""
    return DiffusionSession(cfg, out_dir).run()
