"""`jouleflow plan budget`: what a power budget serves under a latency target, per model.

    jouleflow plan budget --summary S --power 1MW [--pue 1.2] --deadline 50ms [--task T] [--gpu H100]

Per (task, model, precision): the configuration with the most throughput per watt among those
meeting the deadline, its whole replicas within the budget, their GPUs, throughput and concurrent
streams. Markdown (or --json) on stdout, -o CSV, --markdown FILE, --figure FIG.png (+ .svg). When no model has a plan the
output says why and the exit status is 3, unless --allow-empty (then 0).

Registration imports nothing heavy; the handler imports polars when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jouleflow.cli import CLIError, common

EXIT_EMPTY = 3  # no model has a plan (as `recommend`'s unreachable target)


def register(subparsers) -> None:
    parser = subparsers.add_parser("plan", help="capacity planning from a summary (power budget)")
    sub = parser.add_subparsers(dest="planning", required=True, metavar="PLAN")
    b = sub.add_parser("budget", help="per model: throughput, streams and GPUs a power budget serves")
    b.add_argument("--summary", type=Path, required=True, help="summary Parquet (traces.SUMMARY)")
    b.add_argument("--power", required=True, help="power budget with unit: 1MW, 500kW, 7000W")
    b.add_argument(
        "--pue", type=float, help="facility PUE: the budget is then facility power (default 1, or --cost's)"
    )
    b.add_argument("--deadline", required=True, help="latency target with unit: 50ms, 10s")
    b.add_argument(
        "--latency-metric", help="latency column (default per task: median_itl, batch_latency, ...)"
    )
    b.add_argument("--task", action="append", default=[], help="only this task (repeatable)")
    b.add_argument("--gpu", help="only configurations on this GPU type")
    b.add_argument("--num-gpus", type=int, help="only configurations with this many GPUs per replica")
    b.add_argument("--cost", metavar="FILE|{...}", help="add cost/carbon per hour (analysis.cost schema)")
    b.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    b.add_argument("-o", "--output", type=Path, metavar="TABLE.csv", help="write the table as CSV")
    b.add_argument("--markdown", type=Path, metavar="TABLE.md", help="write the table as Markdown")
    b.add_argument("--figure", type=Path, metavar="FIG.png", help="write the figure as FIG.png and FIG.svg")
    b.add_argument("--allow-empty", action="store_true", help="exit 0 when no model has a plan")
    b.set_defaults(func=_budget)


def _budget(args: argparse.Namespace) -> int:
    from jouleflow.analysis import budget
    from jouleflow.analysis.compare.output import write_text
    from jouleflow.analysis.cost import CostError, load_cost
    from jouleflow.traces import write_atomic

    try:
        power_w = budget.parse_power(args.power)
        cost = load_cost(args.cost) if args.cost else None
    except (budget.BudgetError, CostError) as exc:
        raise CLIError(str(exc)) from exc
    if args.pue is not None and args.pue < 1:
        raise CLIError(f"--pue must be >= 1 (facility power over GPU power), got {args.pue:g}")
    pue = args.pue if args.pue is not None else (cost.default.pue if cost else 1.0)
    deadline = common.duration(args.deadline, "--deadline")
    plan = budget.plan_budget(
        common.summary(args.summary), power_w, deadline, pue=pue, tasks=args.task or None,
        latency_metric=args.latency_metric, gpu=args.gpu, num_gpus=args.num_gpus, cost=cost,
    )  # fmt: skip
    text = budget.markdown(plan)
    print(json.dumps(plan.summary(), indent=2, default=str) if args.json else text)
    if args.output:
        write_atomic(args.output, plan.rows.write_csv)
    if args.markdown:
        write_text(args.markdown, text)
    if args.figure:
        from jouleflow.plots.budget_figure import budget_figure

        budget_figure(plan, args.figure)
    if plan.empty_reason:
        print(f"jouleflow plan budget: {plan.empty_reason}", file=sys.stderr)
        return 0 if args.allow_empty else EXIT_EMPTY
    return 0
