"""Figure style and deterministic PNG + SVG output.

Every figure is written twice: PNG (200 dpi, for slides and the HTML report) and SVG (for papers).
Reruns are byte-identical: text is drawn as paths (no font lookup at view time), SVG ids are hashed
with a fixed salt, and no creation date is embedded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib

matplotlib.use("Agg")  # headless: analysis runs on clusters and CI without a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402

from jouleflow.traces import write_atomic  # noqa: E402

# Okabe & Ito (2008) colour-blind-safe palette, black last (reserved for frontier lines and marks).
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES: tuple[str, ...] = ("-", "--", "-.", ":")

P = ParamSpec("P")
R = TypeVar("R")

_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.5,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    "svg.fonttype": "path",
    "svg.hashsalt": "jouleflow",
    "path.simplify": False,
    "figure.dpi": 100,
}


def style(index: int) -> dict[str, str]:
    """Colour, marker and line style of the index-th series: distinct in colour *and* shape."""
    return {
        "color": PALETTE[index % (len(PALETTE) - 1)],
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": LINESTYLES[(index // (len(PALETTE) - 1)) % len(LINESTYLES)],
    }


def styled(func: Callable[P, R]) -> Callable[P, R]:
    """Run a plotting function under jouleflow's rcParams (fonts, grid, SVG salt) without leaking them."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with plt.rc_context(_RC):
            return func(*args, **kwargs)

    return wrapper


def new_figure(
    width_in: float,
    height_in: float,
    nrows: int = 1,
    ncols: int = 1,
    height_ratios: Sequence[float] | None = None,
) -> tuple[Figure, list[Axes]]:
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width_in, height_in),
        squeeze=False,
        layout="constrained",
        height_ratios=height_ratios,
    )
    return fig, [ax for row in axes for ax in row]


def output_paths(out: str | Path) -> tuple[Path, Path]:
    """`-o fig.png`, `-o fig.svg` or `-o fig` → (fig.png, fig.svg)."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix.lower() in {".png", ".svg"} else out
    return stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")


def save(fig: Figure, out: str | Path) -> list[Path]:
    """Write PNG and SVG next to each other (atomically) and close the figure."""
    png, svg = output_paths(out)
    png.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(_RC):
        for path, fmt, metadata in (
            (png, "png", {"Software": "jouleflow"}),
            (svg, "svg", {"Date": None, "Creator": "jouleflow"}),
        ):
            write_atomic(path, functools.partial(fig.savefig, format=fmt, dpi=200, metadata=metadata))
            written.append(path)
    plt.close(fig)
    return written


@styled
def placeholder(title: str, message: str, out: str | Path) -> list[Path]:
    """A figure that says why there is nothing to draw (a group whose runs were all infeasible, say).

    The pipeline draws every figure it planned; an empty group must not fail the whole campaign.
    """
    fig, (ax,) = new_figure(5.0, 2.0)
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=9, transform=ax.transAxes)
    fig.suptitle(title, fontsize=10)
    return save(fig, out)


def log_if_wide(ax: Axes, axis: str, values: Sequence[float], ratio: float = 20.0) -> None:
    """Log scale when the positive values span more than `ratio` (a batch sweep, latencies over decades)."""
    positive = [v for v in values if v is not None and v > 0]
    if positive and max(positive) / min(positive) > ratio:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        # Plain numbers (10, 100) read better in papers than 10^1, 10^2.
        target = ax.xaxis if axis == "x" else ax.yaxis
        formatter = ScalarFormatter()
        formatter.set_scientific(False)
        target.set_major_formatter(formatter)


def note_dummy_weights(ax: Axes, load_formats: Sequence[str | None]) -> None:
    """Say "dummy weights" on a panel whose data came (partly) from random-weight runs."""
    dummy = [f for f in load_formats if f == "dummy"]
    if dummy:
        label = "dummy weights" if len(dummy) == len(load_formats) else "includes dummy-weight runs"
        ax.text(
            0.99,
            0.99,
            label,
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
            style="italic",
            color="#555555",
        )
