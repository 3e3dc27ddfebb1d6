"""Parallelism labels (`tp2`, `tp2-pp2`, `tp4-ep`, `dp2`, `uly2-ring1-cfg2-pf2`) and the GPU counts they imply.

A label is a dash-separated list of `<kind><degree>` parts (plus the bare flag `ep`). Degrees that
are not given are 1. The label is also a path component of a run directory, so it is kept as given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# tp/pp/dp: vLLM tensor/pipeline/data parallel; uly/ring/cfg/pf: xDiT Ulysses, ring, CFG parallel
# (degree 2 only) and PipeFusion.
_DEGREE_KINDS = ("tp", "pp", "dp", "uly", "ring", "cfg", "pf")
_PART = re.compile(r"^(tp|pp|dp|uly|ring|cfg|pf)([1-9][0-9]*)$")


@dataclass(frozen=True)
class Parallelism:
    label: str
    tensor: int = 1
    pipeline: int = 1
    data: int = 1
    ulysses: int = 1
    ring: int = 1
    cfg: int = 1
    pipefusion: int = 1
    expert: bool = False

    @property
    def num_gpus(self) -> int:
        return self.tensor * self.pipeline * self.data * self.ulysses * self.ring * self.cfg * self.pipefusion

    @property
    def gpus_per_replica(self) -> int:
        """GPUs that share one copy of the weights. Tensor, pipeline and PipeFusion parallelism split
        the weights; data, Ulysses, ring and CFG parallelism replicate them, except that expert
        parallelism spreads the experts over the data-parallel ranks too."""
        shards = self.tensor * self.pipeline * self.pipefusion
        return shards * self.data if self.expert else shards


def parse_parallelism(label: str) -> Parallelism:
    """Parse a label; raises ValueError saying which part is wrong."""
    if not isinstance(label, str) or not label:
        raise ValueError(f"parallelism must be a non-empty label such as 'tp1', got {label!r}")
    degrees: dict[str, int] = {}
    expert = False
    for part in label.split("-"):
        if part == "ep":
            if expert:
                raise ValueError(f"parallelism {label!r}: 'ep' given twice")
            expert = True
            continue
        match = _PART.match(part)
        if match is None:
            raise ValueError(
                f"parallelism {label!r}: unknown part {part!r} "
                f"(expected {', '.join(k + 'N' for k in _DEGREE_KINDS)} or 'ep')"
            )
        kind, degree = match.group(1), int(match.group(2))
        if kind in degrees:
            raise ValueError(f"parallelism {label!r}: {kind!r} given twice")
        degrees[kind] = degree
    if not degrees:
        raise ValueError(f"parallelism {label!r}: needs at least one degree, e.g. 'tp1'")
    if degrees.get("cfg", 1) > 2:
        raise ValueError(f"parallelism {label!r}: CFG parallelism splits a batch in two, so only cfg2")
    return Parallelism(
        label=label,
        tensor=degrees.get("tp", 1),
        pipeline=degrees.get("pp", 1),
        data=degrees.get("dp", 1),
        ulysses=degrees.get("uly", 1),
        ring=degrees.get("ring", 1),
        cfg=degrees.get("cfg", 1),
        pipefusion=degrees.get("pf", 1),
        expert=expert,
    )
