"""Pytest plugin providing the `fake_gpu` fixture. Register with `pytest_plugins = ["fakegpu.plugin"]`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakegpu import fake_nvml


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[fake_nvml.FakeNVML]:
    """One fake H100 at a constant 300 W; call `.configure(FakeGPUConfig(...))` for others.

    Removed (real pynvml functions restored, Zeus's singletons reset) when the test ends.
    """
    for var in fake_nvml.GPU_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    fake = fake_nvml.install()
    try:
        yield fake
    finally:
        fake_nvml.uninstall()
