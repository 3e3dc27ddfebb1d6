"""The conda environments of the rules (envs/*.yaml) pin versions that pyproject.toml allows.

jouleflow is installed into them with --no-deps (envs/*.post-deploy.sh), so nothing else would
notice a pin outside jouleflow's own ranges (as huggingface-hub 2.x once was in envs/vllm.yaml).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]
# Which optional extra of pyproject each environment stands for.
ENV_EXTRA = {"vllm": "vllm", "xdit": "xdit", "analysis": None}
# conda-forge names of PyPI packages.
CONDA_NAMES = {"matplotlib-base": "matplotlib"}


def pins(env: Path) -> dict[str, str]:
    """name -> pinned version, from the conda (`name =1.2`) and pip (`name==1.2`) sections."""
    found: dict[str, str] = {}
    for dep in yaml.safe_load(env.read_text())["dependencies"]:
        for spec in dep["pip"] if isinstance(dep, dict) else [dep]:
            name, sep, version = spec.replace(" ", "").replace("==", "=").partition("=")
            if sep:
                found[canonicalize_name(CONDA_NAMES.get(name, name))] = version
    return found


def ranges(extra: str | None) -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [*project["dependencies"], *(project["optional-dependencies"][extra] if extra else [])]
    reqs.append(f"python{project['requires-python']}")
    return {canonicalize_name(r.name): r for r in map(Requirement, reqs)}


@pytest.mark.parametrize("env", sorted(ENV_EXTRA))
def test_env_pins_are_inside_pyproject_ranges(env):
    pinned = pins(REPO / "envs" / f"{env}.yaml")
    allowed = ranges(ENV_EXTRA[env])
    checked = sorted(set(pinned) & set(allowed))
    assert checked, "no package of the env is a jouleflow dependency"
    outside = {
        name: f"{pinned[name]} not in {allowed[name].specifier}"
        for name in checked
        if not allowed[name].specifier.contains(pinned[name], prereleases=True)
    }
    assert not outside, f"envs/{env}.yaml pins outside pyproject.toml: {outside}"


def test_every_env_is_checked():
    assert {p.stem for p in (REPO / "envs").glob("*.yaml")} == set(ENV_EXTRA)


def extra_names(*extras: str) -> set[str]:
    optional = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {canonicalize_name(Requirement(r).name) for e in extras for r in optional[e]}


def test_the_analysis_env_holds_no_measurement_package():
    """Rules that only analyse run in envs/analysis.yaml, as on a base install: no measure or engine extra."""
    assert not set(pins(REPO / "envs" / "analysis.yaml")) & extra_names("measure", "vllm", "xdit")


def test_the_llm_measurement_env_holds_the_measure_extra():
    """jouleflow goes into the env with --no-deps: the env itself must bring what measuring imports."""
    assert extra_names("measure") <= set(pins(REPO / "envs" / "vllm.yaml"))
