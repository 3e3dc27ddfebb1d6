"""Dependencies follow the layers (pyproject.toml extras, docs/architecture.md).

The base install (`pip install -e .`) plans a campaign and reproduces the bundled one; measuring needs
`[measure]` (or an engine extra, `[vllm]`, `[xdit]`, that holds it). Here the CLI and the whole bundled
campaign run with every package of those extras made unimportable, as on a base install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from base_install import BLOCKED, BLOCKER, ENGINE_EXTRAS, EXTRAS, PROJECT, blocked_env, names
from packaging.requirements import Requirement
from pipeline_helpers import H200_POINTS, REPO, copy_campaign

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter depends on tomli there
    import tomli as tomllib

PACKAGE = REPO / "workflow" / "jouleflow"


def test_the_base_install_holds_no_package_of_the_extras():
    base = names(PROJECT["dependencies"])
    for extra in ("measure", *ENGINE_EXTRAS):
        assert not base & names(EXTRAS[extra]), extra
    # pynvml (nvidia-ml-py) stays: planning `gpus: [local]` asks NVML for the GPU type.
    assert "nvidia-ml-py" in base
    # `snakemake --report` needs pygments, which no other base dependency brings.
    (snakemake,) = (Requirement(r) for r in PROJECT["dependencies"] if r.startswith("snakemake["))
    assert "reports" in snakemake.extras


def test_the_engine_extras_list_the_measure_extra_as_it_stands():
    """Tools that stage the dependencies from pyproject.toml (offline GPU hosts) take an extra's list
    as it is written, without following a "jouleflow[measure]" self-reference."""
    for extra in ENGINE_EXTRAS:
        assert set(EXTRAS["measure"]) <= set(EXTRAS[extra]), extra
        assert "jouleflow" not in names(EXTRAS[extra]), extra
    # The test suite measures (fake GPU, CPU engine): `pip install -e ".[test]"` brings all of it.
    assert "jouleflow[measure]" in EXTRAS["test"]


def test_the_layering_contracts_forbid_every_package_of_the_extras():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = {c["id"]: c for c in config["contracts"]}
    for contract in ("no-measure-deps", "no-measure-deps-in-analysis-cli"):
        assert set(BLOCKED) <= set(contracts[contract]["forbidden_modules"]), contract


def base_path_modules(package: Path) -> list[str]:
    """Every module the base install runs: planning, analysis, importers, plots, the shared modules
    and the CLI (whose measuring commands import measurement only inside their handlers)."""
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[1] == "measure" or parts[-1] == "__main__":
            continue
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


IMPORT_ALL = """\
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
from jouleflow.cli import build_parser
build_parser()
try:
    import zeus
except ModuleNotFoundError:
    pass
else:
    sys.exit("the blocker let zeus through")
print("ok", len(sys.argv) - 1)
"""


def import_base_path(tmp_path: Path, workflow: Path) -> subprocess.CompletedProcess:
    modules = base_path_modules(workflow / "jouleflow")
    cmd = [sys.executable, "-c", IMPORT_ALL, *modules]
    env = blocked_env(tmp_path, workflow)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_every_module_of_the_base_path_imports_without_the_extras(tmp_path):
    modules = base_path_modules(PACKAGE)
    assert {"jouleflow.plan.grid", "jouleflow.analysis.energy", "jouleflow.cli.plot"} <= set(modules)
    out = import_base_path(tmp_path, REPO / "workflow")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split() == ["ok", str(len(modules))]


@pytest.mark.parametrize(
    ("module", "statement"),
    [
        ("analysis/energy.py", "import zeus"),
        ("plots/style.py", "import aiohttp"),
        ("cli/energy.py", "import prometheus_client"),
        # `jouleflow --help` loads every CLI module: a measuring command's module-level import counts.
        ("cli/measure.py", "from jouleflow.measure import power, session"),
    ],
)
def test_a_top_level_measurement_import_fails_the_base_path(tmp_path, module, statement):
    workflow = tmp_path / "workflow"
    shutil.copytree(PACKAGE, workflow / "jouleflow", ignore=shutil.ignore_patterns("__pycache__"))
    probe = workflow / "jouleflow" / module
    # After the module's `from __future__` line: the statement runs when the module is imported.
    text = probe.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    assert sep, module
    probe.write_text(f"{head}{sep}{statement}\n{rest}")
    out = import_base_path(tmp_path, workflow)
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r"ModuleNotFoundError: No module named '(zeus|aiohttp|prometheus_client)'", out.stderr)


@pytest.mark.slow
def test_the_bundled_campaign_runs_without_the_extras(bundled_campaign, tmp_path):
    """`snakemake --cores all` and `--report` on the bundled campaign (the test fixture's runs), every
    process blocked. The run is the session's (conftest.py: `bundled_campaign`, run as a base install
    runs it); the report is built on a copy of it."""
    site = Path(bundled_campaign.env["PYTHONPATH"].split(os.pathsep)[0])
    assert (site / "sitecustomize.py").read_text() == BLOCKER  # it ran with every extra blocked
    bundled_campaign.check()
    results = bundled_campaign.workdir / "results"
    assert len(list((results / "energy").rglob("summary.json"))) == 3 + len(
        H200_POINTS
    )  # 3 H100 (fixture) + the bundle's H200 runs
    for made in ("summary/summary.parquet", "summary/summary.csv", "tables/provenance.csv"):
        assert (results / made).stat().st_size > 0, made
    assert list((results / "figures").rglob("*.png"))
    work = copy_campaign(bundled_campaign, tmp_path / "wf")
    env = blocked_env(tmp_path, work / "workflow")
    env["PATH"] = f"{work / '.test-bin'}{os.pathsep}{env['PATH']}"
    cmd = [sys.executable, "-m", "snakemake", "--cores", "all", "--quiet", "progress"]
    report = subprocess.run(
        [*cmd, "--report", "results/report.html"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stdout + report.stderr
    assert (work / "results" / "report.html").stat().st_size > 0
