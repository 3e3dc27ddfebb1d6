"""`jouleflow compare longitudinal --baseline S1 --challenger S2`: two campaigns of the same models and GPUs.

Pairs configurations at matched batch size (and task, model, GPU type and count, precision,
parallelism) after rewriting names through an alias file, and reports energy per token, token
throughput and power per pair with the decomposition J/token = power / throughput.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from jouleflow.cli import CLIError

TITLE = "Longitudinal comparison"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "longitudinal",
        help="two campaigns of the same models and GPUs: J/token, throughput and power per pair",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--baseline", required=True, metavar="S1", help="the earlier campaign's summary Parquet")
    p.add_argument("--challenger", required=True, metavar="S2", help="the later campaign's summary Parquet")
    p.add_argument(
        "--aliases",
        metavar="FILE",
        help="YAML mapping alias -> canonical name under tasks/models/gpus "
        "(default: the bundled ML.ENERGY v2 <-> v3 mapping)",
    )
    p.add_argument(
        "--ignore",
        metavar="K1,K2",
        help="pairing keys to relax: num_gpus, precision, parallelism (precision also pairs X-FP8, or X at fp8, with X)",
    )
    p.add_argument("--tasks", metavar="T1,T2", help="only these tasks (canonical names)")
    p.add_argument("--models", metavar="M1,M2", help="only these models (canonical ids)")
    p.add_argument("--gpus", metavar="G1,G2", help="only these GPU types")
    p.add_argument("--baseline-label", default=None, help="name of the baseline (default: its file stem)")
    p.add_argument("--challenger-label", default=None, help="name of the challenger (default: its file stem)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    p.add_argument("-o", "--output", metavar="TABLE.csv", help="write the table as CSV")
    p.add_argument("--markdown", metavar="TABLE.md", help="write the table as Markdown")
    p.add_argument("--figure", metavar="FIG.png", help="write the figure as FIG.png and FIG.svg")
    p.add_argument("--include-invalid", action="store_true", help="keep runs flagged valid=false")
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="when nothing is comparable, write outputs stating why and exit 0",
    )
    p.set_defaults(func=_longitudinal)


def _label(given: str | None, path: str) -> str:
    return given or Path(path).stem


def _longitudinal(args: argparse.Namespace) -> int:
    from jouleflow.analysis.compare import common, longitudinal, output
    from jouleflow.analysis.compare.aliases import load_aliases

    where = f"{args.baseline} vs {args.challenger}"
    try:
        aliases = load_aliases(args.aliases)
        result = longitudinal.compare_longitudinal(
            common.load_summary(args.baseline, include_invalid=args.include_invalid),
            common.load_summary(args.challenger, include_invalid=args.include_invalid),
            aliases,
            ignore=common.parse_list(args.ignore) or (),
            tasks=common.parse_list(args.tasks),
            models=common.parse_list(args.models),
            gpus=common.parse_list(args.gpus),
            baseline_label=_label(args.baseline_label, args.baseline),
            challenger_label=_label(args.challenger_label, args.challenger),
        )
    except common.NoComparablePairs as exc:
        message = f"{where}: {exc}"
        if not args.allow_empty:
            raise CLIError(message) from exc
        print(f"jouleflow compare longitudinal: {message}", file=sys.stderr)
        from jouleflow.cli.compare import write_no_pairs

        return write_no_pairs(args, message, longitudinal.TABLE_COLUMNS, TITLE)
    except common.CompareError as exc:
        raise CLIError(f"{where}: {exc}") from exc

    if args.json:
        print(json.dumps(result.summary(), indent=2, default=str))
    else:
        print(result.markdown())
    if args.output:
        output.write_csv(args.output, result.rows(), longitudinal.TABLE_COLUMNS)
    if args.markdown:
        output.write_text(args.markdown, result.markdown())
    if args.figure:
        from jouleflow.plots.compare_longitudinal import longitudinal_figure

        longitudinal_figure(result, args.figure)
    return 0
