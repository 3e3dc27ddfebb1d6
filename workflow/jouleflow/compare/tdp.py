"""How much a TDP-based estimate overstates measured energy.

The estimate charges every GPU its TDP for the time one response occupies the server:
  estimate = TDP x GPUs x time per response
with time per response = batch latency / batch size for diffusion (a batch yields batch-size
responses) and mean output tokens / output tokens per second for LLMs (the server's time per
response at its measured throughput). Ratio = estimate / measured energy per response. Since the
measured energy is mean power x the same time, the ratio is TDP x GPUs / measured mean power: it
isolates the power assumption. Reported for each (task, model, GPU type) at its minimum-energy
configuration, and over all configurations.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from jouleflow.compare import output
from jouleflow.compare.common import (
    CompareError,
    NoComparablePairs,
    filter_tasks,
    require_columns,
    usable_rows,
    with_config_keys,
)

# Board power of the SXM parts (NVIDIA datasheets). Used when the summary has no gpu_tdp_w and no
# --tdp override names the GPU type; the table records which source each row used.
DEFAULT_TDP_W: dict[str, float] = {"A100": 400.0, "H100": 700.0, "H200": 700.0, "B200": 1000.0}
NEEDED = ("task", "model", "gpu", "num_gpus", "batch_size", "energy_per_response_j")
TABLE_COLUMNS = (
    "task",
    "model",
    "gpu",
    "num_gpus",
    "batch_size",
    "parallelism",
    "tdp_w",
    "tdp_source",
    "time_per_response_s",
    "measured_j",
    "estimate_j",
    "ratio",
)
SUMMARY_COLUMNS = (
    "task",
    "gpu",
    "models",
    "median_ratio",
    "min_ratio",
    "max_ratio",
    "median_measured_j",
    "median_estimate_j",
)


def parse_tdp(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """`H100=700,B200=1000` -> {"H100": 700.0, "B200": 1000.0}."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        items = [(str(k), v) for k, v in text.items()]
    else:
        items = []
        for item in (s.strip() for s in text.split(",")):
            if not item:
                continue
            if "=" not in item:
                raise CompareError(f"TDP item {item!r} is not GPU=WATTS (e.g. H100=700)")
            name, value = item.split("=", 1)
            items.append((name.strip(), value.strip()))
    tdp = {}
    for name, value in items:
        try:
            watts = float(value)
        except (TypeError, ValueError) as exc:
            raise CompareError(f"TDP for {name!r} is not a number: {value!r}") from exc
        if not watts > 0:
            raise CompareError(f"TDP for {name!r} must be positive, got {value!r}")
        tdp[name] = watts
    return tdp


def _time_per_response(row: dict[str, Any]) -> float | None:
    latency, batch = row.get("batch_latency_s"), row.get("batch_size")
    if latency is not None and batch:
        return latency / batch
    tokens, rate = row.get("mean_output_tokens"), row.get("tokens_per_s")
    if tokens is not None and rate:
        return tokens / rate
    return None


def _tdp_for(row: dict[str, Any], overrides: Mapping[str, float]) -> tuple[float | None, str]:
    if row["gpu"] in overrides:
        return overrides[row["gpu"]], "override"
    if row.get("gpu_tdp_w"):
        return float(row["gpu_tdp_w"]), "summary"
    if row["gpu"] in DEFAULT_TDP_W:
        return DEFAULT_TDP_W[row["gpu"]], "default"
    return None, "unknown"


@dataclass
class TdpResult:
    rows_all: list[dict[str, Any]]  # every configuration
    rows_best: list[dict[str, Any]]  # the minimum-energy configuration per (task, model, gpu)

    def by_task(self) -> list[dict[str, Any]]:
        keys = sorted({(r["task"], r["gpu"]) for r in self.rows_best})
        out = []
        for task, gpu in keys:
            part = [r for r in self.rows_best if r["task"] == task and r["gpu"] == gpu]
            ratios = [r["ratio"] for r in part]
            out.append(
                {
                    "task": task,
                    "gpu": gpu,
                    "models": len(part),
                    "median_ratio": statistics.median(ratios),
                    "min_ratio": min(ratios),
                    "max_ratio": max(ratios),
                    "median_measured_j": statistics.median(r["measured_j"] for r in part),
                    "median_estimate_j": statistics.median(r["estimate_j"] for r in part),
                }
            )
        return out

    @staticmethod
    def _spread(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        ratios = [r["ratio"] for r in rows]
        return {
            "total": len(ratios),
            "median_ratio": statistics.median(ratios),
            "min_ratio": min(ratios),
            "max_ratio": max(ratios),
        }

    def summary(self) -> dict[str, Any]:
        tdp = {r["gpu"]: {"tdp_w": r["tdp_w"], "source": r["tdp_source"]} for r in self.rows_all}
        return {
            "tdp": dict(sorted(tdp.items())),
            "by_task": self.by_task(),
            "rows": self.rows_best,
            **self._spread(self.rows_best),
            "all_configurations": self._spread(self.rows_all),
        }

    def rows(self) -> list[dict[str, Any]]:
        return self.rows_best

    def markdown(self) -> str:
        fmt = {
            "models": "int",
            "median_ratio": "ratio",
            "min_ratio": "ratio",
            "max_ratio": "ratio",
            "median_measured_j": "g",
            "median_estimate_j": "g",
        }
        best, every = self._spread(self.rows_best), self._spread(self.rows_all)
        return "\n".join(
            [
                "# TDP-based estimate vs measured energy per response\n",
                "Estimate = TDP x GPUs x time per response; ratio = estimate / measured. Per task and GPU type over each "
                "model's minimum-energy configuration.\n",
                output.markdown_table(self.by_task(), SUMMARY_COLUMNS, fmt),
                f"\nMinimum-energy configurations: median ratio {best['median_ratio']:.2f}x "
                f"({best['min_ratio']:.2f}x to {best['max_ratio']:.2f}x, n={best['total']}). "
                f"All configurations: median {every['median_ratio']:.2f}x "
                f"({every['min_ratio']:.2f}x to {every['max_ratio']:.2f}x, n={every['total']}).\n",
            ]
        )

    def figure(self, path: str | Path) -> tuple[Path, Path]:
        groups = self.by_task()
        fig, ax = output.new_figure(1.5 + 0.9 * len(groups), 4.2)
        x = list(range(len(groups)))
        ax.bar(x, [g["median_estimate_j"] for g in groups], 0.75, color="0.82", label="TDP estimate")
        ax.bar(x, [g["median_measured_j"] for g in groups], 0.45, color="tab:blue", label="measured")
        for i, g in enumerate(groups):
            ax.text(
                i, g["median_estimate_j"], f"{g['median_ratio']:.1f}x", ha="center", va="bottom", fontsize=8
            )
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{g['task']}\n{g['gpu']}" for g in groups], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("energy per response (J, log; median over models)")
        ax.set_title("TDP-based estimate vs measured")
        ax.legend(loc="upper left")
        ax.margins(y=0.15)
        return output.save_figure(fig, path)


def compare_tdp(
    df: pl.DataFrame, tdp_w: Mapping[str, float] | None = None, tasks: Sequence[str] | None = None
) -> TdpResult:
    """TDP-estimate overestimation. See the module docstring."""
    require_columns(df, NEEDED, "tdp")
    has_llm_time = {"mean_output_tokens", "tokens_per_s"} <= set(df.columns)
    if not has_llm_time and "batch_latency_s" not in df.columns:
        raise CompareError(
            "compare tdp needs mean_output_tokens and tokens_per_s (LLM) or batch_latency_s "
            "(diffusion) to know the time per response; the summary has none of them"
        )
    overrides = dict(tdp_w or {})
    df = usable_rows(filter_tasks(with_config_keys(df), tasks), ["energy_per_response_j"])
    df = df.filter(pl.col("num_gpus").is_not_null() & (pl.col("num_gpus") > 0))
    rows, unknown = [], set()
    for row in df.to_dicts():
        time_s = _time_per_response(row)
        if time_s is None or time_s <= 0:
            continue
        tdp, source = _tdp_for(row, overrides)
        if tdp is None:
            unknown.add(row["gpu"])
            continue
        estimate = tdp * row["num_gpus"] * time_s
        rows.append(
            {
                "task": row["task"],
                "model": row["model"],
                "gpu": row["gpu"],
                "num_gpus": row["num_gpus"],
                "batch_size": row["batch_size"],
                "parallelism": row["parallelism"],
                "tdp_w": tdp,
                "tdp_source": source,
                "time_per_response_s": time_s,
                "measured_j": row["energy_per_response_j"],
                "estimate_j": estimate,
                "ratio": estimate / row["energy_per_response_j"],
            }
        )
    if unknown:
        raise CompareError(
            f"no TDP known for GPU type(s) {', '.join(sorted(unknown))}: give --tdp "
            f"{','.join(f'{g}=WATTS' for g in sorted(unknown))} (built in: "
            f"{', '.join(f'{g}={w:g}' for g, w in DEFAULT_TDP_W.items())})"
        )
    if not rows:
        raise NoComparablePairs("no comparable pairs: no row has energy per response and a time per response")
    rows.sort(
        key=lambda r: (
            r["task"],
            r["model"],
            r["gpu"],
            r["measured_j"],
            r["num_gpus"],
            r["batch_size"],
            r["parallelism"],
        )
    )
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        best.setdefault((r["task"], r["model"], r["gpu"]), r)  # rows sorted by energy within the key
    return TdpResult(rows, list(best.values()))
