"""`jouleflow plot`: figures (PNG + SVG).

Registration imports nothing heavy; the handler imports matplotlib when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jouleflow.cli import common


def register(subparsers) -> None:
    plot = subparsers.add_parser("plot", help="figures (PNG + SVG)")
    plot_sub = plot.add_subparsers(dest="figure", required=True, metavar="FIGURE")
    sweep = plot_sub.add_parser("sweep", help="batch-size sweep panels of one task × model")
    _group_args(sweep)
    sweep.set_defaults(func=_plot_sweep)
    front = plot_sub.add_parser("frontier", help="time–energy frontier of one task × model")
    _group_args(front)
    front.add_argument("--latency-target", action="append", default=[],
                       help="mark the recommendation for each target: 5s, or 10ms,25ms (repeatable)")  # fmt: skip
    front.add_argument("--latency-metric")
    front.add_argument("--published", type=Path, metavar="PATH",
                       help="overlay ML.ENERGY's published points of the same task and model: a v2/v3 "
                       "directory or an imported summary Parquet")  # fmt: skip
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
    split = plot_sub.add_parser(
        "energy-split", help="energy per response as static / prefill / decode vs batch size (attribution)"
    )
    _group_args(split)
    split.set_defaults(func=_plot_energy_split)
    per_request = plot_sub.add_parser(
        "request-energy",
        help="per-request energy vs output length of one run (jouleflow attribute --requests)",
    )
    per_request.add_argument("run_dir", type=Path)
    per_request.add_argument("--requests", type=Path, required=True, help="the per-request energy Parquet")
    per_request.add_argument(
        "-o", "--output", type=Path, required=True, help="figure path; .png and .svg are written"
    )
    per_request.add_argument(
        "--allow-empty",
        action="store_true",
        help="a run with no request whole in the steady window (failed, not attributed) gets a figure saying why",
    )
    per_request.set_defaults(func=_plot_request_energy)
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
        return common.report(draw())
    except FrontierError as exc:
        if not args.allow_empty:
            raise
        return common.report(
            placeholder(f"{args.model} · {args.task}", f"nothing to plot: {exc}", args.output)
        )


def _plot_sweep(args: argparse.Namespace) -> int:
    from jouleflow.plots.sweep import plot_sweep

    summary = common.summary(args.summary)
    return _or_placeholder(
        args, lambda: plot_sweep(summary, args.task, args.model, args.output, args.precision)
    )


def _plot_frontier(args: argparse.Namespace) -> int:
    from jouleflow.plots.frontier_plot import plot_frontier

    targets = [
        common.duration(t.strip(), "--latency-target")
        for arg in args.latency_target
        for t in arg.split(",")
        if t.strip()
    ]
    summary = common.summary(args.summary)
    published = common.published(args.published)
    return _or_placeholder(
        args,
        lambda: plot_frontier(
            summary,
            args.task,
            args.model,
            args.output,
            latency_targets_s=targets,
            latency_metric=args.latency_metric,
            precision=args.precision,
            published=published,
        ),
    )


def _plot_energy_split(args: argparse.Namespace) -> int:
    from jouleflow.plots.energy_split import plot_energy_split

    summary = common.summary(args.summary)
    return _or_placeholder(
        args, lambda: plot_energy_split(summary, args.task, args.model, args.output, args.precision)
    )


def _plot_request_energy(args: argparse.Namespace) -> int:
    from jouleflow.cli import CLIError
    from jouleflow.plots.request_energy import RequestEnergyError, plot_request_energy
    from jouleflow.plots.style import placeholder

    try:
        return common.report(plot_request_energy(args.run_dir, args.requests, args.output))
    except RequestEnergyError as exc:
        if not args.allow_empty:
            raise CLIError(str(exc)) from exc
        return common.report(
            placeholder(str(args.run_dir), f"nothing to plot: {_not_plotted(args)}", args.output)
        )


def _not_plotted(args: argparse.Namespace) -> str:
    """Why a run has no per-request energy: its attribution.json's reason when it has one beside the table."""
    from jouleflow.attribution_record import ATTRIBUTION_JSON, AttributionRecord

    doc = args.requests.parent / ATTRIBUTION_JSON
    reason = AttributionRecord.read(doc).not_attributed if doc.is_file() else None
    return reason or "no request whose whole life lies in the steady window"


def _plot_timeline(args: argparse.Namespace) -> int:
    from jouleflow.plots.style import placeholder
    from jouleflow.plots.timeline import TimelineError, plot_timeline

    try:
        return common.report(plot_timeline(args.run_dir, args.output, args.energy))
    except TimelineError:
        power = args.run_dir / "power.parquet"
        if not (args.allow_empty and args.run_dir.is_dir() and not power.is_file()):
            raise
        return common.report(
            placeholder(str(args.run_dir), f"nothing to plot: {_run_outcome(args.run_dir)}", args.output)
        )


def _run_outcome(run_dir: Path) -> str:
    from jouleflow.records import read_run
    from jouleflow.traces import TraceError

    try:
        run = read_run(run_dir)
    except TraceError:
        return "no power trace"
    return f"run {run.status}: {run.reason or 'no power trace'}"


def _plot_task_energy(args: argparse.Namespace) -> int:
    from jouleflow.plots.task_energy import plot_task_energy

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    summary = common.summary(args.summary)
    args.model, args.task = "energy per response", "all tasks"  # the placeholder's title
    return _or_placeholder(args, lambda: plot_task_energy(summary, args.output, tasks, args.gpu, args.select))
