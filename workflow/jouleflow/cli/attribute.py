"""`jouleflow attribute RUN_DIR -o attribution.json`: where a run's steady-window joules go.

Static vs dynamic energy (idle baseline), a least-squares fit of J per prefill and per decode token,
each request's energy, and a diagnosis (memory-, host-bound, underutilized, saturated) from the
recorded latents; what the run's traces cannot support is named, not guessed (docs/attribution.md).
The file's shape is `jouleflow.attribution_record` (AttributionRecord, the per-request REQUEST_ENERGY).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jouleflow.cli.energy import _seconds


def register(subparsers) -> None:
    # Defaults spelled out here (not imported) to keep `jouleflow --help` free of numpy and polars.
    p = subparsers.add_parser(
        "attribute",
        help="attribute a run's steady-window energy (static/dynamic, prefill/decode, requests)",
        description=__doc__,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run directory (with run.json)")
    p.add_argument("-o", "--output", type=Path, required=True, help="attribution.json to write")
    p.add_argument(
        "--requests", type=Path, default=None, metavar="PARQUET", help="also write per-request energy"
    )
    p.add_argument(
        "--summary",
        type=Path,
        default=None,
        help="summary.json with the steady window (default: RUN_DIR/summary.json; computed when absent)",
    )
    p.add_argument("--interval", type=_seconds, default=1.0, metavar="DURATION", help="fit interval (1s)")
    p.add_argument(
        "--residence",
        choices=("first-token", "send"),
        default="first-token",
        help="a request holds static energy from its first token or from its send, to its end (first-token)",
    )
    p.add_argument(
        "--min-intervals", type=int, default=10, metavar="N", help="fewest intervals for a fit (10)"
    )
    p.add_argument(
        "--max-condition",
        type=float,
        default=1000.0,
        metavar="X",
        help="largest condition number of the column-scaled design matrix (1000)",
    )
    p.add_argument(
        "--max-pd-correlation",
        type=float,
        default=0.99,
        metavar="R",
        help="largest |corr(prefill, decode tokens)| per interval for a fit (0.99)",
    )
    p.add_argument(
        "--kv-full", type=float, default=0.9, metavar="F", help="memory-bound: kv_cache_usage >= F (0.9)"
    )
    p.add_argument(
        "--batch-fraction",
        type=float,
        default=0.85,
        metavar="F",
        help="a full batch: mean running >= F x B (0.85)",
    )
    p.add_argument(
        "--util-low", type=float, default=70.0, metavar="PCT", help="GPU utilization below: idle (70)"
    )
    p.add_argument("--util-busy", type=float, default=90.0, metavar="PCT", help="at or above: saturated (90)")
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="a run that cannot be attributed (failed, infeasible, no steady window, not an LLM run) gets "
        "an attribution.json saying why (and an empty --requests table) instead of an error",
    )
    p.set_defaults(func=run)


def _unattributable(run_dir: Path) -> str | None:
    """Why a run is not attributed at all (its status, its modality), before reading any trace."""
    from jouleflow.records import read_run

    run = read_run(run_dir)
    if run.status != "ok":
        return f"run {run.status}: {run.reason or 'no reason recorded'}"
    if run.is_diffusion:
        return "diffusion run: the attribution is for LLM runs"
    return None


def run(args: argparse.Namespace) -> int:
    from jouleflow import traces
    from jouleflow.analysis.attribution import Options, attribute
    from jouleflow.analysis.attribution_diagnosis import DiagnosisThresholds
    from jouleflow.analysis.attribution_fit import FitThresholds
    from jouleflow.attribution_record import REQUEST_ENERGY, AttributionRecord
    from jouleflow.cli import CLIError

    if not args.run_dir.is_dir():
        raise CLIError(f"{args.run_dir}: not a run directory")
    try:
        options = Options(
            interval_s=args.interval,
            residence=args.residence,
            fit=FitThresholds(args.min_intervals, args.max_condition, args.max_pd_correlation),
            diagnosis=DiagnosisThresholds(args.kv_full, args.batch_fraction, args.util_low, args.util_busy),
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    frame = None
    try:
        why = _unattributable(args.run_dir) if args.allow_empty else None
        if why is None:
            doc, frame = attribute(args.run_dir, options, args.summary)
            record = AttributionRecord.from_dict(doc, "attribute()'s document")
    except traces.TraceError as exc:
        if not args.allow_empty:
            raise CLIError(str(exc)) from exc
        why = str(exc)
    if why is not None:
        record = AttributionRecord.not_computed(args.run_dir, why)
    record.write(args.output)
    if args.requests is not None:
        if frame is None and not args.allow_empty:
            raise CLIError(f"{args.run_dir}: no per-request energy ({record.missing.get('energy')})")
        rows = frame.to_arrow().to_pydict() if frame is not None else []
        traces.write_table(traces.table_from_rows(rows, REQUEST_ENERGY), args.requests)
    if record.not_attributed:
        print(f"{args.output}: not attributed: {record.not_attributed}")
        return 0
    used = record.costs()  # the resolved fit the attribution used, else why none is
    costs = (
        f"{used.fit} fit: a {used.j_per_prefill_token:.4g} J/prefill token, "
        f"b {used.j_per_decode_token:.4g} J/decode token"
        if used.fit is not None
        else f"no resolved fit ({used.note})"
    )
    static = (
        f"static share {record.static_share:.1%}"
        if record.static_share is not None
        else f"no static share: {record.static_share_note}"
    )
    print(
        f"{args.output}: {record.diagnosis_label}; {costs}; {static}; "
        f"missing: {', '.join(record.missing) or 'none'}"
    )
    return 0
