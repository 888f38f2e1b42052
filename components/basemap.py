"""The offline basemap under every map: context layers (water, roads, landmarks) as Plotly traces.

Drawn in two passes so they orient without hiding data: water and roads first (under the data),
landmark names last (over it). On a tile map (MapLibre) text needs glyphs from a server, so landmarks
are markers with their name on hover only.
"""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

import numpy as np

from components.figdict import coords, rings_arrays
from components.text import plotly_text
from geo.context import ContextLayer

WATER_FILL = "#1d3b53"
WATER_LINE = "#2c5878"
ROAD_COLOUR = "#4a5560"
LANDMARK_COLOUR = "#c8ced4"


def _trace(on_tiles: bool, xs, ys, **kw) -> dict:
    """One layer as a plain trace dict, on plain axes or (``on_tiles``) on a MapLibre map."""
    if on_tiles:
        kw.pop("textfont", None)
        kw.pop("textposition", None)
        if "mode" in kw:
            kw["mode"] = kw["mode"].replace("+text", "")
        if "marker" in kw:  # MapLibre draws plain circles
            kw["marker"] = {k: v for k, v in kw["marker"].items() if k not in ("symbol", "line")}
        return {"type": "scattermap", "lon": xs, "lat": ys, **kw}
    return {"type": "scatter", "x": xs, "y": ys, **kw}


def rings_xy(rings: Sequence[Sequence[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """x and y arrays for one Plotly trace drawing many rings, a break (NaN) after each (lng, lat order),
    rounded as components.figdict.MAP_DECIMALS says."""
    return rings_arrays(rings)


def context_under(layers: Sequence[ContextLayer], *, on_tiles: bool = False) -> list[dict]:
    """Water (areas) and roads (lines) of every layer, as traces to draw before the data's own."""
    traces = []
    for layer in layers:
        if layer.areas:
            xs, ys = rings_xy(layer.areas)
            traces.append(_trace(on_tiles, xs, ys, mode="lines", fill="toself", fillcolor=WATER_FILL,
                                 line=dict(color=WATER_LINE, width=1), name=plotly_text(layer.label),
                                 hoverinfo="skip", showlegend=False, legendgroup="basemap"))
        if layer.lines:
            xs, ys = rings_xy(layer.lines)
            traces.append(_trace(on_tiles, xs, ys, mode="lines", line=dict(color=ROAD_COLOUR, width=1.5),
                                 name=plotly_text(layer.label), hoverinfo="skip", showlegend=False,
                                 legendgroup="basemap"))
    return traces


def landmarks(layers: Sequence[ContextLayer], *, on_tiles: bool = False) -> list[dict]:
    """The point features of every layer with their names, as traces to draw after the data's own."""
    traces = []
    for layer in layers:
        if not layer.points:
            continue
        xs = coords(p[0] for p in layer.points)
        ys = coords(p[1] for p in layer.points)
        names = [plotly_text(p[2]) for p in layer.points]
        traces.append(_trace(on_tiles, xs, ys, mode="markers+text", text=names, textposition="top center",
                             textfont=dict(color=LANDMARK_COLOUR, size=12),
                             marker=dict(symbol="star-diamond", size=9,
                                         color=LANDMARK_COLOUR, line=dict(width=0)),
                             hovertext=names, hoverinfo="text", name=plotly_text(layer.label), showlegend=False,
                             legendgroup="basemap"))
    return traces


def add_context_under(fig: go.Figure, layers: Sequence[ContextLayer], *, on_tiles: bool = False) -> None:
    """context_under's traces added to a go.Figure."""
    traces = context_under(layers, on_tiles=on_tiles)
    if traces:
        fig.add_traces(traces)


def add_landmarks(fig: go.Figure, layers: Sequence[ContextLayer], *, on_tiles: bool = False) -> None:
    """landmarks' traces added to a go.Figure."""
    traces = landmarks(layers, on_tiles=on_tiles)
    if traces:
        fig.add_traces(traces)
