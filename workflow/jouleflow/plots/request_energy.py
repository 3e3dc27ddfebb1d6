"""Per-request energy of one LLM run against its output length: box plots per output-length bin and their
ECDFs, from `jouleflow attribute --requests` (attribution_record.REQUEST_ENERGY) joined with the run's
requests.parquet. Only requests whose whole life lies in the steady window: the others' energy is partial."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from jouleflow import traces
from jouleflow.attribution_record import REQUEST_ENERGY
from jouleflow.plots.style import new_figure, save, style, styled
from jouleflow.records import read_run

MAX_BINS = 5


class RequestEnergyError(ValueError):
    """Nothing to plot (no request whose whole life lies in the window); the message says why."""


def output_bins(lengths: np.ndarray) -> list[tuple[int, int]]:
    """Up to MAX_BINS (lo, hi) inclusive ranges of output tokens with about equal counts."""
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, MAX_BINS + 1), method="nearest"))
    if len(edges) == 1:
        return [(int(edges[0]), int(edges[0]))]
    return [
        (int(lo) if i == 0 else int(lo) + 1, int(hi))
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    ]


@styled
def plot_request_energy(run_dir: str | Path, requests_energy: str | Path, out: str | Path) -> list[Path]:
    run_dir = Path(run_dir)
    energy = pl.from_arrow(traces.read_table(requests_energy, REQUEST_ENERGY)).filter(
        pl.col("whole_in_window")
    )
    if energy.height == 0:  # a run not attributed (failed, no window) has an empty table
        raise RequestEnergyError(f"{requests_energy}: no request whose whole life lies in the steady window")
    sent = pl.from_arrow(traces.read_table(run_dir / "requests.parquet", traces.REQUESTS))
    rows = energy.join(
        sent.select("request_id", "output_tokens").filter(pl.col("output_tokens").is_not_null()),
        on="request_id",
    )
    if rows.height == 0:
        raise RequestEnergyError(f"{requests_energy}: no request whose whole life lies in the steady window")
    lengths = rows.get_column("output_tokens").to_numpy()
    bins = output_bins(lengths)
    groups = [
        rows.filter(pl.col("output_tokens").is_between(lo, hi)).get_column("energy_j").to_numpy()
        for lo, hi in bins
    ]
    labels = [f"{lo}" if lo == hi else f"{lo}–{hi}" for lo, hi in bins]
    fig, (box, ecdf) = new_figure(7.0, 3.0, 1, 2)
    box.boxplot(groups, tick_labels=labels, showfliers=True, flierprops={"markersize": 2})
    for i, (values, label) in enumerate(zip(groups, labels, strict=True)):
        box.text(i + 1, 1.0, f"n={len(values)}", transform=box.get_xaxis_transform(), ha="center", va="bottom",
                 fontsize=6)  # fmt: skip
        if len(values):
            ordered = np.sort(values)
            ecdf.step(ordered, np.arange(1, len(ordered) + 1) / len(ordered), where="post",
                      color=style(i)["color"], label=label)  # fmt: skip
    box.set_xlabel("Output tokens")
    box.set_ylabel("Energy per request (J)")
    ecdf.set_xlabel("Energy per request (J)")
    ecdf.set_ylabel("Fraction of requests")
    ecdf.legend(title="output tokens", fontsize=7)
    config = read_run(run_dir).config if traces.is_complete_run(run_dir) else {}
    title = " · ".join(str(config[k]) for k in ("model", "task", "gpu", "batch_size") if config.get(k))
    fig.suptitle(f"Per-request energy ({rows.height} requests whole in the window) · {title}", fontsize=9)
    return save(fig, out)
