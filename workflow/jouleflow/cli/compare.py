"""`jouleflow compare ANALYSIS --summary S ...`: cross-configuration analyses of a summary Parquet.

Tables go to stdout as Markdown (or JSON with --json); -o writes the CSV, --markdown the Markdown
file and --figure FIG.png both FIG.png and FIG.svg. Metric names are the summary's quantities
without their unit suffix (median_itl -> median_itl_s, energy_per_token -> energy_per_token_j,
batch_latency -> batch_latency_s, ...). When nothing is comparable the command says why and exits
with status 2, unless --allow-empty: then it writes outputs that state the reason and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from jouleflow.cli import CLIError

ENERGY_CHOICES = ("energy_per_response", "energy_per_token")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--summary", required=True, metavar="S", help="summary Parquet (traces.SUMMARY)")
    common.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    common.add_argument("-o", "--output", metavar="TABLE.csv", help="write the table as CSV")
    common.add_argument("--markdown", metavar="TABLE.md", help="write the table as Markdown")
    common.add_argument("--figure", metavar="FIG.png", help="write the figure as FIG.png and FIG.svg")
    common.add_argument("--include-invalid", action="store_true", help="keep runs flagged valid=false")
    common.add_argument(
        "--allow-empty",
        action="store_true",
        help="when nothing is comparable, write outputs stating why and exit 0",
    )
    return common


def _tasks_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", metavar="T1,T2", help="only these tasks (comma-separated)")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="cross-configuration analyses (GPU generations, precision, ...)",
        description=__doc__.splitlines()[0],
    )
    sub = parser.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    common = _common_options()

    p = sub.add_parser("gpus", parents=[common], help="GPU type B vs A at matched latency deadlines")
    p.add_argument("--a", required=True, metavar="GPU", help="baseline GPU type, e.g. H100")
    p.add_argument("--b", required=True, metavar="GPU", help="challenger GPU type, e.g. B200")
    p.add_argument("--latency", default="median_itl", help="latency metric (default median_itl)")
    p.add_argument(
        "--deadlines", required=True, metavar="D1,D2", help="durations with units, e.g. 50ms,100ms,250ms"
    )
    p.add_argument("--energy", default="energy_per_response", choices=ENERGY_CHOICES)
    _tasks_option(p)
    p.set_defaults(func=_gpus)

    p = sub.add_parser("precision", parents=[common], help="FP8 vs BF16 siblings by batch-size bucket")
    p.add_argument(
        "--buckets",
        default="8-16,17-64,65-256",
        help="inclusive batch-size ranges (default 8-16,17-64,65-256)",
    )
    p.add_argument("--metric", default="energy_per_token", help="energy_per_token (default), median_itl, ...")
    p.add_argument("--exclude-models", metavar="M1,M2", help="model ids to leave out (either sibling)")
    p.add_argument("--min-batch", type=int, metavar="B", help="drop pairs below this batch size")
    _tasks_option(p)
    p.set_defaults(func=_precision)

    p = sub.add_parser("scaling", parents=[common], help="more GPUs at the same batch size")
    p.add_argument("--energy", default="energy_per_response", choices=ENERGY_CHOICES)
    p.add_argument("--latency", default="median_itl", help="latency metric (default median_itl)")
    _tasks_option(p)
    p.set_defaults(func=_scaling)

    p = sub.add_parser("tasks", parents=[common], help="one model across tasks")
    p.add_argument("--model", required=True, help="model id, e.g. Qwen/Qwen3-32B")
    p.add_argument("--gpu", help="only this GPU type")
    p.add_argument("--num-gpus", type=int, help="only this GPU count")
    p.add_argument("--reference", metavar="TASK", help="task the ratios refer to (default: least J/response)")
    _tasks_option(p)
    p.set_defaults(func=_tasks)

    p = sub.add_parser("moe", parents=[common], help="MoE vs dense models of similar total size")
    p.add_argument("--energy", default="energy_per_token", choices=ENERGY_CHOICES)
    p.add_argument(
        "--tolerance", type=float, default=0.25, help="max relative difference in total parameters (0.25)"
    )
    p.add_argument(
        "--num-gpus", type=int, help="only this GPU count (default: each model's best over all counts)"
    )
    _tasks_option(p)
    p.set_defaults(func=_moe)

    p = sub.add_parser("tdp", parents=[common], help="TDP-based energy estimate vs measured")
    p.add_argument(
        "--tdp", metavar="GPU=W,...", help="TDP per GPU type, overriding the summary and built-ins"
    )
    _tasks_option(p)
    p.set_defaults(func=_tdp)
    __import__("jouleflow.cli.compare_longitudinal", fromlist=["register"]).register(sub)
    __import__("jouleflow.cli.compare_aggregates", fromlist=["register"]).register(sub, common)


def _parse(parse: Callable[[], Any]) -> Any:
    """Parse an option value; its error names the item and needs no summary path."""
    from jouleflow.analysis.compare.common import CompareError

    try:
        return parse()
    except CompareError as exc:
        raise CLIError(str(exc)) from exc


def _gpus(args: argparse.Namespace) -> int:
    from jouleflow.analysis.compare import common, gpus

    deadlines = _parse(lambda: common.parse_deadlines(args.deadlines))

    def analyse(df):
        return gpus.compare_gpus(
            df,
            args.a,
            args.b,
            deadlines,
            latency=args.latency,
            energy=args.energy,
            tasks=common.parse_list(args.tasks),
        )

    return _run(args, analyse, gpus.TABLE_COLUMNS, f"{args.b} vs {args.a}")


def _precision(args: argparse.Namespace) -> int:
    from jouleflow.analysis.compare import common, precision

    buckets = _parse(lambda: precision.parse_buckets(args.buckets))

    def analyse(df):
        return precision.compare_precision(
            df,
            buckets,
            metric=args.metric,
            tasks=common.parse_list(args.tasks),
            exclude_models=common.parse_list(args.exclude_models) or (),
            min_batch=args.min_batch,
        )

    return _run(args, analyse, precision.TABLE_COLUMNS, "FP8 vs BF16")


def _scaling(args: argparse.Namespace) -> int:
    from jouleflow.analysis.compare import common, scaling

    def analyse(df):
        return scaling.compare_scaling(
            df, energy=args.energy, latency=args.latency, tasks=common.parse_list(args.tasks)
        )

    return _run(args, analyse, scaling.TABLE_COLUMNS, "Multi-GPU scaling")


def _tasks(args: argparse.Namespace) -> int:
    from jouleflow.analysis.compare import common, tasks

    def analyse(df):
        return tasks.compare_tasks(
            df,
            args.model,
            gpu=args.gpu,
            num_gpus=args.num_gpus,
            tasks=common.parse_list(args.tasks),
            reference=args.reference,
        )

    return _run(args, analyse, tasks.TABLE_COLUMNS, f"{args.model} across tasks")


def _moe(args: argparse.Namespace) -> int:
    from jouleflow.analysis.compare import common, moe

    def analyse(df):
        return moe.compare_moe(
            df,
            energy=args.energy,
            tolerance=args.tolerance,
            tasks=common.parse_list(args.tasks),
            num_gpus=args.num_gpus,
        )

    return _run(args, analyse, moe.TABLE_COLUMNS, "MoE vs dense")


def _tdp(args: argparse.Namespace) -> int:
    from jouleflow.analysis.compare import common, tdp

    tdp_w = _parse(lambda: tdp.parse_tdp(args.tdp))

    def analyse(df):
        return tdp.compare_tdp(df, tdp_w, tasks=common.parse_list(args.tasks))

    return _run(args, analyse, tdp.TABLE_COLUMNS, "TDP estimate vs measured")


def write_no_pairs(args: argparse.Namespace, message: str, columns: tuple[str, ...], title: str) -> int:
    """--allow-empty with nothing comparable: every requested output, saying why (exit 0)."""
    from jouleflow.analysis.compare import output

    if args.json:
        print(json.dumps({"no_comparable_pairs": message}, indent=2))
    if args.output:
        output.write_csv(args.output, [], columns)
    if args.markdown:
        output.write_text(args.markdown, f"# {title}\n\nNo comparable pairs. {message}\n")
    if args.figure:
        from jouleflow.plots.compare_figures import no_pairs_figure

        no_pairs_figure(args.figure, title)
    return 0


def _run(
    args: argparse.Namespace, analyse: Callable[[Any], Any], columns: tuple[str, ...], title: str
) -> int:
    """Load the summary, run the analysis, print and write its outputs."""
    from jouleflow.analysis.compare import common, output

    try:
        df = common.load_summary(args.summary, include_invalid=args.include_invalid)
        result = analyse(df)
    except common.NoComparablePairs as exc:
        if not args.allow_empty:
            raise CLIError(f"{args.summary}: {exc}") from exc
        message = f"{args.summary}: {exc}"
        print(f"jouleflow compare {args.analysis}: {message}", file=sys.stderr)
        return write_no_pairs(args, message, columns, title)
    except common.CompareError as exc:
        raise CLIError(f"{args.summary}: {exc}") from exc

    if args.json:
        print(json.dumps(result.summary(), indent=2, sort_keys=False, default=str))
    else:
        print(result.markdown())
    if args.output:
        output.write_csv(args.output, result.rows(), columns)
    if args.markdown:
        output.write_text(args.markdown, result.markdown())
    if args.figure:
        from jouleflow.plots.compare_figures import draw

        draw(result, args.figure)
    return 0
