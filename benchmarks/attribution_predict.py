"""Check the prefill/decode fit by prediction: fit a run's costs, predict another run's energy (prints figures).

For runs measured on the same server that differ in the load (e.g. 200 vs 2,000 input tokens, same
output lengths): per run, its own J per prefill token, J per decode token and static W (with
standard errors; the fit `jouleflow attribute` reports), the fitted prefill share of its dynamic
energy and, with an idle baseline, its static share; per ordered pair (A, B), B's steady-window energy
predicted from A's costs and B's own per-interval token counts, against B's measured energy. When a
fit on A is not identifiable (the free fit, then s fixed to A's idle baseline), it says so and shows
the joint fit on A ∪ B (in-sample on B) and each run predicted from the joint fit on the others.
Method: docs/attribution.md, "Checking the fit by prediction".

    python benchmarks/attribution_predict.py RUN_DIR RUN_DIR [RUN_DIR ...] [--markdown] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from jouleflow.analysis.attribution import Options
from jouleflow.analysis.attribution_fit import FitThresholds
from jouleflow.analysis.attribution_predict import load_intervals, prediction_check


def _pm(fit: dict[str, Any], key: str, se: str, fmt: str) -> str:
    if not fit.get("identifiable"):
        return "n/i"
    err = fit.get(se)  # None: s was fixed to the idle baseline
    return f"{fit[key]:{fmt}}" + (" (fixed)" if err is None else f" ± {err:{fmt}}")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def run_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in doc["runs"]:
        fit = r["fits"][r["variant"]] if r["variant"] else {}
        rows.append(
            [
                r["name"],
                f"{r['duration_s']:.1f}",
                f"{r['energy_j']:,.0f}",
                r["variant"] or "not identifiable",
                _pm(fit, "a_j_per_prefill_token", "a_se", ".3g"),
                _pm(fit, "b_j_per_decode_token", "b_se", ".3g"),
                _pm(fit, "s_w", "s_se", ".0f"),
                "n/a" if not fit else f"{fit['r2']:.3f}",
                _pct(r["prefill_share_of_dynamic"]),
                _pct(r["static_share"]) if r["baseline_w"] is not None else "n/a (no idle baseline)",
            ]
        )
    return rows


RUN_HEADER = ["run", "window s", "energy J", "fit", "J/prefill tok", "J/decode tok", "static W", "R²",
              "prefill share of dynamic", "static share"]  # fmt: skip
PAIR_HEADER = ["fit on", "predict", "fit", "measured J", "predicted J", "error"]


def pair_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for p in doc["pairs"]:
        if p["variant"] is not None:
            rows.append([p["from"], p["to"], p["variant"], f"{p['measured_j']:,.0f}",
                         f"{p['predicted_j']:,.0f}", f"{100 * p['relative_error']:+.2f}%"])  # fmt: skip
            continue
        joint = p.get("joint_in_sample")
        rows.append(
            [p["from"], p["to"], "not identifiable", "", "", ""]
            if joint is None
            else [
                f"{p['from']} + {p['to']} (joint, in-sample)",
                p["to"],
                p["joint_variant"],
                f"{joint['measured_j']:,.0f}",
                f"{joint['predicted_j']:,.0f}",
                f"{100 * joint['relative_error']:+.2f}%",
            ]  # fmt: skip
        )
    for r in doc["leave_one_run_out"] or []:
        rows.append(
            [" + ".join(r["from"]) + " (leave-one-run-out)", r["to"], r["variant"] or "not identifiable"]
            + (["", "", ""] if r["variant"] is None else
               [f"{r['measured_j']:,.0f}", f"{r['predicted_j']:,.0f}", f"{100 * r['relative_error']:+.2f}%"])
        )  # fmt: skip
    return rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    numeric = [all(r[i][:1] in "0123456789+-" for r in rows) for i in range(len(header))]
    align = ["---:" if num else "---" for num in numeric]
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def plain(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--interval", type=float, default=1.0, help="fit interval, seconds (1)")
    p.add_argument("--min-intervals", type=int, default=10)
    p.add_argument("--max-condition", type=float, default=1000.0)
    p.add_argument("--max-pd-correlation", type=float, default=0.99)
    p.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs)")
    p.add_argument("--json", type=Path, help="also write every figure as JSON")
    args = p.parse_args(argv)
    if len(args.run_dirs) < 2:
        p.error("give two run directories or more")
    thresholds = FitThresholds(args.min_intervals, args.max_condition, args.max_pd_correlation)
    options = Options(interval_s=args.interval, fit=thresholds)
    runs = [load_intervals(d, options, name=d.name if d.name else str(d)) for d in args.run_dirs]
    if len({r.name for r in runs}) < len(runs):  # the same leaf name under different parents
        runs = [load_intervals(d, options, name=str(d)) for d in args.run_dirs]
    doc = prediction_check(runs, thresholds)
    table = markdown if args.markdown else plain
    print(table(RUN_HEADER, run_rows(doc)))
    print()
    print(table(PAIR_HEADER, pair_rows(doc)))
    for r in doc["runs"]:
        for variant, fit in r["fits"].items():
            if not fit["identifiable"]:
                print(f"\n{r['name']} {variant} fit: {fit['reason']}", end="")
    print()
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
