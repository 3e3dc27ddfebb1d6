"""`jouleflow measure llm-sweep`: several batch sizes on one vLLM server (measure/reuse.py).

Each point (batch size, request set, repeat; `--point B:SET` adds single ones) becomes its own run
directory, `OUT_ROOT/<B>[-<set>][-r<k>]`, measured by the same session as `jouleflow measure llm` on a
server started once with `--max-num-seqs` = the largest batch size and jouleflow's batch-limit
scheduler. `--run SPEC RUN_DIR` (repeated) gives each point its own job spec and run directory instead:
what a campaign's `measurement.shared_server` job runs (`jouleflow campaign measure-shared`).
Whether this measures what dedicated servers would is checked by `benchmarks/campaign_cost.py`
(docs/method.md, "Campaign cost").
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
    p.add_argument("--config", help="job spec (YAML or JSON), as `measure llm --config`")
    p.add_argument("--batch-sizes", help="comma-separated, measured in this order, e.g. 16,32,64")
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
    p.add_argument("--out-root", help="one run directory per point: OUT_ROOT/<B>[-<request set>][-r<k>]")
    p.add_argument(
        "--run",
        nargs=2,
        action="append",
        default=[],
        metavar=("SPEC", "RUN_DIR"),
        help="instead of --config/--batch-sizes/--out-root: one point, its own job spec and run directory"
        " (repeatable; measured in the given order; the specs may differ only in per-point keys)",
    )
    p.add_argument("--work-dir", help="with --run: where the shared server's log and batch-limit file go")
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
    from jouleflow.measure.session import SessionError, SessionFailed
    from jouleflow.traces import RunExistsError

    cache = Path(args.model_cache) if args.model_cache else None
    try:
        measure = _per_point_specs(args) if args.run else _one_spec(args)
        run_dirs = measure(display=not args.no_progress, model_cache=cache)
    except (SessionError, GpuAllocationError, RunExistsError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    except SessionFailed as exc:
        print(f"jouleflow measure llm-sweep: the shared server failed: {exc}", file=sys.stderr)
        return 1
    for run_dir in run_dirs:
        print_run_status(run_dir)
    return 0


def _load(path: str) -> Any:
    from jouleflow.cli import CLIError
    from jouleflow.measure.jobconfig import ConfigError, config_from_dict, load_job_spec

    try:
        return config_from_dict(load_job_spec(path), source=path)
    except ConfigError as exc:
        raise CLIError(str(exc)) from exc


def _one_spec(args: argparse.Namespace) -> Any:
    """--config + --batch-sizes (+ --request-sets, --point, --repeats) into --out-root."""
    from functools import partial
    from pathlib import Path

    from jouleflow.cli import CLIError
    from jouleflow.measure.reuse import run_sweep, sweep_points

    missing = [
        f"--{k.replace('_', '-')}" for k in ("config", "batch_sizes", "out_root") if not getattr(args, k)
    ]
    if missing:
        raise CLIError(f"{', '.join(missing)}: required (or give the points with --run SPEC RUN_DIR)")
    sizes = batch_sizes(args.batch_sizes)
    sets = [x.strip() for x in args.request_sets.split(",") if x.strip()] if args.request_sets else None
    try:
        points = sweep_points(sizes, sets, args.repeats, extra_points(args.point))
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    return partial(run_sweep, _load(args.config), points, Path(args.out_root))


def _per_point_specs(args: argparse.Namespace) -> Any:
    """--run SPEC RUN_DIR ... --work-dir DIR: each point's own spec (a campaign's shared-server job)."""
    from functools import partial
    from pathlib import Path

    from jouleflow.cli import CLIError
    from jouleflow.measure.reuse import run_points

    mixed = [
        f"--{k.replace('_', '-')}"
        for k in ("config", "batch_sizes", "out_root", "request_sets")
        if getattr(args, k)
    ]
    if mixed or args.point or args.repeats != 1:
        raise CLIError(
            f"--run: give the points either with --run or with --config/--batch-sizes, not both ({', '.join(mixed) or '--point/--repeats'})"
        )
    if not args.work_dir:
        raise CLIError("--work-dir: required with --run (the shared server's log goes there)")
    configs = [_load(spec) for spec, _ in args.run]
    return partial(run_points, configs, [Path(d) for _, d in args.run], Path(args.work_dir))
