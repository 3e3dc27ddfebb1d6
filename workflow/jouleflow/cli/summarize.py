"""`jouleflow summarize`: the campaign summary, one row per run (the union of all runs).

jouleflow summarize [RUN_DIR ...] [--jobs results/grid/jobs.tsv] -o summary.parquet [--csv summary.csv]
    [--cost COST.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    s = subparsers.add_parser(
        "summarize",
        help="one summary row per run (the union of all runs) into a Parquet table",
        description="Summary table: one traces.SUMMARY row per run, from run.json + summary.json.",
    )
    s.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR", help="run dirs (with summary.json)")
    s.add_argument(
        "--jobs", type=Path, help="the pipeline's jobs table (run_dir, energy_json, registry facts)"
    )
    s.add_argument("-o", "--output", type=Path, required=True, help="summary Parquet file")
    s.add_argument("--csv", type=Path, help="also write the table as CSV")
    s.add_argument(
        "--cost",
        metavar="FILE|{...}",
        help="add cost and carbon columns (analysis.cost settings: a YAML/JSON file or inline mapping)",
    )
    s.set_defaults(func=run_summarize)


def run_summarize(args: argparse.Namespace) -> int:
    from jouleflow.analysis.summary import RunEntry, build_summary, read_jobs_table, write_summary
    from jouleflow.cli import CLIError

    cost = None
    if args.cost:  # parsed first: a bad setting fails before any run is read
        from jouleflow.analysis.cost import load_cost

        cost = load_cost(args.cost)
    entries = [RunEntry(d) for d in args.run_dirs]
    if args.jobs:
        entries += read_jobs_table(args.jobs)
    if not entries:
        raise CLIError("no runs given (RUN_DIR ... or --jobs)")
    frame = build_summary(entries)
    if cost is not None:
        from jouleflow.analysis.cost import add_cost_columns

        frame = add_cost_columns(frame, cost)
    write_summary(frame, args.output, args.csv)
    print(f"{frame.height} run(s) -> {args.output}", file=sys.stderr)
    return 0
