"""`jouleflow measure llm-sweep`: several batch sizes on one vLLM server (measure/reuse.py).

Each point (batch size, request set, repeat; `--point B:SET` adds single ones) becomes its own run directory, `OUT_ROOT/<B>[-<set>][-r<k>]`,
measured by the same session as
`jouleflow measure llm` on a server started once with `--max-num-seqs` = the largest batch size and
jouleflow's batch-limit scheduler. Whether this measures what dedicated servers would is checked by
`benchmarks/campaign_cost.py` (docs/method.md, "Campaign cost"); campaigns do not use it yet.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register_sweep(kinds: Any) -> None:
    p = kinds.add_parser(
        "llm-sweep",
        help="several LLM batch sizes on one vLLM server, the batch limit enforced inside the engine",
    )
    p.add_argument("--config", required=True, help="job spec (YAML or JSON), as `measure llm --config`")
    p.add_argument(
        "--batch-sizes", required=True, help="comma-separated, measured in this order, e.g. 16,32,64"
    )
    p.add_argument(
        "--request-sets",
        help="comma-separated request-set Parquet files, each measured at every batch size (default: the spec's)",
    )
    p.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="B:REQUEST_SET",
        help="also measure batch size B on this request-set Parquet file (run OUT_ROOT/<B>-<set>); repeatable",
    )
    p.add_argument("--repeats", type=int, default=1, help="measure the whole sweep this many times (1)")
    p.add_argument(
        "--out-root", required=True, help="one run directory per point: OUT_ROOT/<B>[-<request set>][-r<k>]"
    )
    p.add_argument("--no-progress", action="store_true", help="no live display")
    p.add_argument(
        "--model-cache", help="where dummy model dirs are built (default ~/.cache/jouleflow/models)"
    )
    p.set_defaults(func=run_measure_sweep)


def batch_sizes(text: str) -> list[int]:
    from jouleflow.cli import CLIError

    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise CLIError(f"--batch-sizes {text!r}: expected comma-separated integers") from exc
    if not sizes:
        raise CLIError("--batch-sizes: no batch size given")
    return sizes


def extra_points(values: list[str]) -> list[tuple[int, str]]:
    """`--point B:PATH` values as (batch size, request-set path)."""
    from jouleflow.cli import CLIError

    points = []
    for v in values:
        b, sep, path = v.partition(":")
        if not sep or not b.strip().isdigit() or not path.strip():
            raise CLIError(f"--point {v!r}: expected BATCH_SIZE:REQUEST_SET, e.g. 256:requests/p2000.parquet")
        points.append((int(b), path.strip()))
    return points


def run_measure_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jouleflow.cli import CLIError
    from jouleflow.cli.measure_args import print_run_status
    from jouleflow.measure.gpualloc import GpuAllocationError
    from jouleflow.measure.jobconfig import ConfigError, config_from_dict, load_job_spec
    from jouleflow.measure.reuse import run_sweep, sweep_points
    from jouleflow.measure.session import SessionError, SessionFailed
    from jouleflow.traces import RunExistsError

    sizes = batch_sizes(args.batch_sizes)
    sets = [x.strip() for x in args.request_sets.split(",") if x.strip()] if args.request_sets else None
    try:
        points = sweep_points(sizes, sets, args.repeats, extra_points(args.point))
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    try:
        cfg = config_from_dict(load_job_spec(args.config), source=args.config)
    except ConfigError as exc:
        raise CLIError(str(exc)) from exc
    cache = Path(args.model_cache) if args.model_cache else None
    try:
        run_dirs = run_sweep(
            cfg, points, Path(args.out_root), display=not args.no_progress, model_cache=cache
        )
    except (SessionError, GpuAllocationError, RunExistsError, ConfigError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    except SessionFailed as exc:
        print(f"jouleflow measure llm-sweep: the shared server failed: {exc}", file=sys.stderr)
        return 1
    for run_dir in run_dirs:
        print_run_status(run_dir)
    return 0
