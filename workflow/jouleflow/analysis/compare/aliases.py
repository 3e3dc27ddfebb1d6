"""Name aliases between two campaigns (`jouleflow compare longitudinal --aliases FILE`).

An alias file is YAML with up to three sections, `tasks`, `models` and `gpus`, each mapping an alias
to its canonical name. Both campaigns are rewritten to canonical names before pairing, so the
direction does not matter. The default mapping (ML.ENERGY v2 -> v3) ships as package data,
`jouleflow/data/longitudinal_aliases.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from jouleflow.analysis.compare.common import CompareError

BUNDLED = "bundled:longitudinal_aliases.yaml"
# Alias section -> the summary column it rewrites.
SECTIONS = {"tasks": "task", "models": "model", "gpus": "gpu"}


@dataclass(frozen=True)
class Aliases:
    tasks: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    gpus: dict[str, str] = field(default_factory=dict)
    source: str = "(none)"

    def canonical(self, section: str, name: str) -> str:
        return getattr(self, section).get(name, name)

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        """Rewrite the task, model and GPU columns to canonical names."""
        exprs = []
        for section, column in SECTIONS.items():
            mapping = getattr(self, section)
            if mapping and column in df.columns:
                exprs.append(pl.col(column).replace(mapping).alias(column))
        return df.with_columns(exprs) if exprs else df

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, **{s: dict(getattr(self, s)) for s in SECTIONS}}


def parse_aliases(doc: Any, source: str) -> Aliases:
    """Validate an alias document; errors name the file and the key at fault."""
    if doc is None:
        return Aliases(source=source)
    if not isinstance(doc, dict):
        raise CompareError(
            f"alias file {source}: expected a mapping with sections {', '.join(SECTIONS)}, "
            f"got {type(doc).__name__}"
        )
    unknown = [str(k) for k in doc if k not in SECTIONS]
    if unknown:
        raise CompareError(
            f"alias file {source}: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}"
        )
    sections: dict[str, dict[str, str]] = {}
    for section in SECTIONS:
        body = doc.get(section) or {}
        if not isinstance(body, dict):
            raise CompareError(
                f"alias file {source}: section {section!r} should map alias -> canonical name, "
                f"got {type(body).__name__}"
            )
        mapping: dict[str, str] = {}
        for alias, canonical in body.items():
            if not isinstance(alias, str) or not isinstance(canonical, str) or not alias or not canonical:
                raise CompareError(
                    f"alias file {source}: {section}.{alias}: alias and canonical name must be "
                    f"non-empty strings, got {alias!r}: {canonical!r}"
                )
            mapping[alias] = canonical
        # A canonical name that is itself an alias would make the result depend on rewrite order.
        chained = sorted(c for c in mapping.values() if c in mapping)
        if chained:
            raise CompareError(
                f"alias file {source}: {section}.{chained[0]} is both an alias and a canonical name"
            )
        sections[section] = mapping
    return Aliases(**sections, source=source)


def load_aliases(path: str | Path | None = None) -> Aliases:
    """The alias file at `path`, or the bundled default (ML.ENERGY v2 <-> v3) when None."""
    if path is None:
        text = resources.files("jouleflow").joinpath("data/longitudinal_aliases.yaml").read_text()
        source = BUNDLED
    else:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise CompareError(f"alias file {source}: cannot read ({exc.strerror or exc})") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CompareError(f"alias file {source}: not valid YAML ({exc})") from exc
    return parse_aliases(doc, source)
