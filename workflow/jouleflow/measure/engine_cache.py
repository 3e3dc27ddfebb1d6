"""Persistent engine caches: torch.compile, Inductor and Triton artifacts kept across grid points.

Without it every vLLM start compiles the model and its kernels again (tens of seconds to minutes
per point). With `engine_cache_dir` set, a session uses `<dir>/<host>/<engine>-<version>/`: per
host, because compiled kernels are specific to the GPU and driver, and per engine version, because
a new version's artifacts never match an old one's (keeping them apart also makes "warm" mean
"compiled by this version before").
"""

from __future__ import annotations

import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The config key the planner turns into the job spec's engine_cache_dir (named in errors).
CONFIG_KEY = "measurement.engine_cache_dir"


class EngineCacheError(ValueError):
    """The cache directory cannot be used (bad input: the session ends before the engine starts)."""


@dataclass(frozen=True)
class EngineCache:
    path: Path
    warm: bool  # the directory held files for this engine version before this session started

    def provenance(self) -> dict[str, object]:
        return {"dir": str(self.path), "warm": self.warm}


def cache_path(root: str | Path, engine: str, version: str | None, host: str | None = None) -> Path:
    """`<root>/<host>/<engine>-<version>` (absolute); an unknown version is "unknown"."""
    host = host or socket.gethostname()
    return Path(root).expanduser().resolve() / host / f"{engine}-{version or 'unknown'}"


def prepare(root: str | Path, engine: str, version: str | None, host: str | None = None) -> EngineCache:
    """Create the session's cache directory and check it is writable; note whether it was warm."""
    path = cache_path(root, engine, version, host)
    warm = path.is_dir() and any(path.iterdir())
    try:
        path.mkdir(parents=True, exist_ok=True)
        # os.access is not enough (read-only mounts, ACLs): actually create a file there.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise EngineCacheError(
            f"engine_cache_dir ({CONFIG_KEY}): {path} is not a writable directory ({exc.strerror or exc})"
        ) from exc
    return EngineCache(path=path, warm=warm)


def cache_env(engine: str, path: Path) -> dict[str, str]:
    """The engine's environment that points its compile caches into `path`.

    vLLM keeps torch.compile artifacts under VLLM_CACHE_ROOT and, once it compiles, redirects
    Inductor and Triton to subfolders there itself; TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR
    cover what is compiled before that (and engines other than vLLM). XDG_CACHE_HOME is left alone:
    it would move the Hugging Face cache too.
    """
    env = {
        "TORCHINDUCTOR_CACHE_DIR": str(path / "inductor"),
        "TRITON_CACHE_DIR": str(path / "triton"),
    }
    if engine == "vllm":
        env["VLLM_CACHE_ROOT"] = str(path / "vllm")
    return env


CACHE_ENV_KEYS = ("VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")


def conflicting_env(env: dict[str, str]) -> list[str]:
    """The cache variables a job's own `env` already sets (refused with engine_cache_dir)."""
    return [k for k in CACHE_ENV_KEYS if k in env]
