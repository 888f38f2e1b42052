"""Capacity page builders: the sortable facility table, the facility map, capacity trends with the
projection band, supplies on hand and potential sites. Data in, components out; no store access.

The map follows components/hexmap.py: plain lng/lat axes at equal ground scale with the city's own
outlines, so it needs nothing from outside the machine.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import html

from components.basemap import rings_xy
from components.text import plotly_text
from components.theme import MUTED, OKABE_ITO, STATUS_COLOURS, STATUS_TEXT_COLOURS, TEXT, base_layout
from analytics.catalog import COUNT
from services.formatting import display_value

# Marker area grows with beds (size ~ sqrt(beds)), so a 600-bed hospital reads as about 2.4 times
# as wide as a 100-bed one rather than 6 times: area, not diameter, carries the quantity.
MIN_MARKER_PX, MAX_MARKER_PX = 12, 48
STATUS_LABELS = {"ok": "below 75 % occupied", "warn": "75–90 % occupied", "bad": "90 % or more occupied",
                 "neutral": "occupancy unknown"}
STALE_COLOUR = "#777777"
# The wall shows the items that run out first; the rest are summarised (all are in the store).
SUPPLY_ROWS_SHOWN = 12
SUPPLY_BADGES = {"bad": "CRITICAL", "warn": "LOW"}
GRID = "#2a323b"


@dataclass(frozen=True)
class Column:
    key: str  # sort key (a column of the service's facility rows), or "" when not sortable
    label: str
    numeric: bool = True


# The facility table's columns, in order. Sort keys are columns of services.capacity.facility_rows.
FACILITY_COLUMNS: tuple[Column, ...] = (
    Column("name", "Facility", numeric=False),
    Column("occupancy", "Occupancy"),
    Column("free_beds", "Free beds"),
    Column("icu_occupancy", "ICU"),
    Column("vent_free", "Ventilators"),
    Column("covid_patients", "COVID-19 pts"),
    Column("days_until_full", "Days until full"),
    Column("report_age_h", "Last report"),
    Column("stale", "Stale"),
)


def count_text(row: dict, column: str, min_count: int) -> str:
    """A disclosed count of people from a read-model row: "<k" where withheld, "–" where unknown."""
    return display_value(COUNT, row.get(column), suppressed=bool(row.get(column + "__suppressed", False)),
                         min_count=min_count)


def _num(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _pair(row: dict, used: str, total: str, min_count: int) -> str:
    t = _num(row.get(total))
    if t is None:
        return "–"
    return f"{count_text(row, used, min_count)} / {t:,.0f}"


def _pct(share) -> str:
    s = _num(share)
    return "–" if s is None else f"{s:.0%}"


def age_text(hours) -> str:
    h = _num(hours)
    if h is None:
        return "never"
    if h < 1:
        return f"{max(h * 60, 0):.0f} min ago"
    if h < 48:
        return f"{h:.0f} h ago"
    return f"{h / 24:,.0f} d ago"


def days_text(days, horizon: int) -> str:
    d = _num(days)
    if d is None:
        return "–"
    if math.isinf(d):
        return f"> {horizon} d"
    return "now" if d == 0 else f"{d:.0f} d"


def sort_label(label: str, active: bool, descending: bool) -> str:
    return f"{label} {'▼' if descending else '▲'}" if active else f"{label} ⇅"


def facility_table_header(button_type: str, sort_col: str, descending: bool) -> html.Thead:
    """Header with one button per sortable column (pattern-matching ids {"type": button_type, "col": key})."""
    cells = []
    for col in FACILITY_COLUMNS:
        cells.append(html.Th(html.Button(
            sort_label(col.label, col.key == sort_col, descending), id={"type": button_type, "col": col.key},
            n_clicks=0, className="sort-button", title=f"sort by {col.label.lower()}",
            style={"background": "none", "border": "none", "color": TEXT, "font": "inherit", "fontWeight": 600,
                   "cursor": "pointer", "padding": 0, "textAlign": "left"})))
    return html.Thead(html.Tr(cells))


def facility_table_rows(rows: pd.DataFrame, *, horizon: int, min_count: int) -> list[html.Tr]:
    """One row per facility, in the order given."""
    if rows.empty:
        return [html.Tr(html.Td("No facilities registered yet: load a facilities file (docs/ingest.md) or a FHIR "
                                "Location.", colSpan=len(FACILITY_COLUMNS), className="empty"))]
    out = []
    for r in rows.to_dict("records"):
        colour = STATUS_TEXT_COLOURS.get(r["status"], STATUS_TEXT_COLOURS["neutral"])
        stale = bool(r["stale"])
        out.append(html.Tr(className="stale" if stale else "", **{"data-facility": r["facility_id"]}, children=[
            html.Td([html.Div(r["name"]), html.Div(r["kind"].replace("_", " "), style={"color": MUTED,
                                                                                      "fontSize": "0.8rem"})]),
            html.Td([html.Span(_pct(r["occupancy"]), style={"color": colour, "fontWeight": 700}),
                     html.Span(f"  {_pair(r, 'beds_occupied', 'beds_total', min_count)}", style={"color": MUTED})],
                    **{"data-col": "occupancy", "data-value": _sort_value(r["occupancy"])}),
            html.Td("–" if _num(r["free_beds"]) is None else f"{r['free_beds']:,.0f}",
                    **{"data-col": "free_beds", "data-value": _sort_value(r["free_beds"])}),
            html.Td(f"{_pair(r, 'icu_occupied', 'icu_total', min_count)} ({_pct(r['icu_occupancy'])})"
                    if _num(r["icu_total"]) is not None else "–",
                    **{"data-col": "icu_occupancy", "data-value": _sort_value(r["icu_occupancy"])}),
            html.Td(f"{_pair(r, 'ventilators_in_use', 'ventilators_total', min_count)} in use"
                    if _num(r["ventilators_total"]) is not None else "–",
                    **{"data-col": "vent_free", "data-value": _sort_value(r["vent_free"])}),
            html.Td(count_text(r, "covid_patients", min_count)),
            html.Td(days_text(r["days_until_full"], horizon), **{"data-col": "days_until_full"}),
            html.Td(age_text(r["report_age_h"]), **{"data-col": "report_age_h",
                                                    "data-value": _sort_value(r["report_age_h"])}),
            html.Td(html.Span("STALE", style={"background": STATUS_COLOURS["bad"], "color": "#fff",
                                              "padding": "0 0.4rem", "borderRadius": "3px", "fontWeight": 700})
                    if stale else "", **{"data-col": "stale"}),
        ]))
    return out


def _beds_text(value) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:,.0f}"


def _sort_value(value) -> str:
    v = _num(value)
    return "" if v is None else repr(v)


# ---- map ------------------------------------------------------------------------------------------
def _marker_sizes(beds: pd.Series, largest: float) -> list[float]:
    values = pd.to_numeric(beds, errors="coerce").fillna(0).to_numpy(dtype=float)
    scale = np.sqrt(np.clip(values, 0, None) / largest) if largest > 0 else np.zeros_like(values)
    return list(MIN_MARKER_PX + (MAX_MARKER_PX - MIN_MARKER_PX) * scale)


def facility_map_figure(facilities: pd.DataFrame, sites: pd.DataFrame, demand: pd.DataFrame,
                        outlines: Sequence[dict], *, min_count: int, height: int | None = None) -> go.Figure:
    """Facilities sized by beds and coloured by occupancy; potential sites; areas where cases are rising."""
    fig = go.Figure()
    rising_ids = set(demand.loc[demand["rising"], "area_id"]) if len(demand) else set()
    rising_rings = [r for o in outlines if o["area_id"] in rising_ids for r in o["rings"]]
    if rising_rings:
        xs, ys = rings_xy(rising_rings)
        fig.add_trace(go.Scatter(x=xs, y=ys, fill="toself", mode="lines", fillcolor="rgba(230,159,0,0.22)",
                                 line=dict(color=OKABE_ITO["orange"], width=1.5), name="cases rising (7 d)",
                                 hoverinfo="skip"))
    for kind, width, dash in (("boundary", 2.5, "solid"), ("community", 1, "dot")):
        rings = [r for o in outlines if o["kind"] == kind for r in o["rings"]]
        if rings:
            xs, ys = rings_xy(rings)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=kind, hoverinfo="skip", showlegend=False,
                                     line=dict(color="#e8eaed" if kind == "boundary" else MUTED, width=width,
                                               dash=dash)))
    labels = [o for o in outlines if o["kind"] == "community" and o.get("label_lng") is not None]
    if labels:
        fig.add_trace(go.Scatter(x=[o["label_lng"] for o in labels], y=[o["label_lat"] for o in labels],
                                 mode="text", text=[plotly_text(o["name"]) for o in labels], hoverinfo="skip",
                                 showlegend=False,
                                 textfont=dict(color=MUTED, size=11)))
    beds = pd.to_numeric(facilities.get("beds_total", pd.Series(dtype=float)), errors="coerce")
    site_beds = pd.to_numeric(sites.get("beds", pd.Series(dtype=float)), errors="coerce")
    largest = float(np.nanmax([beds.max() if len(beds) else 0, site_beds.max() if len(site_beds) else 0, 1]))
    for status in ("ok", "warn", "bad", "neutral"):
        sel = facilities[(facilities["status"] == status) & ~facilities["stale"]]
        _facility_trace(fig, sel, STATUS_COLOURS[status], STATUS_LABELS[status], largest, min_count)
    _facility_trace(fig, facilities[facilities["stale"]], STALE_COLOUR, "stale report", largest, min_count)
    if len(sites):
        hover = [f"<b>{plotly_text(s['name'])}</b><br>potential site: {_beds_text(s['beds'])} beds"
                 f"<br>area: {plotly_text(s['area_name'] or '–')}" for s in sites.to_dict("records")]
        fig.add_trace(go.Scatter(x=sites["lng"], y=sites["lat"], mode="markers", name="potential site",
                                 marker=dict(symbol="diamond-open", size=_marker_sizes(sites["beds"], largest),
                                             color=OKABE_ITO["sky"], line=dict(width=3)),
                                 hovertext=hover, hoverinfo="text"))
    all_y = [p[1] for o in outlines for r in o["rings"] for p in r] or list(facilities["lat"]) or [0.0]
    lat0 = (min(all_y) + max(all_y)) / 2
    fig.update_layout(**base_layout(height=height, showlegend=True, uirevision="capacity-map",
                                    margin=dict(l=10, r=10, t=10, b=10)))
    fig.update_xaxes(visible=False)
    # Equal ground distance on both axes at the city's latitude (as components/hexmap.py).
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1 / math.cos(math.radians(lat0)))
    return fig


def _facility_trace(fig: go.Figure, rows: pd.DataFrame, colour: str, name: str, largest: float,
                    min_count: int) -> None:
    if rows.empty:
        return
    hover = []
    for r in rows.to_dict("records"):
        hover.append(f"<b>{plotly_text(r['name'])}</b><br>{r['kind'].replace('_', ' ')}"
                     f"<br>beds {_pair(r, 'beds_occupied', 'beds_total', min_count)} ({_pct(r['occupancy'])})"
                     f"<br>ICU {_pair(r, 'icu_occupied', 'icu_total', min_count)}"
                     f"<br>last report {age_text(r['report_age_h'])}")
    fig.add_trace(go.Scatter(x=rows["lng"], y=rows["lat"], mode="markers", name=name,
                             marker=dict(size=_marker_sizes(rows["beds_total"], largest), color=colour, opacity=0.9,
                                         line=dict(color="#101418", width=1.5)),
                             hovertext=hover, hoverinfo="text"))


# ---- trends ---------------------------------------------------------------------------------------
def capacity_trend_figure(history: pd.DataFrame, band: pd.DataFrame | None, capacity: float | None,
                          threshold: float, days_until_full: int | None = None, *, height: int | None = None
                          ) -> go.Figure:
    """Occupied and total beds per day, the projection band (5–95 %) and median, and the 'full' line.

    ICU occupancy (share) is drawn on a second axis when the history has ICU numbers.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    hist = history.copy()
    if len(hist):
        hist["day"] = pd.to_datetime(hist["day"])
        # Drop the days before the first report: an empty lead-in would squeeze the data to one side.
        has_beds = pd.to_numeric(hist["beds_total"], errors="coerce").notna().to_numpy()
        hist = hist.iloc[int(np.argmax(has_beds)):] if has_beds.any() else hist.iloc[0:0]
    if len(hist):
        fig.add_trace(go.Scatter(x=hist["day"], y=hist["beds_total"], name="beds", mode="lines",
                                 line=dict(color=MUTED, width=2, dash="dash", shape="hv")), secondary_y=False)
        fig.add_trace(go.Scatter(x=hist["day"], y=hist["beds_occupied"], name="occupied beds", mode="lines",
                                 line=dict(color=OKABE_ITO["purple"], width=3)), secondary_y=False)
        icu_total = pd.to_numeric(hist["icu_total"], errors="coerce")
        if icu_total.notna().any() and (icu_total > 0).any():
            share = pd.to_numeric(hist["icu_occupied"], errors="coerce") / icu_total.where(icu_total > 0)
            fig.add_trace(go.Scatter(x=hist["day"], y=share, name="ICU occupancy", mode="lines",
                                     line=dict(color=OKABE_ITO["vermillion"], width=1.5, dash="dot"), opacity=0.8),
                          secondary_y=True)
    if band is not None and len(band):
        x = pd.to_datetime(band.index)
        fig.add_trace(go.Scatter(x=x, y=band["q95"], mode="lines", line=dict(width=0), showlegend=False,
                                 hoverinfo="skip"), secondary_y=False)
        fig.add_trace(go.Scatter(x=x, y=band["q05"], mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor="rgba(204,121,167,0.28)", name="projection 5–95 %"), secondary_y=False)
        fig.add_trace(go.Scatter(x=x, y=band["median"], mode="lines", name="projection (median)",
                                 line=dict(color=OKABE_ITO["purple"], width=2, dash="dash")), secondary_y=False)
    if capacity:
        limit = threshold * capacity
        fig.add_hline(y=limit, line=dict(color=OKABE_ITO["vermillion"], width=2, dash="dot"),
                      annotation_text=f"{threshold:.0%} of beds", annotation_position="top left",
                      annotation_font_color=OKABE_ITO["vermillion"], secondary_y=False)
        if band is not None and days_until_full and 0 < days_until_full <= len(band):
            when = pd.to_datetime(band.index[days_until_full - 1])
            fig.add_vline(x=when, line=dict(color=OKABE_ITO["vermillion"], width=2))
            fig.add_annotation(x=when, y=limit, text=f"full in {days_until_full} d", showarrow=True,
                               font=dict(color=OKABE_ITO["vermillion"]), arrowcolor=OKABE_ITO["vermillion"])
    if not len(hist) and (band is None or not len(band)):
        fig.add_annotation(text="no capacity reports yet", showarrow=False, font=dict(color=MUTED, size=20),
                           xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(**base_layout(height=height, uirevision="capacity-trend"))
    fig.update_yaxes(title_text="beds", gridcolor=GRID, rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="ICU occupancy", tickformat=".0%", range=[0, 1.05], tickmode="linear", tick0=0,
                     dtick=0.25, showgrid=False, secondary_y=True)
    fig.update_xaxes(gridcolor=GRID)
    return fig


# ---- tables ---------------------------------------------------------------------------------------
def _table(head: list[str], body: list[html.Tr], class_name: str) -> html.Table:
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(body)],
                      className=f"data {class_name}")


def supplies_table(rows: pd.DataFrame, warn_days: float, max_rows: int = SUPPLY_ROWS_SHOWN) -> html.Div:
    """Latest stock per facility and item, lowest days on hand first (the rest summarised in one line)."""
    if rows.empty:
        return html.Div(html.P("No supply reports yet (supplies files or MQTT <prefix>/supplies/<facility>).",
                               className="empty"))
    body = []
    for r in rows.head(max_rows).to_dict("records"):
        colour = STATUS_TEXT_COLOURS.get(r["status"], STATUS_TEXT_COLOURS["neutral"])
        doh = _num(r["days_on_hand"])
        unit = f" {r['unit']}" if isinstance(r.get("unit"), str) else ""
        body.append(html.Tr(className=f"supply-{r['status']}", **{"data-item": f"{r['facility_id']}:{r['item']}"},
                            children=[
            html.Td(r["name"]), html.Td(r["item"]), html.Td(f"{r['stock']:,.0f}{unit}"),
            html.Td("–" if _num(r["daily_use"]) is None else f"{r['daily_use']:,.0f}/d"),
            # The badge sits beside the figure it qualifies: a column of its own made the table wider than
            # its panel on a laptop (1366 px) once an item ran low.
            html.Td([html.Span("no use reported" if doh is None else f"{doh:,.1f} d",
                               style={"color": colour, "fontWeight": 700}),
                     *([" ", _badge(SUPPLY_BADGES[r["status"]], colour)] if r["status"] in SUPPLY_BADGES else [])],
                    title=f"warning below {warn_days:g} days on hand"),
            html.Td(age_text(r["report_age_h"]) + (" (stale)" if r["stale"] else "")),
        ]))
    table = _table(["Facility", "Item", "Stock", "Use", "Days on hand", "Reported"], body, "supplies")
    rest = rows.iloc[max_rows:]
    if rest.empty:
        return html.Div(table)
    lowest = _num(rest["days_on_hand"].min())
    more = f"{len(rest)} more items" + (f", all with {lowest:,.1f} days or more on hand" if lowest is not None else "")
    return html.Div([table, html.P(more, className="asof")])


def _badge(text: str, colour: str) -> html.Span:
    return html.Span(text, style={"background": colour, "color": "#101418", "padding": "0 0.4rem",
                                  "borderRadius": "3px", "fontWeight": 700, "fontSize": "0.85rem"})


def sites_table(sites: pd.DataFrame, demand: pd.DataFrame, *, min_count: int) -> html.Div:
    """Potential sites with the nearest area of rising demand, then the rising areas themselves."""
    parts = []
    if sites.empty:
        parts.append(html.P("No potential sites registered (facility kind potential_site: stadiums, halls, "
                            "schools that could become temporary hospitals).", className="empty"))
    else:
        body = []
        for s in sites.to_dict("records"):
            change = _num(s["area_change"])
            body.append(html.Tr(**{"data-site": s["facility_id"]}, children=[
                html.Td(s["name"]), html.Td("–" if _num(s["beds"]) is None else f"{s['beds']:,.0f}"),
                html.Td(s["area_name"] or "–"),
                html.Td("–" if change is None else f"{change:+.0%}",
                        style={"color": STATUS_COLOURS["warn"] if s["area_rising"] else TEXT}),
                html.Td("–" if s["nearest_rising_area"] is None else
                        f"{s['nearest_rising_area']} ({s['nearest_rising_km']:.1f} km)"),
            ]))
        parts.append(_table(["Potential site", "Beds", "Area", "Cases, week on week", "Nearest rising area"], body,
                            "sites"))
    rising = demand[demand["rising"]] if len(demand) else demand
    if len(demand) == 0:
        parts.append(html.P("No located cases: demand by area is not available.", className="empty"))
    elif rising.empty:
        parts.append(html.P("No area with rising cases in the last 7 days.", className="empty"))
    else:
        items = [f"{r['name']} {count_text(r, 'cases_recent', min_count)} cases "
                 f"(week before {count_text(r, 'cases_before', min_count)})"
                 for r in rising.sort_values("cases_recent", ascending=False).to_dict("records")]
        parts.append(html.P("Rising demand: " + "; ".join(items), style={"color": STATUS_COLOURS["warn"]}))
    return html.Div(parts)


def replay_banner(replay: dict | None) -> html.Span | str:
    if not replay:
        return ""
    frm, to = replay.get("data_from"), replay.get("data_to")
    span = f"{pd.Timestamp(frm):%d %b %Y} – {pd.Timestamp(to):%d %b %Y}" if frm is not None and to is not None else ""
    extra = " · boundary is a placeholder square" if replay.get("placeholder_boundary") else ""
    return html.Span(f"REPLAY of {replay.get('publisher')} open data, {replay.get('region')}, {span}{extra} · ",
                     style={"color": OKABE_ITO["yellow"], "fontWeight": 700})
