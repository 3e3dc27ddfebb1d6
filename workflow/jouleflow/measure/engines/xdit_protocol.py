"""The xDiT worker's output protocol: JSON lines written by rank 0, read by the measuring parent.

One object per line, each with `event` and `t` (unix seconds):
  start     the worker process group is up (world_size)
  loaded    the pipeline is on the GPUs (load_s, versions, parallel degrees, dtype, attention backend)
  batch_start / batch
            one generated batch: phase ("warmup" | "timed"), batch_index, batch_size, t_start,
            t_end, ok, error, peak_memory_gib. t_start/t_end bracket the whole batch on every
            rank (CUDA synchronised, then a barrier), so the window covers all GPUs' work.
  error     the worker failed (phase, batch_index, error text, oom flag)
  done      every batch ran
Only the parent turns this into batches.parquet (timed batches only; warm-up goes to run.json).
The file is flushed after every line; a last line cut short by a kill is ignored.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from jouleflow.measure.engines.base import classify_start_failure

EVENTS_FILE = "worker_events.jsonl"
PHASES = ("warmup", "timed")


class WorkerProtocolError(ValueError):
    """The events file is malformed (not a cut-short last line); the message names file and line."""


class EventWriter:
    """Append events to the file, one flushed line each (used by the worker's rank 0)."""

    def __init__(self, path: str | Path) -> None:
        self._f: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, event: str, **fields: Any) -> None:
        record = {"event": event, "t": time.time(), **fields}
        self._f.write(json.dumps(record, default=str) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


@dataclass
class WorkerReport:
    """What the worker reported, in order."""

    start: dict[str, Any] | None = None
    loaded: dict[str, Any] | None = None
    warmup: list[dict[str, Any]] = field(default_factory=list)
    timed: list[dict[str, Any]] = field(default_factory=list)
    in_progress: dict[str, Any] | None = None  # a batch_start without its batch
    error: dict[str, Any] | None = None
    done: bool = False

    @property
    def timed_ok(self) -> int:
        return sum(1 for b in self.timed if b.get("ok"))

    @property
    def oom(self) -> bool:
        return bool(self.error and self.error.get("oom")) or any(
            b.get("oom") for b in self.warmup + self.timed
        )


def read_events(path: str | Path) -> WorkerReport:
    """Parse the events file; a missing file is an empty report (the worker never got that far)."""
    path = Path(path)
    report = WorkerReport()
    if not path.is_file():
        return report
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # no newline after it: a write cut short by a kill
                break
            raise WorkerProtocolError(f"{path}:{number}: not a JSON object ({exc.msg})") from exc
        if not isinstance(record, dict) or "event" not in record:
            raise WorkerProtocolError(f"{path}:{number}: expected an object with an 'event' key")
        _apply(report, record, f"{path}:{number}")
    return report


def _apply(report: WorkerReport, record: dict[str, Any], where: str) -> None:
    event = record["event"]
    if event == "start":
        report.start = record
    elif event == "loaded":
        report.loaded = record
    elif event == "batch_start":
        report.in_progress = record
    elif event == "batch":
        phase = record.get("phase")
        if phase not in PHASES:
            raise WorkerProtocolError(f"{where}: batch phase must be one of {PHASES}, got {phase!r}")
        for key in ("batch_index", "batch_size", "t_start"):
            if not isinstance(record.get(key), (int, float)):
                raise WorkerProtocolError(f"{where}: batch event needs a number {key!r}")
        (report.warmup if phase == "warmup" else report.timed).append(record)
        report.in_progress = None
    elif event == "error":
        report.error = record
    elif event == "done":
        report.done = True
    else:
        raise WorkerProtocolError(f"{where}: unknown event {event!r}")


def batch_rows(report: WorkerReport, interrupted_reason: str | None = None) -> list[dict[str, Any]]:
    """Rows of traces.BATCHES: the timed batches, plus the one cut off (ok false, no t_end) if any."""
    rows = [
        {
            "batch_index": int(b["batch_index"]),
            "t_start": float(b["t_start"]),
            "t_end": None if b.get("t_end") is None else float(b["t_end"]),
            "batch_size": int(b["batch_size"]),
            "ok": bool(b.get("ok")),
            "error": b.get("error"),
            "peak_memory_gib": b.get("peak_memory_gib"),
        }
        for b in report.timed
    ]
    cut = report.in_progress
    if cut is not None and cut.get("phase") == "timed":
        error = (report.error or {}).get("error") or interrupted_reason or "batch did not finish"
        rows.append(
            {
                "batch_index": int(cut["batch_index"]),
                "t_start": float(cut.get("t_start", cut["t"])),
                "t_end": None,
                "batch_size": int(cut.get("batch_size", 0)),
                "ok": False,
                "error": error,
                "peak_memory_gib": None,
            }
        )
    return rows


def phase_windows(report: WorkerReport) -> dict[str, list[float | None]]:
    """[t0, t1] of the worker's load, warm-up and timed batches, for run.json provenance.phases."""
    out: dict[str, list[float | None]] = {}
    if report.start is not None and report.loaded is not None:
        out["load"] = [float(report.start["t"]), float(report.loaded["t"])]
    for name, batches in (("warmup", report.warmup), ("batches", report.timed)):
        if batches:
            ends = [b["t_end"] for b in batches if b.get("t_end") is not None]
            out[name] = [float(batches[0]["t_start"]), float(max(ends)) if ends else None]
    return out


@dataclass(frozen=True)
class Outcome:
    status: str  # ok | infeasible | failed
    reason: str | None


def decide_status(
    report: WorkerReport,
    exit_code: int | None,
    log_text: str,
    num_batches: int,
    timed_out_after_s: float | None = None,
) -> Outcome:
    """ok when every timed batch ran; infeasible on out-of-memory (at load or in any batch); else failed."""
    progress = f"{report.timed_ok} of {num_batches} timed batches done"
    if timed_out_after_s is not None:
        return Outcome("failed", f"xdit worker timed out after {timed_out_after_s:.0f} s ({progress})")
    where = _failure_point(report)
    if report.oom:
        detail = (report.error or {}).get("error") or "out of memory"
        return Outcome("infeasible", f"out of GPU memory {where}: {_last_line(detail)}")
    status, line = classify_start_failure(log_text) if exit_code != 0 or not report.done else ("ok", None)
    if status == "infeasible":
        return Outcome("infeasible", f"out of GPU memory {where}: {line}")
    if exit_code not in (0, None) or report.error is not None:
        error = (report.error or {}).get("error")
        reason = f"xdit worker exited with code {exit_code} {where} ({progress})"
        return Outcome("failed", reason + (f": {_last_line(error)}" if error else ""))
    if not report.done or report.timed_ok < num_batches:
        return Outcome("failed", f"xdit worker exited without finishing ({progress})")
    return Outcome("ok", None)


def _failure_point(report: WorkerReport) -> str:
    if report.error is not None and report.error.get("phase"):
        index = report.error.get("batch_index")
        phase = report.error["phase"]
        return f"during {phase}" + (f" batch {index}" if index is not None else "")
    if report.in_progress is not None:
        return f"during {report.in_progress.get('phase')} batch {report.in_progress.get('batch_index')}"
    if report.loaded is None:
        return "while loading the pipeline"
    last = (report.timed or report.warmup or [None])[-1]
    if last is None:
        return "after loading the pipeline"
    return f"after {last['phase']} batch {last['batch_index']}"


def _last_line(text: str) -> str:
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""
