"""Task families and their default latency metrics: one home for the planner and the analysis.

The default latency metric of a task is the first column of its preference list that the task's
rows actually carry. The fall-backs exist for published data that lacks the preferred metric
(ML.ENERGY v2 has only the average TPOT; v3's sourcegraph-fim has only ITL); the metric used is
always reported. Stdlib only.
"""

from __future__ import annotations

CHAT_TASKS = frozenset({"lm-arena-chat", "gpqa", "chat", "image-chat", "video-chat"})
CODE_TASKS = frozenset({"sourcegraph-fim", "code"})
CHAT_METRICS = ("median_itl_s", "median_tpot_s")
CODE_METRICS = ("median_e2e_s", "median_itl_s", "median_tpot_s")
DIFFUSION_METRICS = ("batch_latency_s",)


def latency_preferences(task: str, modality: str | None = None) -> tuple[str, ...] | None:
    """The task's latency metrics, most preferred first; None when neither task nor modality says."""
    if task in CHAT_TASKS:
        return CHAT_METRICS
    if task in CODE_TASKS:
        return CODE_METRICS
    if modality == "diffusion" or task.startswith(("text-to-", "image-to-")):
        return DIFFUSION_METRICS
    if modality == "llm":
        return CHAT_METRICS
    return None
