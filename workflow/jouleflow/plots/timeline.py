"""Power timeline of one run directory: per-GPU power, the steady window shaded, running requests, and
where the run has them the idle baseline's level and the prefill bursts (where the joules go)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from jouleflow import traces
from jouleflow.plots.style import PALETTE, new_figure, note_dummy_weights, save, style, styled
from jouleflow.records import RunRecord, read_run


class TimelineError(ValueError):
    """A run directory that cannot be plotted; the message names the file and key."""


def _steady_window(path: Path) -> tuple[float, float] | None:
    if not path.is_file():
        return None
    summary = traces.read_json(path)
    window = []
    for key in ("steady_start", "steady_end"):
        value = summary.get(key, "missing")
        if value == "missing":
            raise TimelineError(f"{path}: missing key {key!r}")
        window.append(value)
    if None in window:  # energy ran but found no steady window (flagged invalid): nothing to shade
        return None
    return float(window[0]), float(window[1])


def _columns(table: pa.Table, names: list[str]) -> dict[str, list[Any]]:
    return {n: table.column(n).to_pylist() for n in names}


def _run_info(run_dir: Path) -> RunRecord | None:
    return read_run(run_dir) if traces.is_complete_run(run_dir) else None


def prefill_bursts(t: list[float], prompt_tokens: list[float | None]) -> list[tuple[float, float]]:
    """Spans between server scrapes in which the cumulative prompt_tokens counter grew (prompt tokens
    were processed), adjacent ones merged; none for a trace without the counter (older runs)."""
    samples = sorted((ti, v) for ti, v in zip(t, prompt_tokens, strict=True) if v is not None)
    spans: list[tuple[float, float]] = []
    for (t0, v0), (t1, v1) in zip(samples, samples[1:], strict=False):
        if v1 > v0:
            if spans and spans[-1][1] == t0:
                spans[-1] = (spans[-1][0], t1)
            else:
                spans.append((t0, t1))
    return spans


@styled
def plot_timeline(
    run_dir: str | Path, out: str | Path, energy_summary: str | Path | None = None
) -> list[Path]:
    """Per-GPU power (W) over time since the run's start, steady window shaded, running requests on a twin axis.

    The window comes from `energy_summary` (a `jouleflow energy` summary.json), by default the
    run directory's own summary.json; a summary given explicitly must exist.
    """
    run_dir = Path(run_dir)
    if energy_summary is not None and not Path(energy_summary).is_file():
        raise TimelineError(f"{energy_summary}: energy summary is missing")
    if not run_dir.is_dir():
        raise TimelineError(f"{run_dir}: run directory is missing")
    power_path = run_dir / "power.parquet"
    if not power_path.is_file():
        raise TimelineError(f"{power_path}: no power trace (a run without an energy sensor has none)")
    power = _columns(traces.read_table(power_path, traces.POWER), ["t", "gpu", "power_w"])
    if not power["t"]:
        raise TimelineError(f"{power_path}: the power trace is empty")
    run = _run_info(run_dir)
    t0 = (run.timing.t0 if run and run.timing else None) or min(power["t"])
    fig, (ax,) = new_figure(7.0, 3.0)
    gpus = sorted(set(power["gpu"]))
    for i, gpu in enumerate(gpus):
        samples = sorted(
            (t, w) for t, g, w in zip(power["t"], power["gpu"], power["power_w"], strict=True) if g == gpu
        )
        ax.plot(
            [t - t0 for t, _ in samples],
            [w for _, w in samples],
            color=style(i)["color"],
            lw=0.9,
            label=f"GPU {gpu}",
        )
    baseline = run.idle_baseline if run else None
    for i, gpu in enumerate(gpus):
        watts = ((baseline or {}).get("mean_power_w") or {}).get(str(gpu))
        if watts is not None:
            ax.axhline(
                watts, color=style(i)["color"], lw=0.8, ls=":", label="idle baseline" if i == 0 else None
            )
    window = _steady_window(Path(energy_summary) if energy_summary else run_dir / traces.SUMMARY_JSON)
    if window is not None:
        ax.axvspan(window[0] - t0, window[1] - t0, color="#999999", alpha=0.18, lw=0, label="steady window")
    ax.set_xlabel("Time since start (s)")
    ax.set_ylabel("Power per GPU (W)")
    ax.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    server_path = run_dir / "server.parquet"
    if server_path.is_file():
        server = _columns(traces.read_table(server_path, traces.SERVER), ["t", "running", "prompt_tokens"])
        for k, (lo, hi) in enumerate(prefill_bursts(server["t"], server["prompt_tokens"])):
            ax.axvspan(lo - t0, hi - t0, ymin=0.0, ymax=0.06, color=PALETTE[1], alpha=0.8, lw=0,
                       label="prefill (prompt tokens processed)" if k == 0 else None)  # fmt: skip
        handles, labels = ax.get_legend_handles_labels()
        twin = ax.twinx()
        twin.grid(False)
        twin.spines["right"].set_visible(True)
        samples = sorted(zip(server["t"], server["running"], strict=True))
        twin.plot([t - t0 for t, _ in samples], [r for _, r in samples], color=PALETTE[-1], lw=0.9, ls="--",
                  drawstyle="steps-post", label="running requests")  # fmt: skip
        twin.set_ylabel("Running requests")
        twin.set_ylim(bottom=0)
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    config = run.config if run else {}
    note_dummy_weights(ax, [run.load_format if run else None])
    title = " · ".join(str(config[k]) for k in ("model", "task") if config.get(k))
    details = ", ".join(
        text
        for text, present in (
            (f"{config.get('gpu')} ×{config.get('num_gpus')}", config.get("gpu") is not None),
            (f"batch {config.get('batch_size')}", config.get("batch_size") is not None),
            (str(config.get("parallelism")), config.get("parallelism") is not None),
        )
        if present
    )
    # Left-aligned, the configuration on a line of its own: the right-hand title says "dummy weights".
    ax.set_title(f"{title}\n{details}" if title else run_dir.name, loc="left", fontsize=9)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(5, len(labels)))
    return save(fig, out)
