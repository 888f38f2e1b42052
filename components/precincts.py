"""Precinct map (choropleth by zone tier), the sortable precinct table, the per-precinct panel and the
address-check answer for /precincts.

A tier is told apart by colour, by the pattern of the fill and by its name printed on the precinct
(components.clustermap's tier styles), so nobody depends on seeing colour. The frames come disclosed
(services.precincts): a withheld count is NaN with ``<column>__suppressed`` and reads "<k".
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from analytics.catalog import COUNT, RATE
from components.capacity import sort_label
from components.clustermap import tier_style
from components.basemap import rings_xy
from components.text import plotly_text
from components.theme import MUTED, OKABE_ITO, PANEL, TEXT, base_layout
from services.formatting import display_value
from services.precincts import share_text

NO_ZONE_FILL = "#2f3a44"
OUTSIDE_FILL = "#161b21"
# (key, heading) of the table, in order; every column sorts.
COLUMNS = (("name", "Precinct"), ("tier", "Tier"), ("cases_7d", "Cases 7 d"), ("change_7d", "vs week before"),
           ("rate_7d_per_100k", "Per 100k, 7 d"), ("cases_14d", "Cases 14 d"), ("change_14d", "vs 14 d before"),
           ("rate_14d_per_100k", "Per 100k, 14 d"), ("trend_7d", "Trend"), ("zone_share", "In zones"),
           ("active_alerts", "Open alerts"))
DEFAULT_SORT = ("rate_7d_per_100k", True)
TREND_ARROWS = {"rising": "▲ rising", "falling": "▼ falling", "steady": "► steady"}


def _shown(row: dict, column: str, kind: str, min_count: int) -> str:
    return display_value(kind, row.get(column), suppressed=bool(row.get(column + "__suppressed")), min_count=min_count)


def _change(row: dict, column: str) -> str:
    if row.get(column + "__suppressed"):
        return "withheld"
    v = row.get(column)
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:+.0%}"


def zone_share_total(row: dict) -> float:
    return float(sum((row.get("zone_shares") or {}).values()))


def sort_value(row: dict, column: str):
    """The value a column sorts by (withheld and unknown last)."""
    if column == "zone_share":
        return zone_share_total(row)
    if column == "tier":
        return row.get("tier_rank", 0)
    if column in ("name", "trend_7d"):
        v = row.get(column)
        return v if isinstance(v, str) else ""
    v = row.get(column)
    return None if v is None or row.get(column + "__suppressed") or not np.isfinite(float(v)) else float(v)


def sorted_rows(rows: pd.DataFrame, column: str, descending: bool) -> list[dict]:
    records = rows.to_dict("records") if len(rows) else []
    known = [r for r in records if sort_value(r, column) is not None]
    unknown = [r for r in records if sort_value(r, column) is None]
    known.sort(key=lambda r: sort_value(r, column), reverse=descending)
    return known + unknown


def precinct_table(rows: pd.DataFrame, *, sort_col: str, descending: bool, button_type: str, row_type: str,
                   min_count: int) -> html.Table:
    head = html.Thead(html.Tr([html.Th(html.Button(sort_label(label, key == sort_col, descending),
                                                   id={"type": button_type, "col": key}, n_clicks=0,
                                                   className="sort-button", title=f"sort by {label.lower()}"))
                               for key, label in COLUMNS]))
    body = []
    for r in sorted_rows(rows, sort_col, descending):
        trend = TREND_ARROWS.get(r.get("trend_7d"), "withheld" if r.get("cases_7d__suppressed")
                                 or r.get("cases_previous_7d__suppressed") else "–")
        body.append(html.Tr(**{"data-precinct": r["precinct_id"], "data-tier": r.get("tier") or "none"}, children=[
            html.Td(html.Button(f"{r['name']} ({r['precinct_id']})", id={"type": row_type, "index": r["precinct_id"]},
                                n_clicks=0, className="link-button",
                                style={"background": "none", "border": "none", "color": OKABE_ITO["sky"],
                                       "cursor": "pointer", "font": "inherit", "padding": 0, "textAlign": "left"})),
            html.Td(r.get("tier") or "none"),
            html.Td(_shown(r, "cases_7d", COUNT, min_count), **{"data-col": "cases_7d"}),
            html.Td(_change(r, "change_7d")),
            html.Td(_shown(r, "rate_7d_per_100k", RATE, min_count), **{"data-col": "rate_7d_per_100k"}),
            html.Td(_shown(r, "cases_14d", COUNT, min_count)),
            html.Td(_change(r, "change_14d")),
            html.Td(_shown(r, "rate_14d_per_100k", RATE, min_count)),
            html.Td(trend),
            html.Td(share_text(zone_share_total(r))),
            html.Td(str(int(r.get("active_alerts", 0)))),
        ]))
    return html.Table(className="data precinct-table", children=[head, html.Tbody(body)])


def precinct_map_figure(outlines: Sequence[dict], rows: pd.DataFrame, tiers: Sequence[str]) -> go.Figure:
    """Precincts filled by tier (outline only where the caller sees no figures); click carries the id."""
    by_id = {r["precinct_id"]: r for r in (rows.to_dict("records") if len(rows) else [])}
    fig = go.Figure()
    lats, lngs = [], []
    for o in outlines:
        if o["kind"] == "boundary":
            xs, ys = rings_xy(o["rings"])
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=MUTED, width=1), hoverinfo="skip",
                                     showlegend=False))
    labels_x, labels_y, labels, custom = [], [], [], []
    for o in outlines:
        if o["kind"] != "precinct":
            continue
        row = by_id.get(o["area_id"])
        xs, ys = rings_xy(o["rings"])
        lngs.extend(xs[~np.isnan(xs)])  # without the breaks between rings
        lats.extend(ys[~np.isnan(ys)])
        tier = row.get("tier") if row else None
        name = plotly_text(o["name"])
        if row is None:
            fill, pattern, line = OUTSIDE_FILL, "", dict(color="#3a444e", width=1, dash="dot")
            text = f"{name}<br>outside your precincts"
        elif tier:
            style = tier_style(tier, tiers)
            fill, pattern, line = style["colour"], style["pattern"], dict(color=TEXT, width=2)
            text = f"{name}<br>{plotly_text(tier)} zone"
        else:
            fill, pattern, line = NO_ZONE_FILL, "", dict(color=TEXT, width=1)
            text = f"{name}<br>no zone"
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", fill="toself", fillcolor=fill, line=line,
                                 fillpattern=dict(shape=pattern, fgcolor=PANEL, size=10) if pattern else None,
                                 hoverinfo="skip", showlegend=False, name=o["area_id"]))
        labels_x.append(o["label_lng"])
        labels_y.append(o["label_lat"])
        labels.append(text)
        custom.append(o["area_id"])
    fig.add_trace(go.Scatter(x=labels_x, y=labels_y, mode="markers+text", text=labels, customdata=custom,
                             textfont=dict(size=14, color=TEXT), marker=dict(size=18, color="rgba(0,0,0,0.01)"),
                             hovertemplate="%{text}<extra></extra>", showlegend=False, name="precincts"))
    mid_lat = float(np.mean(lats)) if lats else 0.0
    fig.update_layout(**base_layout(margin=dict(l=4, r=4, t=4, b=4)), dragmode=False, clickmode="event")
    fig.update_xaxes(visible=False, fixedrange=True)
    fig.update_yaxes(visible=False, fixedrange=True, scaleanchor="x", scaleratio=1 / max(np.cos(np.radians(mid_lat)),
                                                                                        0.1))
    return fig


def trend_figure(history: pd.DataFrame, min_count: int) -> go.Figure:
    """Daily cases (bars; a withheld day drawn hatched up to k) and the 7-day rate per 100k (line)."""
    fig = go.Figure()
    days = pd.to_datetime(history["day"]) if len(history) else []
    if len(history):
        hidden = history["cases__suppressed"].astype(bool)
        fig.add_trace(go.Bar(x=days[~hidden], y=history.loc[~hidden, "cases"], name="cases a day",
                             marker_color=OKABE_ITO["sky"]))
        if hidden.any():
            fig.add_trace(go.Bar(x=days[hidden], y=[min_count] * int(hidden.sum()), name=f"<{min_count} (withheld)",
                                 marker=dict(color=PANEL, line=dict(color=MUTED, width=1),
                                             pattern=dict(shape="/", fgcolor=MUTED))))
        rate = history["rate_7d_per_100k"].where(~history["rate_7d_per_100k__suppressed"].astype(bool))
        fig.add_trace(go.Scatter(x=days, y=rate, name="7-day rate per 100k", yaxis="y2", mode="lines",
                                 line=dict(color=OKABE_ITO["orange"], width=3)))
    fig.update_layout(**base_layout(margin=dict(l=40, r=50, t=10, b=30)), barmode="overlay",
                      yaxis=dict(title="cases", rangemode="tozero"),
                      yaxis2=dict(title="per 100k", overlaying="y", side="right", rangemode="tozero",
                                  showgrid=False))
    return fig


def precinct_panel(detail, graph_id_suffix: str = "") -> html.Div:
    """The selected precinct: its trend, the zones inside it and its open alerts."""
    k = detail.min_count
    row = detail.row
    zones = [html.Li(f"{z['tier']} zone {z['zone_id']} ({z['role']}) since {pd.Timestamp(z['since']):%d %b}: "
                     f"{share_text(z['share'])} of the precinct") for z in detail.zones.to_dict("records")]
    alerts = [html.Li(f"{a['severity']}: {a['title']}") for a in detail.alerts.to_dict("records")]
    return html.Div(**{"data-precinct": detail.precinct_id}, children=[
        html.H3(f"{detail.name} ({detail.precinct_id}) · tier {row.get('tier') or 'none'} · "
                f"{_shown(row, 'cases_7d', COUNT, k)} cases in 7 days", style={"fontSize": "1.1rem", "margin": "0.2rem 0"}),
        dcc.Graph(figure=trend_figure(detail.history, k), config={"displaylogo": False, "staticPlot": False},
                  style={"height": "34vh", "minHeight": "220px"}),
        html.H4("Zones inside the precinct", style={"margin": "0.4rem 0 0.2rem"}),
        html.Ul(zones) if zones else html.P("No containment zone in force here.", className="empty"),
        html.H4("Open alerts of its areas", style={"margin": "0.4rem 0 0.2rem"}),
        html.Ul(alerts) if alerts else html.P("No open alerts.", className="empty"),
    ])


FLAG_COLOURS = {True: OKABE_ITO["vermillion"], False: OKABE_ITO["green"], None: MUTED}


def answer_card(answer: dict, address_text: str | None) -> html.Div:
    """The address check's answer, in type large enough to read at arm's length on a phone."""
    flag = answer["active_case_at_address"]
    precinct = answer["precinct"]
    where = f"{precinct['name']} ({precinct['id']})" if precinct else "outside every precinct"
    return html.Div(className="address-answer", **{
        "data-flag": {True: "true", False: "false", None: "null"}[flag],
        "data-zone-tier": answer["zone_tier"] or "none", "data-precinct": precinct["id"] if precinct else "none"},
        style={"borderLeft": f"10px solid {FLAG_COLOURS[flag]}", "padding": "0.4rem 0.8rem", "marginTop": "0.6rem",
               "background": "#0f1317"}, children=[
            html.Div(address_text or "", style={"color": MUTED, "fontSize": "1rem"}),
            html.Div(answer["precautions"], className="address-answer-text",
                     style={"fontSize": "1.75rem", "fontWeight": 700, "lineHeight": 1.25, "color": TEXT}),
            html.Div(f"Zone: {answer['zone_tier'] or 'none'} · Precinct: {where}", className="address-answer-zone",
                     style={"fontSize": "1.35rem", "marginTop": "0.3rem"}),
            html.Div(f"Checked {pd.Timestamp(answer['checked_at']):%H:%M:%S, %d %b %Y}",
                     style={"color": MUTED, "fontSize": "0.95rem"}),
        ])
