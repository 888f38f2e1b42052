"""Sensors (/sensors): every sensor on the map by kind and state, a panel per kind, the sensor list, and the
history of the sensor clicked (on the map, in a panel or in the list; the list's names are buttons, so
the keyboard opens histories too).

Every figure is the sensors read model's (services.sensors): the states and thresholds the sensor job
stored, the wastewater leads of the lead job. Nothing here judges a state.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import dash
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from flask import request

from auth.policy import current_principal
from auth.runtime import current_runtime
from components.figcache import cached_figure
from components.kpi import indicator_attributes
from components.sensors import (LEAD_ROWS, crowding_figure, history_figure, lead_table, places_table,
                                sensor_map_figure, state_counts_line, when_text)
from pages import _ids as ids
from pages._redraw import only_changed, prepared
from pages._secure import secure_callback
from services.basemap import context_layers, tile_url
from services.incidents import open_incidents
from services.mapdata import area_outlines
from services.read_cache import cached_read
from services.sensors import UnknownSensor, sensor_choices, sensor_history, sensors_view

dash.register_page(__name__, path="/sensors", title="pheoc · Sensors", name="Sensors", order=35)

# Rows of the sensor list: a network outage silences thousands at once (2,730 in the 1M-person bench city,
# a 4 MB table redrawn each refresh), more than anyone reads off a wall; the map shows every sensor.
LIST_ROWS = 100


def layout(**_query):
    rt = current_runtime()
    settings = rt.settings
    principal = current_principal()
    # The layout is built for whoever asks (the router refuses the page itself): read nothing gated here.
    choices = sensor_choices(rt.store, settings, principal) if principal.can("view_sensors") else []
    return html.Div(className="page page-sensors", children=[
        dcc.Interval(id=ids.SENSORS_REFRESH, interval=settings.wall.refresh_s * 1000, n_intervals=0),
        dcc.Store(id=ids.SENSORS_SELECTED, data=None),
        dcc.Store(id=ids.SENSORS_DRAWN, data=None),
        html.H1("Sensors", className="page-title"),
        html.Div(id=ids.SENSORS_ASOF, className="asof", role="status"),
        html.Div(id=ids.SENSORS_KPIS, className="kpi-row"),
        html.Div(className="grid-2 grid-map", children=[
            html.Section(className="panel panel-map", **{"aria-labelledby": "sensors-map-title"}, children=[
                html.H2("Sensors by kind and state (click one for its history)", id="sensors-map-title"),
                dcc.Graph(id=ids.SENSORS_MAP, config={"displaylogo": False}, className="map-graph")]),
            html.Section(className="panel panel-map", **{"aria-labelledby": ids.SENSORS_HISTORY_TITLE}, children=[
                html.H2("History: choose a sensor on the map or in a list", id=ids.SENSORS_HISTORY_TITLE),
                html.Label("Any sensor", htmlFor=ids.SENSORS_PICK, className="sr-only"),
                dcc.Dropdown(id=ids.SENSORS_PICK, options=choices, placeholder="Any sensor: type its name or id",
                             className="sensor-pick"),
                html.P(id=ids.SENSORS_HISTORY_NOTE, className="muted"),
                dcc.Graph(id=ids.SENSORS_HISTORY, config={"displaylogo": False}, className="map-graph")]),
        ]),
        html.Div(id=ids.SENSORS_PANELS, className="grid-panels"),
        html.Section(className="panel", **{"aria-labelledby": "sensors-list-title"}, children=[
            html.H2("Sensors needing attention: silent, never heard from, above threshold, battery low",
                    id="sensors-list-title"),
            dcc.Checklist(id=ids.SENSORS_LIST_ALL, options=[{"label": " list every sensor", "value": "all"}],
                          value=[], className="list-all"),
            html.Div(id=ids.SENSORS_LIST, className="scroll-table", tabIndex="0",
                     **{"role": "region", "aria-labelledby": "sensors-list-title"})]),
    ])


def _kpi(panel, open_incidents: int | None) -> html.Div:
    above, silent = panel.counts["above"], panel.counts["silent"] + panel.counts["no_data"]
    status = "bad" if above else "warn" if silent else "ok"
    total = sum(panel.counts.values())
    if panel.incident:  # its figure is the presses nobody has acknowledged (for roles that read alerts)
        above = open_incidents or 0
        status = "bad" if above else status
        value = f"{above}" if open_incidents is not None else f"{total}"
        detail = (f"open incident{'s' if above != 1 else ''} · {total} buttons" if open_incidents is not None
                  else f"{total} buttons") + (f" · {silent} silent" if silent else "")
    else:
        value = f"{above}"
        detail = f"above threshold of {total}" + (f" · {silent} silent" if silent else "")
    glyph = {"bad": "▲", "warn": "◌", "ok": "●"}[status]
    return html.Div(className=f"kpi kpi-{status}", id=f"kpi-sensors-{panel.kind}",
                    **indicator_attributes(f"sensors.{panel.kind}.above", above), children=[
        html.Div(panel.label, className="kpi-label"),
        html.Div([html.Span(glyph, className="status-glyph", **{"aria-hidden": "true"}), f" {value}"],
                 className="kpi-value"),
        html.Div(detail, className="kpi-detail")])


def _panel(panel, view, *, min_count: int, leads_kind: bool, crowding: bool, every: bool, tz) -> html.Section:
    title_id = f"sensors-panel-{panel.kind}"
    body: list = [html.H2(panel.label + ("s" if not panel.label.endswith("s") else ""), id=title_id),
                  html.P(f"Threshold: {panel.threshold_note}.", className="muted"), state_counts_line(panel.counts)]
    if leads_kind:
        # The lead job's samplers (jobs/sensor_lead.py): the clearest few, or all when every sensor is listed.
        body.append(lead_table(view.leads, view.city_lead, limit=None if every else LEAD_ROWS))
    if crowding and panel.rows["ratio"].notna().any():
        over = panel.above
        body.append(html.P(f"{len(over)} place{'s' if len(over) != 1 else ''} over capacity now"
                           + (": " + ", ".join(str(n) for n in over["name"].head(6)) if len(over) else "."),
                           className="over-now"))
        body.append(dcc.Graph(figure=crowding_figure(panel.rows, unit=panel.unit), config={"displaylogo": False},
                              className="panel-graph", id=f"sensors-crowding-{panel.kind}"))
    if panel.counts_people:
        body.append(html.P(f"Readings below {min_count} are withheld (they count people).", className="muted"))
    first = panel.above if len(panel.above) else panel.rows
    caption = f"{panel.label}: the most loaded first"
    body.append(places_table(first, min_count=min_count, row_id_type=ids.SENSORS_ROW, tz=tz, caption=caption))
    return html.Section(className="panel", children=body, **{"aria-labelledby": title_id})


@secure_callback(
    "view_sensors",
    Output(ids.SENSORS_ASOF, "children"), Output(ids.SENSORS_KPIS, "children"), Output(ids.SENSORS_MAP, "figure"),
    Output(ids.SENSORS_PANELS, "children"), Output(ids.SENSORS_LIST, "children"), Output(ids.SENSORS_DRAWN, "data"),
    Input(ids.SENSORS_REFRESH, "n_intervals"), Input(ids.SENSORS_LIST_ALL, "value"), State(ids.SENSORS_DRAWN, "data"),
    types={f"{ids.SENSORS_LIST_ALL}.value": ("array", "null"), f"{ids.SENSORS_DRAWN}.data": ("object", "null")},
)
def refresh_sensors(_n, list_all, drawn):
    rt = current_runtime()
    principal = current_principal()
    every = isinstance(list_all, list) and "all" in list_all
    minute = datetime.now(timezone.utc).replace(second=0, microsecond=0)  # "last seen" texts count whole minutes
    tiles = tile_url(rt.settings, request.host_url)
    # The parts are the read models' (cut for this principal) drawn: built once per data version, privacy
    # view and minute (services.read_cache notes their releases again when serving them, so the read audit
    # is unchanged), a wall's refreshes in between answered without building thousands of components.
    trees, prints = cached_read(rt.store, principal, "sensors.parts", (every, minute, tiles),
                                lambda: _sensor_parts(rt, principal, every=every, now=minute, tiles=tiles),
                                with_readings=True)
    # The panels and the list hold buttons: redrawn only when their content changed, so the one a
    # keyboard user has focused stays under them between refreshes.
    drawn, parts = only_changed(drawn, trees, prints)
    return (*parts, drawn)


def _sensor_parts(rt, principal, *, every: bool, now: datetime, tiles: str | None) -> tuple[dict, dict]:
    """The refresh's parts as plain JSON trees, and their fingerprints (pages._redraw.prepared)."""
    s = rt.settings
    tz = ZoneInfo(s.city.timezone)
    view = cached_read(rt.store, principal, "sensors", (), lambda: sensors_view(rt.store, s, principal),
                       with_readings=True)
    incidents = cached_read(rt.store, principal, "open_incidents", (),
                            lambda: open_incidents(rt.store, s, principal).rows, with_readings=True) \
        if principal.can("view_alerts") \
        else None
    kinds = list(s.sensors.kinds) + sorted(set(view.rows["kind"]) - set(s.sensors.kinds))
    labels = {k: s.sensors.kinds[k].label if k in s.sensors.kinds else k for k in kinds}
    fig = cached_figure(sensor_map_figure, view.rows, area_outlines(rt.store, ("boundary", "community")),
                        context_layers(s), kinds=kinds, labels=labels, min_count=s.privacy.min_count,
                        incidents=incidents, tile_url=tiles, tile_attribution=s.map.tile_attribution)
    counts = view.rows["state"].value_counts()
    asof = (f"States judged {when_text(view.checked_at, tz, now)} · {len(view.rows)} sensors: "
            f"{int(counts.get('above', 0))} above threshold, {int(counts.get('silent', 0))} silent, "
            f"{int(counts.get('no_data', 0))} never heard from") if view.checked_at else \
        "The sensor job has not judged any sensor yet."
    order = view.rows.assign(_rank=view.rows["state"].map({"silent": 0, "no_data": 1, "above": 2, "normal": 3}))
    order = order.sort_values(["_rank", "kind", "sensor_id"])
    # Every sensor is 300 rows in the demo: drawn when asked for, not on every refresh of every wall.
    needing = order if every else order[(order["state"] != "normal") | order["battery_low"].astype(bool)]
    listing = [places_table(needing, min_count=s.privacy.min_count, row_id_type=ids.SENSORS_ROW, tz=tz,
                            caption="Sensors needing attention" if not every else "Every sensor", limit=LIST_ROWS,
                            full=True, now=now),
               html.P(" ".join(part for part in (
                   f"The first {LIST_ROWS} of {len(needing)} are listed (all are on the map; type any sensor's name "
                   "above for its history)." if len(needing) > LIST_ROWS else "",
                   f"{len(order) - len(needing)} more sensors are normal." if not every else "") if part),
                   className="muted")]
    n_incidents = None if incidents is None else len(incidents)
    leads_kinds = {k for k, c in s.sensors.kinds.items() if c.metric == s.early_warning.wastewater_metric}
    crowding_kinds = {k for k, c in s.sensors.kinds.items() if c.thresholds_file is not None}
    return prepared({"asof": asof, "kpis": [_kpi(p, n_incidents) for p in view.panels], "map": fig,
                     "panels": [_panel(p, view, min_count=s.privacy.min_count, leads_kind=p.kind in leads_kinds,
                                       crowding=p.kind in crowding_kinds, every=every, tz=tz) for p in view.panels],
                     "list": listing})


@secure_callback(
    "view_sensors",
    Output(ids.SENSORS_SELECTED, "data"),
    Input(ids.SENSORS_MAP, "clickData"), Input({"type": ids.SENSORS_ROW, "index": ALL}, "n_clicks"),
    Input(ids.SENSORS_PICK, "value"),
    prevent_initial_call=True,
)
def select_sensor(click, _clicks, picked):
    trigger = ctx.triggered_id
    if trigger == ids.SENSORS_PICK:
        return {"sensor": picked} if isinstance(picked, str) and picked else no_update
    if isinstance(trigger, dict):  # a list's button; re-rendered buttons fire with n_clicks 0: not a click
        if not any(t.get("value") for t in ctx.triggered):
            return no_update
        sensor = trigger.get("index")
        return {"sensor": sensor} if isinstance(sensor, str) and sensor else no_update
    points = (click or {}).get("points") if isinstance(click, dict) else None
    if isinstance(points, list) and points and isinstance(points[0], dict):
        sensor = points[0].get("customdata")
        if isinstance(sensor, str) and sensor:
            return {"sensor": sensor}
    return no_update


@secure_callback(
    "view_sensors",
    Output(ids.SENSORS_HISTORY_TITLE, "children"), Output(ids.SENSORS_HISTORY, "figure"),
    Output(ids.SENSORS_HISTORY_NOTE, "children"),
    Input(ids.SENSORS_SELECTED, "data"), Input(ids.SENSORS_REFRESH, "n_intervals"),
    types={f"{ids.SENSORS_SELECTED}.data": ("object", "null")},
)
def show_history(selected, _n):
    rt = current_runtime()
    s = rt.settings
    sensor = selected.get("sensor") if isinstance(selected, dict) else None
    if not isinstance(sensor, str) or not sensor:
        if ctx.triggered_id == ids.SENSORS_REFRESH and _n:
            return no_update, no_update, no_update
        return ("History: choose a sensor on the map or in a list", history_figure(_empty_history(), min_count=0),
                "")
    principal = current_principal()
    try:
        history = cached_read(rt.store, principal, "sensors.history", (sensor[:64],),
                              lambda: sensor_history(rt.store, s, principal, sensor), with_readings=True)
    except UnknownSensor:
        return "History: no such sensor", history_figure(_empty_history(), min_count=0), \
            "That sensor does not exist, or is outside what you may see."
    note = f"Last {history.days} days of {history.metric} ({history.unit})"
    if len(history.battery):
        note += f" · battery {history.battery['value'].iloc[-1]:.0f} % at its latest report"
    return (f"History: {history.name} ({history.sensor_id})",
            cached_figure(history_figure, history, min_count=s.privacy.min_count), note)


def _empty_history():
    import pandas as pd

    from services.sensors import SensorHistory
    return SensorHistory("", "", "", "", "", "", None,
                         pd.DataFrame(columns=["ts", "metric", "value", "value__suppressed"]),
                         pd.DataFrame(columns=["ts", "value"]), 0)
