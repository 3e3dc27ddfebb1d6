"""One measurement job's attempt, supervised: every attempt ends with a record under results/.

The pipeline's `measure` job runs `jouleflow measure <kind>` as a child of this supervisor instead
of becoming it, so that whatever happens to the measurement (its engine crashes, its power sampler
fails, it is killed, it runs past the job's time limit, the job is cancelled) the grid point still
ends as a run directory with a status and a reason, and the job itself succeeds: the larger batch
sizes of the group and every aggregate are still built (docs/pipeline.md, "Failures").

- The child gets a deadline a little shorter than the job's scheduler time limit: past it, it is
  stopped (SIGTERM, then SIGKILL after a grace period) and the point is recorded `failed` with
  reason "timed out", before the scheduler's own TIMEOUT could kill the job without a trace.
- SIGTERM / SIGINT / SIGHUP (scancel, Ctrl-C) are passed on to the child; the point is recorded
  failed ("interrupted").
- A child that commits a failed run itself (the session's own failure path) has it moved into place.
- A child that dies without committing anything (SIGKILL, a crash) leaves a `.partial-` directory;
  its logs are kept in the failed record.
- Bad input (exit code 2: a config or spec error naming the key) is not a measurement outcome: the
  job fails with that message and nothing is recorded.

Every attempt that did not end `ok`/`infeasible` is also appended to a failure log
(`results/failures/<run>.jsonl`), which Snakemake does not own and never deletes, so a job that is
killed outright (SIGKILL of the whole job, a node failure) is reported by the next attempt.

Stdlib + traces only: the supervisor never imports measurement code.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jouleflow import __version__
from jouleflow.records import JobSpec, RunRecord, read_run
from jouleflow.traces import RUN_JSON, RunDirWriter, is_complete_run

# Exit code of the `jouleflow` CLI for bad input (argparse and CLIError): the job fails, no record.
BAD_INPUT = 2
GRACE_S = 60.0  # after SIGTERM, time for the session to tear its engine down and commit
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def deadline_s(time_limit_min: float) -> float:
    """Stop a margin before the scheduler would (5%, at least 2 min: teardown and the record fit)."""
    limit = time_limit_min * 60
    return max(limit * 0.5, limit - max(120.0, 0.05 * limit))


@dataclass
class ChildResult:
    returncode: int
    timed_out: bool = False
    interrupted: str | None = None  # the signal that interrupted the job
    started: float = field(default_factory=time.time)
    ended: float = 0.0


def run_child(argv: list[str], deadline_s: float | None, grace_s: float = GRACE_S) -> ChildResult:
    """Run the measurement; stop it at the deadline or on a forwarded signal."""
    result = ChildResult(returncode=0)
    child = subprocess.Popen(argv)
    stop_at: float | None = None  # when a stopped child gets SIGKILL

    def stop() -> None:
        nonlocal stop_at
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        if stop_at is None:
            stop_at = time.monotonic() + grace_s

    def on_signal(signum: int, _frame: object) -> None:
        result.interrupted = result.interrupted or signal.Signals(signum).name
        stop()

    previous = {s: signal.signal(s, on_signal) for s in FORWARDED}
    deadline = time.monotonic() + deadline_s if deadline_s else None
    try:
        while True:
            try:
                result.returncode = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if deadline is not None and now >= deadline and not result.timed_out:
                result.timed_out = True
                stop()
            if stop_at is not None and now >= stop_at:
                child.kill()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    result.ended = time.time()
    return result


def bad_input(result: ChildResult) -> bool:
    """The child refused its input (it named the key or file) rather than ending a measurement."""
    return result.returncode == BAD_INPUT and not (result.timed_out or result.interrupted)


def describe(result: ChildResult, deadline_s: float | None) -> str:
    """Why an attempt that committed nothing ended."""
    rc = result.returncode
    how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited with code {rc}"
    if result.timed_out:
        return f"timed out: still running after {deadline_s / 60:.1f} min (the job's time limit, less a margin); {how}"
    if result.interrupted:
        return f"interrupted by {result.interrupted} (job cancelled or stopped); measurement {how}"
    return f"measurement process {how} without recording the run"


def failed_siblings(run_dir: Path) -> set[Path]:
    """Failed runs the session keeps next to the requested one (`<batch>.failed-<stamp>`)."""
    if not run_dir.parent.is_dir():
        return set()
    return {p for p in run_dir.parent.glob(f"{run_dir.name}.failed-*") if is_complete_run(p)}


def partials(run_dir: Path) -> list[Path]:
    """Temp directories of attempts that never committed (`.<batch>.partial-<host>-<pid>`)."""
    if not run_dir.parent.is_dir():
        return []
    return sorted(run_dir.parent.glob(f".{run_dir.name}.partial-*"))


def adopt(failed: Path, run_dir: Path, why: str | None = None) -> str:
    """Move the session's own failed run into the point's place; returns its reason. `why` (a time
    limit the session could not know of) goes in front of the session's reason, before the move."""
    run = read_run(failed)
    reason = run.reason or "failed"
    if why:
        reason = f"{why}; {reason}"
        replace(run, reason=reason, notes=[*run.notes, f"supervisor: {why}"]).write(failed / RUN_JSON)
    if run_dir.exists() and not is_complete_run(run_dir):
        shutil.rmtree(run_dir)  # an empty leftover (Snakemake creates output dirs' parents)
    os.replace(failed, run_dir)
    return reason


def record_failed(
    spec: JobSpec | dict[str, Any], run_dir: Path, reason: str, salvage: list[Path], started: float
) -> Path:
    """A failed run directory with the reason, the spec and the logs the attempt left."""
    from jouleflow.plan.runguard import as_spec, config_hash

    spec = as_spec(spec)
    config = spec.to_dict()

    writer = RunDirWriter(run_dir)
    kept = []
    for partial in salvage:
        for f in sorted(partial.iterdir()):
            if f.is_file() and not f.name.startswith(".") and not (writer.path(f.name)).exists():
                shutil.copy2(f, writer.path(f.name))
                kept.append(f.name)
    now = time.time()
    path = writer.commit(
        RunRecord(
            status="failed",
            reason=reason,
            config=config,
            config_hash=config_hash(config),
            provenance={
                "host": socket.gethostname(),
                "jouleflow_version": __version__,
                "start_time": started,
                "end_time": now,
                "energy_source": None,
                "load_format": spec.load_format,
                "recorded_by": "supervisor",
                "salvaged_files": kept,
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            },
            notes=[f"recorded by the job's supervisor: {reason}"],
        )
    )
    for partial in salvage:
        shutil.rmtree(partial, ignore_errors=True)
    return path


def log_failure(log_path: Path | None, run_dir: Path, status: str, reason: str, **extra: Any) -> None:
    """Append one line per failed attempt; never rewritten, so no attempt goes unreported."""
    if log_path is None:
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run_dir": str(run_dir),
        "status": status,
        "reason": reason,
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        **extra,
    }
    with open(log_path, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
