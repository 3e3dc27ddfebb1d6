"""Request sets from a Hugging Face Hub dataset (`kind: hf`): fetch a pinned revision, find a
split's data files, read the mapped columns.

The snapshot comes through huggingface_hub's cache (`HF_HUB_CACHE`, or `cache_dir`): fetched once
with network, it is read from the cache afterwards, and with `HF_HUB_OFFLINE=1` only from there. A
split's files are `data_files` when given, else the dataset card's `configs:` (README.md front
matter), else the Hub's file-name convention (`data/train-*.parquet`, `train.jsonl`, ...).
Parquet, JSON Lines, JSON and CSV files are read. The field mapping is `jouleflow.requestsource`'s;
turning rows into requests is `jouleflow.measure.hfrequests`.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jouleflow import requestsource
from jouleflow.measure.requestset import sha256_file

DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")
KEYS = (
    "kind", "repo", "revision", "split", "config", "data_files", "fields", "seed", "max_tokens",
    "output_lengths", "fixed_output_len",
)  # fmt: skip


class HFSourceError(ValueError):
    """A dataset that cannot be fetched or read, or a mapping that does not fit it; names the key."""


@dataclass(frozen=True)
class HFSource:
    repo: str
    revision: str
    fields: dict[str, Any]
    split: str = "train"
    config: str | None = None
    data_files: list[str] | None = None  # glob patterns in the repo: the split's files
    seed: int = 0
    max_tokens: int | None = None  # cap (EOS honoured unless a length law below is given)
    output_lengths: str | None = None  # ML.ENERGY histogram file: lengths set per request, ignore_eos
    fixed_output_len: int | None = None
    kind: str = "hf"

    @classmethod
    def from_mapping(cls, data: dict[str, Any], where: str, endpoint: str = "chat") -> HFSource:
        """Build and check; every error names `where`.<key>."""
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise HFSourceError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(KEYS)})")
        problems = requestsource.hf_problems(data, endpoint)
        if problems:
            key, what = problems[0]
            raise HFSourceError(f"{where}.{key}: {what}")
        files = data.get("data_files")
        args = {k: v for k, v in data.items() if v is not None}
        if isinstance(files, str):
            args["data_files"] = [files]
        return cls(**args)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in KEYS}


@dataclass
class Snapshot:
    """A fetched revision: its folder, the commit it resolved to, the split's files and hashes."""

    root: Path
    commit: str
    files: list[Path] = field(default_factory=list)

    def file_hashes(self) -> dict[str, str]:
        return {f.relative_to(self.root).as_posix(): sha256_file(f) for f in self.files}


def offline() -> bool:
    """HF_HUB_OFFLINE read now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def fetch(source: HFSource, where: str, cache_dir: str | Path | None = None) -> Snapshot:
    """The pinned revision's snapshot (downloaded once, then from the cache) and the split's files."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    cache_dir = cache_dir or os.environ.get("HF_HUB_CACHE") or None
    allow = [*source.data_files, "README.md"] if source.data_files else None
    try:
        path = snapshot_download(
            source.repo,
            repo_type="dataset",
            revision=source.revision,
            cache_dir=cache_dir,
            allow_patterns=allow,
            local_files_only=offline(),
        )
    except LocalEntryNotFoundError as exc:
        where_cache = cache_dir or "the default Hugging Face cache"
        raise HFSourceError(
            f"{where}.revision: {source.revision!r} of dataset {source.repo} is not in {where_cache} "
            f"and the Hub cannot be reached{' (HF_HUB_OFFLINE is set)' if offline() else ''}; fetch it once "
            "with network (`jouleflow prepare requests`, docs/config.md)"
        ) from exc
    except RevisionNotFoundError as exc:
        raise HFSourceError(
            f"{where}.revision: dataset {source.repo} has no revision {source.revision!r}"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise HFSourceError(f"{where}.repo: no dataset {source.repo!r} on the Hub (or no access)") from exc
    root = Path(path)
    snap = Snapshot(root=root, commit=root.name)
    snap.files = split_files(root, source, where)
    return snap


def split_files(root: Path, source: HFSource, where: str) -> list[Path]:
    """The data files of the source's split (and config), in a stable order."""
    if source.data_files:
        patterns, key = list(source.data_files), "data_files"
    else:
        patterns, key = _card_patterns(root, source, where), "split"
        if patterns is None:
            s = re.escape(source.split)
            conv = re.compile(rf"(^|/){s}([-._][^/]*)?$|(^|/){s}/")
            found = [p for p in _data_files(root) if conv.search(p.relative_to(root).as_posix())]
            if not found:
                raise HFSourceError(
                    f"{where}.split: no data files for split {source.split!r} in {source.repo}@{root.name} "
                    f"(files: {_listing(root)}); give data_files"
                )
            return found
    found = sorted(
        {p for pat in patterns for p in root.glob(pat) if p.is_file() and p.suffix in DATA_SUFFIXES}
    )
    if not found:
        raise HFSourceError(
            f"{where}.{key}: {patterns} match no data file in {source.repo}@{root.name} (files: {_listing(root)})"
        )
    return found


def _data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES)


def _listing(root: Path, limit: int = 8) -> str:
    names = [p.relative_to(root).as_posix() for p in _data_files(root)]
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "") if names else "none"


def _card_patterns(root: Path, source: HFSource, where: str) -> list[str] | None:
    """The split's data_files from the dataset card's `configs:`, or None when it has none."""
    card = root / "README.md"
    if not card.is_file():
        if source.config is not None:
            raise HFSourceError(
                f"{where}.config: {source.repo} has no dataset card listing configs; give data_files"
            )
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not match:
        return None
    import yaml

    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        return None
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if not isinstance(configs, list) or not configs:
        if source.config is not None:
            raise HFSourceError(
                f"{where}.config: {source.repo}'s dataset card lists no configs; give data_files"
            )
        return None
    names = [c.get("config_name", "default") for c in configs if isinstance(c, dict)]
    if source.config is not None:
        chosen = [
            c for c in configs if isinstance(c, dict) and c.get("config_name", "default") == source.config
        ]
        if not chosen:
            raise HFSourceError(
                f"{where}.config: {source.config!r} is not a config of {source.repo} (configs: {names})"
            )
    else:
        chosen = [c for c in configs if isinstance(c, dict) and c.get("default")] or configs[:1]
    files = chosen[0].get("data_files")
    if isinstance(files, (str, list)) and all(
        isinstance(f, str) for f in ([files] if isinstance(files, str) else files)
    ):
        return [files] if isinstance(files, str) else list(files)  # one unnamed split: all of it
    splits = {e.get("split"): e.get("path") for e in files or [] if isinstance(e, dict)}
    if source.split not in splits:
        raise HFSourceError(
            f"{where}.split: {source.split!r} is not a split of {source.repo} config "
            f"{chosen[0].get('config_name', 'default')!r} (splits: {sorted(map(str, splits))})"
        )
    paths = splits[source.split]
    return [paths] if isinstance(paths, str) else list(paths)


def read_rows(snap: Snapshot, wanted: dict[str, str], where: str, repo: str) -> list[dict[str, Any]]:
    """The rows of the split's files, only the `wanted` columns (column -> the key naming it); a
    column the data lacks is an error naming that key and the column."""
    rows: list[dict[str, Any]] = []
    for path in snap.files:
        have, part = _read_file(path, list(wanted))
        for column, key in wanted.items():
            if column not in have:
                raise HFSourceError(
                    f"{where}.{key}: column {column!r} is not in {repo}@{snap.commit} "
                    f"{path.relative_to(snap.root).as_posix()} (columns: {', '.join(sorted(have))})"
                )
        rows.extend(part)
    return rows


def _read_file(path: Path, columns: list[str]) -> tuple[set[str], list[dict[str, Any]]]:
    """(the file's columns, its rows restricted to `columns`)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in columns if c in names])
        return names, table.to_pylist()
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            data = list(reader)
            names = set(reader.fieldnames or [])
    else:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            doc = json.loads(text)
            data = doc.get("data", []) if isinstance(doc, dict) else doc
        if not all(isinstance(r, dict) for r in data):
            raise HFSourceError(f"{path}: expected rows as JSON objects")
        names = set().union(*(r.keys() for r in data)) if data else set()
    return names, [{c: r.get(c) for c in columns} for r in data]
