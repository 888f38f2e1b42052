"""Alerts (/alerts): the alert inbox, CAP warnings and their approval, delivery status, other agencies' alerts.

The inbox has one row per series and area (services.alert_inbox), filtered by kind, area, severity
and state; a role with acknowledge_alerts acknowledges (with a note) or resolves a row's alert.
Warnings (services.warnings): proposals wait for a role with issue_warnings to approve or reject
them; issued ones link their CAP document and show which agencies have not acknowledged yet and
since when; a role with acknowledge_warnings acknowledges for its agency. Each channel's delivery
state is shown, a failing one in red. Every action is checked again on the server by its callback's
permission and inside the service, and audited there.
"""
from __future__ import annotations

from datetime import datetime, timezone

import dash
import pandas as pd
from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from auth.policy import current_principal
from auth.runtime import current_runtime
from components.theme import OKABE_ITO, STATUS_TEXT_COLOURS
from pages import _ids as ids
from pages._redraw import only_changed, prepared
from pages._secure import clicked_pattern_id, secure_callback
from services import alert_inbox as inbox
from services import warnings as warn
from services.indicators import area_names
from services.read_cache import cached_read

dash.register_page(__name__, path="/alerts", title="pheoc · Alerts", name="Alerts", order=15)

REFRESH_S = 10
# Rows of the inbox drawn at once, most urgent first (open, most severe, newest); the "Rows" control reaches
# the rest. Each row is a dozen components with a note field and buttons: 200 of them were 420 KB and most of
# a second per refresh at the 1M-person bench city, more than a wall shows without scrolling.
PAGE_ROWS = 50
# Severity as coloured text on the panel (theme.STATUS_TEXT_COLOURS: readable there); the word itself says it.
SEVERITY_COLOURS = {"critical": STATUS_TEXT_COLOURS["bad"], "warning": STATUS_TEXT_COLOURS["warn"],
                    "info": OKABE_ITO["sky"]}
BUTTON = {"background": "#101418", "color": "#e8eaed", "border": "1px solid #3a444f", "padding": "0.2rem 0.6rem",
          "cursor": "pointer", "marginRight": "0.4rem", "fontSize": "0.95rem"}
DROPDOWN = {"color": "#101418", "fontSize": "1rem", "minWidth": "12rem"}
STATES = (("open", "Open (not resolved)"), ("active", "Not acknowledged"), ("acknowledged", "Acknowledged"),
          ("resolved", "Resolved"), ("all", "All"))


def _filter(label: str, component) -> html.Div:
    return html.Div([html.Div(label, className="kpi-label"), component])


def layout(**_query):
    rt = current_runtime()
    principal = current_principal()
    names = sorted(area_names(rt.store).items(), key=lambda x: x[1])
    # The layout is built for whoever asks (the router refuses the page itself): read nothing gated here.
    kinds = inbox.alert_inbox(rt.store, principal, state="all").kinds if principal.can("view_alerts") else ()
    may_issue = principal.can("issue_warnings")
    compose = []
    if may_issue:
        compose = [html.Details(className="panel", style={"marginTop": "0.6rem"}, children=[
            html.Summary("Compose a warning (proposed; sent once approved)", className="kpi-label"),
            dcc.Input(id=ids.ALERTS_COMPOSE_HEADLINE, placeholder="Headline", maxLength=200,
                      style={"width": "100%", "marginTop": "0.4rem"}),
            dcc.Textarea(id=ids.ALERTS_COMPOSE_DESCRIPTION, placeholder="Description", maxLength=2000,
                         style={"width": "100%", "height": "4rem"}),
            dcc.Textarea(id=ids.ALERTS_COMPOSE_INSTRUCTION, placeholder="Instruction to the public", maxLength=2000,
                         style={"width": "100%", "height": "3rem"}),
            html.Div(style={"display": "flex", "gap": "1rem", "alignItems": "end"}, children=[
                _filter("Areas", dcc.Dropdown(id=ids.ALERTS_COMPOSE_AREAS, multi=True, style=DROPDOWN,
                                              options=[{"label": n, "value": a} for a, n in names])),
                _filter("CAP severity", dcc.Dropdown(id=ids.ALERTS_COMPOSE_SEVERITY, value="Moderate",
                                                     clearable=False, style=DROPDOWN,
                                                     options=["Extreme", "Severe", "Moderate", "Minor"])),
                html.Button("Propose", id=ids.ALERTS_COMPOSE_SUBMIT, n_clicks=0, style=BUTTON)]),
        ])]
    return html.Div(className="page page-alerts", children=[
        dcc.Interval(id=ids.ALERTS_REFRESH, interval=REFRESH_S * 1000, n_intervals=0),
        dcc.Store(id=ids.ALERTS_TABLE_DRAWN, data=None), dcc.Store(id=ids.ALERTS_WARNINGS_DRAWN, data=None),
        html.Div(className="panel", style={"display": "flex", "flexWrap": "wrap", "gap": "1.2rem"}, children=[
            _filter("Kind", dcc.Dropdown(id=ids.ALERTS_KIND, placeholder="any kind", style=DROPDOWN,
                                         options=[{"label": k, "value": k} for k in kinds])),
            _filter("Area", dcc.Dropdown(id=ids.ALERTS_AREA, placeholder="any area", style=DROPDOWN,
                                         options=[{"label": n, "value": a} for a, n in names])),
            _filter("Severity", dcc.Dropdown(id=ids.ALERTS_SEVERITY, placeholder="any severity", style=DROPDOWN,
                                             options=list(reversed(inbox.SEVERITIES)))),
            _filter("State", dcc.Dropdown(id=ids.ALERTS_STATE, value="open", clearable=False, style=DROPDOWN,
                                          options=[{"label": label, "value": v} for v, label in STATES])),
            _filter("Rows", dcc.Dropdown(id=ids.ALERTS_PAGE, value=0, clearable=False, searchable=False,
                                         style=DROPDOWN, options=[{"label": f"1–{PAGE_ROWS}", "value": 0}])),
            html.Div(id=ids.ALERTS_STATUS, className="kpi-detail", style={"alignSelf": "end", "fontSize": "1.05rem"}),
        ]),
        html.Div(className="panel", style={"marginTop": "0.6rem", "overflowX": "auto"}, children=[
            html.H2("Alerts (one row per signal and area)"), html.Div(id=ids.ALERTS_TABLE)]),
        html.Div(className="grid-2", children=[
            html.Div(className="panel", children=[
                html.H2("Warnings (CAP 1.2)"),
                # One status line per kind of action (each callback owns its output).
                *(html.Div(id=i, className="kpi-detail") for i in (
                    ids.ALERTS_WARNING_STATUS, ids.ALERTS_DECISION_STATUS, ids.ALERTS_WARNING_ACK_STATUS)),
                html.Div(id=ids.ALERTS_WARNINGS)]),
            html.Div(children=[
                html.Div(className="panel", children=[html.H2("Delivery channels"), html.Div(id=ids.ALERTS_CHANNELS)]),
                html.Div(className="panel", style={"marginTop": "0.6rem"}, children=[
                    html.H2("Other agencies' alerts"), html.Div(id=ids.ALERTS_INBOUND)]),
            ]),
        ]),
        *compose,
    ])


def _when(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return pd.Timestamp(value).tz_convert(current_runtime().settings.city.timezone).strftime("%d %b %H:%M") \
        if pd.Timestamp(value).tzinfo else str(value)


def _ago(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    seconds = (datetime.now(timezone.utc) - pd.Timestamp(value).to_pydatetime()).total_seconds()
    return f"{seconds / 3600:.0f} h ago" if seconds >= 3600 else f"{max(seconds, 0) / 60:.0f} min ago"


def _alert_row(r: dict, may_act: bool) -> html.Tr:
    state = r["state"]
    if isinstance(r["acknowledged_by"], str):
        state += f" by {r['acknowledged_by']} {_when(r['acknowledged_at'])}" + (
            f": “{r['ack_note']}”" if isinstance(r["ack_note"], str) else "")
    if r["state"] == "resolved":
        state = f"resolved by {r['resolved_by']} {_when(r['resolved_at'])}"
    actions = []
    if may_act and r["state"] != "resolved":
        aid = int(r["alert_id"])
        actions.append(dcc.Input(id={"type": ids.ALERTS_NOTE, "alert": aid}, placeholder="note", maxLength=500,
                                 style={"width": "9rem", "marginRight": "0.4rem"}))
        if r["state"] == "active":
            actions.append(html.Button("Acknowledge", n_clicks=0, style=BUTTON,
                                       id={"type": ids.ALERTS_ACTION, "alert": aid, "action": "acknowledge"}))
        actions.append(html.Button("Resolve", n_clicks=0, style=BUTTON,
                                   id={"type": ids.ALERTS_ACTION, "alert": aid, "action": "resolve"}))
    episodes = f"{r['episodes']} alerts since {_when(r['first_raised_at'])}" if r["episodes"] > 1 else ""
    return html.Tr(**{"data-alert": str(r["alert_id"]), "data-state": r["state"], "data-series": r["series"]},
                   children=[
        html.Td(r["severity"], style={"color": SEVERITY_COLOURS.get(r["severity"], "#e8eaed"), "fontWeight": 700}),
        html.Td(r["kind"]), html.Td(r["area_name"] if isinstance(r["area_name"], str) else "Citywide"),
        html.Td([html.Div(r["title"]), html.Div(r["detail"] if isinstance(r["detail"], str) else "",
                                                className="kpi-detail")]),
        html.Td([html.Div(_when(r["raised_at"])), html.Div(episodes, className="kpi-detail")]),
        html.Td(state, className="alert-state"), html.Td(actions)])


FILTERS = (ids.ALERTS_KIND, ids.ALERTS_AREA, ids.ALERTS_SEVERITY, ids.ALERTS_STATE)


@secure_callback(
    "view_alerts",
    Output(ids.ALERTS_TABLE, "children"), Output(ids.ALERTS_TABLE_DRAWN, "data"), Output(ids.ALERTS_PAGE, "options"),
    Output(ids.ALERTS_PAGE, "value"),
    Input(ids.ALERTS_REFRESH, "n_intervals"), Input(ids.ALERTS_KIND, "value"), Input(ids.ALERTS_AREA, "value"),
    Input(ids.ALERTS_SEVERITY, "value"), Input(ids.ALERTS_STATE, "value"), Input(ids.ALERTS_STATUS, "children"),
    Input(ids.ALERTS_PAGE, "value"), State(ids.ALERTS_TABLE_DRAWN, "data"),
    types={f"{ids.ALERTS_STATUS}.children": ("string", "null"), f"{ids.ALERTS_TABLE_DRAWN}.data": ("object", "null")},
)
def refresh_alerts(_n, kind, area, severity, state, _status, asked, drawn):
    rt = current_runtime()
    principal = current_principal()
    page = asked if isinstance(asked, int) and not isinstance(asked, bool) and asked >= 0 else 0
    if dash.ctx.triggered_id in FILTERS:
        page = 0  # other filters, other rows: their most urgent first
    # Built once per data version, privacy view, filters and page (services.read_cache; acknowledgements change
    # the version), then only fingerprints are compared. Redrawn only when it changed: a note being typed into a
    # row survives the refresh (pages._redraw).
    (trees, prints), options, shown_page = cached_read(
        rt.store, principal, "alerts.table", (state, kind, area, severity, page, PAGE_ROWS),
        lambda: _alert_table(kind, area, severity, state, page), with_readings=False)
    drawn, (table,) = only_changed(drawn, trees, prints)
    # The control is set only when the page shown is not the one chosen (a filter changed, or past the end).
    return table, drawn, options, (shown_page if shown_page != asked else dash.no_update)


def _pages(total: int) -> list[dict]:
    """The "Rows" choices: one per PAGE_ROWS rows of ``total``."""
    starts = range(0, max(total, 1), PAGE_ROWS)
    return [{"label": f"{a + 1}–{min(a + PAGE_ROWS, max(total, 1))}" + (f" of {total}" if total > PAGE_ROWS else ""),
             "value": i} for i, a in enumerate(starts)]


def _alert_table(kind, area, severity, state, page: int):
    """(the table's parts and fingerprints, the "Rows" choices, the page shown: the last one where ``page`` is
    past the end, as after resolutions or a narrower filter)."""
    rt = current_runtime()
    principal = current_principal()
    try:
        shown = inbox.alert_inbox(rt.store, principal, state=state or "open", kind=kind or None,
                                  area_id=area or None, severity=severity or None, limit=PAGE_ROWS,
                                  offset=page * PAGE_ROWS)
        if shown.rows.empty and page and shown.total:  # fewer rows than before (filters, resolutions): the last
            page = (shown.total - 1) // PAGE_ROWS
            shown = inbox.alert_inbox(rt.store, principal, state=state or "open", kind=kind or None,
                                      area_id=area or None, severity=severity or None, limit=PAGE_ROWS,
                                      offset=page * PAGE_ROWS)
    except inbox.BadAlertFilter as exc:
        return prepared({"table": html.P(f"Filter not understood: {exc}")}), _pages(0), 0
    if shown.rows.empty:
        return prepared({"table": html.P("No alerts match.", className="asof")}), _pages(0), 0
    may_act = principal.can("acknowledge_alerts")
    head = html.Tr([html.Th(h) for h in ("Severity", "Kind", "Area", "Alert", "Raised", "State", "")])
    body = [_alert_row(r, may_act) for r in shown.rows.to_dict("records")]
    first = page * PAGE_ROWS
    count = (f"{shown.total} signal(s)" if shown.total <= PAGE_ROWS else
             f"{shown.total} signal(s), rows {first + 1}–{first + len(shown.rows)} shown (most urgent first; "
             "choose others under Rows)")
    return prepared({"table": [html.Div(count, className="asof"),
                               html.Table([html.Thead(head), html.Tbody(body)], className="data",
                                          id="alerts-inbox")]}), _pages(shown.total), page


@secure_callback(
    "acknowledge_alerts",
    Output(ids.ALERTS_STATUS, "children"),
    Input({"type": ids.ALERTS_ACTION, "alert": ALL, "action": ALL}, "n_clicks"),
    State({"type": ids.ALERTS_NOTE, "alert": ALL}, "value"),
    prevent_initial_call=True,
)
def act_on_alert(_clicks, _notes):
    clicked = clicked_pattern_id()
    if clicked is None:
        raise PreventUpdate
    notes = {item["id"].get("alert"): item.get("value") for item in ctx.states_list[0]} if ctx.states_list else {}
    alert_id, action = clicked.get("alert"), clicked.get("action")
    if not isinstance(alert_id, int) or action not in ("acknowledge", "resolve"):
        raise PreventUpdate
    note = notes.get(alert_id)
    try:
        change = inbox.act_on_alert(current_runtime().store, current_principal(), alert_id, action,
                                    note if isinstance(note, str) else None)
    except inbox.AlertStateError as exc:
        return f"Not done: {exc}"
    return f"Alert {alert_id} {change['to']}."


def _warning_block(r: dict, principal, settings) -> html.Div:
    wid = int(r["warning_id"])
    lines = [html.Div([html.Strong(r["headline"]),
                       html.Span(f"  {r['msg_type']} · {r['status']} · {r['severity']} · rule {r['rule']}",
                                 className="kpi-detail")])]
    buttons = []
    if r["approval"] == "proposed":
        lines.append(html.Div(f"Proposed by {r['proposed_by']} {_when(r['proposed_at'])}: waiting for approval",
                              className="kpi-detail"))
        if principal.can("issue_warnings"):
            buttons += [html.Button(label, n_clicks=0, style=BUTTON,
                                    id={"type": ids.ALERTS_WARNING_ACTION, "warning": wid, "action": action})
                        for action, label in (("approve", "Approve and send"), ("reject", "Reject"))]
    elif r["approval"] == "approved":
        lines.append(html.Div([f"Issued {r['sent']} by {r['decided_by']} · ",
                               html.A("CAP document", href=f"/api/v1/warnings/{wid}/cap.xml")],
                              className="kpi-detail"))
        sent = r["decided_at"]
        if r["not_acknowledged"]:
            lines.append(html.Div("Not acknowledged yet: " + ", ".join(r["not_acknowledged"]) + f" (sent {_ago(sent)})",
                                  className="warning-unacknowledged", style={"color": "#E69F00"}))
        for a in r["acknowledged"]:
            lines.append(html.Div(f"Acknowledged by {a['recipient']} {_when(a['at'])} ({a['via']})",
                                  className="kpi-detail"))
        if principal.can("acknowledge_warnings"):
            agencies = {x.id: x.agency for x in settings.warnings.recipients}
            buttons += [html.Button(f"Acknowledge for {rid}", n_clicks=0, style=BUTTON,
                                    id={"type": ids.ALERTS_WARNING_ACK, "warning": wid, "recipient": rid})
                        for rid in r["not_acknowledged"]
                        if principal.role != "police" or agencies.get(rid) == "police"]
        if principal.can("issue_warnings") and r["msg_type"] != "Cancel":
            buttons.append(html.Button("Propose cancel", n_clicks=0, style=BUTTON,
                                       id={"type": ids.ALERTS_WARNING_ACTION, "warning": wid, "action": "cancel"}))
        failed = [d for d in r["deliveries"] if d["state"] == "failed" or d["last_error"]]
        for d in failed:
            lines.append(html.Div(f"Delivery to {d['recipient']} over {d['channel']}: {d['state']}, "
                                  f"{d['attempts']} attempt(s): {d['last_error']}", style={"color": STATUS_TEXT_COLOURS["bad"]}))
    else:
        lines.append(html.Div(f"Rejected by {r['decided_by']} {_when(r['decided_at'])}", className="kpi-detail"))
    return html.Div(className="warning", style={"borderBottom": "1px solid #2a323b", "padding": "0.3rem 0"},
                    **{"data-warning": str(wid), "data-approval": r["approval"], "data-status": r["status"]},
                    children=[*lines, html.Div(buttons)])


@secure_callback(
    "view_alerts",
    Output(ids.ALERTS_WARNINGS, "children"), Output(ids.ALERTS_CHANNELS, "children"),
    Output(ids.ALERTS_INBOUND, "children"), Output(ids.ALERTS_WARNINGS_DRAWN, "data"),
    Input(ids.ALERTS_REFRESH, "n_intervals"), Input(ids.ALERTS_WARNING_STATUS, "children"),
    Input(ids.ALERTS_DECISION_STATUS, "children"), Input(ids.ALERTS_WARNING_ACK_STATUS, "children"),
    State(ids.ALERTS_WARNINGS_DRAWN, "data"),
    types={**{f"{i}.children": ("string", "null") for i in (ids.ALERTS_WARNING_STATUS, ids.ALERTS_DECISION_STATUS,
                                                           ids.ALERTS_WARNING_ACK_STATUS)},
           f"{ids.ALERTS_WARNINGS_DRAWN}.data": ("object", "null")},
)
def refresh_warnings(_n, _composed, _decided, _acknowledged, drawn):
    rt = current_runtime()
    principal = current_principal()
    listed = warn.warning_list(rt.store, rt.settings, principal, limit=50)
    blocks = [_warning_block(r, principal, rt.settings) for r in listed.rows.to_dict("records")]
    health = warn.channel_health(rt.store, principal)
    channels = [html.Div(className=f"channel channel-{'ok' if c['ok'] else 'failing'}",
                         **{"data-channel": name, "data-ok": str(c["ok"]).lower()},
                         style={"color": STATUS_TEXT_COLOURS["ok" if c["ok"] else "bad"]},
                         children=f"{name}: {'ok' if c['ok'] else 'FAILING'} · {c['delivered']} delivered, "
                                  f"{c['pending']} pending, {c['failed']} failed"
                                  + (f" · last error: {c['last_error']}" if c["last_error"] and not c["ok"] else ""))
                for name, c in health["channels"].items()]
    inbound = warn.inbound_alerts(rt.store, principal, limit=20)
    others = [html.Div(className="inbound-alert", **{"data-identifier": a["identifier"]}, children=[
        html.Strong(a["headline"] or a["event"] or a["identifier"]),
        html.Div(f"{a['sender_name'] or a['sender']} · {a['status']} {a['msg_type']} · {a['severity'] or ''} · "
                 f"sent {a['sent']}" + (f" · {a['area_desc']}" if a["area_desc"] else ""), className="kpi-detail")])
        for a in inbound.to_dict("records")]
    drawn, parts = only_changed(drawn, {"warnings": blocks or html.P("No warnings yet.", className="asof"),
                                        "channels": channels or html.P("Nothing delivered yet.", className="asof"),
                                        "inbound": others or html.P("None received.", className="asof")})
    return (*parts, drawn)


@secure_callback(
    "issue_warnings",
    Output(ids.ALERTS_DECISION_STATUS, "children"),
    Input({"type": ids.ALERTS_WARNING_ACTION, "warning": ALL, "action": ALL}, "n_clicks"),
    prevent_initial_call=True,
)
def decide_warning(_clicks):
    clicked = clicked_pattern_id()
    if clicked is None:
        raise PreventUpdate
    warning_id, action = clicked.get("warning"), clicked.get("action")
    if not isinstance(warning_id, int) or action not in ("approve", "reject", "cancel"):
        raise PreventUpdate
    rt = current_runtime()
    principal = current_principal()
    try:
        if action == "approve":
            issued = warn.approve_warning(rt.store, rt.settings, principal, warning_id)
            return f"Warning {warning_id} issued ({issued.status}); {len(issued.deliveries)} deliveries queued."
        if action == "reject":
            warn.reject_warning(rt.store, principal, warning_id)
            return f"Warning {warning_id} rejected."
        new = warn.cancel_warning(rt.store, rt.settings, principal, warning_id)
        return f"Cancel of warning {warning_id} proposed as warning {new}."
    except (warn.WarningStateError, warn.WarningInputError, warn.ExerciseOnly) as exc:
        return f"Not done: {exc}"


@secure_callback(
    "acknowledge_warnings",
    Output(ids.ALERTS_WARNING_ACK_STATUS, "children"),
    Input({"type": ids.ALERTS_WARNING_ACK, "warning": ALL, "recipient": ALL}, "n_clicks"),
    prevent_initial_call=True,
)
def acknowledge_warning(_clicks):
    clicked = clicked_pattern_id()
    if clicked is None:
        raise PreventUpdate
    warning_id, recipient = clicked.get("warning"), clicked.get("recipient")
    if not isinstance(warning_id, int) or not isinstance(recipient, str):
        raise PreventUpdate
    rt = current_runtime()
    try:
        warn.acknowledge_warning(rt.store, rt.settings, current_principal(), warning_id, recipient)
    except (warn.WarningStateError, warn.WarningInputError) as exc:
        return f"Not done: {exc}"
    return f"Warning {warning_id} acknowledged for {recipient}."


@secure_callback(
    "issue_warnings",
    Output(ids.ALERTS_WARNING_STATUS, "children"),
    Input(ids.ALERTS_COMPOSE_SUBMIT, "n_clicks"),
    State(ids.ALERTS_COMPOSE_HEADLINE, "value"), State(ids.ALERTS_COMPOSE_DESCRIPTION, "value"),
    State(ids.ALERTS_COMPOSE_INSTRUCTION, "value"), State(ids.ALERTS_COMPOSE_AREAS, "value"),
    State(ids.ALERTS_COMPOSE_SEVERITY, "value"),
    types={f"{ids.ALERTS_COMPOSE_AREAS}.value": ("array", "null")},
    prevent_initial_call=True,
)
def compose_warning(clicks, headline, description, instruction, areas, severity):
    if not clicks:
        raise PreventUpdate
    rt = current_runtime()
    try:
        warning_id = warn.compose_warning(rt.store, rt.settings, current_principal(), headline=headline,
                                          description=description, instruction=instruction,
                                          area_ids=areas if isinstance(areas, list) else [],
                                          severity=severity if isinstance(severity, str) else "Moderate")
    except (warn.WarningInputError, warn.ExerciseOnly) as exc:
        return f"Not proposed: {exc}"
    return f"Warning {warning_id} proposed; approve it below to send it."
