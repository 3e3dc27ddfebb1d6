"""`jouleflow recommend`: the minimum-energy configuration under a latency target.

One (task, model): --task, --model, --latency-target. Every model at once (the leaderboard's best
configuration per model under a deadline): --all, one row per task × model × target, as Markdown
(or --json) on stdout, -o CSV, --markdown FILE and --figure FIG.png (+ .svg). --gpu / --num-gpus restrict the candidates in
both modes; --cost adds cost and carbon (docs/config.md#cost).

Registration imports nothing heavy; the handler imports polars when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jouleflow.cli import CLIError, common

EXIT_UNREACHABLE = 3  # the latency target cannot be met (distinct from usage errors, 2)


def register(subparsers) -> None:
    rec = subparsers.add_parser("recommend", help="minimum-energy configuration under a latency target")
    rec.add_argument("--summary", type=Path, required=True)
    rec.add_argument("--task", help="the task (required without --all)")
    rec.add_argument("--model", help="the model (required without --all)")
    rec.add_argument("--latency-target", help="duration with unit: 5s, 250ms, 1.5min")
    rec.add_argument("--latency-metric", help="e.g. median_itl, median_tpot, median_e2e, batch_latency")
    rec.add_argument("--precision", help="restrict to one precision (bf16, fp8, ...)")
    rec.add_argument("--gpu", help="only configurations on this GPU type (H100, B200, ...)")
    rec.add_argument("--num-gpus", type=int, help="only configurations with this many GPUs")
    rec.add_argument("--cost", metavar="FILE|{...}", help="cost/carbon settings (analysis.cost schema)")
    rec.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    every = rec.add_argument_group("every model at once")
    every.add_argument("--all", action="store_true", help="recommend for every task × model × target")
    every.add_argument("--tasks", metavar="T1,T2", help="only these tasks")
    every.add_argument("--targets", type=Path, help="targets file {task: [50ms, ...]} (as `frontier`)")
    every.add_argument(
        "--target", action="append", default=[], metavar="TASK=D1,D2", help="targets of one task"
    )
    every.add_argument("-o", "--output", type=Path, metavar="TABLE.csv", help="write the table as CSV")
    every.add_argument("--markdown", type=Path, metavar="TABLE.md", help="write the table as Markdown")
    every.add_argument(
        "--figure", type=Path, metavar="FIG.png", help="write the figure as FIG.png and FIG.svg"
    )
    rec.set_defaults(func=_recommend)


def _cost(args: argparse.Namespace):
    if not args.cost:
        return None
    from jouleflow.analysis.cost import CostError, load_cost

    try:
        return load_cost(args.cost)
    except CostError as exc:
        raise CLIError(str(exc)) from exc


def _recommend(args: argparse.Namespace) -> int:
    if args.all:
        return _recommend_all(args)
    missing = [
        f"--{n.replace('_', '-')}" for n in ("task", "model", "latency_target") if not getattr(args, n)
    ]
    if missing:
        raise CLIError(f"{', '.join(missing)} required (or --all for every model)")
    if args.tasks or args.targets or args.target or args.output or args.markdown or args.figure:
        raise CLIError("--tasks, --targets, --target, -o, --markdown and --figure go with --all")
    from jouleflow.analysis.frontier import TargetUnreachableError, recommend
    from jouleflow.analysis.recommend_all import restrict

    target = common.duration(args.latency_target, "--latency-target")
    cost = _cost(args)
    summary = restrict(common.summary(args.summary), gpu=args.gpu, num_gpus=args.num_gpus)
    try:
        rec = recommend(summary, args.task, args.model, target, args.latency_metric, precision=args.precision)
    except TargetUnreachableError as exc:
        print(f"jouleflow recommend: {args.task} / {args.model}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    out = rec.to_json()
    lines = [rec.describe()]
    if cost is not None:
        from jouleflow.analysis.cost import add_cost_columns

        chosen = (
            summary.filter(summary["run_dir"] == rec.config.run_dir)
            if rec.config.run_dir
            else summary.head(0)
        )
        if chosen.height == 1:
            row = add_cost_columns(chosen, cost).row(0, named=True)
            out["cost"] = {k: row[k] for k in row if k.startswith(("cost_", "carbon_"))}
            lines.append(
                "  cost:        "
                + ", ".join(
                    f"{k} {v:.4g}" for k, v in out["cost"].items() if v is not None and k != "cost_region"
                )
                + f" (region {row['cost_region']})"
            )
    print(json.dumps(out, indent=2, sort_keys=True) if args.json else "\n".join(lines))
    return 0


def _recommend_all(args: argparse.Namespace) -> int:
    from jouleflow.analysis import recommend_all as ra
    from jouleflow.analysis.compare.common import parse_list
    from jouleflow.analysis.compare.output import write_text
    from jouleflow.analysis.recommendations import load_targets, targets_from_cli, write_recommendations_csv

    if args.task or args.model:
        raise CLIError("--all recommends for every model: use --tasks to choose tasks, not --task/--model")
    if sum(bool(x) for x in (args.targets, args.target, args.latency_target)) > 1:
        raise CLIError("give targets one way: --targets FILE, --target TASK=..., or --latency-target D")
    cost = _cost(args)
    if args.targets:
        spec = load_targets(args.targets)
    elif args.target:
        spec = targets_from_cli(args.target)
    elif args.latency_target:
        spec = targets_from_cli([f"default={args.latency_target}"])
    else:
        spec = None  # built-in targets per task
    summary = common.summary(args.summary)
    if args.precision:
        summary = summary.filter(summary["precision"] == args.precision)
    table = ra.recommend_all(
        summary, spec, args.latency_metric, gpu=args.gpu, num_gpus=args.num_gpus,
        tasks=parse_list(args.tasks), cost=cost,
    )  # fmt: skip
    on = (
        " on " + " × ".join(str(v) for v in (args.gpu, args.num_gpus) if v is not None)
        if (args.gpu or args.num_gpus)
        else ""
    )
    title = f"Best configuration per model under a deadline{on}"
    text = ra.markdown(table, title)
    filters = {
        "gpu": args.gpu,
        "num_gpus": args.num_gpus,
        "tasks": parse_list(args.tasks),
        "precision": args.precision,
    }
    print(json.dumps(ra.to_json(table, filters), indent=2, default=str) if args.json else text)
    if args.output:
        write_recommendations_csv(table, args.output)
    if args.markdown:
        write_text(args.markdown, text)
    if args.figure:
        from jouleflow.plots.recommend_figure import recommend_figure

        recommend_figure(table, args.figure, title)
    return 0
