"""Plumbing shared by the LLM and the diffusion measurement sessions (their lifecycle: session_base).

Import-light on purpose (standard library only): the diffusion environment has no aiohttp, so
nothing here may pull in the LLM load generator.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

SESSION_LOG = "session.log"


class SessionSetupError(RuntimeError):
    """The session could not run (no GPU, bad setup): user-facing, nothing was written."""


class RunFailed(RuntimeError):
    """The session ran and failed; `run_dir` holds what was recorded (status "failed")."""

    def __init__(self, reason: str, run_dir: Path) -> None:
        super().__init__(f"{reason} (details in {run_dir})")
        self.reason = reason
        self.run_dir = run_dir


def attach_session_log(writer: Any) -> logging.Handler:
    """Copy jouleflow's log records into the run directory's session.log until detached."""
    handler = logging.FileHandler(writer.path(SESSION_LOG))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("jouleflow").addHandler(handler)
    return handler


def detach_session_log(handler: logging.Handler) -> None:
    logging.getLogger("jouleflow").removeHandler(handler)
    handler.close()


class Failure:
    """Why a run that started failed: the first reason is the run's; later ones become notes.

    Every failure after the engine was launched goes through here, so the session always commits
    a failed run with what it gathered. `details` (a traceback, a log tail) goes to session.log
    only; the console gets one line per failure.
    """

    def __init__(self, notes: list[str], handler: logging.Handler | None = None) -> None:
        self.notes = notes
        self.handler = handler
        self.reason: str | None = None

    def add(self, reason: str, details: str | None = None) -> None:
        if reason == self.reason or f"also failed: {reason}" in self.notes:
            return
        log = logging.getLogger("jouleflow.measure.session")
        if self.reason is None:
            self.reason = reason
            log.error("%s", reason)
        else:
            self.notes.append(f"also failed: {reason}")
            log.error("also failed: %s", reason)
        if details:
            self.detail(details)

    def detail(self, text: str) -> None:
        """Write `text` to session.log only (straight to its handler, past the console)."""
        if self.handler is not None:
            log = logging.getLogger("jouleflow.measure.session")
            self.handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (text,), None))


def failed_run_dir(out_dir: Path) -> Path:
    """Where a failed run is kept for inspection: next to the requested one, never in its place."""
    return out_dir.with_name(f"{out_dir.name}.failed-{time.strftime('%Y%m%dT%H%M%S')}")
