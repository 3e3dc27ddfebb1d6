"""`jouleflow import`: published benchmark results into a summary table.

Registration imports nothing heavy; the handler imports the importer when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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


def _import_mlenergy(args: argparse.Namespace) -> int:
    from jouleflow.importers.mlenergy import import_to_parquet

    table = import_to_parquet(args.path, args.output)
    sources = sorted(set(table.column("source").to_pylist()))
    print(f"wrote {table.num_rows} rows ({', '.join(sources)}) to {args.output}", file=sys.stderr)
    return 0
