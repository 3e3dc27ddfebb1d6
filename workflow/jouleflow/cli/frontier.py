"""`jouleflow frontier`: Pareto frontiers and recommendation tables of every task × model.

Registration imports nothing heavy; the handler imports polars when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jouleflow.cli import CLIError, common


def register(subparsers) -> None:
    fr = subparsers.add_parser("frontier", help="Pareto frontiers (latency vs energy) of every task × model")
    fr.add_argument("--summary", type=Path, required=True, help="summary Parquet (traces.SUMMARY)")
    fr.add_argument("-o", "--output", type=Path, required=True, help="frontier Parquet to write")
    fr.add_argument("--latency-metric", help="latency column for every task (default: per task, see docs)")
    fr.add_argument(
        "--recommendations", type=Path, help="also write recommendations for the targets to this CSV"
    )
    fr.add_argument(
        "--targets", type=Path, help="YAML/JSON: {task: [50ms, 100ms] | {metric: ..., targets: [...]}}"
    )
    fr.add_argument(
        "--target", action="append", default=[], metavar="TASK=D1,D2", help="targets for one task"
    )
    fr.add_argument(
        "--allow-empty",
        action="store_true",
        help="no usable run (all failed or invalid): write empty tables instead of failing",
    )
    fr.set_defaults(func=_frontier)


def _frontier(args: argparse.Namespace) -> int:
    from jouleflow import traces
    from jouleflow.analysis.recommendations import (
        frontier_table,
        load_targets,
        recommendation_table,
        summarize_exclusions,
        targets_from_cli,
        write_recommendations_csv,
    )

    summary = common.summary(args.summary)
    table = frontier_table(summary, args.latency_metric, allow_empty=args.allow_empty)
    traces.write_table(table.frontier.to_arrow(), args.output)
    for line in summarize_exclusions(table):
        print(line, file=sys.stderr)
    print(f"wrote {table.frontier.height} frontier rows to {args.output}", file=sys.stderr)
    if args.recommendations:
        if args.targets and args.target:
            raise CLIError("give targets either in a file (--targets) or inline (--target), not both")
        spec = (
            load_targets(args.targets)
            if args.targets
            else targets_from_cli(args.target)
            if args.target
            else None
        )
        recs = recommendation_table(summary, spec, args.latency_metric)
        write_recommendations_csv(recs, args.recommendations)
        print(f"wrote {recs.height} recommendations to {args.recommendations}", file=sys.stderr)
    elif args.targets or args.target:
        raise CLIError("--targets/--target need --recommendations PATH to write to")
    return 0
