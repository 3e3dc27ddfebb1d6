"""`jouleflow energy RUN_DIR [-o summary.json]`: steady-state window, energy and latency figures."""

from __future__ import annotations

import argparse
from pathlib import Path


def _seconds(text: str) -> float:
    """A duration: plain seconds or with a unit (20, 20s, 500ms, 1.5min)."""
    from jouleflow.units import DurationError, parse_duration

    try:
        return parse_duration(text, bare_unit="s")
    except DurationError as exc:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (examples: 20, 20s, 500ms, 1.5min)"
        ) from exc


def register(subparsers) -> None:
    # Defaults are spelled out here (not imported) to keep `jouleflow --help` free of polars.
    p = subparsers.add_parser(
        "energy",
        help="compute a run's steady-state energy and latency figures into summary.json",
        description=__doc__,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run directory (with run.json)")
    p.add_argument(
        "-o", "--output", type=Path, default=None, help="output path (default: RUN_DIR/summary.json)"
    )
    p.add_argument(
        "--min-window",
        type=_seconds,
        default=20.0,
        metavar="DURATION",
        help="shortest valid steady window: seconds or with a unit, e.g. 20s, 1.5min (20s)",
    )
    p.add_argument(
        "--min-batch-fraction",
        type=float,
        default=0.85,
        metavar="F",
        help="lowest valid mean running / B (0.85)",
    )
    p.add_argument(
        "--max-starved-share",
        type=float,
        default=0.1,
        metavar="F",
        help="highest valid share of the window with the batch short, nothing waiting in the engine"
        " and more in flight at the client (0.1)",
    )
    p.add_argument(
        "--max-power-fraction",
        type=float,
        default=1.1,
        metavar="F",
        help="highest valid mean power / power limit, per GPU (1.1)",
    )
    p.add_argument(
        "--full-batch-tolerance",
        type=float,
        default=0.05,
        metavar="F",
        help="a batch counts as full when running >= (1-F) x B (0.05)",
    )
    p.add_argument(
        "--min-window-overlap",
        type=float,
        default=0.8,
        metavar="F",
        help="lowest valid server/client window overlap, intersection over union; 0 disables (0.8)",
    )
    p.add_argument(
        "--max-energy-power-mismatch",
        type=float,
        default=0.15,
        metavar="F",
        help="counter energy vs integrated power, relative difference above which to flag (0.15)",
    )
    p.add_argument(
        "--max-failed-fraction",
        type=float,
        default=0.0,
        metavar="F",
        help="failed requests tolerated, fraction of N (0)",
    )
    p.add_argument(
        "--max-jpt-ci",
        type=float,
        default=0.0,
        metavar="F",
        help="saturate runs that stopped unconverged: highest valid J/token CI half-width / mean; "
        "0 = the run's own target_ci (0)",
    )
    p.add_argument("--print", dest="print_summary", action="store_true", help="also print the summary JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jouleflow.analysis.energy import write_summary
    from jouleflow.analysis.validity import Thresholds
    from jouleflow.cli import CLIError
    from jouleflow.records import SummaryRecord
    from jouleflow.traces import TraceError

    try:
        thresholds = Thresholds(
            min_window_s=args.min_window,
            min_batch_fraction=args.min_batch_fraction,
            max_starved_share=args.max_starved_share,
            max_power_fraction=args.max_power_fraction,
            full_batch_tolerance=args.full_batch_tolerance,
            min_window_overlap=args.min_window_overlap,
            max_energy_power_mismatch=args.max_energy_power_mismatch,
            max_failed_fraction=args.max_failed_fraction,
            max_jpt_ci=args.max_jpt_ci,
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    if not args.run_dir.is_dir():
        raise CLIError(f"{args.run_dir}: not a run directory")
    try:
        path = write_summary(args.run_dir, args.output, thresholds)
    except TraceError as exc:
        raise CLIError(str(exc)) from exc
    summary = SummaryRecord.read(path)
    if args.print_summary:
        print(summary.to_json(), end="")
    state = "valid" if summary.valid else "INVALID " + ",".join(summary.flags)
    ept = summary.energy_per_token_j
    print(f"{path}: {state}; J/token {ept if ept is None else f'{ept:.4g}'}")
    return 0
