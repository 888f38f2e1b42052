"""Offline city map: H3 hexagons and area outlines drawn on plain lng/lat axes.

The default needs no tiles, fonts or scripts from outside the machine (command centres run on
closed networks), so it is a Cartesian Plotly figure with equal ground scale: one degree of
longitude is cos(latitude) of a degree of latitude. With ``tile_url`` (config map.basemap "tiles",
e.g. a tile server inside the command centre's network) the same layers are drawn on a MapLibre
map whose only source is that URL: no glyphs, sprites or styles are fetched from anywhere else.

Cells are drawn light enough for a 1M-person city (issue 16: at most 500 KB per refresh): each colour
class is one trace of the outlines of its connected pieces (geo.outlines), not one hexagon per cell,
and the figures ride on a thin hover layer, one invisible marker per cell at its centre whose count is
its ``text`` and whose id is its ``customdata``. Both are float32 typed arrays (components.figdict).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analytics.catalog import COUNT
from components.basemap import context_under, landmarks
from components.figdict import coords, figure, float32_array, rings_arrays
from components.text import plotly_text
from services.formatting import display_value
from components.theme import MUTED, SEQUENTIAL, base_layout
from geo.cells import cells_to_latlngs
from geo.outlines import cells_to_fill_rings_lnglat


def _bins(values: np.ndarray, n: int, min_count: int) -> np.ndarray:
    """Bin edges: one bin for all suppressed counts (1..k-1), then geometric steps so a few very hot
    cells do not wash out the rest."""
    top = max(float(values.max()) if len(values) else 1.0, float(min_count))
    upper = np.ceil(np.geomspace(min_count, top + 1, n)).astype(int)
    return np.unique(np.concatenate([[1], upper]))




def raster_style(tile_url: str, attribution: str = "") -> dict:
    """A MapLibre style with one raster source and nothing else (no glyphs or sprites to fetch)."""
    return {"version": 8,
            "sources": {"basemap": {"type": "raster", "tiles": [tile_url], "tileSize": 256,
                                    "attribution": attribution}},
            "layers": [{"id": "basemap", "type": "raster", "source": "basemap"}]}


def _zoom_for(lng_span: float, lat_span: float, width_px: int = 800, height_px: int = 420) -> float:
    """Web-Mercator zoom at which the city's extent fits a panel of about width × height pixels.

    MapLibre's world is 512 px wide at zoom 0. Near the equator a degree of latitude spans about as
    many pixels as one of longitude, close enough for an initial view (the operator can pan and zoom).
    """
    fit_w = math.log2(360 * width_px / 512 / max(lng_span, 1e-6))
    fit_h = math.log2(360 * height_px / 512 / max(lat_span, 1e-6))
    return max(1.0, min(18.0, min(fit_w, fit_h)))


def _bin_label(lo: int, hi: int, min_count: int) -> str:
    if hi <= min_count:
        return f"<{min_count}"
    return f"{lo}–{hi - 1}" if hi - 1 > lo else f"{lo}"


def hex_map_figure(rows: pd.DataFrame, outlines: Sequence[dict], *, grain: str = "cell", min_count: int,
                   title: str = "", value_label: str = "cases", height: int | None = None,
                   tile_url: str | None = None, tile_attribution: str = "", context: Sequence = ()) -> dict:
    """Cases per H3 cell (``grain`` "cell": rows h3_cell, value, value__suppressed) or per community area
    (``grain`` "area": rows area_id, value, value__suppressed), over the city's outlines, as a figure dict
    (components.figdict).

    Withheld counts (value__suppressed) are drawn in the lowest bin and read "<k" on hover. ``context`` are
    the basemap's context layers (services.basemap): water and roads under the data, landmarks over it.
    """
    on_tiles = bool(tile_url)
    data: list[dict] = context_under(context, on_tiles=on_tiles)

    def trace(xs, ys, **kw) -> dict:
        # Same layer on either canvas; MapLibre lines have no dash styles and text needs glyphs.
        if on_tiles:
            if "line" in kw:
                kw["line"] = {k: v for k, v in kw["line"].items() if k != "dash"}
            return {"type": "scattermap", "lon": xs, "lat": ys, **kw}
        return {"type": "scatter", "x": xs, "y": ys, **kw}

    rows = rows if len(rows) else pd.DataFrame(columns=["value", "value__suppressed"])
    suppressed = rows.get("value__suppressed", pd.Series(False, index=rows.index)).fillna(False).astype(bool)
    # A withheld count is somewhere in 1..k-1: it belongs to the lowest bin, whatever it was.
    values = pd.to_numeric(rows["value"], errors="coerce").where(~suppressed, 1.0).fillna(0.0)
    shown = rows.assign(__value=values.to_numpy(), __hidden=suppressed.to_numpy())
    shown = shown[shown["__value"] > 0]
    edges = _bins(shown["__value"].to_numpy(), len(SEQUENTIAL), min_count)
    names = {o["area_id"]: o["name"] for o in outlines}
    rings_of = {o["area_id"]: o["rings"] for o in outlines}
    # The hover layer: one invisible marker per place at its centre, its figure in ``text`` and its name in
    # ``customdata``, the words around them written once in the hovertemplate.
    centres_x, centres_y, counts, where = [], [], [], []
    for i in range(len(edges) - 1 if len(edges) > 1 else 0):
        lo, hi = edges[i], edges[i + 1]
        sel = shown[(shown["__value"] >= lo) & ((shown["__value"] < hi) | (i == len(edges) - 2))]
        if sel.empty:
            continue
        if grain == "cell":
            # One outline per connected piece of the class, not one hexagon per cell (geo.outlines).
            rings = cells_to_fill_rings_lnglat(sel["h3_cell"])
            centres = cells_to_latlngs(sel["h3_cell"])
            centres_x.extend(centres[:, 1])
            centres_y.extend(centres[:, 0])
            where.extend(sel["h3_cell"])
        else:
            rings = [ring for a in sel["area_id"] for ring in rings_of.get(a, [])]
            for area in sel["area_id"]:
                ring = (rings_of.get(area) or [[]])[0]
                centres_x.append(sum(p[0] for p in ring[:-1]) / max(len(ring) - 1, 1) if ring else np.nan)
                centres_y.append(sum(p[1] for p in ring[:-1]) / max(len(ring) - 1, 1) if ring else np.nan)
                where.append(plotly_text(names.get(area, area)))
        counts.extend(display_value(COUNT, v, suppressed=hidden, min_count=min_count)
                      for v, hidden in zip(sel["__value"], sel["__hidden"]))
        xs, ys = rings_arrays(rings)
        colour = SEQUENTIAL[min(i, len(SEQUENTIAL) - 1)]
        data.append(trace(float32_array(xs), float32_array(ys), fill="toself", mode="lines",
                          line=dict(width=0.5, color=colour), fillcolor=colour,
                          name=f"{_bin_label(lo, hi, min_count)} {value_label}", hoverinfo="skip"))
    for kind, width, dash in (("boundary", 2.5, "solid"), ("community", 1, "dot"), ("precinct", 1.5, "dash")):
        rings = [r for o in outlines if o["kind"] == kind for r in o["rings"]]
        if rings:
            xs, ys = rings_arrays(rings)
            data.append(trace(xs, ys, mode="lines", line=dict(color=MUTED if kind != "boundary"
                              else "#e8eaed", width=width, dash=dash), name=kind, hoverinfo="skip"))
    if centres_x:
        place = "cell %{customdata}" if grain == "cell" else "%{customdata}"
        data.append(trace(float32_array(centres_x), float32_array(centres_y), mode="markers",
                          marker=dict(size=8, opacity=0), text=counts, customdata=where,
                          hovertemplate=f"{plotly_text(value_label)}: %{{text}}<br>{place}<extra></extra>",
                          showlegend=False, name="places"))
    data.extend(landmarks(context, on_tiles=on_tiles))
    layout = base_layout(showlegend=True, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    if title:
        layout["title"] = {"text": plotly_text(title)}
    all_x = [p[0] for o in outlines for r in o["rings"] for p in r] or [0.0]
    all_y = [p[1] for o in outlines for r in o["rings"] for p in r] or [0.0]
    if on_tiles:
        layout["map"] = dict(style=raster_style(tile_url, tile_attribution),
                             center=dict(lat=(min(all_y) + max(all_y)) / 2, lon=(min(all_x) + max(all_x)) / 2),
                             zoom=_zoom_for(max(all_x) - min(all_x), max(all_y) - min(all_y)))
        return figure(data, layout)
    labels = [o for o in outlines if o["kind"] == "community" and o.get("label_lng") is not None]
    if labels:
        data.append({"type": "scatter", "x": coords(o["label_lng"] for o in labels),
                     "y": coords(o["label_lat"] for o in labels), "mode": "text",
                     "text": [plotly_text(o["name"]) for o in labels], "textfont": dict(color=MUTED, size=12),
                     "hoverinfo": "skip", "showlegend": False})
    lat0 = (min(all_y) + max(all_y)) / 2
    layout["xaxis"] = {"visible": False}
    # Equal ground distance on both axes at the city's latitude.
    layout["yaxis"] = {"visible": False, "scaleanchor": "x", "scaleratio": 1 / math.cos(math.radians(lat0))}
    return figure(data, layout)
