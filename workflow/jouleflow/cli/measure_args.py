"""Argument plumbing shared by `jouleflow measure llm` and `jouleflow measure diffusion`.

Import-light on purpose (argparse, shlex): `jouleflow --help` loads it, and so does the
diffusion side, whose environment has no aiohttp.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from typing import Any

# flag dest -> container section key
CONTAINER_FLAGS = {
    "container_runtime": "runtime",
    "container_image": "image",
    "container_bind": "binds",
    "container_arg": "args",
}
# Parser bookkeeping that is never a job-spec key.
NOT_CONFIG = {"func", "command", "verbose", "config", "out", "print_config", "measure_kind", "env_kv"}


def duration(text: str) -> float:
    """ "5s", "250ms", "1.5min" (jouleflow.units), as an argparse type."""
    from jouleflow.units import DurationError, parse_duration

    try:
        return parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def merge_job_spec(
    given: Mapping[str, Any],
    *,
    skip: set[str],
    sections: Mapping[str, tuple[str, str]],
    extra_args: str,
) -> dict[str, Any]:
    """The job spec file (if any) with the flags merged in: one job-spec dict.

    `sections` maps a flag dest to (section, key) of a nested spec section; `extra_args` names the
    list key that `--<extra-args>` (one per flag) and `--<extra-args>-str` (one shell-quoted
    string) append to; `--env KEY=VALUE` flags update `env`.
    """
    from jouleflow.measure.jobconfig import load_job_spec

    joined = f"{extra_args}_str"
    spec: dict[str, Any] = load_job_spec(given["config"]) if "config" in given else {}
    for dest, value in given.items():
        if dest in NOT_CONFIG or dest in skip or dest == joined:
            continue
        if dest in sections:
            section, key = sections[dest]
            spec.setdefault(section, {})[key] = value
        elif dest == extra_args:
            spec[extra_args] = list(spec.get(extra_args) or []) + value
        elif dest == "launcher":
            spec["launcher"] = shlex.split(value)
        else:
            spec[dest] = value
    if joined in given:
        spec[extra_args] = list(spec.get(extra_args) or []) + shlex.split(given[joined])
    if "env_kv" in given:
        spec["env"] = {**(spec.get("env") or {}), **dict(given["env_kv"])}
    return spec


OUT_HELP = "run directory to create (never overwritten); not needed with --print-config"


def required_out(args: argparse.Namespace) -> str:
    """`-o/--out`, which only --print-config can do without (argparse's message and status 2)."""
    from jouleflow.cli import CLIError

    out = getattr(args, "out", None)
    if not out:
        raise CLIError("the following arguments are required: -o/--out (only --print-config runs without it)")
    return out


def print_run_status(run_dir: Any) -> None:
    """One line: the committed run's status, directory and reason."""
    from jouleflow.records import read_run

    run = read_run(run_dir)
    print(f"{run.status}: {run_dir}" + (f" ({run.reason})" if run.reason else ""))
