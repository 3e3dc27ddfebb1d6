"""The error and the nested sections of an LLM job spec (container, synthetic, saturate).

measure.jobconfig re-exports them; they live here so that each module stays short.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A job spec is invalid; the message names the key (and the file when known)."""


@dataclass
class ContainerConfig:
    runtime: str  # apptainer | singularity | docker
    image: str
    binds: list[str] = field(default_factory=list)  # extra "SRC[:DST[:ro]]"
    args: list[str] = field(default_factory=list)  # extra runtime arguments


@dataclass
class SyntheticConfig:
    """How to generate the request set when no `request_set` file is given."""

    # ML.ENERGY v3 models/*.json file with per-configuration output-length histograms, or null for fixed_output_len.
    output_lengths: str | None = None
    # Which histogram configuration: defaults to the job's gpu, num_gpus and batch_size.
    histogram_gpu: str | None = None
    histogram_num_gpus: int | None = None
    histogram_max_num_seqs: int | None = None
    fixed_output_len: int | None = None
    prompt_len: str = "fixed:200"  # fixed:N | uniform:A,B | normal:MEAN,STD
    seed: int = 0
    media: dict[str, Any] | None = None  # media per request (synthetic.MediaSpec, sizes "WxH"); null = text


@dataclass
class SaturateConfig:
    """arrival=saturate: keep B + headroom requests in flight until J/token has converged."""

    target_window_s: float = 60.0  # shortest steady window before stopping
    target_ci: float = 0.01  # stop when the J/token 95% CI half-width / mean is at most this
    max_load_s: float = 600.0  # stop here anyway (the run is flagged when not converged)
    interval_s: float = 5.0  # batch-means interval length
    # Requests waiting beyond B; null = max(4, B // 8), raised while the engine runs short (topup).
    headroom: int | None = None
    # The window begins this many mean response times after the batch first filled, once the
    # batch's context mix is steady (measure.warmup); 0 = at the full batch.
    warmup_response_times: float = 1.0

    def validate(self) -> None:
        for key in ("target_window_s", "target_ci", "max_load_s", "interval_s"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
                raise ConfigError(f"saturate.{key}: must be a number > 0, got {value!r}")
        h = self.headroom
        if h is not None and not (isinstance(h, int) and not isinstance(h, bool) and h >= 0):
            raise ConfigError(f"saturate.headroom: must be an integer >= 0 or null, got {self.headroom!r}")
        w = self.warmup_response_times
        if not (isinstance(w, (int, float)) and not isinstance(w, bool) and 0 <= w < float("inf")):
            raise ConfigError(f"saturate.warmup_response_times: must be a number >= 0, got {w!r}")
        if self.interval_s * 2 > self.target_window_s:
            raise ConfigError(
                f"saturate.interval_s: {self.interval_s:g} s leaves fewer than 2 intervals in "
                f"target_window_s={self.target_window_s:g} s"
            )
        if self.max_load_s < self.target_window_s:
            raise ConfigError(
                f"saturate.max_load_s: {self.max_load_s:g} s is shorter than target_window_s={self.target_window_s:g} s"
            )
