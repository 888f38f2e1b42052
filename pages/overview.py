"""Overview (/): the wall screen. KPI tiles, city map of recent cases per H3 cell, trends, data freshness."""
from __future__ import annotations

from datetime import datetime, timezone

import dash
from dash import Input, Output, dcc, html

from components.charts import trend_figure
from components.freshness import freshness_strip
from components.hexmap import hex_map_figure
from components.kpi import kpi_tile
from pages import _ids as ids
from pages._secure import secure_callback
from services.mapdata import area_outlines
from services.overview import overview
from auth.runtime import current_runtime

dash.register_page(__name__, path="/", title="pheoc · Overview", name="Overview", order=0)


def layout(**_query):
    settings = current_runtime().settings
    return html.Div(className="page page-overview", children=[
        dcc.Interval(id=ids.OVERVIEW_REFRESH, interval=settings.wall.refresh_s * 1000, n_intervals=0),
        html.Div(id=ids.OVERVIEW_ASOF, className="asof"),
        html.Div(id=ids.OVERVIEW_KPIS, className="kpi-row"),
        html.Div(className="grid-2", children=[
            html.Div(className="panel", children=[
                html.H2(f"Cases in the last {settings.map.recent_days} days, by H3 cell"),
                dcc.Graph(id=ids.OVERVIEW_MAP, config={"displaylogo": False}, style={"height": "54vh"})]),
            html.Div(className="panel", children=[
                html.H2("Cases, admissions and hospital occupancy"),
                dcc.Graph(id=ids.OVERVIEW_TREND, config={"displaylogo": False}, style={"height": "54vh"})]),
        ]),
        html.Div(id=ids.OVERVIEW_FRESHNESS),
    ])


@secure_callback(
    "view_overview",
    Output(ids.OVERVIEW_KPIS, "children"), Output(ids.OVERVIEW_MAP, "figure"),
    Output(ids.OVERVIEW_TREND, "figure"), Output(ids.OVERVIEW_FRESHNESS, "children"),
    Output(ids.OVERVIEW_ASOF, "children"),
    Input(ids.OVERVIEW_REFRESH, "n_intervals"),
)
def refresh_overview(_n):
    rt = current_runtime()
    s = rt.settings
    data = overview(rt.store, rt.today(), s.city.timezone, s.map.recent_days)
    tiles = [kpi_tile(k.key, k.label, k.display, k.detail, k.status, k.query) for k in data.kpis]
    cells = data.case_cells.rename(columns={"cases": "value"})
    fig_map = hex_map_figure(cells, area_outlines(rt.store), min_count=s.privacy.min_count,
                             tile_url=s.map.tile_url if s.map.basemap == "tiles" else None,
                             tile_attribution=s.map.tile_attribution)
    fig_trend = trend_figure(data.trend)
    strip = freshness_strip(data.freshness, data.rejected_total, data.rejected_by_reason)
    now = datetime.now(timezone.utc).astimezone()
    asof = f"Data as of {data.as_of:%a %d %b %Y} · updated {now:%H:%M:%S}" if data.as_of else "No case data yet"
    return tiles, fig_map, fig_trend, strip, asof
