"""Micro-clusters (/clusters): H3 cells, space-time scan clusters and red/orange/yellow containment zones.

The map colours cells by cases or rate over a chosen window, or by the job's Gi* hot/cold spots
(FDR-controlled, 90/95/99 %, each class also marked by a symbol and a text label), draws each
significant cluster as its scan circle and each zone in force as a patterned polygon; the tables
list the clusters (start day, observed/expected, relative risk, p, recurrence interval, analysis
window, zone) and the zones. A choice of scan shows the clusters of the tests-adjusted Poisson
scan or of the case-only permutation scan, each labelled with its method; the one that drives the
zones is marked, and a fallback says why. A
click on a cell, a zone label or a table row opens that place's history: daily cases and tests,
and when it entered each tier (the Tianjin "click a map spot" panel). ``?cell=`` or ``?zone=``
in the address opens with that history shown, so an alert can link straight to its zone.
"""
from __future__ import annotations

import dash
import pandas as pd
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update

from components.clustermap import cluster_map_figure, cluster_table, history_figure, history_summary, zone_table
from components.figcache import cached_component, cached_figure
from pages import _ids as ids
from pages._secure import secure_callback
from auth.policy import current_principal
from rulebooks import load_zone_rulebook
from analytics.scan import METHODS, PERMUTATION, TESTS_ADJUSTED
from services.clusters import WINDOW_CHOICES, cluster_view, place_history, view_day
from services.mapdata import area_outlines
from services.read_cache import cached_read
from auth.runtime import current_runtime

dash.register_page(__name__, path="/clusters", title="pheoc · Micro-clusters", name="Clusters", order=10)

MEASURES = {"cases": "Cases", "rate": "Rate per 100k", "hotspots": "Gi* hot spots"}
SCAN_CHOICES = {TESTS_ADJUSTED: "Tests-adjusted (people tested)", PERMUTATION: "Case-only (permutation)"}
LABEL_STYLE = {"marginRight": "1.2rem", "color": "var(--text)", "fontSize": "1.05rem", "cursor": "pointer"}
# Slower than the wall's KPI refresh: the scan runs every few minutes, and redrawing the map
# more often only costs the browser.
MIN_REFRESH_S = 30


def _window(value) -> int:
    try:
        days = int(value)
    except (TypeError, ValueError):
        return WINDOW_CHOICES[1]
    return days if days in WINDOW_CHOICES else WINDOW_CHOICES[1]


def _default_window(recent_days: int) -> int:
    return recent_days if recent_days in WINDOW_CHOICES else WINDOW_CHOICES[1]


def layout(cell: str | None = None, zone: str | None = None, **_query):
    settings = current_runtime().settings
    selected = {"kind": "zone", "key": zone} if zone else {"kind": "cell", "key": cell} if cell else None
    control = {"display": "inline-flex", "gap": "1rem", "alignItems": "center", "marginRight": "2rem"}
    return html.Div(className="page page-clusters", children=[
        dcc.Interval(id=ids.CLUSTERS_REFRESH, interval=max(settings.wall.refresh_s, MIN_REFRESH_S) * 1000,
                     n_intervals=0),
        dcc.Store(id=ids.CLUSTERS_SELECTED, data=selected),
        html.Div(id=ids.CLUSTERS_ASOF, className="asof"),
        html.Div(className="controls", style={"margin": "0.4rem 0"}, children=[
            html.Span(style=control, children=[
                html.Span("Colour cells by", style={"color": "var(--muted)"}),
                dcc.RadioItems(id=ids.CLUSTERS_MEASURE, value="cases", inline=True,
                               options=[{"label": label, "value": v} for v, label in MEASURES.items()],
                               labelStyle=LABEL_STYLE)]),
            html.Span(style=control, children=[
                html.Span("Scan", style={"color": "var(--muted)"}),
                dcc.RadioItems(id=ids.CLUSTERS_METHOD, value=TESTS_ADJUSTED, inline=True,
                               options=[{"label": SCAN_CHOICES[m], "value": m} for m in METHODS],
                               labelStyle=LABEL_STYLE)]),
            html.Span(style=control, children=[
                html.Span("Window", style={"color": "var(--muted)"}),
                dcc.RadioItems(id=ids.CLUSTERS_WINDOW, value=_default_window(settings.map.recent_days), inline=True,
                               options=[{"label": f"{d} days", "value": d} for d in WINDOW_CHOICES],
                               labelStyle=LABEL_STYLE)]),
        ]),
        html.Div(className="grid-2", children=[
            html.Div(className="panel", children=[
                html.H2("Cases by H3 cell, detected clusters and containment zones"),
                dcc.Graph(id=ids.CLUSTERS_MAP, config={"displaylogo": False, "scrollZoom": False},
                          style={"height": "64vh"})]),
            html.Div(className="panel", children=[
                html.H2("History"),
                html.Div(id=ids.CLUSTERS_DETAIL, children=html.P(
                    "Click a cell or a zone marker on the map, or a row below, to see its history.",
                    className="empty"))]),
        ]),
        html.Div(className="grid-2", children=[
            html.Div(className="panel", children=[html.H2("Clusters found by today's space-time scan"),
                                                  html.Div(id=ids.CLUSTERS_METHOD_LABEL, className="method"),
                                                  html.Div(id=ids.CLUSTERS_TABLE)]),
            html.Div(className="panel", children=[html.H2("Containment zones in force"),
                                                  html.Div(id=ids.CLUSTERS_ZONES)]),
        ]),
    ])


@secure_callback(
    "view_clusters",
    Output(ids.CLUSTERS_ASOF, "children"), Output(ids.CLUSTERS_MAP, "figure"), Output(ids.CLUSTERS_TABLE, "children"),
    Output(ids.CLUSTERS_ZONES, "children"), Output(ids.CLUSTERS_METHOD_LABEL, "children"),
    Input(ids.CLUSTERS_REFRESH, "n_intervals"), Input(ids.CLUSTERS_MEASURE, "value"),
    Input(ids.CLUSTERS_WINDOW, "value"), Input(ids.CLUSTERS_METHOD, "value"),
)
def refresh_clusters(_n, measure, window, method):
    rt = current_runtime()
    s = rt.settings
    measure = measure if measure in MEASURES else "cases"
    window = _window(window)
    method = method if method in METHODS else None
    rulebook = load_zone_rulebook(s)
    principal, today = current_principal(), rt.today()
    view = cached_read(rt.store, principal, "clusters", (today, window, method),
                       lambda: cluster_view(rt.store, s, principal, today, window, method=method),
                       with_readings=False)
    fig = cached_figure(cluster_map_figure, view.cells, area_outlines(rt.store), view.zones, view.clusters,
                        tiers=rulebook.zone_tiers, measure=measure, min_count=s.privacy.min_count,
                        resolution=view.resolution, window_days=window, hotspots=view.hotspots)
    longest = int(view.run["max_window_days"]) if view.run else window
    table = cached_component(cluster_table, view.clusters, tiers=rulebook.zone_tiers, min_count=s.privacy.min_count,
                             row_id_type=ids.CLUSTERS_ROW, max_window_days=longest)
    method_label = method_line(view, requested=method)
    zones = cached_component(zone_table, view.zones, tiers=rulebook.zone_tiers, review_days=rulebook.review_days,
                             row_id_type=ids.CLUSTERS_ROW)
    if view.run:
        run = view.run
        more = f" · {view.candidates} weaker candidates not shown" if view.candidates else ""
        windows = str(run.get("windows_days") or run["max_window_days"]).replace(",", " and ")
        lag = int(run.get("lag_days") or 0)
        bar = (f"recurrence interval ≥ {float(run['min_recurrence_days']):,.0f} days"
               if pd.notna(run.get("min_recurrence_days")) else f"p ≤ {run['report_p_max']:g}")
        # The Monte Carlo ends early on a day when no cluster comes near significance (analytics.scan).
        early = (" (ended early: no cluster came near significance)"
                 if int(run["replications"]) < s.clusters.replications else "")
        asof = (f"Scan of {run['as_of']:%a %d %b %Y}: {int(run['total_cases']):,} cases in "
                f"{int(run['locations']):,} cells over {s.clusters.study_days} days to "
                f"{pd.Timestamp(run['study_end']):%d %b} ({lag}-day lag for late reports), maximum windows of "
                f"{windows} days, {int(run['replications']):,} replications{early} · {int(run['significant'])} "
                f"significant ({bar}){more} · zones by {rulebook.title} ({rulebook.id} {rulebook.version})")
    elif view.as_of:
        asof = "The cluster scan has not run yet; cells show reported cases."
    else:
        asof = "No case data yet."
    return asof, fig, table, zones, method_label


def method_line(view, requested: str | None) -> html.P:
    """Which scan the table and circles show, whether it drives the zones, and why where it cannot."""
    choice = next((c for c in view.methods if c.method == view.method), None)
    if choice is None:
        return html.P("")
    parts = [f"Method: {choice.label}."]
    parts.append("Its clusters drive the zones." if choice.drives_zones else
                 "Shown for comparison; the zones follow the other scan.")
    if requested and requested != view.method:
        wanted = next(c for c in view.methods if c.method == requested)
        parts.append(f"{wanted.label} not available: {wanted.note or 'not computed by the latest run'}.")
    elif choice.note:
        parts.append(choice.note[:1].upper() + choice.note[1:] + ".")
    return html.P(" ".join(parts), **{"data-method": view.method}, style={"color": "var(--muted)"})


@secure_callback(
    "view_clusters",
    Output(ids.CLUSTERS_SELECTED, "data"),
    Input(ids.CLUSTERS_MAP, "clickData"), Input({"type": ids.CLUSTERS_ROW, "index": ALL}, "n_clicks"),
    State(ids.CLUSTERS_SELECTED, "data"),
    prevent_initial_call=True, types={f"{ids.CLUSTERS_SELECTED}.data": ("object", "null")},
)
def select_place(click, _row_clicks, current):
    trigger = ctx.triggered_id
    if isinstance(trigger, dict):  # a table row; re-rendered rows fire with n_clicks 0: not a click
        if not any(t.get("value") for t in ctx.triggered):
            return no_update
        kind, _, key = str(trigger.get("index", "")).partition("|")
        return {"kind": kind, "key": key} if kind in ("cell", "zone") and key else no_update
    points = (click or {}).get("points") or []
    data = points[0].get("customdata") if points else None
    # [kind, key], then (on a cell) the figures its hover shows (components.clustermap).
    if isinstance(data, list) and len(data) >= 2 and data[0] in ("cell", "zone"):
        return {"kind": data[0], "key": str(data[1])}
    return no_update if current else None


@secure_callback(
    "view_clusters",
    Output(ids.CLUSTERS_DETAIL, "children"),
    Input(ids.CLUSTERS_SELECTED, "data"), Input(ids.CLUSTERS_WINDOW, "value"),
    types={f"{ids.CLUSTERS_SELECTED}.data": ("object", "null")},
)
def show_history(selected, window):
    if not isinstance(selected, dict) or selected.get("kind") not in ("cell", "zone") or not selected.get("key"):
        return html.P("Click a cell or a zone marker on the map, or a row below, to see its history.",
                      className="empty")
    rt = current_runtime()
    s = rt.settings
    window = _window(window)
    rulebook = load_zone_rulebook(s)
    day = view_day(rt.store, rt.today(), s.city.timezone)
    if day is None:
        return html.P("No case data yet.", className="empty")
    principal = current_principal()
    kind, key = selected["kind"], str(selected["key"])[:64]
    history = cached_read(rt.store, principal, "clusters.place_history", (kind, key, day, window),
                          lambda: place_history(rt.store, s, principal, kind, key, day, window), with_readings=False)
    if not history.found:
        # Not the key back: a place the caller may not see is answered as one that does not exist.
        return html.P(f"No such {selected['kind']} in the data you may see.", className="empty")
    fig = cached_figure(history_figure, history.daily, history.events, tiers=rulebook.zone_tiers,
                        min_count=s.privacy.min_count, tests_estimated=history.tests_estimated)
    summary = cached_component(history_summary, history.totals, history.events, window_days=window,
                               min_count=s.privacy.min_count, tests_estimated=history.tests_estimated)
    return html.Div(**{"data-place": f"{history.kind}|{history.key}"}, children=[
        html.H3(history.title, className="history-title", style={"fontSize": "1.05rem", "margin": "0.2rem 0"}),
        dcc.Graph(figure=fig, config={"displaylogo": False}, style={"height": "44vh"}),
        summary,
    ])

