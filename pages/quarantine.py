"""Rejected records (/rejected): what the ingestors refused, why, and from where. Raw payloads stay hidden."""
from __future__ import annotations

import dash
from dash import Input, Output, dcc, html

from pages import _ids as ids
from pages._secure import secure_callback
from services.quarantine import rejected_summary
from auth.policy import current_principal
from auth.runtime import current_runtime

dash.register_page(__name__, path="/rejected", title="pheoc · Rejected records", name="Rejected", order=90)


def layout(**_query):
    settings = current_runtime().settings
    return html.Div(className="page page-rejected", children=[
        dcc.Interval(id=ids.REJECTED_REFRESH, interval=max(settings.wall.refresh_s, 5) * 1000, n_intervals=0),
        html.Div(className="panel", children=[html.H2("Rejected records by reason"),
                                              html.Div(id=ids.REJECTED_BY_REASON)]),
        html.Div(className="panel", style={"marginTop": "0.6rem"}, children=[
            html.H2("Latest rejected records"), html.Div(id=ids.REJECTED_LATEST)]),
    ])


def _table(frame, columns: dict[str, str]) -> html.Table:
    if frame.empty:
        return html.P("Nothing rejected. Every record received so far passed validation.", className="empty")
    head = html.Tr([html.Th(label) for label in columns.values()])
    rows = [html.Tr([html.Td("" if r[c] is None else str(r[c])) for c in columns]) for r in frame.to_dict("records")]
    return html.Table([html.Thead(head), html.Tbody(rows)], className="data")


@secure_callback("view_quarantine", Output(ids.REJECTED_BY_REASON, "children"), Output(ids.REJECTED_LATEST, "children"),
                 Input(ids.REJECTED_REFRESH, "n_intervals"))
def refresh_rejected(_n):
    rt = current_runtime()
    summary = rejected_summary(rt.store, rt.settings, current_principal())
    if not summary.detail_shown:
        summary.latest["record_key"] = ["hidden (case level)" for _ in range(len(summary.latest))]
    by_reason = _table(summary.by_reason, {"reason_code": "Reason", "meaning": "What it means", "kind": "Record kind",
                                           "records": "Records", "last_received_at": "Last received"})
    latest = _table(summary.latest, {"received_at": "Received", "source": "Source", "kind": "Kind",
                                     "reason_code": "Reason", "reason_detail": "Detail", "record_key": "Key"})
    return by_reason, latest
