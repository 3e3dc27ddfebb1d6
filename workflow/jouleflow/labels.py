"""One vocabulary for the summary's quantities: name, statistic and unit, as figures and tables show them.

Every figure axis, every comparison figure and `recommend`'s text take their labels from here, so
a quantity reads the same everywhere ("Median ITL (ms)"). Where a source publishes a different
statistic under a summary column, the label says so: ML.ENERGY v2 publishes the *mean* TPOT, which
the importer stores as median_tpot_s (no median exists there), so with v2 rows it reads "Mean TPOT".
"""

from __future__ import annotations

from collections.abc import Iterable

# summary column -> (statistic and quantity, unit of the column)
QUANTITIES: dict[str, tuple[str, str]] = {
    "median_itl_s": ("Median ITL", "s"),
    "p90_itl_s": ("P90 ITL", "s"),
    "p95_itl_s": ("P95 ITL", "s"),
    "p99_itl_s": ("P99 ITL", "s"),
    "median_tpot_s": ("Median TPOT", "s"),
    "median_ttft_s": ("Median TTFT", "s"),
    "median_e2e_s": ("Median end-to-end latency", "s"),
    "p90_e2e_s": ("P90 end-to-end latency", "s"),
    "batch_latency_s": ("Batch latency", "s"),
    "energy_per_token_j": ("Energy per token", "J"),
    "energy_per_response_j": ("Energy per response", "J"),
    "tdp_estimate_j": ("TDP-based estimate per response", "J"),
    "mean_power_w": ("Mean power, all GPUs", "W"),
    "gpu_tdp_w": ("GPU TDP", "W"),
    "tokens_per_s": ("Throughput", "tokens/s"),
    "mean_output_tokens": ("Mean output length", "tokens"),
    "mean_batch_size": ("Mean running batch", "requests"),
    "steady_duration_s": ("Steady window", "s"),
    "batch_size": ("Batch size", "max concurrent requests"),
}

# Per-token latencies read better in milliseconds.
MS_COLUMNS = frozenset(
    {"median_itl_s", "p90_itl_s", "p95_itl_s", "p99_itl_s", "median_tpot_s", "median_ttft_s"}
)

# (column, source) whose published statistic is the mean, not the column's median.
MEAN_FROM_SOURCE = {("median_tpot_s", "mlenergy-v2"): "Mean TPOT"}


def column_of(name: str) -> str:
    """`median_itl` or `median_itl_s` → `median_itl_s` (metric names drop the unit suffix)."""
    if name in QUANTITIES:
        return name
    for suffix in ("_s", "_j", "_w"):
        if name + suffix in QUANTITIES:
            return name + suffix
    return name


def name(column: str, sources: Iterable[str | None] = ()) -> str:
    """The quantity with its statistic: "Median ITL"; "Mean TPOT" when every row is from v2."""
    column = column_of(column)
    found = {s for s in sources if s is not None}
    if found and len(found) == 1:
        override = MEAN_FROM_SOURCE.get((column, next(iter(found))))
        if override:
            return override
    if found and any((column, s) in MEAN_FROM_SOURCE for s in found):
        base = QUANTITIES[column][0].removeprefix("Median ")
        return f"Median or mean {base}"  # a mixed table: say that both statistics are in it
    return QUANTITIES.get(column, (column, ""))[0]


def scale(column: str) -> tuple[float, str]:
    """(factor, display unit) for a column's values: seconds of per-token latency shown in ms."""
    column = column_of(column)
    if column in MS_COLUMNS:
        return 1e3, "ms"
    return 1.0, QUANTITIES.get(column, ("", ""))[1]


def label(column: str, sources: Iterable[str | None] = (), noun: str | None = None, extra: str = "") -> str:
    """Axis or header text: "Median ITL (ms)", "Energy per image (J)"; `extra` goes inside the parentheses."""
    column = column_of(column)
    text = name(column, sources)
    if noun and column == "energy_per_response_j":
        text = f"Energy per {noun}"
    unit = scale(column)[1]
    inside = ", ".join(p for p in (unit, extra) if p)
    return f"{text} ({inside})" if inside else text
