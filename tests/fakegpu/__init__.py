"""Test-only fake GPU (see fake_nvml.py). Import as `from fakegpu import ...` (tests/ is on pythonpath).

The modules inside use no package-relative imports, so a subprocess can also import them as
top-level modules with this directory on PYTHONPATH (that is how sitecustomize.py works).
The `fake_gpu` fixture lives in fakegpu.plugin (register it with pytest_plugins); it is not
imported here so that pytest can still rewrite the plugin's asserts.
"""

from fakegpu.fake_nvml import (
    FAKEGPU_DIR,
    FakeGPUConfig,
    FakeNVML,
    PowerProfile,
    install,
    subprocess_env,
    uninstall,
)

__all__ = [
    "FAKEGPU_DIR",
    "FakeGPUConfig",
    "FakeNVML",
    "PowerProfile",
    "install",
    "subprocess_env",
    "uninstall",
]
