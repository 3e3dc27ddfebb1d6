"""config/README.md from the config schema: every key, its type, default and meaning.

Generated, so it cannot drift from what the workflow accepts (tests/test_config_doc.py compares the
committed file with a fresh rendering). Regenerate after editing the schema:

    python -m jouleflow.plan.config_doc > config/README.md
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path("config/schema/config.schema.yaml")

# Where the docs explain each top-level section in prose (keys without a schema description).
SECTIONS = {
    "source": "../docs/config.md#top-level",
    "reference_dir": "../docs/config.md#top-level",
    "results_dir": "../docs/config.md#top-level",
    "gpus": "../docs/config.md#gpus-the-gpu-catalogue",
    "models": "../docs/config.md#models-the-registry",
    "tasks": "../docs/config.md#tasks",
    "sweeps": "../docs/config.md#sweeps-the-grid",
    "filters": "../docs/config.md#filters",
    "measurement": "../docs/config.md#measurement",
    "slurm": "../docs/config.md#slurm",
    "validity": "../docs/config.md#validity",
    "analysis": "../docs/config.md#analysis",
    "figures": "../docs/config.md#figures",
    "compare": "../docs/compare.md#in-the-pipeline",
}


HEADER = """\
# Configuration

<!-- Generated from config/schema/config.schema.yaml by `python -m jouleflow.plan.config_doc`;
     do not edit by hand (a test compares this file with the schema). -->

A campaign is one YAML file: `config/config.yaml` (reproduce the bundled reference campaign) by
default, plus any `--configfile` merged over it (mappings key by key, lists replaced). Shipped:

- `config/config.yaml`: the bundled reference campaign (no GPU needed);
- `config/quickstart.yaml`: measure three batch sizes (16, 64, 128) of Llama-3.1-8B on this machine's GPU (`gpus: [local]`);
- `config/lm-arena-chat-hf.yaml`: the lm-arena-chat request set from its pinned Hugging Face dataset;
- `config/paper/`: the paper artifacts (the ML.ENERGY v3 comparisons, the v2 → v3 longitudinal study).

The config is validated against `config/schema/config.schema.yaml` before anything runs. An error
names the key path, the value and a valid example, and suggests the closest key for a misspelt one;
the full schema error only with `snakemake --verbose` or `JOULEFLOW_VERBOSE=1`. Prose, examples and
the checks a schema cannot make: [docs/config.md](../docs/config.md).

`<name>` stands for a key you choose (a GPU type, a model id, a task); `[]` for each list item.

| key | type | default | meaning |
| --- | --- | --- | --- |
"""


def _resolve(node: Any, root: dict) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        node = {**root["$defs"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type(node: dict) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{v}`" if v is not None else "null" for v in node["enum"])
    if "oneOf" in node or "anyOf" in node:
        return " or ".join(_type(n) for n in node.get("oneOf", node.get("anyOf", [])))
    kind = node.get("type", "")
    kinds = [kind] if isinstance(kind, str) else list(kind)
    if "array" in kinds and isinstance(node.get("items"), dict) and "type" in node["items"]:
        kinds = [f"list of {node['items']['type']}" if k == "array" else k for k in kinds]
    return " or ".join(k for k in kinds if k) or "any"


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def rows(node: Any, root: dict, path: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(key path, type, default, meaning) of every key under `node`, depth first, schema order."""
    node = _resolve(node, root)
    if not isinstance(node, dict):
        return
    top = path.split(".")[0].split("[")[0].split("<")[0] if path else ""
    if path:
        default = json.dumps(node["default"]) if "default" in node else ""
        meaning = node.get("description") or ""
        if not meaning and top in SECTIONS:  # explained in prose there
            meaning = f"see [{SECTIONS[top].removeprefix('../').split('#')[0]}]({SECTIONS[top]})"
        yield path, _type(node), f"`{default}`" if default else "", _cell(meaning)
    for key, child in node.get("properties", {}).items():
        yield from rows(child, root, f"{path}.{key}" if path else key)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield from rows(extra, root, f"{path}.<name>" if path else "<name>")
    items = node.get("items")
    if isinstance(items, dict) and (_resolve(items, root).get("properties") or "$ref" in items):
        yield from rows(items, root, f"{path}[]")


def render(schema_path: str | Path = SCHEMA) -> str:
    root = yaml.safe_load(Path(schema_path).read_text())
    lines = [f"| `{p}` | {t} | {d} | {m} |" for p, t, d, m in rows(root, root)]
    return HEADER + "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(sys.argv[1] if len(sys.argv) > 1 else SCHEMA))
