"""`jouleflow import mlenergy`, `jouleflow frontier`, `jouleflow recommend`, `jouleflow plot ...`.

Registration imports nothing heavy; each handler imports polars / matplotlib when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jouleflow.cli import CLIError

EXIT_UNREACHABLE = 3  # recommend: the latency target cannot be met (distinct from usage errors, 2)


def register(subparsers) -> None:
    imp = subparsers.add_parser("import", help="import published benchmark results into a summary table")
    imp_sub = imp.add_subparsers(dest="import_source", required=True, metavar="SOURCE")
    ml = imp_sub.add_parser(
        "mlenergy",
        help="ML.ENERGY Leaderboard results: a v2 tree of per-config JSONs or a v3 data dir (auto-detected)",
    )
    ml.add_argument(
        "path", type=Path, help="v2 tree (or one task dir of it) or v3 leaderboard data directory"
    )
    ml.add_argument("-o", "--output", type=Path, required=True, help="summary Parquet to write")
    ml.set_defaults(func=_import_mlenergy)

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

    rec = subparsers.add_parser("recommend", help="minimum-energy configuration under a latency target")
    rec.add_argument("--summary", type=Path, required=True)
    rec.add_argument("--task", required=True)
    rec.add_argument("--model", required=True)
    rec.add_argument("--latency-target", required=True, help="duration with unit: 5s, 250ms, 1.5min")
    rec.add_argument("--latency-metric", help="e.g. median_itl, median_tpot, median_e2e, batch_latency")
    rec.add_argument("--precision", help="restrict to one precision (bf16, fp8, ...)")
    rec.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    rec.set_defaults(func=_recommend)

    plot = subparsers.add_parser("plot", help="figures (PNG + SVG)")
    plot_sub = plot.add_subparsers(dest="figure", required=True, metavar="FIGURE")
    sweep = plot_sub.add_parser("sweep", help="batch-size sweep panels of one task × model")
    _group_args(sweep)
    sweep.set_defaults(func=_plot_sweep)
    front = plot_sub.add_parser("frontier", help="time–energy frontier of one task × model")
    _group_args(front)
    front.add_argument("--latency-target", help="mark the recommendation for this target (e.g. 5s)")
    front.add_argument("--latency-metric")
    front.set_defaults(func=_plot_frontier)
    timeline = plot_sub.add_parser("timeline", help="power timeline of one run directory")
    timeline.add_argument("run_dir", type=Path)
    timeline.add_argument(
        "--energy", type=Path, help="summary.json of `jouleflow energy` (default: RUN_DIR/summary.json)"
    )
    timeline.add_argument(
        "-o", "--output", type=Path, required=True, help="figure path; .png and .svg are written"
    )
    timeline.add_argument(
        "--allow-empty",
        action="store_true",
        help="a run without a power trace (failed, infeasible, no sensor) gets a figure saying why",
    )
    timeline.set_defaults(func=_plot_timeline)
    task_energy = plot_sub.add_parser("task-energy", help="energy per response by task with the TDP estimate")
    task_energy.add_argument("--summary", type=Path, required=True)
    task_energy.add_argument(
        "-o", "--output", type=Path, required=True, help="figure path; .png and .svg are written"
    )
    task_energy.add_argument("--tasks", help="comma-separated tasks (default: all)")
    task_energy.add_argument("--gpu", help="only this GPU type (e.g. H100)")
    task_energy.add_argument("--select", choices=("min-energy", "min-latency"), default="min-energy",
                             help="which configuration per model (default: min-energy)")  # fmt: skip
    task_energy.add_argument(
        "--allow-empty",
        action="store_true",
        help="when no run is usable, draw a figure saying why instead of failing",
    )
    task_energy.set_defaults(func=_plot_task_energy)


def _group_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--precision")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="figure path; .png and .svg are written"
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="when the group has nothing to plot, draw a figure saying why instead of failing",
    )


def _or_placeholder(args: argparse.Namespace, draw) -> int:
    """Run `draw`; with --allow-empty, a group with nothing to plot gets a figure that says so."""
    from jouleflow.analysis.frontier import FrontierError
    from jouleflow.plots.style import placeholder

    try:
        return _report(draw())
    except FrontierError as exc:
        if not args.allow_empty:
            raise
        return _report(placeholder(f"{args.model} · {args.task}", f"nothing to plot: {exc}", args.output))


def _duration(text: str, option: str) -> float:
    from jouleflow.units import DurationError, parse_duration

    try:
        return parse_duration(text, what=option)
    except DurationError as exc:
        raise CLIError(str(exc)) from exc


def _summary(path: Path):
    from jouleflow.analysis.summary_io import SummaryError, read_summary

    try:
        return read_summary(path)
    except SummaryError as exc:
        raise CLIError(str(exc)) from exc


def _import_mlenergy(args: argparse.Namespace) -> int:
    from jouleflow.importers.mlenergy import import_to_parquet

    table = import_to_parquet(args.path, args.output)
    sources = sorted(set(table.column("source").to_pylist()))
    print(f"wrote {table.num_rows} rows ({', '.join(sources)}) to {args.output}", file=sys.stderr)
    return 0


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

    summary = _summary(args.summary)
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


def _recommend(args: argparse.Namespace) -> int:
    from jouleflow.analysis.frontier import TargetUnreachableError, recommend

    target = _duration(args.latency_target, "--latency-target")
    summary = _summary(args.summary)
    try:
        rec = recommend(summary, args.task, args.model, target, args.latency_metric, precision=args.precision)
    except TargetUnreachableError as exc:
        print(f"jouleflow recommend: {args.task} / {args.model}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(rec.to_json(), indent=2, sort_keys=True))
    else:
        print(rec.describe())
    return 0


def _report(paths: list[Path]) -> int:
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def _plot_sweep(args: argparse.Namespace) -> int:
    from jouleflow.plots.sweep import plot_sweep

    summary = _summary(args.summary)
    return _or_placeholder(
        args, lambda: plot_sweep(summary, args.task, args.model, args.output, args.precision)
    )


def _plot_frontier(args: argparse.Namespace) -> int:
    from jouleflow.plots.frontier_plot import plot_frontier

    target = _duration(args.latency_target, "--latency-target") if args.latency_target else None
    summary = _summary(args.summary)
    return _or_placeholder(
        args,
        lambda: plot_frontier(
            summary,
            args.task,
            args.model,
            args.output,
            latency_target_s=target,
            latency_metric=args.latency_metric,
            precision=args.precision,
        ),
    )


def _plot_timeline(args: argparse.Namespace) -> int:
    from jouleflow.plots.style import placeholder
    from jouleflow.plots.timeline import TimelineError, plot_timeline

    try:
        return _report(plot_timeline(args.run_dir, args.output, args.energy))
    except TimelineError:
        power = args.run_dir / "power.parquet"
        if not (args.allow_empty and args.run_dir.is_dir() and not power.is_file()):
            raise
        return _report(
            placeholder(str(args.run_dir), f"nothing to plot: {_run_outcome(args.run_dir)}", args.output)
        )


def _run_outcome(run_dir: Path) -> str:
    from jouleflow import traces

    try:
        meta = traces.read_run(run_dir)
    except traces.TraceError:
        return "no power trace"
    return f"run {meta.get('status')}: {meta.get('reason') or 'no power trace'}"


def _plot_task_energy(args: argparse.Namespace) -> int:
    from jouleflow.plots.task_energy import plot_task_energy

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    summary = _summary(args.summary)
    args.model, args.task = "energy per response", "all tasks"  # the placeholder's title
    return _or_placeholder(args, lambda: plot_task_energy(summary, args.output, tasks, args.gpu, args.select))
