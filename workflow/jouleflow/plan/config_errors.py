"""A config error a person can act on: the key path, the value, one valid example, "did you mean".

jsonschema's own message ends in a dump of the schema (10 to 40 lines) and, for a pattern, a regex;
this one leads with what is wrong and where, and leaves the schema to docs/config.md and to the
verbose form (JOULEFLOW_VERBOSE=1 or `snakemake --verbose`).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

# What a value of a bare type looks like, when the schema names no example or default.
_TYPE_EXAMPLES = {
    "integer": 1,
    "number": 0.5,
    "boolean": True,
    "string": "text",
    "array": ["..."],
    "object": {},
}


def verbose_requested() -> bool:
    """JOULEFLOW_VERBOSE set to anything but empty or 0."""
    return os.environ.get("JOULEFLOW_VERBOSE", "") not in ("", "0")


def key_path(path: Sequence[str | int]) -> str:
    """`sweeps[0].batch_sizes[0]` from jsonschema's path; `config` for the top level."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.removeprefix(".") or "config"


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def example_of(schema: Any) -> Any | None:
    """One valid value: the schema's `examples`, else its default, first enum value or bare type."""
    if not isinstance(schema, Mapping):
        return None
    if schema.get("examples"):
        return schema["examples"][0]
    if "default" in schema and schema["default"] not in (None, {}, []):
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else [k for k in kind or () if k != "null"]
    if kinds and kinds[0] in ("integer", "number") and "minimum" in schema:
        return schema["minimum"]
    return _TYPE_EXAMPLES.get(kinds[0]) if kinds else None


def _did_you_mean(unknown: str, known: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
    return close[0] if close else None


def _unexpected_keys(error: Any) -> list[str]:
    """The keys an additionalProperties error refused, from the instance and the schema."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    known = set(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    return [k for k in instance if k not in known and not any(p.search(str(k)) for p in patterns)]


def explain(error: Any, schema_path: str | None = None, verbose: bool | None = None) -> str:
    """The message of a jsonschema ValidationError, led by its key path.

    Keeps jsonschema's first sentence (tests and users grep for it), drops the regex of a pattern
    error, adds one valid example and, for an unknown key, the closest known one.
    """
    where = key_path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and schema.get("properties"):
        known = sorted(schema["properties"])
        parts = [f"{where}: {error.message}"]
        for key in _unexpected_keys(error):
            prefix = "" if where == "config" else f"{where}."
            guess = _did_you_mean(str(key), known)
            if guess:
                parts.append(f"did you mean {prefix}{guess}?")
        parts.append(f"known keys here: {', '.join(known)}")
        message = "; ".join(parts)
    else:
        if error.validator == "pattern":
            sentence = f"{_show(error.instance)} does not match the expected form"
        else:
            sentence = error.message
        # What the value must be, in words (a pattern's description), then one valid example.
        notes = []
        description = schema.get("description")
        if error.validator in ("pattern", "minLength") and description:
            notes.append(" ".join(str(description).split()))
        if error.validator not in ("required", "minProperties", "additionalProperties"):
            example = example_of(schema)
            if example is not None and example != error.instance:
                notes.append(f"e.g. {_show(example)}")
        message = f"{where}: {sentence}" + (f" ({'; '.join(notes)})" if notes else "")
    if verbose if verbose is not None else verbose_requested():
        message += f"\n\nFull validation error{f' (schema {schema_path})' if schema_path else ''}:\n{error}"
    else:
        message += (
            "\nEvery key and its meaning: config/README.md; the full schema error: JOULEFLOW_VERBOSE=1."
        )
    return message
