"""Audit log (/audit, permission read_audit): who did what, filtered by action, user and time, and the
hash-chain check that `python app.py audit verify` runs, on the running database."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import dash
from dash import Input, Output, State, dcc, html, no_update

from auth.policy import current_principal
from auth.runtime import current_runtime
from components.theme import STATUS_TEXT_COLOURS
from pages import _ids as ids
from pages._secure import secure_callback
from services.audit import audit_view, check_chain

dash.register_page(__name__, path="/audit", title="pheoc · Audit log", name="Audit", order=95)

INPUT_STYLE = {"background": "#101418", "color": "#e8eaed", "border": "1px solid #3a444f", "padding": "0.3rem",
               "fontSize": "1rem"}


def layout(**_query):
    return html.Div(className="page page-audit", children=[
        dcc.Interval(id=ids.AUDIT_REFRESH, interval=30_000, n_intervals=0),
        html.Div(className="panel controls", style={"display": "flex", "gap": "1.2rem", "alignItems": "end",
                                                     "flexWrap": "wrap"}, children=[
            html.Div([html.Label("Action", htmlFor=ids.AUDIT_ACTION, className="kpi-label"),
                      dcc.Dropdown(id=ids.AUDIT_ACTION, options=[], value=None, placeholder="any action",
                                   style={"minWidth": "16rem", "color": "#101418"})]),
            html.Div([html.Label("User", htmlFor=ids.AUDIT_USER, className="kpi-label"),
                      dcc.Input(id=ids.AUDIT_USER, type="text", debounce=True, placeholder="any user",
                                style=INPUT_STYLE)]),
            html.Div([html.Label("Since (date)", htmlFor=ids.AUDIT_SINCE, className="kpi-label"),
                      dcc.Input(id=ids.AUDIT_SINCE, type="text", debounce=True, placeholder="YYYY-MM-DD",
                                style=INPUT_STYLE)]),
            html.Button("Check the hash chain", id=ids.AUDIT_CHECK, n_clicks=0, className="sort-button",
                        style={**INPUT_STYLE, "cursor": "pointer", "fontWeight": 700}),
            html.Div(id=ids.AUDIT_CHECK_RESULT, className="kpi-detail", style={"fontSize": "1.05rem"}),
        ]),
        html.Div(id=ids.AUDIT_TABLE, className="panel", style={"marginTop": "0.6rem", "overflowX": "auto"}),
    ])


def _since(text) -> datetime | None:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return datetime.fromisoformat(text.strip()).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _detail(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in value.items())
    return "" if value is None else str(value)


@secure_callback(
    "read_audit",
    Output(ids.AUDIT_TABLE, "children"), Output(ids.AUDIT_ACTION, "options"),
    Input(ids.AUDIT_REFRESH, "n_intervals"), Input(ids.AUDIT_ACTION, "value"), Input(ids.AUDIT_USER, "value"),
    Input(ids.AUDIT_SINCE, "value"), State(ids.AUDIT_ACTION, "options"),
)
def refresh_audit(_n, action, user, since, current_options):
    rt = current_runtime()
    view = audit_view(rt.store, current_principal(), action=action if isinstance(action, str) else None,
                      actor=user.strip() if isinstance(user, str) else None, since=_since(since), limit=200)
    options = [{"label": a, "value": a} for a in view.actions]
    head = html.Tr([html.Th(h) for h in ("#", "Time (UTC)", "User", "Action", "Target", "Detail")])
    rows = [html.Tr(**{"data-seq": str(r["seq"])}, children=[
        html.Td(str(r["seq"])), html.Td(f"{r['logged_at']:%Y-%m-%d %H:%M:%S}"), html.Td(r["actor"]),
        html.Td(r["action"]), html.Td("" if r["target"] is None else str(r["target"])),
        html.Td(_detail(r["detail"]), style={"fontSize": "0.85rem", "maxWidth": "40rem", "wordBreak": "break-word"})])
        for r in view.rows.to_dict("records")]
    body = (html.Table([html.Thead(head), html.Tbody(rows)], className="data") if rows
            else html.P("No audit records match.", className="empty"))
    note = html.P("Newest 200 shown; narrow the filters to see older ones.", className="asof") if view.more else ""
    return [body, note], (options if options != current_options else no_update)


@secure_callback(
    "read_audit",
    Output(ids.AUDIT_CHECK_RESULT, "children"),
    Input(ids.AUDIT_CHECK, "n_clicks"), prevent_initial_call=True,
)
def run_chain_check(_clicks):
    report = check_chain(current_runtime().store, current_principal())
    if report.ok:
        return html.Span(f"Chain OK: {report.records:,} records, head {report.head[0] if report.head else 0}",
                         style={"color": "#009E73", "fontWeight": 700}, **{"data-chain": "ok"})
    return html.Div([html.Span(f"Chain FAILED ({len(report.problems)} problems)",
                               style={"color": STATUS_TEXT_COLOURS["bad"], "fontWeight": 700}, **{"data-chain": "failed"}),
                     html.Ul([html.Li(p) for p in report.problems[:20]])])
