"""The layering rule as a contract (pyproject.toml [tool.importlinter], docs/architecture.md).

Planning, analysis, importers and plots never import `jouleflow.measure`; only plots import
plotting (`jouleflow.plots`, matplotlib); the shared modules (traces, records, gpus, tasks, units) import
no layer; nothing imports `jouleflow.cli`; only the scheduler that vLLM's engine process loads imports
vllm, and nothing imports that module.
Nothing the base install runs (those layers, the shared modules, the CLI's analysis commands) imports a
package of the measure or engine extras (zeus, aiohttp, vllm, ...).
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


# CLI modules of the commands that measure or build measurement inputs; every other one is bound by the
# no-measure-deps-in-analysis-cli contract.
MEASURING_CLI = {"measure", "measure_args", "measure_diffusion", "measure_sweep", "prepare"}


def test_every_analysis_cli_module_is_bound_by_the_no_measure_deps_contract():
    """A new CLI module that does not measure cannot escape the contract by not being listed."""
    cli = {p.stem for p in (PACKAGE / "cli").glob("*.py")} - {"__init__"}
    listed = set(contracts()["no-measure-deps-in-analysis-cli"]["source_modules"])
    assert listed == {"jouleflow", "jouleflow.cli"} | {f"jouleflow.cli.{m}" for m in cli - MEASURING_CLI}


@pytest.mark.parametrize(
    ("where", "statement", "broken"),
    [
        # A lazy import inside a function counts as much as one at the top. power imports zeus, so
        # reaching it from analysis breaks both contracts; engines.base imports no outside package.
        (
            "analysis",
            "def f():\n    from jouleflow.measure import power\n",
            {"no-measure", "no-measure-deps"},
        ),
        ("plan", "from jouleflow.measure.engines import base\n", {"no-measure"}),
        ("measure", "import matplotlib.pyplot\n", {"plotting-only-in-plots"}),
        ("analysis", "def f():\n    from jouleflow.plots import style\n", {"plotting-only-in-plots"}),
        ("plots", "from jouleflow.cli import CLIError\n", {"no-cli"}),
        ("measure", "def f():\n    import vllm\n", {"vllm-only-in-the-engine"}),
        ("cli", "from jouleflow.measure.engines import vllm_batch_limit\n", {"vllm-only-in-the-engine"}),
        # A measurement package, installed here (zeus) or not (vllm), in a layer the base install runs.
        ("analysis", "def f():\n    import zeus\n", {"no-measure-deps"}),
        ("importers", "import aiohttp\n", {"no-measure-deps"}),
        ("plots", "import vllm\n", {"no-measure-deps", "vllm-only-in-the-engine"}),
        # An analysis command of the CLI (a module that exists: the contract lists single modules).
        ("cli/energy", "def f():\n    import prometheus_client\n", {"no-measure-deps-in-analysis-cli"}),
        (
            "cli/plot",
            "def f():\n    from jouleflow.measure.engines import xdit\n",
            {"no-measure-deps-in-analysis-cli"},
        ),
    ],
)
def test_a_forbidden_import_breaks_the_contract(tmp_path, where, statement, broken):
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        PACKAGE, tmp_path / "workflow" / "jouleflow", ignore=shutil.ignore_patterns("__pycache__")
    )
    # A folder gets a new module; a module path (cli/energy) gets the statement appended.
    folder = (PACKAGE / where).is_dir()
    rel = f"{where}/layer_probe.py" if folder else f"{where}.py"
    probe = tmp_path / "workflow" / "jouleflow" / rel
    if folder:
        probe.write_text(f'"""Breaks the layering rule on purpose."""\n\n{statement}')
    else:
        probe.write_text(probe.read_text() + f"\n\n# Breaks the layering rule on purpose.\n{statement}")
    out = lint_imports(tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    for contract in broken:
        assert f"{contracts()[contract]['name']} BROKEN" in " ".join(out.stdout.split())
    module = "jouleflow." + rel.removesuffix(".py").replace("/", ".")
    assert module in out.stdout
    assert f"Contracts: {len(contracts()) - len(broken)} kept, {len(broken)} broken." in out.stdout
    # The package itself is untouched and still keeps the contract.
    assert not (PACKAGE / where / "layer_probe.py").exists()
    if not folder:
        assert statement not in (PACKAGE / rel).read_text()
