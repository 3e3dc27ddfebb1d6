"""Config checks of jouleflow.plan.grid.build_grid that a JSON schema cannot express, each naming the key.

Split from jouleflow.plan.grid to keep both small. Stdlib only (Snakemake runs these at parse time):
where the pipeline writes, model ids that become run-directory names, request counts that can fill
every batch, local model directories that can be loaded, and the GPU types and tasks the comparisons
of the campaign's own summary name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jouleflow.plan import jobspec
from jouleflow.plan.grid import GridError, GridPoint
from jouleflow.runkey import model_slug

# A model id is a Hugging Face id (`org/name`) or another name made of the same characters; it is a
# path component of every run directory (model_slug), so nothing may climb out of `runs/`.
MODEL_ID_CHARS = re.compile(r"[A-Za-z0-9._/-]")
ID_HINT = (
    "a model id is a Hugging Face id such as org/name: letters, digits, '.', '_', '-', with '/' "
    "between non-empty segments; a local directory goes in the model's `path:`"
)
# What a local model directory must hold for the engine to load it.
MODEL_DIR_FILE = {"llm": "config.json", "diffusion": "model_index.json"}


def check_config(config: Mapping[str, Any]) -> None:
    """The checks of the config as a whole, before any point is expanded."""
    check_results_dir(config)
    check_model_ids(config["models"])
    check_compare_names(config)


def check_results_dir(config: Mapping[str, Any]) -> None:
    """results_dir: a relative or absolute directory, but not empty (the repo root) nor `/`."""
    value = config.get("results_dir")
    if not isinstance(value, str) or not value.strip():
        raise GridError(
            f"results_dir: {value!r} is empty; give the directory the pipeline writes to (default results)"
        )
    if os.path.normpath(value.strip()) in ("/", "//"):
        raise GridError(
            f"results_dir: {value!r} is the filesystem root; give a directory of its own (default results)"
        )


def check_compare_names(config: Mapping[str, Any]) -> None:
    """compare.gpus[i].a/b, the comparisons' `tasks` and models: names the campaign knows (`gpus`,
    `tasks`, `models`).

    A name the summary lacks is, at run time, "nothing to compare" (a partial campaign must not stop the
    report), so a misspelt one is caught here. Not checked when the comparisons read another summary
    (compare.summary, compare.published), whose GPU types and tasks the config need not list."""
    compare = config.get("compare") or {}
    if compare.get("summary") or compare.get("published"):
        return
    known = {kind: set(config.get(kind) or {}) for kind in ("gpus", "tasks", "models")}

    def check(where: str, kind: str, names: Iterable[str]) -> None:
        for name in names:
            if name not in known[kind]:
                raise GridError(
                    f"{where}: {name!r} is not in the config's `{kind}` ({', '.join(sorted(known[kind]))})"
                )

    for section, entries in compare.items():
        items = entries if isinstance(entries, list) else [entries] if isinstance(entries, dict) else []
        for i, item in enumerate(items):
            where = f"compare.{section}[{i}]" if isinstance(entries, list) else f"compare.{section}"
            if section == "gpus":
                check(f"{where}.a", "gpus", [item["a"]])
                check(f"{where}.b", "gpus", [item["b"]])
            check(f"{where}.tasks", "tasks", item.get("tasks") or [])
            check(f"{where}.modality_tasks", "tasks", item.get("modality_tasks") or [])
            for key in ("reference", "text_task"):
                if item.get(key):
                    check(f"{where}.{key}", "tasks", [item[key]])
            if item.get("gpu"):  # one GPU type an analysis keeps to (tasks, modality, aggregates)
                check(f"{where}.gpu", "gpus", [item["gpu"]])
            if isinstance(item.get("pairs"), dict):  # modality: multimodal model -> its text sibling
                check(f"{where}.pairs", "models", [*item["pairs"], *item["pairs"].values()])
            if item.get("model"):  # tasks: the model compared across tasks
                check(f"{where}.model", "models", [item["model"]])


def model_id_problem(model_id: str) -> str | None:
    """Why `model_id` cannot name a run directory, or None when it can."""
    if not model_id:
        return "the id is empty"
    bad = sorted({c for c in model_id if not MODEL_ID_CHARS.fullmatch(c)})
    if bad:
        return f"{', '.join(repr(c) for c in bad)} not allowed"
    if model_id.startswith("/"):
        return "an absolute path"
    segments = model_id.split("/")
    if "" in segments:
        return "an empty segment"
    dots = [s for s in segments if s in (".", "..")]
    if dots:
        return f"a {dots[0]!r} segment"
    if not model_id[0].isalnum():
        return f"starts with {model_id[0]!r}, not a letter or digit"
    return None


def check_model_ids(models: Mapping[str, Any]) -> None:
    """Every registry key must be a valid run-directory name, and no two may share one."""
    by_slug: dict[str, str] = {}
    for model_id in models:
        problem = model_id_problem(model_id)
        if problem:
            raise GridError(f"models.{model_id}: invalid model id {model_id!r} ({problem}); {ID_HINT}")
        slug = model_slug(model_id)
        other = by_slug.setdefault(slug, model_id)
        if other != model_id:
            first, second = sorted((other, model_id))
            raise GridError(
                f"models: {first!r} and {second!r} both give run directory name {slug!r} "
                "(runs/<task>/<model>/... writes '/' as '--'); rename one of them"
            )


def check_points(config: Mapping[str, Any], points: Iterable[GridPoint], base_dir: Path) -> None:
    """Per kept point: enough requests to fill its batch, and a loadable local model directory."""
    checked: set[str] = set()
    for point in points:
        if point.modality == "llm":
            _check_num_requests(config, point)
        if point.source == "measure" and config["models"][point.model].get("path"):
            _check_model_dir(config, point, base_dir, checked)


def _check_num_requests(config: Mapping[str, Any], point: GridPoint) -> None:
    n = jobspec.num_requests(config["tasks"][point.task], point.batch_size)
    if n < point.batch_size:
        raise GridError(
            f"tasks.{point.task}.num_requests: {n} requests cannot fill batch size {point.batch_size} "
            f"(run {point.key} of sweep {point.sweep}): all N requests are sent at once, so N must be at least "
            "the batch size B: raise num_requests or drop the batch size"
        )


def _check_model_dir(config: Mapping[str, Any], point: GridPoint, base_dir: Path, checked: set[str]) -> None:
    """A `path:` that is a local directory must hold the engine's config file (one stat per path).

    A path that does not exist here may be a Hugging Face id or a directory only the compute
    nodes see: the measurement checks it again."""
    path = jobspec.job_spec(config, point)["model_path"]
    if not path or path in checked:
        return
    checked.add(path)
    local = Path(path).expanduser()
    local = local if local.is_absolute() else base_dir / local
    if not local.exists():
        return
    key = f"models.{point.model}.path"
    if not local.is_dir():
        raise GridError(f"{key}: {path} is a file, not a model directory (needed by run {point.key})")
    needed = MODEL_DIR_FILE[point.modality]
    if not (local / needed).is_file():
        kind = "a Hugging Face" if point.modality == "llm" else "a diffusers"
        raise GridError(
            f"{key}: {Path(path) / needed} does not exist, so {path} is not {kind} model directory "
            f"(needed by run {point.key})"
        )
