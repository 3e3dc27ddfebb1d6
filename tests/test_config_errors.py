"""Config errors a person can act on: key path, value, a valid example, "did you mean"; no schema dump."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jouleflow.plan.config import ConfigSchemaError, validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema" / "config.schema.yaml"
BASE = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _error(update: dict, verbose: bool | None = False) -> str:
    config = copy.deepcopy(BASE)
    config.update(update)
    with pytest.raises(ConfigSchemaError) as info:
        validate_config(config, SCHEMA, verbose=verbose)
    return str(info.value)


def test_misspelt_top_level_key_says_did_you_mean():
    first = _error({"validty": {"min_steady_s": 5}}).splitlines()[0]
    assert first.startswith("config: Additional properties are not allowed ('validty' was unexpected)")
    assert "did you mean validity?" in first


def test_misspelt_nested_key_names_its_full_path():
    message = _error({"validity": {"min_stedy_s": 5}})
    assert "did you mean validity.min_steady_s?" in message.splitlines()[0]


def test_bad_duration_gives_the_value_and_an_example_not_a_regex():
    message = _error({"analysis": {"latency_targets": {"lm-arena-chat": ["soon"]}}})
    first = message.splitlines()[0]
    assert first == (
        "analysis.latency_targets.lm-arena-chat[0]: 'soon' does not match the expected form (e.g. '50ms')"
    )
    assert "[0-9]" not in message


def test_wrong_type_gives_an_example_from_the_schema_default():
    first = _error({"validity": {"min_steady_s": "lots"}}).splitlines()[0]
    assert first.startswith("validity.min_steady_s: 'lots' is not of type 'number' (e.g. ")


def test_no_schema_dump_unless_verbose():
    short = _error({"validty": {}})
    assert len(short.splitlines()) == 2 and "Failed validating" not in short
    assert "JOULEFLOW_VERBOSE=1" in short
    long = _error({"validty": {}}, verbose=True)
    assert "Failed validating 'additionalProperties'" in long and len(long.splitlines()) > 10


def _snakemake_n(tmp_path: Path, override: dict, *extra: str, env: dict | None = None) -> list[str]:
    path = tmp_path / "override.yaml"
    path.write_text(yaml.safe_dump(override))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", *extra, "--configfile", "config/config.yaml", str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # snakemake logs to stdout when not on a terminal
        text=True,
        env={**os.environ, "JOULEFLOW_VERBOSE": "", **(env or {})},
        timeout=300,
    )
    assert proc.returncode != 0
    return proc.stdout.splitlines()


def test_snakemake_misspelt_key_leads_the_error(tmp_path: Path):
    lines = _snakemake_n(tmp_path, {"validty": {"min_steady_s": 5}})
    message = next(i for i, line in enumerate(lines) if line.startswith("Invalid config: "))
    assert message <= 2  # after snakemake's "extended by" note and its "WorkflowError in file" line
    assert "'validty' was unexpected" in lines[message] and "did you mean validity?" in lines[message]
    assert not any("Failed validating" in line for line in lines)


def test_snakemake_bad_value_leads_the_error(tmp_path: Path):
    lines = _snakemake_n(tmp_path, {"analysis": {"latency_targets": {"lm-arena-chat": ["soon"]}}})
    assert (
        "Invalid config: analysis.latency_targets.lm-arena-chat[0]: 'soon' does not match "
        "the expected form (e.g. '50ms')"
    ) in lines[:3]


def test_snakemake_verbose_shows_the_schema(tmp_path: Path):
    lines = _snakemake_n(tmp_path, {"validty": {}}, env={"JOULEFLOW_VERBOSE": "1"})
    assert any("Failed validating 'additionalProperties'" in line for line in lines)
