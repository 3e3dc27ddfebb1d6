"""`jouleflow report page`: the interactive campaign page (one self-contained HTML file).

Registration imports nothing heavy; the handler imports polars and Plotly when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jouleflow.cli import CLIError, common


def register(subparsers) -> None:
    rep = subparsers.add_parser("report", help="campaign reports beyond the tables and figures")
    sub = rep.add_subparsers(dest="report_kind", required=True, metavar="KIND")
    page = sub.add_parser(
        "page", help="interactive campaign page: deadline control, time–energy chart, tables, run detail"
    )
    page.add_argument("--summary", type=Path, required=True, help="summary Parquet (traces.SUMMARY)")
    page.add_argument("-o", "--output", type=Path, required=True, help="HTML file to write")
    page.add_argument(
        "--recommendations", type=Path, help="recommendations.csv (default: computed from the summary)"
    )
    page.add_argument("--targets", type=Path, help="latency targets (YAML/JSON, as `jouleflow frontier`)")
    page.add_argument("--provenance", type=Path, help="provenance.csv (jouleflow campaign provenance)")
    page.add_argument(
        "--published",
        type=Path,
        help="ML.ENERGY published results to overlay: a v2/v3 directory or an imported summary Parquet",
    )
    page.add_argument("--timelines", type=Path, help="power timeline PNGs, laid out as the run directories")
    page.add_argument(
        "--runs-root", type=Path, help="the run directories' root (default: the parent of the task folders)"
    )
    page.add_argument("--title", default="jouleflow campaign", help="the page's title")
    page.set_defaults(func=_page)


def _csv(path: Path | None, what: str):
    import polars as pl

    if path is None:
        return None
    if not path.is_file():
        raise CLIError(f"{what} {path} is missing")
    return pl.read_csv(path, infer_schema_length=None)


def _timelines(summary, timelines: Path | None, runs_root: Path | None) -> dict[str, Path]:
    """run_dir → its timeline PNG: the run's path below the runs root, under the timelines folder."""
    if timelines is None:
        return {}
    found = {}
    for run_dir in summary.get_column("run_dir").drop_nulls().to_list():
        run = Path(run_dir)
        root = runs_root or (run.parents[4] if len(run.parents) > 4 else None)
        if root is None:
            continue
        try:
            png = timelines / run.relative_to(root)
        except ValueError:
            continue
        found[run_dir] = png.with_name(png.name + ".png")
    return found


def _page(args: argparse.Namespace) -> int:
    from jouleflow.analysis.recommendations import load_targets
    from jouleflow.page.data import PageInputs, build
    from jouleflow.page.html import write_page

    summary = common.summary(args.summary)
    inputs = PageInputs(
        summary=summary,
        targets=load_targets(args.targets) if args.targets else None,
        recommendations=_csv(args.recommendations, "recommendations table"),
        provenance=_csv(args.provenance, "provenance table"),
        published=common.published(args.published),
        timelines=_timelines(summary, args.timelines, args.runs_root) if "run_dir" in summary.columns else {},
        title=args.title,
    )
    page = build(inputs)
    for note in page["notes"] + [f"{t['task']}: {n}" for t in page["tasks"] for n in t["notes"]]:
        print(f"note: {note}", file=sys.stderr)
    write_page(page, args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
