"""Capacity (/capacity): hospital beds, ICU and ventilators by facility, stale reports, the bed projection
with "days until full", supplies on hand, and spare capacity (potential sites) next to rising demand."""
from __future__ import annotations

from datetime import datetime, timezone

import dash
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from components.capacity import (
    FACILITY_COLUMNS,
    capacity_trend_figure,
    facility_map_figure,
    facility_table_header,
    facility_table_rows,
    replay_banner,
    sites_table,
    sort_label,
    supplies_table,
)
from components.figcache import cached_component, cached_figure
from components.kpi import kpi_tile
from pages import _ids as ids
from pages._secure import clicked_pattern_id, secure_callback
from auth.policy import current_principal
from services.capacity import DEFAULT_SORT, capacity_view, facility_trend, sort_facilities
from services.mapdata import area_outlines
from services.read_cache import cached_read
from auth.runtime import current_runtime

dash.register_page(__name__, path="/capacity", title="pheoc · Capacity", name="Capacity", order=30)

GRAPH_CONFIG = {"displaylogo": False}
CITYWIDE = "citywide"  # the facility selector's "all hospitals" (services.capacity reads it so)


def layout(**_query):
    settings = current_runtime().settings
    col, desc = DEFAULT_SORT
    return html.Div(className="page page-capacity", children=[
        dcc.Interval(id=ids.CAPACITY_REFRESH, interval=settings.wall.refresh_s * 1000, n_intervals=0),
        dcc.Store(id=ids.CAPACITY_SORT, data={"col": col, "desc": desc}),
        html.Div(id=ids.CAPACITY_ASOF, className="asof"),
        html.Div(id=ids.CAPACITY_KPIS, className="kpi-row"),
        html.Div(className="grid-2", children=[
            html.Div(className="panel", style={"overflowX": "auto"}, children=[
                html.H2("Facilities (click a heading to sort)"),
                html.Table(className="data capacity-table", id="capacity-table", children=[
                    facility_table_header(ids.CAPACITY_SORT_BUTTON, col, desc),
                    html.Tbody(id=ids.CAPACITY_TABLE_BODY)])]),
            # The map fills its panel, which is as tall as the facility table beside it (assets/pheoc-wall.css).
            html.Div(className="panel panel-map", children=[
                html.H2("Facilities by beds (size) and occupancy (colour); potential sites; areas with rising cases"),
                dcc.Graph(id=ids.CAPACITY_MAP, config=GRAPH_CONFIG, className="map-graph")]),
        ]),
        html.Div(className="grid-2", children=[
            html.Div(className="panel", children=[
                html.H2("All hospitals: occupied beds and projection"),
                dcc.Graph(id=ids.CAPACITY_CITY_TREND, config=GRAPH_CONFIG, style={"height": "40vh"}),
                html.Div(id=ids.CAPACITY_CITY_NOTE, className="asof")]),
            html.Div(className="panel", children=[
                html.Div(style={"display": "flex", "gap": "1rem", "alignItems": "center"}, children=[
                    html.H2("Facility trend", style={"whiteSpace": "nowrap"}),
                    dcc.Dropdown(id=ids.CAPACITY_FACILITY_SELECT, value=CITYWIDE, clearable=False,
                                 options=[{"label": "All hospitals", "value": CITYWIDE}],
                                 style={"flex": "1", "color": "#101418"})]),
                dcc.Graph(id=ids.CAPACITY_FACILITY_TREND, config=GRAPH_CONFIG, style={"height": "40vh"}),
                html.Div(id=ids.CAPACITY_FACILITY_NOTE, className="asof")]),
        ]),
        html.Div(className="grid-2", children=[
            html.Div(className="panel", children=[
                html.H2(f"Supplies: days on hand (warning below {settings.capacity.supplies_warn_days:g} days)"),
                html.Div(id=ids.CAPACITY_SUPPLIES)]),
            html.Div(className="panel", children=[
                html.H2("Spare capacity: potential sites next to rising demand"),
                html.Div(id=ids.CAPACITY_SITES)]),
        ]),
    ])


@secure_callback(
    "view_capacity",
    Output(ids.CAPACITY_SORT, "data"), Output({"type": ids.CAPACITY_SORT_BUTTON, "col": ALL}, "children"),
    Input({"type": ids.CAPACITY_SORT_BUTTON, "col": ALL}, "n_clicks"), State(ids.CAPACITY_SORT, "data"),
    prevent_initial_call=True, types={f"{ids.CAPACITY_SORT}.data": "object"},
)
def sort_capacity_table(_clicks, current):
    clicked = clicked_pattern_id()
    if clicked is None:
        raise PreventUpdate  # no_update is not accepted for a wildcard (ALL) output
    col = clicked["col"]
    # A second click on the same heading reverses the order; a new heading starts with the most urgent
    # first (highest occupancy, fewest free beds, oldest report, stale ones).
    ascending_first = {"name", "free_beds", "vent_free", "days_until_full"}
    desc = (not current.get("desc", True)) if current.get("col") == col else col not in ascending_first
    label_of = {c.key: c.label for c in FACILITY_COLUMNS}
    labels = [sort_label(label_of[o["id"]["col"]], o["id"]["col"] == col, desc) for o in ctx.outputs_list[1]]
    return {"col": col, "desc": desc}, labels


def _table_body(facilities, column: str, descending: bool, *, horizon: int, min_count: int) -> list:
    """The facility table's rows in the chosen order (one cached build per order and data)."""
    rows = sort_facilities(facilities, column, descending) if len(facilities) else facilities
    return facility_table_rows(rows, horizon=horizon, min_count=min_count)


@secure_callback(
    "view_capacity",
    Output(ids.CAPACITY_ASOF, "children"), Output(ids.CAPACITY_KPIS, "children"),
    Output(ids.CAPACITY_TABLE_BODY, "children"), Output(ids.CAPACITY_MAP, "figure"),
    Output(ids.CAPACITY_CITY_TREND, "figure"), Output(ids.CAPACITY_CITY_NOTE, "children"),
    Output(ids.CAPACITY_SUPPLIES, "children"), Output(ids.CAPACITY_SITES, "children"),
    Output(ids.CAPACITY_FACILITY_SELECT, "options"),
    Input(ids.CAPACITY_REFRESH, "n_intervals"), Input(ids.CAPACITY_SORT, "data"),
    State(ids.CAPACITY_FACILITY_SELECT, "options"), types={f"{ids.CAPACITY_SORT}.data": "object"},
)
def refresh_capacity(_n, sort, current_options):
    rt = current_runtime()
    s = rt.settings
    cfg = s.capacity
    k = s.privacy.min_count
    principal = current_principal()
    view = cached_read(rt.store, principal, "capacity", (),
                       lambda: capacity_view(rt.store, s, principal, datetime.now(timezone.utc)),
                       with_readings=False)
    sort = sort if isinstance(sort, dict) else {}
    body = cached_component(_table_body, view.facilities, str(sort.get("col", DEFAULT_SORT[0])),
                            bool(sort.get("desc", True)), horizon=s.early_warning.forecast_days, min_count=k)
    tiles = [kpi_tile(t.figure, t.detail, t.status) for t in view.tiles]
    fig_map = cached_figure(facility_map_figure, view.facilities, view.sites, view.demand, area_outlines(rt.store),
                            min_count=k)
    outlook = view.city_outlook
    threshold = s.early_warning.capacity_threshold
    fig_city = cached_figure(capacity_trend_figure, view.citywide, view.city_band,
                             outlook.capacity if outlook else None, threshold,
                             outlook.days_median if outlook else None)
    now = datetime.now(timezone.utc).astimezone()
    cases_to = f" · cases to {view.as_of:%d %b %Y}" if view.as_of else ""
    asof = [replay_banner(view.replay),
            f"Reports as of {view.reference_time:%a %d %b %Y %H:%M} UTC{cases_to} · "
            f"stale after {cfg.stale_after_hours:g} h · updated {now:%H:%M:%S}"]
    supplies = cached_component(supplies_table, view.supplies, cfg.supplies_warn_days)
    sites = cached_component(sites_table, view.sites, view.demand, min_count=k)
    options = [{"label": "All hospitals", "value": CITYWIDE}] + [
        {"label": f"{r.name}" + (" (stale)" if r.stale else ""), "value": r.facility_id}
        for r in view.facilities.sort_values("name").itertuples(index=False)] if len(view.facilities) else [
        {"label": "All hospitals", "value": CITYWIDE}]
    if options == current_options:
        options = no_update  # re-sending the list would re-render an open dropdown under the operator's pointer
    note = f"Projection: {outlook.note}" if outlook else "Projection: none yet (the early-warning job has not run)"
    return asof, tiles, body, fig_map, fig_city, note, supplies, sites, options


@secure_callback(
    "view_capacity",
    Output(ids.CAPACITY_FACILITY_TREND, "figure"), Output(ids.CAPACITY_FACILITY_NOTE, "children"),
    Input(ids.CAPACITY_FACILITY_SELECT, "value"), Input(ids.CAPACITY_REFRESH, "n_intervals"),
)
def refresh_facility_trend(facility_id, _n):
    rt = current_runtime()
    threshold = rt.settings.early_warning.capacity_threshold
    horizon = rt.settings.early_warning.forecast_days
    principal, facility = current_principal(), str(facility_id or CITYWIDE)
    trend = cached_read(rt.store, principal, "capacity.facility_trend", (facility,),
                        lambda: facility_trend(rt.store, rt.settings, principal, facility, datetime.now(timezone.utc)),
                        with_readings=False)
    days = trend.outlook.days_median if trend.outlook else None
    fig = cached_figure(capacity_trend_figure, trend.history, trend.band, trend.capacity, threshold, days)
    if trend.outlook is None:
        verdict = "no projection"
    elif trend.outlook.days_median == 0:
        verdict = f"at or above {threshold:.0%} of beds now"
    elif trend.outlook.days_median is None:
        verdict = f"{threshold:.0%} of beds not reached within {horizon} days"
    else:
        verdict = f"{threshold:.0%} of beds in {trend.outlook.days_median} days"
    return fig, f"{trend.name}: {verdict} · {trend.note}"
