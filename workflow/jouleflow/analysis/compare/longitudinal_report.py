"""Markdown rendering of a longitudinal comparison (kept apart from the pairing logic)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jouleflow.analysis.compare import output

if TYPE_CHECKING:
    from jouleflow.analysis.compare.longitudinal import LongitudinalResult


def _config(row: dict, side: str) -> str:
    par = f" {row[f'{side}_parallelism']}" if row[f"{side}_parallelism"] else ""
    prec = f" {row[f'{side}_precision']}" if row[f"{side}_precision"] else ""
    return f"{row[f'{side}_num_gpus']}x{par}{prec}"


def markdown(result: LongitudinalResult) -> str:
    b, c = result.baseline_label, result.challenger_label
    lines = [
        f"# {c} vs {b} at matched batch size\n",
        "Configurations paired at the same "
        + ", ".join(
            [
                "task",
                "model",
                "GPU type",
                *(k for k in ("GPU count", "precision", "parallelism") if _kept(result, k)),
            ]
        )
        + " and batch size"
        + (f" (ignoring {', '.join(result.ignore)})" if result.ignore else "")
        + f"; names rewritten by the aliases of {result.aliases.source}. "
        f"Change = {c}/{b} - 1. J/token = power / throughput, so "
        "ln(J/token ratio) = ln(power ratio) - ln(throughput ratio) + residual.\n",
    ]
    groups = result.groups()
    lines.append(
        output.markdown_table(
            groups,
            [
                "task",
                "model",
                "gpu",
                "total",
                "challenger_lower",
                "median_change",
                "min_change",
                "max_change",
                "largest_reduction_batch_size",
                "median_throughput_ratio",
                "median_power_ratio",
            ],
            {
                "total": "int",
                "challenger_lower": "int",
                "median_change": "pct",
                "min_change": "pct",
                "max_change": "pct",
                "largest_reduction_batch_size": "int",
                "median_throughput_ratio": "ratio",
                "median_power_ratio": "ratio",
            },
            {
                "total": "pairs",
                "challenger_lower": f"{c} lower",
                **output.CHANGE_HEADERS,
                "min_change": "min (largest reduction)",
                "largest_reduction_batch_size": "at batch",
                "median_throughput_ratio": "throughput (median)",
                "median_power_ratio": "power (median)",
            },
        )  # fmt: skip
    )
    logs = ("log_energy_ratio", "log_power_ratio", "log_throughput_ratio", "log_residual")
    rows = [
        dict(
            r,
            b_config=_config(r, "baseline"),
            c_config=_config(r, "challenger"),
            **{k: f"{round(r[k], 3) + 0.0:+.3f}" for k in logs},
        )
        for r in result.rows()
    ]
    lines.append("\n## Pairs\n")
    lines.append(
        output.markdown_table(
            rows,
            [
                "model",
                "gpu",
                "batch_size",
                "b_config",
                "c_config",
                "baseline_energy",
                "challenger_energy",
                "energy_change",
                "throughput_ratio",
                "power_ratio",
                "log_energy_ratio",
                "log_power_ratio",
                "log_throughput_ratio",
                "log_residual",
                "driver",
            ],
            {
                "batch_size": "int",
                "baseline_energy": "g",
                "challenger_energy": "g",
                "energy_change": "pct",
                "throughput_ratio": "ratio",
                "power_ratio": "ratio",
            },
            {
                "batch_size": "batch",
                "b_config": f"{b} config",
                "c_config": f"{c} config",
                "baseline_energy": f"{b} J/token",
                "challenger_energy": f"{c} J/token",
                "energy_change": "J/token change",
                "throughput_ratio": "throughput",
                "power_ratio": "power",
                "log_energy_ratio": "ln J",
                "log_power_ratio": "ln P",
                "log_throughput_ratio": "ln T",
                "log_residual": "residual",
            },
        )  # fmt: skip
    )
    if result.unpaired:
        lines.append("\nBatch sizes measured on one side only (no pair):\n")
        for u in result.unpaired:
            sizes = ", ".join(str(s) for s in u["batch_sizes"])
            lines.append(f"- {u['model']} on {u['gpu']} ({u['task']}), {u['side']} only: {sizes}")
        lines.append("")
    return "\n".join(lines)


def _kept(result: LongitudinalResult, label: str) -> bool:
    key = {"GPU count": "num_gpus", "precision": "precision", "parallelism": "parallelism"}[label]
    return key not in result.ignore
