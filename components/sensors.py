"""Figures and tables of the sensors page: the map of sensors by kind and state, per-kind panels, the sensor
list, a sensor's history and the wastewater leads.

Every state has a glyph and a word besides its colour (WCAG 1.4.1, "use of color"): ● normal, ▲ above
threshold, ◌ silent, – no data; on the map the shape tells the kind and the fill the state (filled:
reporting; hollow: silent or never heard from), so a colour-blind reader loses nothing.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
from dash import html

from components.basemap import context_under, landmarks
from components.figdict import coords, figure, rings_arrays
from components.text import plotly_text
from components.theme import MUTED, OKABE_ITO, base_layout
from services.formatting import display_value

STATE_CUES = {"normal": ("●", "normal"), "above": ("▲", "above threshold"), "silent": ("◌", "silent"),
              "no_data": ("–", "no data")}
STATE_COLOURS = {"normal": OKABE_ITO["sky"], "above": OKABE_ITO["vermillion"], "silent": OKABE_ITO["orange"],
                 "no_data": "#888888"}
STATE_ORDER = ("above", "silent", "no_data", "normal")
KIND_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "pentagon", "hexagon", "cross", "x")
PANEL_ROWS = 6  # places listed per kind panel (the sensor list and the chooser reach the rest)
LEAD_ROWS = 12  # samplers listed in the wastewater lead table


def state_badge(state: str) -> html.Span:
    glyph, word = STATE_CUES.get(state, ("?", state))
    return html.Span(className=f"state state-{state}", children=[html.Span(glyph, className="state-glyph",
                                                                           **{"aria-hidden": "true"}), f" {word}"])


def value_text(value, suppressed: bool, min_count: int) -> str:
    return display_value("level", value, suppressed=bool(suppressed), min_count=min_count)


def when_text(ts, tz: ZoneInfo, now: datetime | None = None) -> str:
    """Local time, and how long ago, e.g. "14:05 (3 min ago)"; "never" for none."""
    if ts is None or pd.isna(ts):
        return "never"
    t = pd.Timestamp(ts).tz_convert(tz)
    now = now or datetime.now(timezone.utc)
    seconds = max((pd.Timestamp(now) - t).total_seconds(), 0)
    # Whole minutes at the finest: a text that changed every second would redraw the sensor list on every
    # refresh (pages._redraw sends a part again only when its text changed).
    if seconds < 60:
        return f"{t.strftime('%H:%M')} (under a minute ago)"
    ago = (f"{seconds / 60:.0f} min" if seconds < 7200
           else f"{seconds / 3600:.0f} h" if seconds < 172_800 else f"{seconds / 86400:.0f} d")
    stamp = t.strftime("%H:%M") if seconds < 86_400 else t.strftime("%d %b %H:%M")
    return f"{stamp} ({ago} ago)"


# ---- the map ---------------------------------------------------------------------------------------------
def sensor_map_figure(rows: pd.DataFrame, outlines: Sequence[dict], layers: Sequence, *, kinds: Sequence[str],
                      labels: dict[str, str], min_count: int, incidents: pd.DataFrame | None = None,
                      tile_url: str | None = None, tile_attribution: str = "") -> dict:
    """Every sensor as a marker: shape by kind, colour and fill by state; open incidents as large stars.
    Each marker's customdata is its sensor id (a click opens its history).

    A plain figure dict (components.figdict): a city's thousands of sensors through go.Figure's validators
    took most of a refresh after new data (0.9 s of 1.8 s profiled at the 1M-person bench city).
    """
    from components.hexmap import raster_style, _zoom_for

    on_tiles = bool(tile_url)

    def trace(xs, ys, **kw) -> dict:
        if on_tiles:
            if "line" in kw and "dash" in kw["line"]:
                kw["line"] = {k: v for k, v in kw["line"].items() if k != "dash"}
            if "marker" in kw:  # MapLibre draws circles only
                kw["marker"] = {k: v for k, v in kw["marker"].items() if k not in ("symbol", "line")}
            return {"type": "scattermap", "lon": xs, "lat": ys, **kw}
        return {"type": "scatter", "x": xs, "y": ys, **kw}

    data: list[dict] = list(context_under(layers, on_tiles=on_tiles))
    for kind, width, dash in (("boundary", 2.5, "solid"), ("community", 1, "dot")):
        rings = [ring for o in outlines if o["kind"] == kind for ring in o["rings"]]
        if rings:
            xs, ys = rings_arrays(rings)
            data.append(trace(xs, ys, mode="lines", hoverinfo="skip", name=kind, showlegend=False,
                              line=dict(color="#e8eaed" if kind == "boundary" else MUTED, width=width, dash=dash)))
    symbols = {k: KIND_SYMBOLS[i % len(KIND_SYMBOLS)] for i, k in enumerate(kinds)}
    for kind in kinds:
        mine = rows[rows["kind"] == kind]
        for state in STATE_ORDER:
            sel = mine[mine["state"] == state]
            if sel.empty:
                continue
            hollow = state in ("silent", "no_data")
            glyph, word = STATE_CUES[state]
            # What differs per sensor (name, latest value) per point, the rest once in the trace's template:
            # a city's thousands of sensors otherwise repeat the state and unit in every hover text.
            names = [plotly_text(n if isinstance(n, str) else s) for n, s in zip(sel["name"], sel["sensor_id"])]
            values = [plotly_text(value_text(v, h, min_count)) for v, h in zip(sel["value"], sel["value__suppressed"])]
            unit = plotly_text(str(sel["unit"].iloc[0] or ""))
            data.append(trace(
                coords(sel["lng"]), coords(sel["lat"]), mode="markers", customdata=sel["sensor_id"].tolist(),
                text=names, hovertext=values,
                hovertemplate=f"%{{text}} (%{{customdata}})<br>{glyph} {word}<br>latest: %{{hovertext}} {unit}"
                              "<extra></extra>",
                name=f"{plotly_text(labels.get(kind, kind))} · {word}",
                marker=dict(symbol=symbols[kind] + ("-open" if hollow else ""), size=16 if state == "above" else 11,
                            color=STATE_COLOURS[state], line=dict(width=2 if state == "above" else 1,
                                                                  color="#ffffff" if state == "above" else
                                                                  STATE_COLOURS[state]))))
    if incidents is not None and len(incidents):
        data.append(trace(coords(incidents["lng"]), coords(incidents["lat"]), mode="markers",
                          customdata=incidents["sensor_id"].tolist(),
                          hovertext=[f"PANIC: {plotly_text(n)}" for n in incidents["name"]], hoverinfo="text",
                          name="panic button pressed (open incident)",
                          marker=dict(symbol="star", size=26, color=OKABE_ITO["vermillion"],
                                      line=dict(width=2, color="#ffffff"))))
    data.extend(landmarks(layers, on_tiles=on_tiles))
    # The legend beside the map, not under it: a dozen kind-and-state entries would take half its height.
    layout = base_layout(showlegend=True, margin=dict(l=10, r=10, t=10, b=10), uirevision="sensors",
                         legend=dict(orientation="v", x=1.0, xanchor="left", y=1.0, font=dict(size=12)))
    xs = [p[0] for o in outlines for r in o["rings"] for p in r] or [0.0]
    ys = [p[1] for o in outlines for r in o["rings"] for p in r] or [0.0]
    if on_tiles:
        layout["map"] = dict(style=raster_style(tile_url, tile_attribution),
                             center=dict(lat=(min(ys) + max(ys)) / 2, lon=(min(xs) + max(xs)) / 2),
                             zoom=_zoom_for(max(xs) - min(xs), max(ys) - min(ys)))
        return figure(data, layout)
    lat0 = (min(ys) + max(ys)) / 2
    layout["xaxis"] = {"visible": False}
    layout["yaxis"] = {"visible": False, "scaleanchor": "x", "scaleratio": 1 / math.cos(math.radians(lat0))}
    return figure(data, layout)


# ---- panels ----------------------------------------------------------------------------------------------
def _cell(text, **kw) -> html.Td:
    return html.Td(text, **kw)


def sensor_button(sensor_id: str, name: str, row_id_type: str) -> html.Button:
    """The sensor's name as a button: a click or Enter opens its history (keyboard and screen readers too)."""
    return html.Button(name or sensor_id, id={"type": row_id_type, "index": sensor_id}, n_clicks=0,
                       className="linklike", title=f"Show the history of {sensor_id}",
                       **{"aria-label": f"History of {name or sensor_id} ({sensor_id})"})


def places_table(rows: pd.DataFrame, *, min_count: int, row_id_type: str, tz: ZoneInfo, caption: str,
                 limit: int | None = PANEL_ROWS, full: bool = False, now: datetime | None = None) -> html.Table:
    """Sensors as a table: name (opens its history), state, latest reading, threshold; ``full`` adds the kind,
    the area, when it was last seen (before ``now``, default the clock) and its battery (the sensor list)."""
    now = now or datetime.now(timezone.utc)
    shown = rows if limit is None else rows.iloc[:limit]  # a view: head() copies every column of the frame
    head = ["Sensor", *(["Kind", "Area"] if full else []), "State", "Latest", "Threshold",
            *(["Last seen", "Battery"] if full else [])]
    body = []
    for r in shown.itertuples(index=False):
        battery = "" if r.battery_pct is None or pd.isna(r.battery_pct) else f"{r.battery_pct:.0f} %"
        if battery and bool(r.battery_low):
            battery = f"⚠ {battery} low"
        threshold = "" if r.threshold is None or pd.isna(r.threshold) else f"{value_text(r.threshold, False, 0)}"
        body.append(html.Tr(className=f"row-{r.state}", children=[
            _cell(sensor_button(r.sensor_id, r.name if isinstance(r.name, str) else "", row_id_type)),
            *([_cell(r.label), _cell(r.area_name if isinstance(r.area_name, str) else "–")] if full else []),
            _cell(state_badge(r.state)),
            _cell(f"{value_text(r.value, r.value__suppressed, min_count)} {r.unit}".strip(), className="num"),
            _cell(threshold, className="num"),
            *([_cell(when_text(r.last_seen, tz, now)), _cell(battery)] if full else [])]))
    return html.Table(className="data", children=[
        html.Caption(caption, className="sr-only"),
        html.Thead(html.Tr([html.Th(h, scope="col") for h in head])), html.Tbody(body)])


def state_counts_line(counts: dict[str, int]) -> html.P:
    parts = []
    for state in ("above", "silent", "no_data", "normal"):
        if counts.get(state):
            glyph, word = STATE_CUES[state]
            parts.append(html.Span(className=f"state state-{state}", children=[
                html.Span(glyph, className="state-glyph", **{"aria-hidden": "true"}), f" {counts[state]} {word}"]))
    return html.P(parts or "no sensors", className="state-counts")


def crowding_figure(rows: pd.DataFrame, *, unit: str, limit: int = 12) -> go.Figure:
    """The most loaded places: latest reading as a share of each place's threshold (capacity); 100 % is full."""
    top = rows[rows["ratio"].notna()].head(limit).iloc[::-1]
    fig = go.Figure()
    colours = [STATE_COLOURS.get(s, MUTED) for s in top["state"]]
    names = [plotly_text(n if isinstance(n, str) else s) for n, s in zip(top["name"], top["sensor_id"])]
    fig.add_trace(go.Bar(x=top["ratio"], y=names, orientation="h", marker_color=colours, name="load",
                         customdata=top["sensor_id"],
                         text=[f"{STATE_CUES.get(s, ('', ''))[0]} {r:.0%}" for s, r in zip(top["state"], top["ratio"])],
                         textposition="outside",
                         hovertext=[f"{n}: {v:,.0f} of {t:,.0f} {plotly_text(unit)}" for n, v, t in
                                    zip(names, top["value"], top["threshold"])], hoverinfo="text"))
    fig.add_vline(x=1.0, line=dict(color="#e8eaed", dash="dash", width=2))
    fig.update_layout(**base_layout(margin=dict(l=10, r=40, t=10, b=30), showlegend=False, uirevision="crowding"))
    fig.update_xaxes(tickformat=".0%", gridcolor="#2a323b", range=[0, max(1.25, float(top["ratio"].max() or 0) * 1.15)
                                                                       if len(top) else 1.25])
    fig.update_yaxes(automargin=True)
    return fig


def lead_table(leads: pd.DataFrame, city_lead: dict | None, limit: int | None = LEAD_ROWS) -> html.Div:
    """Each sampler's lead over the city's cases (lag at the peak of the cross-correlation) and the city's:
    the ``limit`` samplers of the clearest lead (None: every one)."""
    if city_lead is None and leads.empty:
        return html.P("No lead yet: it needs the indicators job's daily cases and three weeks of samples.",
                      className="muted")
    intro = []
    if city_lead is not None and city_lead.get("lag_days") is not None:
        intro.append(html.P([html.Strong(f"Wastewater leads cases by {city_lead['lag_days']} days"),
                             f" (all samplers together; cross-correlation r = {city_lead['correlation']:.2f} over "
                             f"{city_lead['days_used']} days of week-on-week changes, last {city_lead['window_days']} "
                             "days)."], className="lead-city"))
    # The samplers whose lead is clearest (strongest correlation) first; a city's hundreds of samplers (230 in
    # the 1M-person bench city, 110 KB of table on every refresh) are more than a panel is read for.
    ranked = leads.assign(_r=pd.to_numeric(leads["correlation"], errors="coerce")).sort_values(
        "_r", ascending=False, na_position="last", kind="stable")
    rows = [html.Tr([html.Td(r.name), html.Td("–" if pd.isna(r.lag_days) else f"{int(r.lag_days)} d", className="num"),
                     html.Td("–" if pd.isna(r.correlation) else f"{r.correlation:.2f}", className="num"),
                     html.Td(f"{int(r.days_used)}", className="num")])
            for r in (ranked if limit is None else ranked.head(limit)).itertuples(index=False)]
    if limit is not None and len(ranked) > limit:
        intro.append(html.P(f"The {limit} samplers of the clearest lead (strongest correlation) of {len(ranked)}; "
                            "tick \"list every sensor\" below for all of them.", className="muted"))
    return html.Div([*intro, html.Table(className="data", children=[
        html.Caption("Lead of each wastewater sampler over the city's counted cases", className="sr-only"),
        html.Thead(html.Tr([html.Th(h, scope="col") for h in ("Sampler (catchment)", "Lead", "r", "Days")])),
        html.Tbody(rows)])])


# ---- history ---------------------------------------------------------------------------------------------
def history_figure(history, *, min_count: int) -> go.Figure:
    """One sensor's readings of its kind's metric, its threshold as a line, withheld values as gaps."""
    fig = go.Figure()
    r = history.readings
    hidden = r["value__suppressed"].fillna(False).astype(bool) if len(r) else pd.Series(dtype=bool)
    fig.add_trace(go.Scatter(x=r["ts"], y=r["value"].where(~hidden), mode="lines+markers", connectgaps=False,
                             name=plotly_text(f"{history.label}: {history.metric} ({history.unit})"),
                             line=dict(color=OKABE_ITO["sky"], width=2), marker=dict(size=4),
                             customdata=[value_text(v, h, min_count) for v, h in zip(r["value"], hidden)],
                             hovertemplate="%{x|%d %b %H:%M}: %{customdata}<extra></extra>"))
    if history.threshold is not None:
        fig.add_hline(y=history.threshold, line=dict(color=OKABE_ITO["vermillion"], dash="dash", width=2),
                      annotation_text=f"threshold {value_text(history.threshold, False, 0)}",
                      annotation_font_color=OKABE_ITO["vermillion"])
    if hidden.any():
        fig.add_annotation(text=f"values below {min_count} withheld", showarrow=False, xref="paper", yref="paper",
                           x=0, y=1.08, xanchor="left", font=dict(color=MUTED, size=13))
    fig.update_layout(**base_layout(margin=dict(l=50, r=20, t=30, b=40), showlegend=True, uirevision=history.sensor_id))
    if r.empty:
        fig.add_annotation(text="no readings in these days" if history.sensor_id else "no sensor chosen",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font=dict(color=MUTED, size=18))
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.update_layout(showlegend=False)
        return fig
    fig.update_yaxes(gridcolor="#2a323b", rangemode="tozero")
    fig.update_xaxes(gridcolor="#2a323b")
    return fig
