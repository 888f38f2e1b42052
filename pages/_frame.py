"""What the frame adds to every page for the wall: open panic-button incidents, the feeds' freshness strip,
the kiosk bar (clock and newest data time) and the playlists, plus a skip link for keyboard users.

- **Incidents** (services.incidents): every press nobody has acknowledged, with place and time, on every
  page of every screen of a role that reads alerts, refreshed every ``wall.refresh_s``; the button
  acknowledges it for those who may (the alert inbox's acknowledgement, audited).
- **Freshness** (services.feeds): one chip per feed; the strip turns amber when a feed is stale and red
  when one is dead, with the word beside the colour.
- **Kiosk mode** (``?kiosk=1``) and **playlists** (``?playlist=NAME``, ``wall.playlists``) run in the
  browser (assets/pheoc-wall.js): kiosk mode hides the navigation and enlarges the type; a playlist
  shows each view for its seconds, then moves on without reloading the page. The playlists reach the
  script as data on the frame; the pages they name are authorised as any page is.

Dash hands callbacks registered by a module that is not a page to the first app of a process only;
pages._shell calls ``register_callbacks`` at import, and is re-imported for each app of a test process.
"""
from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pandas as pd
from dash import ALL, Input, Output, State, dcc, html, no_update

from auth.policy import current_principal
from auth.runtime import current_runtime
from pages import _ids as ids
from pages._secure import clicked_pattern_id, secure_callback
from services.feeds import feed_health
from services.incidents import UnknownIncident, acknowledge_incident, open_incidents
from settings import Settings

ACK_DONE = "shell-incident-acked"  # dcc.Store: bumped after an acknowledgement, so the banner redraws at once
SIGNATURE = "shell-incident-signature"  # dcc.Store: what the banner shows, to redraw only when it changes
FEED_WORDS = {"ok": ("✓", "live"), "stale": ("⚠", "stale"), "dead": ("✕", "dead")}
FEED_NAMES = {"reading": "sensor readings", "case": "case reports", "test": "tests", "capacity": "capacity",
              "supply": "supplies", "admission": "admissions"}


def frame_top(settings: Settings) -> list:
    """Before the top bar: the skip link, the frame's timer and stores, the kiosk bar."""
    playlists = {name: [{"page": v.page, "seconds": v.seconds} for v in views]
                 for name, views in settings.wall.playlists.items()}
    return [
        html.A("Skip to the page's content", href="#main-content", className="skip-link"),
        dcc.Interval(id=ids.SHELL_REFRESH, interval=settings.wall.refresh_s * 1000, n_intervals=0),
        dcc.Store(id=ACK_DONE, data=0), dcc.Store(id=SIGNATURE, data=None),
        html.Div(id="wall-settings", hidden=True, **{"data-playlists": json.dumps(playlists, separators=(",", ":")),
                                                     "data-timezone": settings.city.timezone}),
        html.Div(className="kiosk-bar", **{"aria-label": "Clock and data time"}, role="group", children=[
            html.Span(settings.city.name, className="kiosk-city"),
            html.Span(id="kiosk-clock", className="kiosk-clock", role="timer", **{"aria-live": "off"}),
            html.Span(id="kiosk-data-time", className="kiosk-data-time")]),
    ]


def frame_bottom() -> list:
    """After the top bar, above every page: the incident banner and the freshness strip."""
    return [
        html.Div(id=ids.SHELL_INCIDENTS, className="incident-banner", role="region",
                 **{"aria-label": "Open panic-button incidents", "aria-live": "assertive"}),
        html.Div(id=ids.SHELL_INCIDENT_STATUS, className="incident-status", role="status"),
        html.Div(id=ids.SHELL_FRESHNESS, className="frame-fresh", role="status",
                 **{"aria-label": "Freshness of the data feeds"}),
    ]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def freshness_chips(health) -> list:
    chips = []
    for f in health.feeds:
        glyph, word = FEED_WORDS[f.status]
        chips.append(html.Span(className=f"feed feed-{f.status}", **{"data-feed": f.kind, "data-status": f.status},
                               title=f"last stored {f.last_received_at} via {f.channels or 'nothing yet'}", children=[
            html.Span(glyph, className="feed-glyph", **{"aria-hidden": "true"}),
            f" {FEED_NAMES.get(f.kind, f.kind)}: {word}, {_age(f.age_s)}"]))
    return chips


def incident_rows(rows: pd.DataFrame, may_acknowledge: bool, tz: ZoneInfo) -> list:
    out = []
    for r in rows.itertuples(index=False):
        pressed = pd.Timestamp(r.pressed_at if not pd.isna(r.pressed_at) else r.raised_at).tz_convert(tz)
        where = r.area_name if isinstance(r.area_name, str) else "the city"
        out.append(html.Div(className="incident", **{"data-incident": str(int(r.alert_id)), "data-sensor": r.sensor_id},
                            children=[
            html.Span("⚠", className="incident-glyph", **{"aria-hidden": "true"}),
            html.Strong(f"{str(r.label).upper()} PRESSED"),
            html.Span(f" {r.name if isinstance(r.name, str) else r.sensor_id} ({r.sensor_id}) · {where} · "
                      f"{pressed:%d %b %H:%M:%S}", className="incident-text"),
            *([html.Button("Acknowledge", id={"type": ids.SHELL_INCIDENT_ACK, "index": int(r.alert_id)}, n_clicks=0,
                           className="incident-ack",
                           **{"aria-label": f"Acknowledge the press of {r.sensor_id} at {pressed:%H:%M:%S}"})]
              if may_acknowledge else [])]))
    return out


def register_callbacks() -> None:
    """The frame's callbacks (see the module docstring for why this is a function)."""

    @secure_callback(
        "view_overview",
        Output(ids.SHELL_INCIDENTS, "children"), Output(SIGNATURE, "data"), Output(ids.SHELL_FRESHNESS, "children"),
        Output(ids.SHELL_FRESHNESS, "className"), Output("kiosk-data-time", "children"),
        Input(ids.SHELL_REFRESH, "n_intervals"), Input(ACK_DONE, "data"), State(SIGNATURE, "data"),
        types={f"{ACK_DONE}.data": ("integer", "null"), f"{SIGNATURE}.data": ("string", "null")},
    )
    def refresh_frame(_n, _acked, signature):
        rt = current_runtime()
        s = rt.settings
        principal = current_principal()
        tz = ZoneInfo(s.city.timezone)
        health = feed_health(rt.store, s)
        data_time = "no data yet" if health.newest_record_at is None else \
            f"data as of {pd.Timestamp(health.newest_record_at).tz_convert(tz):%d %b %H:%M}"
        strip_class = f"frame-fresh frame-fresh-{health.status}"
        banner, new_signature = [], ""
        if principal.can("view_alerts"):
            found = open_incidents(rt.store, s, principal)
            new_signature = f"{found.may_acknowledge}:" + ",".join(str(int(a)) for a in found.rows["alert_id"])
            if new_signature != signature:
                banner = incident_rows(found.rows, found.may_acknowledge, tz)
        if new_signature == signature:
            return no_update, no_update, freshness_chips(health), strip_class, data_time
        return banner, new_signature, freshness_chips(health), strip_class, data_time

    @secure_callback(
        "acknowledge_alerts",
        Output(ids.SHELL_INCIDENT_STATUS, "children"), Output(ACK_DONE, "data"),
        Input({"type": ids.SHELL_INCIDENT_ACK, "index": ALL}, "n_clicks"), State(ACK_DONE, "data"),
        prevent_initial_call=True, types={f"{ACK_DONE}.data": ("integer", "null")},
    )
    def acknowledge_from_wall(_clicks, acked):
        trigger = clicked_pattern_id()
        if trigger is None:
            return no_update, no_update
        alert_id = trigger.get("index")
        if not isinstance(alert_id, int) or isinstance(alert_id, bool):
            return no_update, no_update
        rt = current_runtime()
        principal = current_principal()
        try:
            acknowledge_incident(rt.store, rt.settings, principal, alert_id)
        except UnknownIncident:
            return "That incident is no longer open (someone acknowledged it).", (acked or 0) + 1
        return f"Incident acknowledged by {principal.user}.", (acked or 0) + 1
