"""Shared pytest fixtures. Not a package: see pyproject's importlib mode (zeus ships a `tests` package)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = REPO_ROOT / "tests" / "data"


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def test_data() -> Path:
    return TEST_DATA


@pytest.fixture(scope="session")
def bundled_campaign(tmp_path_factory):
    """The whole default campaign, run once for the session by `snakemake --cores all` as a base
    install runs it (pipeline_helpers.run_bundled_campaign). Read-only: copy it to change it."""
    from pipeline_helpers import run_bundled_campaign

    return run_bundled_campaign(tmp_path_factory.mktemp("bundled-campaign"))


# The test-only fake GPU (patched pynvml functions under Zeus's real code): `fake_gpu` fixture.
pytest_plugins = ["fakegpu.plugin"]
