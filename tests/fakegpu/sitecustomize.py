"""Install the fake GPU in any Python process started with this directory on PYTHONPATH.

Tests only: `PYTHONPATH=<repo>/tests/fakegpu:<repo>/workflow python -m jouleflow ...` runs the
real CLI on fake NVML devices configured by the FAKE_GPU_* variables (see fake_nvml.py).
Python imports only the first `sitecustomize` on sys.path, so this one hands over to the next
one (a distribution's own) after installing the fake.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def _install_fake() -> None:
    import fake_nvml

    fake_nvml.install(fake_nvml.FakeGPUConfig.from_env())


def _chain_next_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_next_sitecustomize", candidate)
            if spec and spec.loader:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


_install_fake()
_chain_next_sitecustomize()
