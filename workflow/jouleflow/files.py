"""Atomic file writing: the one writer every file jouleflow writes goes through (stdlib only); and
the one sha256 of a file's bytes (request sets, bundled runs).

A killed job never leaves half a file, equal content is byte-identical (JSON keys sorted), and every
file gets the mode a plain open() would give, never mkstemp's 0600. jouleflow.traces re-exports
these next to the Parquet schemas and its run-directory writer.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def _mkstemp_beside(path: Path) -> tuple[int, str]:
    """A temp file next to `path` with the permissions a plain open() would give (mkstemp uses 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, tmp


def write_atomic(path: str | Path, write: Callable[[str], Any]) -> Path:
    """The one atomic writer: `write(tmp)` fills a temp file beside `path`, which is then renamed.

    Every file jouleflow writes goes through here (or the run-directory writer below): a killed job
    never leaves half a file, and every file gets the mode a plain open() would give (0644 under the
    usual umask 022), never mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _mkstemp_beside(path)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def json_text(obj: Any) -> str:
    """The one JSON layout of every file jouleflow writes: keys sorted, so equal content is byte-identical."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically (json_text's layout)."""
    write_text(json_text(obj), path)


def write_text(text: str, path: str | Path) -> None:
    """Write a text file (UTF-8) atomically."""
    write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_csv(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str], path: str | Path, delimiter: str = ","
) -> None:
    """Write a CSV (or TSV) atomically: a header, then one line per row; None is an empty cell."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), delimiter=delimiter, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})

    write_atomic(path, write)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
