"""Check the prefill/decode fit on runs that differ in their prefill/decode ratio (prints figures).

For runs measured on the same server that differ in the load (e.g. 200 vs 2,000 input tokens, same
output lengths), four tables:

1. per run and fit (free; s fixed to the idle baseline), J per prefill token a, J per decode token b
   and static W s with standard errors, R², condition number, and which coefficients are not
   resolved (negative, or a 95 % interval that includes 0; marked "n/r");
2. the joint fit on all the runs' intervals together, both variants: the main result (runs that
   differ in their prefill/decode ratio separate a from b where one saturated run cannot);
3. per run: window, energy, static share, the prefill share of its dynamic energy from its own
   resolved fit (n/a when none is) and from the joint fit, and the joint fits' in-sample errors;
4. per ordered pair (A, B), B's steady-window energy predicted from A's resolved costs (s fixed to
   the baseline first, then free) against B's measured energy; when A's fits resolve only s, s·T_B
   ("only s resolved"); when they resolve nothing, the joint fit on A ∪ B (in-sample on B) and each
   run predicted from the joint fit on the others.

No share or prediction uses a coefficient that is not resolved. Method: docs/attribution.md,
"Checking the fit by prediction".

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


def _pm(fit: dict[str, Any], key: str, se: str, fmt: str, coef: str) -> str:
    if not fit.get("identifiable"):
        return "n/i"
    err = fit.get(se)  # None: s was fixed to the idle baseline
    flag = " (n/r)" if coef in (fit.get("not_resolved") or {}) else ""
    return f"{fit[key]:{fmt}}" + (" (fixed)" if err is None else f" ± {err:{fmt}}") + flag


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _err(x: dict[str, Any] | None) -> str:
    return "n/a" if x is None else f"{100 * x['relative_error']:+.2f}%"


FIT_HEADER = ["run", "fit", "J/prefill tok", "J/decode tok", "static W", "R²", "cond.", "n", "resolved"]


def fit_row(name: str, variant: str, fit: dict[str, Any]) -> list[str]:
    if not fit.get("identifiable"):
        return [name, variant, "n/i", "n/i", "n/i", "n/a", "n/a", "", fit.get("reason") or ""]
    r2 = "n/a" if fit["r2"] is None else f"{fit['r2']:.3f}"
    resolved = "yes" if fit["resolved"] else "no: " + ", ".join(fit["not_resolved"]) + " not resolved"
    return [name, variant, _pm(fit, "a_j_per_prefill_token", "a_se", ".3g", "a"),
            _pm(fit, "b_j_per_decode_token", "b_se", ".3g", "b"), _pm(fit, "s_w", "s_se", ".0f", "s"),
            r2, f"{fit['condition_number']:.0f}", str(fit["n_intervals"]), resolved]  # fmt: skip


def fit_rows(doc: dict[str, Any]) -> list[list[str]]:
    return [fit_row(r["name"], v, f) for r in doc["runs"] for v, f in r["fits"].items()]


def joint_rows(doc: dict[str, Any]) -> list[list[str]]:
    name = " + ".join(r["name"] for r in doc["runs"]) + " (joint)"
    return [fit_row(name, v, f) for v, f in doc["joint"]["fits"].items()]


RUN_HEADER = ["run", "window s", "energy J", "static share", "own fit", "prefill share of dynamic (own)",
              "prefill share of dynamic (joint fixed_static)", "joint fixed_static in-sample",
              "joint free in-sample"]  # fmt: skip


def run_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r, j in zip(doc["runs"], doc["joint"]["runs"], strict=True):
        fixed, free = j.get("fixed_static"), j.get("free")
        rows.append(
            [
                r["name"],
                f"{r['duration_s']:.1f}",
                f"{r['energy_j']:,.0f}",
                _pct(r["static_share"]) if r["baseline_w"] is not None else "n/a (no idle baseline)",
                r["variant"] or "none resolved",
                _pct(r["prefill_share_of_dynamic"]),
                _pct((fixed or {}).get("prefill_share_of_dynamic")),
                _err((fixed or {}).get("in_sample")),
                _err((free or {}).get("in_sample")),
            ]
        )
    return rows


PAIR_HEADER = ["fit on", "predict", "fit", "basis", "measured J", "predicted J", "error"]


def pair_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for p in doc["pairs"]:
        if p["variant"] is not None:
            rows.append([p["from"], p["to"], p["variant"], p["basis"], f"{p['measured_j']:,.0f}",
                         f"{p['predicted_j']:,.0f}", f"{100 * p['relative_error']:+.2f}%"])  # fmt: skip
            continue
        joint = p.get("joint_in_sample")
        rows.append(
            [p["from"], p["to"], "none resolved", "", "", "", ""]
            if joint is None
            else [
                f"{p['from']} + {p['to']} (joint, in-sample)",
                p["to"],
                p["joint_variant"],
                "joint fit",
                f"{joint['measured_j']:,.0f}",
                f"{joint['predicted_j']:,.0f}",
                f"{100 * joint['relative_error']:+.2f}%",
            ]  # fmt: skip
        )
    for r in doc["leave_one_run_out"] or []:
        rows.append(
            [" + ".join(r["from"]) + " (leave-one-run-out)", r["to"], r["variant"] or "none resolved", ""]
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
    for header, rows in ((FIT_HEADER, fit_rows(doc)), (FIT_HEADER, joint_rows(doc)),
                         (RUN_HEADER, run_rows(doc)), (PAIR_HEADER, pair_rows(doc))):  # fmt: skip
        print(table(header, rows), end="\n\n")
    notes = [f"{r['name']} {v} fit: {f['reason']}" for r in doc["runs"] for v, f in r["fits"].items()
             if not f["identifiable"]]  # fmt: skip
    notes += [f"{r['name']}: {r['share_note']}" for r in doc["runs"] if r["share_note"]]
    notes += [f"joint: no resolved fit: {doc['joint']['note']}"] if doc["joint"]["note"] else []
    print("\n".join(notes))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
