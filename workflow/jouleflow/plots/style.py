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
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter  # noqa: E402

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


def is_wide(values: Sequence[float | None], ratio: float = 20.0) -> bool:
    """Whether the positive values span more than `ratio` (a batch sweep, latencies over decades)."""
    positive = [v for v in values if v is not None and v > 0]
    return bool(positive) and max(positive) / min(positive) > ratio


def _plain(value: float, _pos: int | None = None) -> str:
    # Plain numbers (10, 100, 0.05; 10k, 1M) read better in papers than 10^1 or 1e+06.
    return engineering(value, "") if value >= 1e4 else f"{value:g}"


def log_axis(ax: Axes, axis: str, values: Sequence[float | None]) -> None:
    """Log scale with plain-number ticks that never overprint.

    Major ticks at 1, 2, 5 × 10^k (decades only once the axis spans several, where 1-2-5 would
    crowd), each labelled plainly; minor ticks unlabelled (matplotlib labels them on a short log
    axis, in scientific notation, and they overprint).
    """
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    positive = [v for v in values if v is not None and v > 0] or [1.0]
    subs = (1.0,) if max(positive) / min(positive) > 1e3 else (1.0, 2.0, 5.0)
    target.set_major_locator(LogLocator(base=10, subs=subs))
    target.set_major_formatter(FuncFormatter(_plain))
    target.set_minor_locator(LogLocator(base=10, subs="auto"))
    target.set_minor_formatter(NullFormatter())


def large_number_ticks(ax: Axes, axis: str, values: Sequence[float | None]) -> None:
    """On a linear axis reaching 10,000 or more: 250k, 1.5M instead of an offset "1e6" by the label."""
    if max((v for v in values if v is not None), default=0) >= 1e4:
        (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(EngFormatter(sep=""))


def engineering(value: float, unit: str) -> str:
    """24.9 J, 1.34 kJ, 1.16 MJ: a value as a label beside a bar (never 1.34e+03)."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g}{' ' if unit else ''}{prefix}{unit}"
    return f"{value:.3g} {unit}"


def log_if_wide(ax: Axes, axis: str, values: Sequence[float], ratio: float = 20.0) -> None:
    """Log scale when the positive values span more than `ratio` (a batch sweep, latencies over decades)."""
    if is_wide(values, ratio):
        log_axis(ax, axis, values)


def response_noun(rows, task: str) -> str:
    """What one output is: "response" for LLM tasks, "image" or "video" for diffusion."""
    from jouleflow.analysis.frontier import modality_of  # polars: only figures of summaries need it

    if modality_of(rows) == "diffusion":
        return "video" if "video" in task else "image"
    return "response"


def dummy_weights_note(load_formats: Sequence[str | None]) -> str | None:
    """ "dummy weights" for data from random-weight runs, "includes dummy-weight runs" for a mix."""
    dummy = [f for f in load_formats if f == "dummy"]
    if not dummy:
        return None
    return "dummy weights" if len(dummy) == len(load_formats) else "includes dummy-weight runs"


def note_dummy_weights(ax: Axes, load_formats: Sequence[str | None]) -> None:
    """Say "dummy weights" above a panel whose data came (partly) from random-weight runs.

    As the panel's right-hand title: above the plotting area (no data, legend or target label
    under it), beside a left-aligned title rather than over it.
    """
    label = dummy_weights_note(load_formats)
    if label:
        ax.set_title(label, loc="right", fontsize=7, style="italic", color="#555555")
