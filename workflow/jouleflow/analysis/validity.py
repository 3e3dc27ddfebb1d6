"""Validity flags of a run's accounting, with configurable thresholds.

A run is `valid` when it carries no blocking flag. Invalid runs keep every number that could be
computed; the flags say why they should not be compared. Each flag comes with a detail message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from jouleflow.analysis.steady import DEFAULT_FULL_TOLERANCE

if TYPE_CHECKING:
    from jouleflow.records import RunRecord

# Blocking flags: the figures of a run carrying one must not be compared or published.
STATUS_NOT_OK = "status-not-ok"
NO_ENERGY_SENSOR = "no-energy-sensor"
NO_STEADY_STATE = "no-steady-state"
SHORT_WINDOW = "short-window"
LOW_BATCH = "low-batch"
# the batch ran short with nothing waiting in the engine while the client held more in flight, for
# more than a set share of the window: the server's front end, not the engine, set the batch
FRONTEND_STARVED = "frontend-starved"
FAILED_REQUESTS = "failed-requests"
POWER_OUT_OF_BOUNDS = "power-out-of-bounds"
ENERGY_COUNTER_RESET = "energy-counter-reset"
POWER_TRACE_GAP = "power-trace-gap"
FOREIGN_PROCESSES = "foreign-processes"
WINDOW_DISAGREEMENT = "window-disagreement"
NO_TOKENS = "no-tokens"
TRACE_INCONSISTENT = "trace-inconsistent"  # the trace files contradict each other (trace_checks)
NOT_CONVERGED = "not-converged"  # a saturate run stopped (time limit, pool) short of its J/token precision
# Informational flags: worth knowing, not disqualifying.
SERVER_WINDOW_MISSING = "server-window-missing"
ENERGY_COUNTER_RESET_OUTSIDE = "energy-counter-reset-outside-window"
ENERGY_POWER_MISMATCH = "energy-power-mismatch"
POWER_LIMIT_UNKNOWN = "power-limit-unknown"
TRACE_REPAIRED = "trace-repaired"  # rows dropped whose removal gives the exact figures
# energy per response from the completed requests' mean output length while requests were stopped in
# flight (saturate) and their targets are unknown: biased low; J/token is not affected
OUTPUT_LENGTH_BIASED = "output-length-biased"

BLOCKING = frozenset(
    {
        STATUS_NOT_OK,
        NO_ENERGY_SENSOR,
        NO_STEADY_STATE,
        SHORT_WINDOW,
        LOW_BATCH,
        FRONTEND_STARVED,
        FAILED_REQUESTS,
        POWER_OUT_OF_BOUNDS,
        ENERGY_COUNTER_RESET,
        POWER_TRACE_GAP,
        FOREIGN_PROCESSES,
        WINDOW_DISAGREEMENT,
        NO_TOKENS,
        TRACE_INCONSISTENT,
        NOT_CONVERGED,
    }
)


@dataclass(frozen=True)
class Thresholds:
    """Knobs of the window and of the validity checks (defaults follow design.md)."""

    min_window_s: float = 20.0  # steady window at least this long
    min_batch_fraction: float = 0.85  # mean running in the window / B
    max_starved_share: float = 0.1  # share of the window the front end left the batch short
    max_power_fraction: float = 1.1  # mean power per GPU at most this x its power limit
    full_batch_tolerance: float = DEFAULT_FULL_TOLERANCE  # "full batch" = running >= (1 - tol) * B
    min_window_overlap: float = 0.8  # server vs client window, intersection over union; 0 disables
    max_energy_power_mismatch: float = 0.15  # |counter energy / integrated power - 1|
    max_failed_fraction: float = 0.0  # failed requests / N tolerated
    # A saturate run that stopped unconverged is valid only if its J/token 95% CI half-width / mean
    # (recomputed from the traces) is at most this; 0 = the run's own target_ci.
    max_jpt_ci: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 0:
                raise ValueError(f"threshold {name} must be >= 0, got {value}")
        if not self.full_batch_tolerance < 1:
            raise ValueError(f"threshold full_batch_tolerance must be < 1, got {self.full_batch_tolerance}")

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_THRESHOLDS = Thresholds()


@dataclass
class Flags:
    """Collects flags with a human-readable detail each, in the order raised (no duplicates)."""

    details: dict[str, str] = field(default_factory=dict)

    def raise_flag(self, name: str, detail: str) -> None:
        if name in self.details:
            self.details[name] += f"; {detail}"
        else:
            self.details[name] = detail

    @property
    def names(self) -> list[str]:
        return list(self.details)

    @property
    def valid(self) -> bool:
        return not any(name in BLOCKING for name in self.details)


def check_power_bounds(
    flags: Flags,
    mean_power_per_gpu: dict[int, float],
    power_limits_w: dict[int, float | None],
    thresholds: Thresholds,
) -> None:
    """0 < mean power per GPU <= max_power_fraction x its power limit."""
    for gpu, watts in sorted(mean_power_per_gpu.items()):
        limit = power_limits_w.get(gpu)
        if not watts > 0:
            flags.raise_flag(POWER_OUT_OF_BOUNDS, f"GPU {gpu}: mean power {watts:.1f} W is not positive")
        elif limit is None:
            flags.raise_flag(POWER_LIMIT_UNKNOWN, f"GPU {gpu}: no power limit in run.json provenance")
        elif watts > thresholds.max_power_fraction * limit:
            flags.raise_flag(
                POWER_OUT_OF_BOUNDS,
                f"GPU {gpu}: mean power {watts:.1f} W > {thresholds.max_power_fraction:g} x limit {limit:g} W",
            )


def check_convergence(
    flags: Flags, convergence: dict | None, ci_rel: float | None, n_intervals: int, thresholds: Thresholds
) -> None:
    """`not-converged` for a saturate run that stopped short of converging and of the CI limit."""
    if not convergence or convergence.get("converged"):
        return
    limit = thresholds.max_jpt_ci or (convergence.get("targets") or {}).get("target_ci")
    if ci_rel is not None and limit is not None and ci_rel <= limit:
        return
    achieved = "unknown" if ci_rel is None else f"±{100 * ci_rel:.2g}%"
    flags.raise_flag(
        NOT_CONVERGED,
        f"load stopped: {convergence.get('stop_reason')}; J/token {achieved} over {n_intervals} intervals"
        + (f" > {100 * limit:g}%" if limit is not None else ""),
    )


def foreign_process_list(record: RunRecord) -> list:
    """Foreign processes seen on the job's GPUs, from run.json (foreign_processes; older runs
    recorded them as provenance.foreign_processes).

    Accepts a list of process records, or a dict of such lists (e.g. per phase: before/after).
    """
    found = record.provenance.get("foreign_processes", record.foreign_processes)
    if not found:
        return []
    if isinstance(found, dict):
        return [p for procs in found.values() for p in (procs or [])]
    return list(found)
