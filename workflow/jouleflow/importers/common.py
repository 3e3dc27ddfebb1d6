"""Shared helpers for importers: errors that name the file and key, typed field access."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from jouleflow.gpus import GPUType, gpu_type


class PublishedDataError(ValueError):
    """Published data that jouleflow cannot read. The message names the file (and key, when relevant)."""


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PublishedDataError(f"{path}: invalid JSON ({exc})") from exc
    except OSError as exc:
        raise PublishedDataError(f"{path}: cannot read ({exc})") from exc


def number(record: dict[str, Any], key: str, where: str, *, required: bool = True) -> float | None:
    """A finite number from `record[key]`; `where` (file and position) goes into the error message."""
    if key not in record or record[key] is None:
        if required:
            raise PublishedDataError(f"{where}: missing key {key!r}")
        return None
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PublishedDataError(f"{where}: key {key!r} should be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise PublishedDataError(f"{where}: key {key!r} is not finite ({value!r})")
    return float(value)


def integer(record: dict[str, Any], key: str, where: str) -> int:
    value = number(record, key, where)
    assert value is not None
    if value != int(value):
        raise PublishedDataError(f"{where}: key {key!r} should be an integer, got {record[key]!r}")
    return int(value)


def text(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise PublishedDataError(f"{where}: key {key!r} should be a non-empty string, got {value!r}")
    return value


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def product(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a * b


def known_gpu(name: str, where: str) -> GPUType:
    try:
        return gpu_type(name)
    except KeyError as exc:
        raise PublishedDataError(f"{where}: {exc.args[0]}") from exc
