"""`jouleflow recommend`: the minimum-energy configuration under a latency target.

Registration imports nothing heavy; the handler imports polars when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jouleflow.cli import common

EXIT_UNREACHABLE = 3  # the latency target cannot be met (distinct from usage errors, 2)


def register(subparsers) -> None:
    rec = subparsers.add_parser("recommend", help="minimum-energy configuration under a latency target")
    rec.add_argument("--summary", type=Path, required=True)
    rec.add_argument("--task", required=True)
    rec.add_argument("--model", required=True)
    rec.add_argument("--latency-target", required=True, help="duration with unit: 5s, 250ms, 1.5min")
    rec.add_argument("--latency-metric", help="e.g. median_itl, median_tpot, median_e2e, batch_latency")
    rec.add_argument("--precision", help="restrict to one precision (bf16, fp8, ...)")
    rec.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    rec.set_defaults(func=_recommend)


def _recommend(args: argparse.Namespace) -> int:
    from jouleflow.analysis.frontier import TargetUnreachableError, recommend

    target = common.duration(args.latency_target, "--latency-target")
    summary = common.summary(args.summary)
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
