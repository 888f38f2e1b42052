"""Overview (/): the wall screen. KPI tiles, the city map of recent cases, trends, data freshness.

Every figure is a read-model figure (services.overview -> services.indicators), the same as
GET /api/v1/indicators; the map shows H3 cells only to roles that may see cells (inside their
precincts, for police) and community areas to everyone else.
"""
from __future__ import annotations

from datetime import datetime, timezone

import dash
from dash import Input, Output, State, dcc, html
from flask import request

from auth.policy import current_principal
from auth.runtime import current_runtime
from components.charts import trend_figure
from components.figcache import cached_figure
from components.freshness import freshness_strip
from components.hexmap import hex_map_figure
from components.kpi import kpi_tile
from pages import _ids as ids
from pages._redraw import only_changed
from pages._secure import secure_callback
from services.basemap import context_layers, tile_url
from services.mapdata import area_outlines
from services.overview import ingest_status, overview
from services.read_cache import cached_read

dash.register_page(__name__, path="/", title="pheoc · Overview", name="Overview", order=0)


def _map_title(principal, days: int) -> str:
    where = "H3 cell" if principal.sees_at_least("cells") else "community area"
    return f"Cases in the last {days} days, by {where}"


def layout(**_query):
    settings = current_runtime().settings
    return html.Div(className="page page-overview", children=[
        dcc.Interval(id=ids.OVERVIEW_REFRESH, interval=settings.wall.refresh_s * 1000, n_intervals=0),
        dcc.Store(id=ids.OVERVIEW_DRAWN, data=None),
        html.Div(id=ids.OVERVIEW_ASOF, className="asof"),
        html.Div(id=ids.OVERVIEW_KPIS, className="kpi-row"),
        html.Div(className="grid-2", children=[
            html.Div(className="panel", children=[
                html.H2(_map_title(current_principal(), settings.map.recent_days), id=ids.OVERVIEW_MAP_TITLE),
                dcc.Graph(id=ids.OVERVIEW_MAP, config={"displaylogo": False}, style={"height": "54vh"})]),
            html.Div(className="panel", children=[
                html.H2("Cases, admissions and hospital occupancy"),
                dcc.Graph(id=ids.OVERVIEW_TREND, config={"displaylogo": False}, style={"height": "54vh"})]),
        ]),
        html.Div(id=ids.OVERVIEW_FRESHNESS),
    ])


def _opening_inbox(tile: html.Div) -> html.Div:
    """The open-alerts tile opens the alert inbox (/alerts), where alerts are acknowledged: a link laid over
    the whole tile (assets/pheoc.css), after its label, value and detail, which stay as they are."""
    tile.className += " kpi-opens"
    tile.children = [*tile.children, dcc.Link("Open the alert inbox", href="/alerts", className="kpi-link")]
    return tile


@secure_callback(
    "view_overview",
    Output(ids.OVERVIEW_KPIS, "children"), Output(ids.OVERVIEW_MAP, "figure"),
    Output(ids.OVERVIEW_TREND, "figure"), Output(ids.OVERVIEW_FRESHNESS, "children"),
    Output(ids.OVERVIEW_ASOF, "children"), Output(ids.OVERVIEW_DRAWN, "data"),
    Input(ids.OVERVIEW_REFRESH, "n_intervals"), State(ids.OVERVIEW_DRAWN, "data"),
    types={f"{ids.OVERVIEW_DRAWN}.data": ("object", "null")},
)
def refresh_overview(_n, drawn):
    rt = current_runtime()
    s = rt.settings
    principal = current_principal()
    data = cached_read(rt.store, principal, "overview", (), lambda: overview(rt.store, s, principal),
                       with_readings=False)
    status = cached_read(rt.store, principal, "overview.ingest_status", (), lambda: ingest_status(rt.store),
                         with_readings=True)
    tiles = [_opening_inbox(kpi_tile(t.figure, t.detail, t.status)) if t.figure.key == "active_alerts"
             else kpi_tile(t.figure, t.detail, t.status) for t in data.tiles]
    fig_map = cached_figure(hex_map_figure, data.map.rows, area_outlines(rt.store), grain=data.map.grain,
                            min_count=s.privacy.min_count,
                            tile_url=tile_url(s, request.host_url), tile_attribution=s.map.tile_attribution,
                            context=context_layers(s))
    fig_trend = cached_figure(trend_figure, data.trend, min_count=s.privacy.min_count)
    strip = freshness_strip(status.freshness, status.rejected_total, status.rejected_by_reason)
    now = datetime.now(timezone.utc).astimezone()
    asof = f"Data as of {data.as_of:%a %d %b %Y} · updated {now:%H:%M:%S}" if data.as_of else "No case data yet"
    # Tiles and strip are redrawn only when they changed: the open-alerts tile is a link, and replacing it
    # every refresh pulls it from under the pointer or a keyboard user's focus.
    drawn, (tiles, strip) = only_changed(drawn, {"tiles": tiles, "strip": strip})
    return tiles, fig_map, fig_trend, strip, asof, drawn
