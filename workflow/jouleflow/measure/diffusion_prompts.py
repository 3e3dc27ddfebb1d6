"""Prompt sets for diffusion runs: read, check, split into batches, and record what was used.

Formats: `.txt` (one prompt per line, blank lines skipped), `.jsonl` (one string or {"prompt": ...}
per line), `.json` (a list of those), `.parquet` (a `prompt` column). With no file, the bundled
set (100 prompts written for jouleflow) is used and cycled as needed: a prompt's text barely
changes a diffusion model's cost (text encoders pad to a fixed length), so this is recorded,
not forbidden. A user's file that is too short is an error unless cycling is asked for.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

BUNDLED = "bundled:diffusion_prompts.txt"
SUFFIXES = (".txt", ".jsonl", ".json", ".parquet")


class PromptSetError(ValueError):
    """A prompt file is missing, malformed or too short; the message names the file."""


@dataclass(frozen=True)
class PromptSet:
    prompts: list[str]
    source: str  # the path, or BUNDLED
    sha256: str  # of the file's bytes

    def batches(self, batch_size: int, num_batches: int, cycle: bool) -> list[list[str]]:
        """num_batches lists of batch_size prompts, in file order (wrapping round when `cycle`)."""
        needed = batch_size * num_batches
        if needed > len(self.prompts) and not cycle:
            raise PromptSetError(
                f"{self.source}: has {len(self.prompts)} prompts, the run needs {needed} "
                f"(batch_size {batch_size} x num_batches {num_batches}); give more or allow cycle_prompts"
            )
        flat = [self.prompts[i % len(self.prompts)] for i in range(needed)]
        return [flat[i * batch_size : (i + 1) * batch_size] for i in range(num_batches)]

    def record(self, batch_size: int, num_batches: int) -> dict[str, Any]:
        """The run.json entry: where the prompts came from and whether any was reused."""
        needed = batch_size * num_batches
        return {
            "path": self.source,
            "sha256": self.sha256,
            "num_available": len(self.prompts),
            "num_used": needed,
            "cycled": needed > len(self.prompts),
        }


def load_prompt_set(path: str | Path | None) -> PromptSet:
    if path is None:
        data = resources.files("jouleflow").joinpath("data/diffusion_prompts.txt").read_bytes()
        return PromptSet(_parse_txt(data.decode("utf-8"), BUNDLED), BUNDLED, hashlib.sha256(data).hexdigest())
    path = Path(path)
    if not path.is_file():
        raise PromptSetError(f"{path}: prompt file not found")
    if path.suffix not in SUFFIXES:
        raise PromptSetError(
            f"{path}: unknown prompt file type {path.suffix!r} (one of {', '.join(SUFFIXES)})"
        )
    data = path.read_bytes()
    if path.suffix == ".parquet":
        prompts = _parse_parquet(path)
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PromptSetError(f"{path}: not UTF-8 text ({exc})") from exc
        if path.suffix == ".txt":
            prompts = _parse_txt(text, str(path))
        elif path.suffix == ".jsonl":
            prompts = [_prompt_of(json_line, f"{path}:{n}") for n, json_line in _jsonl_items(text, path)]
        else:
            prompts = _parse_json(text, path)
    if not prompts:
        raise PromptSetError(f"{path}: no prompts")
    return PromptSet(prompts, str(path), hashlib.sha256(data).hexdigest())


def _parse_txt(text: str, where: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _jsonl_items(text: str, path: Path) -> list[tuple[int, Any]]:
    items = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise PromptSetError(f"{path}:{n}: not JSON ({exc.msg})") from exc
    return items


def _parse_json(text: str, path: Path) -> list[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptSetError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, list):
        raise PromptSetError(f"{path}: expected a JSON list of prompts")
    return [_prompt_of(item, f"{path}[{i}]") for i, item in enumerate(data)]


def _prompt_of(item: Any, where: str) -> str:
    if isinstance(item, dict):
        item = item.get("prompt")
    if not isinstance(item, str) or not item.strip():
        raise PromptSetError(f"{where}: expected a non-empty string or an object with a string 'prompt'")
    return item.strip()


def _parse_parquet(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise PromptSetError(f"{path}: not a readable Parquet file ({exc})") from exc
    if "prompt" not in table.column_names:
        raise PromptSetError(f"{path}: no 'prompt' column (columns: {', '.join(table.column_names)})")
    values = table.column("prompt").to_pylist()
    return [_prompt_of(v, f"{path} row {i}") for i, v in enumerate(values)]
