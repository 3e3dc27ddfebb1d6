"""What a reader sees, checked on the figure objects: tick labels that do not overprint, bars from
zero, every latency target drawn, no label over another, axis text from jouleflow.labels."""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pytest
from jouleflow import labels
from jouleflow.analysis.compare.moe import compare_moe
from jouleflow.analysis.compare.tasks import compare_tasks
from jouleflow.analysis.compare.tdp import compare_tdp
from jouleflow.importers.mlenergy import import_mlenergy
from jouleflow.plots import compare_figures, frontier_plot, sweep, task_energy
from matplotlib.axes import Axes
from matplotlib.figure import Figure

REPO = Path(__file__).resolve().parents[1]
QWEN235 = "Qwen/Qwen3-235B-A22B-Instruct-2507"  # v3: batch 8..4096 incl. 96, 1536, 3072; decades of energy


@pytest.fixture(scope="module")
def v3() -> pl.DataFrame:
    return pl.from_arrow(import_mlenergy(REPO / "resources" / "mlenergy-v3"))


@pytest.fixture(scope="module")
def v2() -> pl.DataFrame:
    return pl.from_arrow(import_mlenergy(REPO / "tests" / "data" / "mlenergy-v2"))


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions build, kept instead of written (each module's `save`)."""
    figures: list[Figure] = []

    def keep(fig, _out):
        fig.canvas.draw()  # lay out (constrained layout) as saving would
        figures.append(fig)
        return []

    for module in (sweep, frontier_plot, task_energy, compare_figures):
        monkeypatch.setattr(module, "save", keep)
    return figures


def _overlap(a, b, pad: float = 0.5) -> bool:
    return a.x0 < b.x1 - pad and b.x0 < a.x1 - pad and a.y0 < b.y1 - pad and b.y0 < a.y1 - pad


def tick_label_boxes(ax: Axes, axis: str) -> list:
    renderer = ax.figure.canvas.get_renderer()
    target = ax.xaxis if axis == "x" else ax.yaxis
    ticks = target.get_major_ticks() + target.get_minor_ticks()
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    boxes = []
    for tick in ticks:
        if not (lo <= tick.get_loc() <= hi) or not tick.label1.get_visible() or not tick.label1.get_text():
            continue
        boxes.append(tick.label1.get_window_extent(renderer))
    return boxes


def assert_ticks_readable(fig: Figure) -> None:
    for ax in fig.axes:
        for axis in ("x", "y"):
            boxes = tick_label_boxes(ax, axis)
            for a, b in itertools.combinations(boxes, 2):
                assert not _overlap(a, b), f"{axis} tick labels overprint on {ax.get_ylabel()!r}"


def test_log_axes_have_plain_ticks_that_do_not_overprint(drawn, v3):
    sweep.plot_sweep(v3, "lm-arena-chat", QWEN235, "unused")
    (fig,) = drawn
    assert [ax.get_yscale() for ax in fig.axes[:2]] == ["log", "log"]  # energy and throughput span decades
    assert_ticks_readable(fig)
    texts = [t.label1.get_text() for ax in fig.axes for t in ax.yaxis.get_major_ticks()]
    assert not any("^" in t or "e+" in t or "times" in t for t in texts)  # 10, 100, 10k: no 10^1 or 1e+04
    assert all(not t.label1.get_text() for ax in fig.axes for t in ax.yaxis.get_minor_ticks())
    batch_labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert "4096" in batch_labels and "1536" not in batch_labels  # 1536 beside 2048 would overprint


def test_batch_ticks_keep_powers_of_two_and_spaced_others():
    assert sweep.batch_ticks([8, 16, 96, 128, 1536, 2048, 3072, 4096]) == [8, 16, 128, 2048, 4096]
    assert sweep.batch_ticks([64, 96, 128]) == [64, 96, 128]  # a short sweep keeps each


def test_task_energy_bars_start_at_zero(drawn, v3):
    task_energy.plot_task_energy(v3, "unused", gpu="B200")
    (fig,) = drawn
    bar_axes = [ax for ax in fig.axes if ax.patches]
    assert len(bar_axes) == 7
    for ax in bar_axes:
        assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0
        assert min(p.get_x() for p in ax.patches) == 0
    assert_ticks_readable(fig)
    assert (
        fig.axes[-1]
        .get_xlabel()
        .startswith(
            labels.label("energy_per_response_j", noun="image or response or video").removesuffix(")")
        )
    )


def test_frontier_published_series_each_look_different(drawn, v3):
    """ML.ENERGY publishes PixArt-Sigma on two GPU types at 1, 2, 4 and 8 GPUs: eight series overlaid."""
    pixart = "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS"
    theirs = v3.filter((pl.col("task") == "text-to-image") & (pl.col("model") == pixart))
    ours = theirs.filter((pl.col("gpu") == "H100") & (pl.col("num_gpus") == 1)).with_columns(
        gpu=pl.lit("H200")
    )
    frontier_plot.plot_frontier(ours, "text-to-image", pixart, "unused", published=theirs)
    (fig,) = drawn
    (ax,) = fig.axes
    published = [line for line in ax.get_lines() if line.get_label().endswith("(published)")]
    assert len(published) == theirs.select("gpu", "num_gpus").unique().height == 8
    styles = {(line.get_marker(), line.get_markeredgecolor()) for line in published}
    assert len(styles) == len(published)  # no two series share shape and colour
    by_gpu = {line.get_label().split(" ×")[0]: line.get_marker() for line in published}
    assert sorted(by_gpu) == ["B200", "H100"] and len(set(by_gpu.values())) == 2


def test_frontier_draws_every_target_and_nothing_overlaps(drawn, v3):
    targets = [0.005, 0.05, 0.1, 0.25]  # the first unreachable
    frontier_plot.plot_frontier(v3, "lm-arena-chat", QWEN235, "unused", latency_targets_s=targets)
    (fig,) = drawn
    (ax,) = fig.axes
    gids = {a.get_gid() for a in ax.get_children() if a.get_gid()}
    assert {f"target-{i}" for i in range(4)} <= gids
    assert {"recommended-1", "recommended-2", "recommended-3"} <= gids and "recommended-0" not in gids
    legend = fig.legends[0]
    names = [t.get_text() for t in legend.get_texts()]
    assert "target 5 ms: unreachable (fastest 16.6 ms)" in names
    assert sum(n.startswith("target ") for n in names) == 4
    renderer = fig.canvas.get_renderer()
    title = ax.title.get_window_extent(renderer)
    legend_box = legend.get_window_extent(renderer)
    assert not _overlap(title, legend_box) and not _overlap(ax.get_window_extent(renderer), legend_box)
    assert ax.get_xlabel() == labels.label("median_itl_s") == "Median ITL (ms)"
    assert_ticks_readable(fig)


def test_frontier_dummy_weights_note_beside_the_title(drawn, v3):
    dummy = v3.with_columns(load_format=pl.lit("dummy"))  # as a campaign of random-weight runs
    frontier_plot.plot_frontier(dummy, "lm-arena-chat", QWEN235, "unused", latency_targets_s=[0.05, 0.1])
    (fig,) = drawn
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    assert ax._right_title.get_text() == "dummy weights"
    assert not _overlap(ax.title.get_window_extent(renderer), ax._right_title.get_window_extent(renderer))
    assert not _overlap(
        ax._right_title.get_window_extent(renderer), fig.legends[0].get_window_extent(renderer)
    )


def test_v2_average_tpot_is_called_mean_everywhere(drawn, v2):
    model = "meta-llama/Meta-Llama-3.1-8B-Instruct"
    sweep.plot_sweep(v2, "chat", model, "unused")
    frontier_plot.plot_frontier(v2, "chat", model, "unused", latency_metric="median_tpot")
    sweep_fig, frontier_fig = drawn
    assert "Mean TPOT (ms)" in [ax.get_ylabel() for ax in sweep_fig.axes]
    assert frontier_fig.axes[0].get_xlabel() == "Mean TPOT (ms)"
    assert labels.label("median_tpot_s", ["mlenergy-v2"]) == "Mean TPOT (ms)"
    assert labels.label("median_tpot_s", ["jouleflow"]) == "Median TPOT (ms)"


def _all_text(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]


def test_compare_figures_bars_from_zero_and_labels_not_column_names(drawn, v3):
    compare_figures.moe_figure(compare_moe(v3, tasks=["gpqa"], num_gpus=1), "unused")
    compare_figures.tasks_figure(compare_tasks(v3, "Qwen/Qwen3-32B", gpu="B200", num_gpus=1), "unused")
    compare_figures.tdp_figure(compare_tdp(v3), "unused")
    moe, tasks, tdp = drawn
    (ax,) = moe.axes
    assert ax.get_xlim()[0] == 0 and ax.get_xscale() == "linear"
    assert ax.get_xlabel() == labels.label("energy_per_token_j") == "Energy per token (J)"
    for ax in tasks.axes:
        assert ax.get_ylim()[0] == 0 and ax.get_yscale() == "linear"
        assert ax.get_ylabel() == "Energy per response (J)"
    (ax,) = tdp.axes
    assert ax.get_yscale() == "log" and not ax.patches  # decades apart: marks on a log axis, no bars
    for fig in drawn:
        assert_ticks_readable(fig)
        assert not [t for t in _all_text(fig) if t.endswith(("_j", "_s", "_w")) or "_j " in t]
