"""Provenance of a measurement: host, software versions, git SHA, CUDA, phase timings.

Never imports vllm or torch (importlib.metadata reads versions from the installed metadata).
"""

from __future__ import annotations

import contextlib
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import jouleflow

CHECKOUT_ROOT = Path(jouleflow.__file__).resolve().parents[2]


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_sha(root: Path = CHECKOUT_ROOT, timeout_s: float = 5.0) -> str | None:
    """SHA of the jouleflow checkout (with "-dirty" when it has uncommitted changes); None outside git."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=timeout_s
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def cuda_driver_version() -> str | None:
    """The driver's CUDA version via NVML (e.g. "13.0"); None without an NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            v = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        finally:
            pynvml.nvmlShutdown()
        return f"{v // 1000}.{(v % 1000) // 10}"
    except Exception:
        return None


def nvidia_driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            v = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return v.decode() if isinstance(v, bytes) else str(v)
    except Exception:
        return None


def engine_version(engine: str) -> str | None:
    return package_version({"vllm": "vllm", "transformers": "transformers"}.get(engine, engine))


def base_provenance(engine: str) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "jouleflow_version": jouleflow.__version__,
        "git_sha": git_sha(),
        "engine": engine,
        "engine_version": engine_version(engine),
        "torch_version": package_version("torch"),
        "zeus_version": package_version("zeus") or package_version("zeus-ml"),
        "driver": nvidia_driver_version(),
        "cuda": cuda_driver_version(),
    }


class PhaseTimer:
    """Wall-clock [t0, t1] (unix s) of each named phase of a session."""

    def __init__(self) -> None:
        self.phases: dict[str, list[float | None]] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.phases[name] = [time.time(), None]
        try:
            yield
        finally:
            self.phases[name][1] = time.time()
