"""A base install (`pip install -e .`, no extras) imitated in subprocesses: every package of the
`[measure]` and engine extras made unimportable through a sitecustomize.py on PYTHONPATH.

Used by test_extras.py and by the session's shared run of the bundled campaign (conftest.py's
`bundled_campaign`), which runs as a base install runs it."""

from __future__ import annotations

import os
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter depends on tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
ENGINE_EXTRAS = ("vllm", "xdit")
# Pulled in by the engines, never named by them: blocked as well.
ENGINE_STACK = ("torch", "transformers")


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def import_name(dist: str) -> str:
    """The top-level module of a distribution of the extras (prometheus-client -> prometheus_client)."""
    return dist.replace("-", "_")


# Every package a base install lacks, by import name.
BLOCKED = sorted(
    {import_name(n) for extra in ("measure", *ENGINE_EXTRAS) for n in names(EXTRAS[extra])}
    | set(ENGINE_STACK)
)
# sitecustomize.py on PYTHONPATH: every Python process started with it (Snakemake, each `jouleflow`
# command of a rule) finds none of BLOCKED, as if it were not installed.
BLOCKER = f"""\
import importlib.abc
import sys

BLOCKED = {BLOCKED!r}


class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in the base install)", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""


def blocked_env(tmp_path: Path, workflow: Path) -> dict[str, str]:
    site = tmp_path / "blocker"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{workflow}"}
