"""Test-only fake GPU (see fake_nvml.py). Import as `from fakegpu import ...` (tests/ is on pythonpath).

The modules inside use no package-relative imports, so a subprocess can also import them as
top-level modules with this directory on PYTHONPATH (that is how sitecustomize.py works).
"""

from fakegpu.fake_nvml import FakeGPUConfig, FakeNVML, PowerProfile, install, uninstall
from fakegpu.plugin import FAKEGPU_DIR, fake_gpu, subprocess_env

__all__ = [
    "FAKEGPU_DIR",
    "FakeGPUConfig",
    "FakeNVML",
    "PowerProfile",
    "fake_gpu",
    "install",
    "subprocess_env",
    "uninstall",
]
