"""Load a campaign config outside Snakemake (the `plan` command, benchmarks), as Snakemake does.

Files are merged in order the way `snakemake --configfile A B` merges them (mappings key by key,
everything else replaced), then validated against the JSON schema with defaults filled by
snakemake.utils.validate, so a config means the same here as in the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from jouleflow.plan.config_errors import explain

DEFAULT_SCHEMA = Path("config/schema/config.schema.yaml")


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merged, other values (lists included) replaced."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


class ConfigSchemaError(ValueError):
    """The config does not match the schema; the message starts with the key at fault."""


def validate_config(
    config: dict[str, Any], schema: str | Path = DEFAULT_SCHEMA, verbose: bool | None = None
) -> dict[str, Any]:
    """Validate in place, filling defaults (snakemake.utils.validate); returns the config.

    The error leads with the key path, the value and a valid example (plan.config_errors); the
    full schema error only when `verbose` (default: JOULEFLOW_VERBOSE).
    """
    from jsonschema import ValidationError
    from snakemake.utils import validate  # lazy: only the plan command, tests and benchmarks need it

    try:
        validate(config, str(Path(schema).resolve()), set_default=True)
    except Exception as exc:
        cause = exc.__context__  # Snakemake wraps jsonschema's error in a WorkflowError
        if not isinstance(cause, ValidationError):
            raise
        raise ConfigSchemaError(explain(cause, str(schema), verbose)) from exc
    return config


def load_config(files: Sequence[str | Path], schema: str | Path = DEFAULT_SCHEMA) -> dict[str, Any]:
    """Merge the YAML files and validate; errors name the file or the key."""
    config: dict[str, Any] = {}
    for path in files:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config must be a mapping")
        merge(config, data)
    return validate_config(config, schema)
