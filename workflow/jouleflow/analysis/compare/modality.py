"""Modality ratios: a multimodal model on image/video chat against its text sibling on chat.

Pairings (multimodal model -> text model; the same id when one model serves both) come from the
caller. Per pairing, modality task and GPU type, the multimodal model's minimum energy on the
modality task is divided by the text model's minimum on the text task, both per token and per
response (each metric minimised on its own, over GPU count, batch size and parallelism).
With batch_sizes="common" each pair is minimised only over the (GPU count, batch size) both of its
models were run at on that GPU type: a sweep measured at fewer batch sizes on one side (a partial
campaign) is then compared at equal batch, not against the other side's largest batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import yaml

from jouleflow.analysis.compare import output
from jouleflow.analysis.compare.common import (
    CompareError,
    NoComparablePairs,
    gpus_column,
    gpus_note,
    require_columns,
    same_gpus,
)
from jouleflow.analysis.compare.minimum import (
    config_label,
    minimum_per,
    prepare,
    require_models,
    spread_stats,
)

METRICS = {"jpt": "energy_per_token_j", "jpr": "energy_per_response_j"}
TABLE_COLUMNS = (
    "task",
    "gpu",
    "model",
    "text_model",
    "text_task",
    "config_jpt",
    "jpt",
    "text_config_jpt",
    "text_jpt",
    "jpt_ratio",
    "config_jpr",
    "jpr",
    "text_config_jpr",
    "text_jpr",
    "jpr_ratio",
    "same_gpus",
)
FORMATS = {
    "jpt": "g", "text_jpt": "g", "jpr": "g", "text_jpr": "g", "jpt_ratio": "ratio", "jpr_ratio": "ratio",
    "pairs": "int", "min_jpt_ratio": "ratio", "median_jpt_ratio": "ratio", "max_jpt_ratio": "ratio",
    "min_jpr_ratio": "ratio", "median_jpr_ratio": "ratio", "max_jpr_ratio": "ratio",
}  # fmt: skip


def parse_pairs(items: str | Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """`MLLM=TEXT` items (repeated or comma-separated) or a mapping -> {multimodal: text}."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        return {str(k).strip(): str(v).strip() for k, v in items.items()}
    if isinstance(items, str):
        items = [items]
    pairs: dict[str, str] = {}
    for chunk in items:
        for item in filter(None, (s.strip() for s in str(chunk).split(","))):
            mllm, sep, text = item.partition("=")
            if not sep or not mllm.strip() or not text.strip():
                raise CompareError(f"pairing {item!r} is not MULTIMODAL_MODEL=TEXT_MODEL")
            if mllm.strip() in pairs and pairs[mllm.strip()] != text.strip():
                raise CompareError(f"model {mllm.strip()!r} is paired twice")
            pairs[mllm.strip()] = text.strip()
    return pairs


def load_pairs_file(path: str) -> dict[str, str]:
    """A YAML mapping multimodal model -> text model (or {pairs: {...}})."""
    try:
        with open(path) as fh:
            doc = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise CompareError(f"pairing file {path}: {exc}") from exc
    if isinstance(doc, dict) and isinstance(doc.get("pairs"), dict):
        doc = doc["pairs"]
    if not isinstance(doc, dict) or not doc:
        raise CompareError(f"pairing file {path}: expected a mapping MULTIMODAL_MODEL: TEXT_MODEL")
    return parse_pairs(doc)


BATCH_SIZES = ("all", "common")


@dataclass
class ModalityResult:
    text_task: str
    rows_: list[dict[str, Any]]
    unmatched: list[dict[str, str]] = field(default_factory=list)
    batch_sizes: str = "all"

    def rows(self) -> list[dict[str, Any]]:
        return self.rows_

    def by_task(self) -> list[dict[str, Any]]:
        """Per modality task and GPU type, then per task over GPU types: the spread of the ratios."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in self.rows_:
            groups.setdefault((r["task"], r["gpu"]), []).append(r)
            groups.setdefault((r["task"], "all"), []).append(r)
        out = []
        for (task, gpu), rows in sorted(groups.items()):
            entry: dict[str, Any] = {"task": task, "gpu": gpu, "pairs": len(rows)}
            for m in METRICS:
                s = spread_stats([r[f"{m}_ratio"] for r in rows])
                entry.update({f"{k}_{m}_ratio": v for k, v in s.items()})
            out.append(entry)
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "text_task": self.text_task,
            "batch_sizes": self.batch_sizes,
            "by_task": self.by_task(),
            "pairs": self.rows_,
            "unmatched": self.unmatched,
        }

    def markdown(self) -> str:
        flags = [r["same_gpus"] for r in self.rows_]
        lines = [
            "# Multimodal vs text sibling\n",
            f"Minimum energy of the multimodal model on its task / its text sibling's on {self.text_task}, "
            "per GPU type (each metric minimised on its own"
            + ("; over the batch sizes both models were run at" if self.batch_sizes == "common" else "")
            + ").\n",
            output.markdown_table(
                self.by_task(),
                ["task", "gpu", "pairs", "min_jpt_ratio", "median_jpt_ratio", "max_jpt_ratio",
                 "min_jpr_ratio", "median_jpr_ratio", "max_jpr_ratio"],
                FORMATS,
                {"min_jpt_ratio": "J/token min", "median_jpt_ratio": "median", "max_jpt_ratio": "max",
                 "min_jpr_ratio": "J/response min", "median_jpr_ratio": "median", "max_jpr_ratio": "max"},
            ),
            "\n## Pairs\n",
            *([note] if (note := gpus_note(flags)) else []),
            output.markdown_table(
                self.rows_,
                ["task", "gpu", "model", "text_model", "config_jpt", "jpt", "text_jpt", "jpt_ratio",
                 "jpr", "text_jpr", "jpr_ratio", *gpus_column(flags)],
                FORMATS,
                {"jpt": "J/token", "text_jpt": "text J/token", "jpt_ratio": "J/token ratio",
                 "jpr": "J/response", "text_jpr": "text J/response", "jpr_ratio": "J/response ratio",
                 "same_gpus": "same GPUs"},
            ),
        ]  # fmt: skip
        if self.unmatched:
            lines += [
                "\n## Not compared\n",
                output.markdown_table(self.unmatched, ["model", "text_model", "why"]),
            ]
        return "\n".join(lines)


def _minima(df: pl.DataFrame, tasks: Sequence[str], gpu: str | None) -> dict[str, dict[tuple, dict]]:
    """metric -> {(task, model, gpu): minimum-energy row} over the given tasks."""
    out = {}
    for m, col in METRICS.items():
        configs = prepare(df, col, "modality", tasks=tasks, gpu=gpu)
        best = minimum_per(configs, ["task", "model", "gpu"], col).to_dicts()
        out[m] = {(r["task"], r["model"], r["gpu"]): r for r in best}
    return out


def _common_batches(df: pl.DataFrame, mllm: str, task: str, text: str, text_task: str) -> pl.DataFrame:
    """The pair's rows at the (GPU type, GPU count, batch size) both models were run at."""
    keys = ["gpu", "num_gpus", "batch_size"]
    mm = df.filter((pl.col("model") == mllm) & (pl.col("task") == task))
    tx = df.filter((pl.col("model") == text) & (pl.col("task") == text_task))
    both = mm.select(keys).unique().join(tx.select(keys).unique(), on=keys)
    return pl.concat([mm, tx]).join(both, on=keys, how="semi")


def compare_modality(
    df: pl.DataFrame,
    pairs: Mapping[str, str],
    modality_tasks: Sequence[str] = ("image-chat", "video-chat"),
    text_task: str = "lm-arena-chat",
    gpu: str | None = None,
    batch_sizes: str = "all",
) -> ModalityResult:
    """Multimodal / text minimum energy per pairing, modality task and GPU type (batch_sizes:
    "all" = each side's minimum over all its runs; "common" = over the batch sizes both have)."""
    if not pairs:
        raise CompareError("compare modality needs at least one pairing MULTIMODAL_MODEL=TEXT_MODEL")
    if batch_sizes not in BATCH_SIZES:
        raise CompareError(f"batch_sizes must be one of {', '.join(BATCH_SIZES)}, got {batch_sizes!r}")
    require_columns(df, ["task", "model", *METRICS.values()], "modality")
    require_models(df, [*pairs, *pairs.values()], "the modality pairing")
    present = set(df["task"].drop_nulls().to_list())
    # A summary with image-chat but no video-chat still compares what it has.
    modality_tasks = [t for t in modality_tasks if t in present] or list(modality_tasks)
    minima = _minima(df, [*modality_tasks, text_task], gpu)
    gpus = sorted({k[2] for k in minima["jpr"]} | {k[2] for k in minima["jpt"]})
    rows, unmatched = [], []
    for mllm, text in sorted(pairs.items()):
        found = False
        for task in modality_tasks:
            for g in gpus:
                picks = {
                    m: (minima[m].get((task, mllm, g)), minima[m].get((text_task, text, g))) for m in METRICS
                }
                if not all(a and b for a, b in picks.values()):
                    continue
                if batch_sizes == "common":
                    both = _common_batches(df, mllm, task, text, text_task)
                    common = _minima(both, [task, text_task], g) if both.height else {m: {} for m in METRICS}
                    picks = {
                        m: (common[m].get((task, mllm, g)), common[m].get((text_task, text, g)))
                        for m in METRICS
                    }
                    if not all(a and b for a, b in picks.values()):
                        why = f"no batch size in common on {g} ({task})"
                        unmatched.append({"model": mllm, "text_model": text, "why": why})
                        continue
                found = True
                row: dict[str, Any] = {
                    "task": task,
                    "gpu": g,
                    "model": mllm,
                    "text_model": text,
                    "text_task": text_task,
                }
                for m, col in METRICS.items():
                    a, b = picks[m]
                    row.update({f"config_{m}": config_label(a), m: a[col], f"text_config_{m}": config_label(b),
                                f"text_{m}": b[col], f"{m}_ratio": a[col] / b[col]})  # fmt: skip
                row["same_gpus"] = same_gpus(*(r for pick in picks.values() for r in pick))
                rows.append(row)
        if not found and not any(u["model"] == mllm and u["text_model"] == text for u in unmatched):
            has_mm = sorted({k[2] for k in minima["jpr"] if k[1] == mllm and k[0] in modality_tasks})
            has_text = sorted({k[2] for k in minima["jpr"] if k[1] == text and k[0] == text_task})
            on = f" on {gpu}" if gpu else ""
            why = (
                f"{mllm} has no {'/'.join(modality_tasks)} run{on}" if not has_mm
                else f"{text} has no {text_task} run{on}" if not has_text
                else f"no common GPU type ({', '.join(has_mm)} vs {', '.join(has_text)})"
            )  # fmt: skip
            unmatched.append({"model": mllm, "text_model": text, "why": why})
    if not rows:
        reasons = "; ".join(u["why"] for u in unmatched)
        raise NoComparablePairs(f"no comparable pairs: {reasons}")
    rows.sort(key=lambda r: (r["task"], r["gpu"], r["model"]))
    return ModalityResult(text_task, rows, unmatched, batch_sizes)
