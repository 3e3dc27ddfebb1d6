"""ML.ENERGY Leaderboard v2.0 (Sep 2024): a tree of per-configuration JSON files.

Layout (one task directory per task, holding `models.json` and `schema.yaml`):
    <category>/<task>/<GPU>/<org>/<model>/bs{B}+tp{T}+pp{P}.json            LLM / MLLM
    diffusion/<task>/<GPU>/<org>/<model>/bs{B}+steps{S}[+frames{F}].json   diffusion
Field mapping and assumptions are documented in docs/analysis.md ("Importers").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jouleflow.importers.common import (
    PublishedDataError,
    integer,
    known_gpu,
    load_json,
    number,
    product,
    ratio,
    text,
)

SOURCE = "mlenergy-v2"

# (category directory, task directory) → (jouleflow task name, modality). Diffusion tasks keep their name.
_LLM_TASKS: dict[tuple[str, str], str] = {
    ("llm_text_generation", "chat"): "chat",
    ("llm_text_generation", "code"): "code",
    ("mllm_text_generation", "chat"): "image-chat",
}
_DIFFUSION_CATEGORY = "diffusion"

# v2 did not publish precision. Its LLM runs used vLLM's default dtype (the checkpoints' bfloat16);
# its diffusion runs loaded the pipelines in float16.
_PRECISION = {"llm": "bf16", "diffusion": "fp16"}

_LLM_FILE = re.compile(r"^bs(\d+)\+tp(\d+)\+pp(\d+)\.json$")
_DIFFUSION_FILE = re.compile(r"^bs(\d+)\+steps(\d+)(?:\+frames(\d+))?\.json$")


def is_v2_tree(root: Path) -> bool:
    """True when `root` is a v2 task directory or contains one (a directory with schema.yaml + models.json)."""
    return any(True for _ in _task_dirs(root))


def _task_dirs(root: Path):
    """Task directories at the root, one level down (a category dir) or two (the v2 tree's root)."""
    for pattern in ("schema.yaml", "*/schema.yaml", "*/*/schema.yaml"):
        found = sorted(p.parent for p in root.glob(pattern) if (p.parent / "models.json").is_file())
        if found:
            yield from found
            return


def _task_identity(task_dir: Path) -> tuple[str, str]:
    category, name = task_dir.resolve().parent.name, task_dir.resolve().name
    if category == _DIFFUSION_CATEGORY:
        return name, "diffusion"
    task = _LLM_TASKS.get((category, name))
    if task is None:
        raise PublishedDataError(
            f"{task_dir}: unknown ML.ENERGY v2 task directory {category}/{name} "
            f"(known: {', '.join(f'{c}/{t}' for c, t in _LLM_TASKS)}, {_DIFFUSION_CATEGORY}/<task>)"
        )
    return task, "llm"


def read_v2(root: Path) -> list[dict[str, Any]]:
    """One traces.SUMMARY row per configuration file under `root`; run_dir is the file path relative to root."""
    rows: list[dict[str, Any]] = []
    task_dirs = list(_task_dirs(root))
    if not task_dirs:
        raise PublishedDataError(f"{root}: no ML.ENERGY v2 task directory (schema.yaml + models.json) found")
    for task_dir in task_dirs:
        task, modality = _task_identity(task_dir)
        models = load_json(task_dir / "models.json")
        if not isinstance(models, dict):
            raise PublishedDataError(f"{task_dir / 'models.json'}: expected an object keyed by model id")
        for path in sorted(task_dir.rglob("*.json")):
            if path.name == "models.json":
                continue
            rel = path.relative_to(root).as_posix()
            rows.append(_row(path, rel, task, modality, models))
    return rows


def _params(models: dict[str, Any], model: str, key: str) -> float | None:
    entry = models.get(model)
    if not isinstance(entry, dict):
        return None
    value = entry.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _row(path: Path, rel: str, task: str, modality: str, models: dict[str, Any]) -> dict[str, Any]:
    record = load_json(path)
    if not isinstance(record, dict):
        raise PublishedDataError(f"{path}: expected a JSON object")
    where = str(path)
    kind = known_gpu(text(record, "GPU", where), where)
    base: dict[str, Any] = {
        "source": SOURCE,
        "run_dir": rel,
        "task": task,
        "model": text(record, "Model", where),
        "modality": modality,
        "precision": _PRECISION[modality],
        "architecture": None,  # not published in v2
        "gpu": kind.short,
        "gpu_tdp_w": kind.tdp_w,
        "load_format": "real",
        "status": "ok",
        "valid": True,
        "flags": "",
    }
    if modality == "llm":
        match = _LLM_FILE.match(path.name)
        if match is None:
            raise PublishedDataError(f"{path}: file name is not bs{{B}}+tp{{T}}+pp{{P}}.json")
        return {**base, **_llm_fields(record, where, match, models, base["model"])}
    match = _DIFFUSION_FILE.match(path.name)
    if match is None:
        raise PublishedDataError(f"{path}: file name is not bs{{B}}+steps{{S}}[+frames{{F}}].json")
    return {**base, **_diffusion_fields(record, where, match, models, base["model"])}


def _llm_fields(record: dict, where: str, match: re.Match, models: dict, model: str) -> dict[str, Any]:
    batch, tp, pp = (int(g) for g in match.groups())
    if integer(record, "TP", where) != tp or integer(record, "PP", where) != pp:
        raise PublishedDataError(f"{where}: TP/PP inside the file disagree with its name")
    energy_per_request = number(record, "Energy/req (J)", where)
    output_tokens = number(record, "Avg Output Tokens", where)
    tokens_per_s = number(record, "Token tput (tok/s)", where)
    energy_per_token = ratio(energy_per_request, output_tokens)
    return {
        "total_params_b": _params(models, model, "params"),
        "active_params_b": None,
        "num_gpus": tp * pp,
        "batch_size": batch,  # max_num_seqs; with pipeline parallelism vLLM admits this many per stage
        "parallelism": f"tp{tp}" if pp == 1 else f"tp{tp}-pp{pp}",
        "energy_per_response_j": energy_per_request,
        "energy_per_token_j": energy_per_token,
        "mean_output_tokens": output_tokens,
        "tokens_per_s": tokens_per_s,
        # Derived: J/token × tokens/s = J/s, the mean power over the run's measurement window.
        "mean_power_w": product(energy_per_token, tokens_per_s),
        # v2 publishes the *average* time per output token, stored here as the TPOT figure.
        "median_tpot_s": number(record, "Avg TPOT (s)", where),
        "mean_batch_size": number(record, "Avg BS (reqs)", where),
    }


def _diffusion_fields(record: dict, where: str, match: re.Match, models: dict, model: str) -> dict[str, Any]:
    batch = int(match.group(1))
    if integer(record, "Batch size", where) != batch:
        raise PublishedDataError(f"{where}: 'Batch size' inside the file disagrees with its name")
    integer(record, "Denoising steps", where)  # present in every v2 diffusion file; checked, not stored
    key = "Energy/video (J)" if "Energy/video (J)" in record else "Energy/image (J)"
    energy_per_output = number(record, key, where)
    batch_latency = number(record, "Batch latency (s)", where)
    batch_energy = product(energy_per_output, float(batch))
    return {
        "total_params_b": _params(models, model, "total_params"),
        "active_params_b": None,
        "num_gpus": 1,
        "batch_size": batch,
        "parallelism": "uly1-ring1",  # one GPU, no sequence parallelism (v3's spelling of the same)
        "energy_per_response_j": energy_per_output,
        "batch_latency_s": batch_latency,
        "mean_power_w": ratio(batch_energy, batch_latency),  # derived: batch energy / batch latency
    }
