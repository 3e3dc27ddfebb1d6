"""The layering rule as a contract (pyproject.toml [tool.importlinter], docs/architecture.md).

Planning, analysis, importers and plots never import `jouleflow.measure`; measurement never imports
plotting; the shared modules (traces, records, gpus, tasks, units) import no layer; nothing imports `jouleflow.cli`.
`lint-imports` checks it; these tests run it on the package and on a copy with a forbidden import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter depends on tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "workflow" / "jouleflow"
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on ROOT/workflow/jouleflow with ROOT/pyproject.toml's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root / "workflow")}
    cmd = [sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(root / "pyproject.toml")]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_the_package_keeps_the_layering_contract():
    out = lint_imports(REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in out.stdout


def test_every_top_level_module_is_bound_by_the_no_cli_contract():
    """A new top-level module or package cannot escape the contract by not being listed."""
    top = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()
    }
    listed = {m.removeprefix("jouleflow.") for m in contracts()["no-cli"]["source_modules"]}
    assert top - {"__init__", "__main__", "cli"} == listed


@pytest.mark.parametrize(
    ("where", "statement", "broken"),
    [
        # A lazy import inside a function counts as much as one at the top.
        ("analysis", "def f():\n    from jouleflow.measure import power\n", "no-measure"),
        ("plan", "from jouleflow.measure.engines import base\n", "no-measure"),
        ("measure", "import matplotlib.pyplot\n", "no-plotting-in-measure"),
        ("plots", "from jouleflow.cli import CLIError\n", "no-cli"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(tmp_path, where, statement, broken):
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        PACKAGE, tmp_path / "workflow" / "jouleflow", ignore=shutil.ignore_patterns("__pycache__")
    )
    probe = tmp_path / "workflow" / "jouleflow" / where / "layer_probe.py"
    probe.write_text(f'"""Breaks the layering rule on purpose."""\n\n{statement}')
    out = lint_imports(tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"{contracts()[broken]['name']} BROKEN" in out.stdout
    assert f"jouleflow.{where}.layer_probe" in out.stdout
    assert "Contracts: 3 kept, 1 broken." in out.stdout
    # The package itself is untouched and still keeps the contract.
    assert not (PACKAGE / where / "layer_probe.py").exists()
