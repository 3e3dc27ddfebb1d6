"""How a run is named on disk: the model part of its key (`<task>/<model>/<gpu>/<parallelism>/<batch>`).

One home for the planner (run directories, job specs), the measurement (dummy model dirs) and the
analysis (`compare precision`'s labels), so the names cannot drift apart.
"""

from __future__ import annotations


def model_slug(model_id: str) -> str:
    """Path component for a model id: `meta-llama/Llama-3.1-8B-Instruct` → `meta-llama--Llama-3.1-8B-Instruct`."""
    return model_id.replace("/", "--")


def at_precision(name: str, precision: str) -> str:
    """`name@precision`: a model id or slug run at another precision than its checkpoint's (vLLM
    quantizes online). The run key's model part, and `compare precision`'s label for such a run."""
    return f"{name}@{precision}"
