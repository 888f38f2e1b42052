"""The briefing's map and charts, built once for the page and for the PDF (reports/), so the PDF shows them
as they are drawn on screen: the same figure builders as the overview, the clusters and the capacity pages.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from components.capacity import capacity_trend_figure
from components.charts import trend_figure
from components.clustermap import cluster_map_figure
from components.gauges import rt_figure
from components.hexmap import hex_map_figure
from services.briefing import Briefing

# Pixel sizes of the figures in the PDF (A4 at 96 dpi is 794 px wide; two figures side by side).
FIGURE_SIZES = {"map": (760, 440), "trend": (760, 270), "capacity": (370, 240), "rt": (370, 240)}
FIGURE_TITLES = {"map": "Recent cases, zones and new clusters", "trend": "Cases, admissions and occupancy",
                 "capacity": "Hospital beds and projection", "rt": "R(t) with its 95 % interval"}


def briefing_map(b: Briefing, outlines: Sequence[dict], height: int | None = None) -> go.Figure:
    """Cases of the map window per cell (or per area for those who may not see cells), with the zones in
    force and the scan's clusters of the day on top when the principal may see them."""
    k = b.min_count
    if b.clusters is None or b.map.grain != "cell":
        return go.Figure(hex_map_figure(b.map.rows, outlines, grain=b.map.grain, min_count=k, height=height))
    cells = b.map.rows.rename(columns={"value": "cases", "value__suppressed": "cases__suppressed"})
    cells = cells.assign(population=float("nan"), rate_per_100k=float("nan"))
    clusters = b.clusters.clusters
    fig = cluster_map_figure(cells, outlines, b.clusters.zones, clusters if len(clusters) else pd.DataFrame(),
                             tiers=b.clusters.tiers, measure="cases", min_count=k, resolution=b.clusters.resolution,
                             window_days=b.map.days)
    if height:
        fig.update_layout(height=height)
    return fig


def briefing_figures(b: Briefing, outlines: Sequence[dict], *, for_print: bool = False) -> dict[str, go.Figure]:
    """{"map", "trend", "capacity", "rt"} figures of the briefing (sized for A4 when ``for_print``)."""
    size = (lambda name: FIGURE_SIZES[name][1]) if for_print else (lambda name: None)
    figures = {
        "map": briefing_map(b, outlines, size("map")),
        "trend": go.Figure(trend_figure(b.trend, min_count=b.min_count, height=size("trend"))),
        "capacity": capacity_trend_figure(b.trend, b.beds_band, b.beds_capacity, b.capacity.threshold,
                                          int(b.capacity.days_to_beds.value)
                                          if b.capacity.days_to_beds.value is not None else None,
                                          height=size("capacity")),
        "rt": rt_figure(b.rt, height=size("rt")),
    }
    if for_print:
        for name, fig in figures.items():
            width, height = FIGURE_SIZES[name]
            fig.update_layout(width=width, height=height, font=dict(size=12), legend=dict(font=dict(size=11)))
    return figures
