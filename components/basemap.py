"""The offline basemap under every map: context layers (water, roads, landmarks) as Plotly traces.

Drawn in two passes so they orient without hiding data: water and roads first (under the data),
landmark names last (over it). On a tile map (MapLibre) text needs glyphs from a server, so landmarks
are markers with their name on hover only.
"""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from components.text import plotly_text
from geo.context import ContextLayer

WATER_FILL = "#1d3b53"
WATER_LINE = "#2c5878"
ROAD_COLOUR = "#4a5560"
LANDMARK_COLOUR = "#c8ced4"


def _trace(on_tiles: bool, xs, ys, **kw):
    if on_tiles:
        kw.pop("textfont", None)
        kw.pop("textposition", None)
        if "mode" in kw:
            kw["mode"] = kw["mode"].replace("+text", "")
        if "marker" in kw:  # MapLibre draws plain circles
            kw["marker"] = {k: v for k, v in kw["marker"].items() if k not in ("symbol", "line")}
        return go.Scattermap(lon=xs, lat=ys, **kw)
    return go.Scatter(x=xs, y=ys, **kw)


def rings_xy(rings: Sequence[Sequence[tuple[float, float]]]) -> tuple[list, list]:
    """x and y lists for one Plotly trace drawing many rings, separated by None (lng, lat order)."""
    xs: list = []
    ys: list = []
    for ring in rings:
        xs.extend([p[0] for p in ring] + [None])
        ys.extend([p[1] for p in ring] + [None])
    return xs, ys


def add_context_under(fig: go.Figure, layers: Sequence[ContextLayer], *, on_tiles: bool = False) -> None:
    """Water (areas) and roads (lines) of every layer; call before the data's own traces."""
    for layer in layers:
        if layer.areas:
            xs, ys = rings_xy(layer.areas)
            fig.add_trace(_trace(on_tiles, xs, ys, mode="lines", fill="toself", fillcolor=WATER_FILL,
                                 line=dict(color=WATER_LINE, width=1), name=plotly_text(layer.label),
                                 hoverinfo="skip", showlegend=False, legendgroup="basemap"))
        if layer.lines:
            xs, ys = rings_xy(layer.lines)
            fig.add_trace(_trace(on_tiles, xs, ys, mode="lines", line=dict(color=ROAD_COLOUR, width=1.5),
                                 name=plotly_text(layer.label), hoverinfo="skip", showlegend=False,
                                 legendgroup="basemap"))


def add_landmarks(fig: go.Figure, layers: Sequence[ContextLayer], *, on_tiles: bool = False) -> None:
    """The point features of every layer with their names; call after the data's own traces."""
    for layer in layers:
        if not layer.points:
            continue
        xs = [p[0] for p in layer.points]
        ys = [p[1] for p in layer.points]
        names = [plotly_text(p[2]) for p in layer.points]
        fig.add_trace(_trace(on_tiles, xs, ys, mode="markers+text", text=names, textposition="top center",
                             textfont=dict(color=LANDMARK_COLOUR, size=12),
                             marker=dict(symbol="star-diamond", size=9,
                                         color=LANDMARK_COLOUR, line=dict(width=0)),
                             hovertext=names, hoverinfo="text", name=plotly_text(layer.label), showlegend=False,
                             legendgroup="basemap"))
