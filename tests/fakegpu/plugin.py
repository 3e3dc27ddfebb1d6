"""Pytest plugin providing the `fake_gpu` fixture. Register with `pytest_plugins = ["fakegpu.plugin"]`."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from fakegpu import fake_nvml

FAKEGPU_DIR = Path(__file__).resolve().parent
# Variables that would change which GPUs Zeus sees or route it to a daemon: cleared per test.
_GPU_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ZEUSD_SOCK_PATH",
    "ZEUSD_HOST_PORT",
    "ZEUSD_TOKEN",
)


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[fake_nvml.FakeNVML]:
    """One fake H100 at a constant 300 W; call `.configure(FakeGPUConfig(...))` for others.

    Removed (real pynvml functions restored, Zeus's singletons reset) when the test ends.
    """
    for var in _GPU_ENV:
        monkeypatch.delenv(var, raising=False)
    fake = fake_nvml.install()
    try:
        yield fake
    finally:
        fake_nvml.uninstall()


def subprocess_env(fake: fake_nvml.FakeNVML, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child Python process that should see the same fake GPUs (same power clock)."""
    env = dict(os.environ if base is None else base)
    for var in _GPU_ENV:
        env.pop(var, None)
    env.update(fake.config.to_env())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FAKEGPU_DIR), env.get("PYTHONPATH", "")]))
    return env
