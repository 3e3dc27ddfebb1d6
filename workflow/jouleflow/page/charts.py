"""The page's time–energy chart of one task (Plotly), as a figure dict for Plotly.newPlot.

Per model and GPU: the campaign's configurations (filled markers) joined along that GPU's frontier;
ML.ENERGY's published configurations of the same model (open markers, dotted frontier), labelled as
published; and last, two traces the page's deadline control moves: the chosen configurations (stars)
and the deadline (a vertical line shape).
"""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

# Okabe–Ito: distinguishable in colour-vision deficiency, one per model/GPU series.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
_LOG_RATIO = 10.0  # an axis spanning more than this factor is drawn in log scale


def _hover(metric_label: str, unit: str) -> str:
    return (
        "%{customdata[0]}<br>" + metric_label + " %{x:.4g} " + unit
        + "<br>%{y:.4g} J per response<br>%{customdata[1]}<extra>%{fullData.name}</extra>"
    )  # fmt: skip


def _series(points: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in points:
        series.setdefault((p["model"], str(p["gpu"])), []).append(p)
    return series


def _axis(values: list[float], title: str) -> dict[str, Any]:
    positive = [v for v in values if v and v > 0]
    wide = bool(positive) and max(positive) / min(positive) > _LOG_RATIO
    # Energy starts at zero on a linear axis, so bar-like readings are not exaggerated.
    axis: dict[str, Any] = {"title": {"text": title}, "type": "log" if wide else "linear"}
    if not wide:
        axis["rangemode"] = "tozero"
        return axis
    # Log axis: labels at 1-2-5 steps only, so minor-decade digits never crowd each other.
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    ticks = [m * 10.0**e for e in range(low, high + 1) for m in (1, 2, 5)]
    axis |= {"tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}
    return axis


def task_figure(task: dict[str, Any]) -> dict[str, Any]:
    scale, unit, metric = task["time_scale"], task["time_unit"], task["metric_label"]
    hover = _hover(metric, unit)
    fig = go.Figure()
    ours, theirs = _series(task["points"]), _series(task["published"])
    colours = {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(sorted({*ours, *theirs}))}
    for (model, gpu), pts in sorted(ours.items()):
        fig.add_trace(_scatter(pts, f"{model} · {gpu} (this campaign)", colours[(model, gpu)], scale, hover))
        front = [p for p in pts if p["on_gpu_frontier"]]
        fig.add_trace(_line(front, f"{model} · {gpu} frontier", colours[(model, gpu)], "solid", scale))
    for (model, gpu), pts in sorted(theirs.items()):
        source = pts[0].get("source") or "published"
        name = f"{model} · {gpu} (ML.ENERGY {source.removeprefix('mlenergy-')}, published)"
        fig.add_trace(_scatter(pts, name, colours[(model, gpu)], scale, hover, published=True))
        front = [p for p in pts if p["on_gpu_frontier"]]
        fig.add_trace(_line(front, f"{name} frontier", colours[(model, gpu)], "dot", scale))
    fig.add_trace(
        go.Scatter(
            x=[], y=[], customdata=[], mode="markers", name="chosen at the deadline",
            marker={"symbol": "star", "size": 18, "color": "#000", "line": {"color": "#FFD700", "width": 1.5}},
            hovertemplate=hover, meta="chosen",
        )
    )  # fmt: skip
    xs = [p["latency_s"] * scale for p in task["points"] + task["published"]]
    ys = [p["energy_j"] for p in task["points"] + task["published"]]
    fig.update_layout(
        template="plotly_white",
        height=520,
        margin={"l": 70, "r": 20, "t": 40, "b": 60},
        title={"text": f"{task['task']}: energy per response vs {metric}", "x": 0.01},
        xaxis=_axis(xs, f"{metric} ({unit})"),
        yaxis=_axis(ys, "energy per response (J)"),
        legend={"orientation": "h", "y": -0.18},
        hovermode="closest",
    )
    return fig.to_plotly_json()


def _scatter(pts, name, colour, scale, hover, published=False) -> go.Scatter:
    return go.Scatter(
        x=[p["latency_s"] * scale for p in pts],
        y=[p["energy_j"] for p in pts],
        customdata=[[p["config"], p.get("run_dir") or "published configuration"] for p in pts],
        mode="markers",
        name=name,
        marker={
            "color": colour,  # an open symbol draws its outline in this colour
            "size": 9 if published else 11,
            "symbol": "diamond-open" if published else "circle",
            "line": {"color": colour, "width": 1.5},
        },
        hovertemplate=hover,
        meta="published" if published else "campaign",
    )


def _line(pts, name, colour, dash, scale) -> go.Scatter:
    return go.Scatter(
        x=[p["latency_s"] * scale for p in pts],
        y=[p["energy_j"] for p in pts],
        mode="lines",
        name=name,
        line={"color": colour, "dash": dash, "width": 1.5},
        hoverinfo="skip",
        showlegend=False,
        meta="frontier",
    )
