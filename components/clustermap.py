"""Micro-cluster map, cluster and zone tables, and the place-history chart for /clusters.

Built on components.hexmap (the offline H3 map: cells coloured by value, area outlines) with
three layers on top: containment zones, scanned clusters and a click layer. Zone tiers are told
apart by three cues at once, so no one depends on seeing colour (colour-blind viewers, a washed
out wall screen): Okabe-Ito colour, a fill pattern (red cross-hatched, orange diagonal, yellow
dotted) and the outline style (solid, dashed, dotted), with a marker shape on each zone's label.

The Gi* hot-spot layer (measure "hotspots") colours cells by the job's class, red shades for hot
and blue for cold at 90/95/99 % with the false discovery rate controlled across cells, and marks
every classed cell twice more: a triangle pointing up (hot) or down (cold) whose size grows with the
confidence, and a text label ("H99", "C90"), so the class reads without colour.

The frames come disclosed (services.clusters through services.privacy): a count withheld as small
is NaN with ``<column>__suppressed`` set, and reads "<k" in hovers, tables and the history chart,
where such a day is drawn as a hatched bar up to k.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import html
from plotly.subplots import make_subplots

from analytics.catalog import COUNT
from components.basemap import rings_xy
from components.figdict import coords, float32_array
from components.hexmap import hex_map_figure
from components.theme import MUTED, OKABE_ITO, PANEL, TEXT, base_layout
from services.formatting import display_value
from geo.cells import (
    average_cell_edge_m,
    cell_to_latlng,
    cells_to_latlngs,
    cells_to_outline_rings_lnglat,
)
from geo.distance import circle_to_ring_lnglat, lat_north_of
from geo.outlines import cells_to_fill_rings_lnglat

CLUSTER_COLOUR = OKABE_ITO["sky"]  # not a tier colour: a cluster is a finding, a zone is a decision
SUPPRESSED_COLOUR = "#5f6b76"
NOWRAP = {"whiteSpace": "nowrap"}
# Styles by rank from the most restrictive tier down; a rulebook with other tier names still gets
# three distinct looks.
TIER_STYLES = (
    {"colour": OKABE_ITO["vermillion"], "dash": "solid", "width": 4, "pattern": "x", "symbol": "x",
     "fill": "cross-hatched"},
    {"colour": OKABE_ITO["orange"], "dash": "dash", "width": 3, "pattern": "/", "symbol": "diamond",
     "fill": "diagonal"},
    {"colour": OKABE_ITO["yellow"], "dash": "dot", "width": 3, "pattern": ".", "symbol": "circle",
     "fill": "dotted"},
)


def tier_style(tier: str, tiers: Sequence[str]) -> dict:
    """Look of a tier; ``tiers`` is the rulebook's order, lowest restriction first."""
    from_top = list(reversed(tiers)).index(tier) if tier in tiers else len(TIER_STYLES) - 1
    return TIER_STYLES[min(from_top, len(TIER_STYLES) - 1)]


def shown(value, suppressed: bool, min_count: int) -> str:
    """A disclosed count: "<k" where withheld, "–" where unknown."""
    return display_value(COUNT, value, suppressed=bool(suppressed), min_count=min_count)


def _flags(frame: pd.DataFrame, column: str) -> pd.Series:
    flag = column + "__suppressed"
    if flag in frame:
        return frame[flag].fillna(False).astype(bool)
    return pd.Series(False, index=frame.index, dtype=bool)


# ---- the map -----------------------------------------------------------------------------------
def _cells_outline_xy(cells: Sequence[str]) -> tuple[list, list]:
    """Outer edges (and holes) of a set of cells, as one broken line (None between rings)."""
    return rings_xy(cells_to_outline_rings_lnglat(cells))


def _cells_fill_xy(cells: Sequence[str]) -> tuple[dict, dict]:
    """The area the cells cover as rings to fill, one per connected piece (geo.outlines), as float32."""
    xs, ys = rings_xy(cells_to_fill_rings_lnglat(cells))
    return float32_array(xs), float32_array(ys)


def _circle_xy(lat: float, lng: float, radius_m: float) -> tuple[list[float], list[float]]:
    ring = circle_to_ring_lnglat(lat, lng, radius_m)
    return list(coords(ring[:, 0])), list(coords(ring[:, 1]))


def cluster_map_figure(cells: pd.DataFrame, outlines: Sequence[dict], zones: pd.DataFrame, clusters: pd.DataFrame,
                       *, tiers: Sequence[str], measure: str, min_count: int, resolution: int,
                       window_days: int, hotspots: pd.DataFrame | None = None) -> go.Figure:
    """cells: h3_cell, cases, population, rate_per_100k. zones: in force. clusters: significant ones.

    ``measure`` is "cases" (window counts), "rate" (per 100,000 residents) or "hotspots" (the stored
    Gi* classes in ``hotspots``: h3_cell, z, confidence, spot). Every clickable point carries
    customdata [kind, key, ...] with kind "cell" or "zone" (a cell's then holds the figures its hover shows).
    """
    hidden = _flags(cells, "cases") if len(cells) else pd.Series(dtype=bool)
    if measure == "hotspots":
        base = hex_map_figure(pd.DataFrame(columns=["h3_cell", "value"]), outlines, min_count=1,
                              value_label="Gi*")
    elif measure == "rate":
        # A rate with its population gives the count back: small counts hide their rate as well.
        values = cells.loc[~hidden & cells["rate_per_100k"].notna(), ["h3_cell", "rate_per_100k"]]
        base = hex_map_figure(values.rename(columns={"rate_per_100k": "value"}), outlines, min_count=1,
                              value_label="per 100k")
    else:
        rows = cells[["h3_cell", "cases"]].rename(columns={"cases": "value"}).assign(value__suppressed=hidden)
        base = hex_map_figure(rows, outlines, min_count=min_count, value_label="cases")
    fig = go.Figure(layout=base["layout"])
    # hexmap's hover layer ("places") is replaced by the click layer below.
    fig.add_traces([trace for trace in base["data"] if trace.get("name") != "places"])
    if measure == "hotspots":
        _add_hotspot_layer(fig, hotspots if hotspots is not None else pd.DataFrame())
    if measure == "rate" and hidden.any():
        xs, ys = _cells_fill_xy(cells.loc[hidden, "h3_cell"])
        fig.add_trace(go.Scatter(x=xs, y=ys, fill="toself", mode="lines", line=dict(width=0.5, color=SUPPRESSED_COLOUR),
                                 fillcolor=SUPPRESSED_COLOUR, name=f"<{min_count} cases: no rate shown",
                                 hoverinfo="skip"))

    zone_of_cell: dict[str, tuple[str, str]] = {}
    order = sorted(zones.itertuples(index=False), key=lambda z: -list(tiers).index(z.tier) if z.tier in tiers else 0) \
        if len(zones) else []
    # One fill and one edge trace per tier (not per zone): least restrictive first, so the red core is on top.
    by_tier: dict[str, list] = {}
    for zone in reversed(order):
        by_tier.setdefault(zone.tier, []).append(zone)
        for cell in zone.cells:
            zone_of_cell[cell] = (zone.zone_id, zone.tier)
    for tier, tier_zones in by_tier.items():
        style = tier_style(tier, tiers)
        xs, ys = _cells_fill_xy([cell for zone in tier_zones for cell in zone.cells])
        fig.add_trace(go.Scatter(
            x=xs, y=ys, fill="toself", mode="lines", line=dict(width=0), fillcolor="rgba(0,0,0,0)",
            fillpattern=dict(shape=style["pattern"], fgcolor=style["colour"], bgcolor="rgba(0,0,0,0)",
                             size=9, solidity=0.25),
            name=f"{tier} zone ({style['fill']}, {style['dash']} edge)", legendgroup=f"tier-{tier}",
            showlegend=True, hoverinfo="skip"))
        edges = [_cells_outline_xy(list(zone.cells)) for zone in tier_zones]  # each zone's own outline
        fig.add_trace(go.Scatter(x=[x for e in edges for x in e[0]], y=[y for e in edges for y in e[1]],
                                 mode="lines", name=f"{tier} zone edge",
                                 line=dict(color=style["colour"], width=style["width"], dash=style["dash"]),
                                 legendgroup=f"tier-{tier}", showlegend=False, hoverinfo="skip"))

    edge_m = average_cell_edge_m(resolution)
    if len(clusters):
        xs, ys = [], []
        for c in clusters.itertuples(index=False):  # every circle in one trace, a break between them
            # The circle reaches the far edge of the outermost cell, not just its centre.
            cx, cy = _circle_xy(c.centre_lat, c.centre_lng, float(c.radius_m) + edge_m)
            xs.extend([*cx, None])
            ys.extend([*cy, None])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=CLUSTER_COLOUR, width=3, dash="longdash"),
                                 name="detected cluster (scan circle)", legendgroup="clusters", showlegend=True,
                                 hoverinfo="skip"))
        for c in clusters.itertuples():
            # A boxed label at the top of the circle stays legible over patterned zones.
            fig.add_annotation(x=c.centre_lng, y=lat_north_of(c.centre_lat, float(c.radius_m) + edge_m),
                               text=f"#{c.rank} p={_p(c.p_value)}", showarrow=False, yanchor="bottom",
                               font=dict(color=CLUSTER_COLOUR, size=15), bgcolor="rgba(16,20,24,0.85)",
                               bordercolor=CLUSTER_COLOUR, borderwidth=1, borderpad=2)

    # Zone labels: a marker of the tier's shape at the zone's northernmost cell; click for its history.
    if order:
        lab_x, lab_y, lab_text, lab_data, lab_symbol, lab_colour = [], [], [], [], [], []
        for zone in order:
            north = max(zone.cells, key=lambda c: cell_to_latlng(c)[0])
            lat, lng = cell_to_latlng(north)
            style = tier_style(zone.tier, tiers)
            lab_x.append(lng)
            lab_y.append(lat)
            lab_text.append(f"{zone.tier} zone {zone.zone_id}<br>since {_day(zone.since)} · {len(zone.cells)} cells"
                            "<br>click for its history")
            lab_data.append(["zone", zone.zone_id])
            lab_symbol.append(style["symbol"])
            lab_colour.append(style["colour"])
        fig.add_trace(go.Scatter(x=lab_x, y=lab_y, mode="markers", name="zones", showlegend=False,
                                 marker=dict(size=16, symbol=lab_symbol, color=lab_colour,
                                             line=dict(width=2, color=TEXT)),
                                 hovertext=lab_text, hoverinfo="text", customdata=lab_data))

    # Click layer: every cell with cases in the window or inside a zone.
    counts = dict(zip(cells["h3_cell"], cells["cases"])) if len(cells) else {}
    withheld = dict(zip(cells["h3_cell"], hidden)) if len(cells) else {}
    rates = dict(zip(cells["h3_cell"], cells["rate_per_100k"])) if len(cells) else {}
    people = dict(zip(cells["h3_cell"], cells["population"])) if len(cells) else {}
    click_cells = list(dict.fromkeys([*counts.keys(), *zone_of_cell.keys()]))
    for group in _click_groups(click_cells, counts, withheld, rates, people, zone_of_cell, min_count):
        centres = cells_to_latlngs([row[1] for row in group.customdata])
        fig.add_trace(go.Scatter(x=float32_array(centres[:, 1]), y=float32_array(centres[:, 0]),
                                 mode="markers", name="cells", showlegend=False, marker=dict(size=11, opacity=0),
                                 hovertemplate=group.template(window_days),
                                 hoverlabel=dict(bgcolor=PANEL, bordercolor=TEXT, font=dict(color=TEXT)),
                                 customdata=group.customdata))
    fig.update_layout(clickmode="event", hovermode="closest", uirevision="clusters-map",
                      legend=dict(orientation="h", y=-0.02, yanchor="top", font=dict(size=14)))
    return fig


@dataclass
class _ClickGroup:
    """Cells whose hovers have the same lines: each cell's customdata is ["cell", id, count shown, *figures]
    (a click sends it; pages.clusters reads the first two), and the words around the figures are written
    once, in the group's template, instead of once per cell (a 1M-person city has thousands of cells)."""
    has_rate: bool
    has_people: bool
    has_zone: bool
    customdata: list = field(default_factory=list)

    def template(self, window_days: int) -> str:
        lines, at = [f"cases, {window_days} d: %{{customdata[2]}}"], 3
        for present, line in ((self.has_rate, "%{{customdata[{}]:,.0f}} per 100k"),
                              (self.has_people, "about %{{customdata[{}]:,.0f}} residents"),
                              (self.has_zone, "%{{customdata[{}]}}")):
            if present:
                lines.append(line.format(at))
                at += 1
        return "<br>".join([*lines, "cell %{customdata[1]}", "click for its history"]) + "<extra></extra>"


def _known(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _click_groups(click_cells, counts, withheld, rates, people, zone_of_cell, min_count) -> list[_ClickGroup]:
    """The click layer's cells, grouped by which lines their hover has (a withheld count has no rate)."""
    groups: dict[tuple, _ClickGroup] = {}
    for cell in click_cells:
        hide = bool(withheld.get(cell, False))
        rate, pop = rates.get(cell), people.get(cell)
        has_rate, has_people = not hide and _known(rate), _known(pop)
        zone = zone_of_cell.get(cell)
        key = (has_rate, has_people, zone is not None)
        group = groups.setdefault(key, _ClickGroup(*key))
        # Rates and residents go as whole numbers: the hover shows them to the unit.
        group.customdata.append(["cell", cell, shown(counts.get(cell, 0), hide, min_count),
                                 *([round(float(rate))] if has_rate else []),
                                 *([round(float(pop))] if has_people else []),
                                 *([f"{zone[1]} zone {zone[0]}"] if zone else [])])
    return list(groups.values())


# Hot red / cold blue, darker with confidence (Okabe-Ito vermillion and blue, then lighter tints);
# the symbol size and the text label carry the same class without colour.
HOTSPOT_STYLES = {
    "hot 99 %": {"colour": OKABE_ITO["vermillion"], "symbol": "triangle-up", "size": 15, "label": "H99"},
    "hot 95 %": {"colour": "#e8875a", "symbol": "triangle-up", "size": 12, "label": "H95"},
    "hot 90 %": {"colour": "#f2b99c", "symbol": "triangle-up", "size": 9, "label": "H90"},
    "cold 90 %": {"colour": "#9ccbe8", "symbol": "triangle-down", "size": 9, "label": "C90"},
    "cold 95 %": {"colour": "#5aa6d6", "symbol": "triangle-down", "size": 12, "label": "C95"},
    "cold 99 %": {"colour": OKABE_ITO["blue"], "symbol": "triangle-down", "size": 15, "label": "C99"},
}


def _add_hotspot_layer(fig: go.Figure, hotspots: pd.DataFrame) -> None:
    """Cells filled by Gi* class, with a symbol and a text label on each classed cell."""
    if hotspots.empty:
        fig.add_annotation(text="No Gi* layer stored yet", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5, font=dict(color=MUTED, size=16))
        return
    classed = hotspots[hotspots["spot"].isin(list(HOTSPOT_STYLES))]
    for spot, style in HOTSPOT_STYLES.items():
        group = classed[classed["spot"] == spot]
        if group.empty:
            continue
        xs, ys = _cells_fill_xy(group["h3_cell"])
        fig.add_trace(go.Scatter(x=xs, y=ys, fill="toself", mode="lines", line=dict(width=0.5, color=style["colour"]),
                                 fillcolor=style["colour"], name=f"{spot} ({style['label']})",
                                 legendgroup=f"gi-{spot}", hoverinfo="skip"))
    if classed.empty:
        fig.add_annotation(text="Gi*: no hot or cold spot passes the false discovery rate", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.98, font=dict(color=MUTED, size=14))
        return
    centres = cells_to_latlngs(list(classed["h3_cell"]))
    styles = [HOTSPOT_STYLES[spot] for spot in classed["spot"]]
    fig.add_trace(go.Scatter(
        x=centres[:, 1], y=centres[:, 0], mode="markers+text", name="Gi* class", showlegend=False,
        text=[st["label"] for st in styles], textposition="top center", textfont=dict(color=TEXT, size=11),
        marker=dict(symbol=[st["symbol"] for st in styles], size=[st["size"] for st in styles],
                    color=[st["colour"] for st in styles], line=dict(width=1, color=TEXT)),
        hovertext=[f"{spot} · Gi* z = {z:+.2f}" for spot, z in zip(classed["spot"], classed["z"])],
        hoverinfo="text"))


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _day(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "–"
    return str(pd.Timestamp(value).date())


# ---- tables ------------------------------------------------------------------------------------
def cluster_table(clusters: pd.DataFrame, *, tiers: Sequence[str], min_count: int, row_id_type: str,
                  max_window_days: int) -> html.P | html.Table:
    """Significant clusters: start day, observed/expected, relative risk, p, recurrence interval, zone."""
    if clusters is None or clusters.empty:
        return html.P(f"No clusters detected in the last {max_window_days} days.", className="empty")
    head = html.Tr([html.Th(h) for h in ("Cluster", "Start day", "Days", "Cells", "Observed / expected",
                                         "Relative risk", "p", "Recurrence interval", "Analysis", "Zone")])
    rows = []
    for c, hide in zip(clusters.itertuples(index=False), _flags(clusters, "observed")):
        start, end = pd.Timestamp(c.start_date).date(), pd.Timestamp(c.end_date).date()
        tier = getattr(c, "zone_tier", None)
        if isinstance(tier, str):
            style = tier_style(tier, tiers)
            zone = html.Span([html.Span("■ ", style={"color": style["colour"]}),
                              f"{tier} since {_day(c.zone_since)}"], title=f"zone {c.zone_id}")
        else:
            zone = html.Span("no zone: rulebook thresholds not met", style={"color": MUTED})
        target = ["zone", c.zone_id] if isinstance(tier, str) else ["cell", c.centre_cell]
        rows.append(html.Tr(
            id={"type": row_id_type, "index": f"{target[0]}|{target[1]}"}, n_clicks=0, className="clickable",
            style={"cursor": "pointer"}, title="click for its history", children=[
                html.Td(f"#{c.rank} {c.cluster_id}", style=NOWRAP), html.Td(str(start), style=NOWRAP),
                html.Td(f"{(end - start).days + 1}"),
                html.Td(f"{c.n_cells}"),
                html.Td(f"{shown(c.observed, hide, min_count)} / {c.expected:,.1f}"),
                html.Td("–" if hide or c.relative_risk is None or pd.isna(c.relative_risk)
                        else f"{c.relative_risk:,.1f}", title="hidden with the small count" if hide else None),
                html.Td(_p(c.p_value)), html.Td(_recurrence(c.recurrence_interval_days)),
                html.Td(_analysis(getattr(c, "max_window_days", None)), style=NOWRAP), html.Td(zone)]))
    return html.Table([html.Thead(head), html.Tbody(rows)], className="data cluster-table")


def _analysis(window) -> str:
    """The maximum temporal window of the analysis that found the cluster (NYC ran 7 and 21 days)."""
    return "–" if window is None or pd.isna(window) else f"≤ {int(window)} days"


def _recurrence(days: float) -> str:
    if days >= 365:
        return f"once in {days / 365.25:,.1f} years"
    return f"once in {days:,.0f} days"


def zone_table(zones: pd.DataFrame, *, tiers: Sequence[str], review_days: int,
               row_id_type: str) -> html.P | html.Table:
    """Zones in force, most restrictive first, with the day each one's review falls due."""
    if zones is None or zones.empty:
        return html.P("No containment zones in force.", className="empty")
    ordered = zones.assign(_rank=[-list(tiers).index(t) if t in tiers else 0 for t in zones["tier"]]) \
        .sort_values(["_rank", "cluster_id", "role"])
    head = html.Tr([html.Th(h) for h in ("Zone", "Tier", "Cells", "Entered", "In tier since", "Review due", "Rule")])
    rows = []
    for z in ordered.itertuples(index=False):
        style = tier_style(z.tier, tiers)
        last = z.reviewed_on if z.reviewed_on is not None and not pd.isna(z.reviewed_on) else z.since
        due = pd.Timestamp(last).date() + timedelta(days=review_days)
        rows.append(html.Tr(
            id={"type": row_id_type, "index": f"zone|{z.zone_id}"}, n_clicks=0, className="clickable",
            style={"cursor": "pointer"}, title="click for its history", children=[
                html.Td(z.zone_id, style=NOWRAP),
                html.Td([html.Span("■ ", style={"color": style["colour"]}), z.tier,
                         html.Span(f" ({style['fill']})", style={"color": MUTED})]),
                html.Td(f"{len(z.cells)}"), html.Td(_day(z.entered_on), style=NOWRAP),
                html.Td(_day(z.since), style=NOWRAP), html.Td(str(due), style=NOWRAP),
                html.Td(f"{z.rule_id} {z.rule_version}")]))
    return html.Table([html.Thead(head), html.Tbody(rows)], className="data zone-table")


# ---- history -----------------------------------------------------------------------------------
def history_figure(daily: pd.DataFrame, events: pd.DataFrame, *, tiers: Sequence[str], min_count: int,
                   tests_estimated: bool, height: int = 460) -> go.Figure:
    """Daily cases (top) and tests with 7-day positivity (bottom); a line where each tier was entered."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.55, 0.45], vertical_spacing=0.08,
                        specs=[[{}], [{"secondary_y": True}]])
    hide = _flags(daily, "cases").to_numpy()
    shown_cases = np.where(hide, np.nan, daily["cases"].to_numpy(dtype=float))
    fig.add_trace(go.Bar(x=daily["day"], y=shown_cases, name="cases / day", marker_color=OKABE_ITO["sky"],
                         hovertemplate="%{x|%d %b}: %{y} cases<extra></extra>"), row=1, col=1)
    if hide.any():
        fig.add_trace(go.Bar(
            x=daily["day"][hide], y=[min_count] * int(hide.sum()), name=f"<{min_count} cases (hidden)",
            marker=dict(color="rgba(0,0,0,0)", line=dict(color=SUPPRESSED_COLOUR, width=1),
                        pattern=dict(shape="/", fgcolor=SUPPRESSED_COLOUR)),
            hovertemplate=f"%{{x|%d %b}}: <{min_count} cases<extra></extra>"), row=1, col=1)
    tests_label = "tests / day (estimated from area reports)" if tests_estimated else "tests / day"
    fig.add_trace(go.Bar(x=daily["day"], y=daily["tested"].round(1), name=tests_label,
                         marker_color=MUTED, opacity=0.5), row=2, col=1)
    tested7 = daily["tested"].rolling(7, min_periods=7).sum()
    positive7 = daily["positive"].rolling(7, min_periods=7).sum()
    positivity = (positive7 / tested7).where(tested7 > 0)
    fig.add_trace(go.Scatter(x=daily["day"], y=positivity, name="7-day positivity", mode="lines",
                             line=dict(color=OKABE_ITO["purple"], width=3)), row=2, col=1, secondary_y=True)
    top = max(float(np.nanmax(shown_cases)) if np.isfinite(shown_cases).any() else 0.0,
              float(min_count) if hide.any() else 0.0, 1.0)
    if events is not None and len(events):
        first_day = pd.Timestamp(daily["day"].iloc[0]) if len(daily) else None
        for e in events.itertuples(index=False):
            when = pd.Timestamp(e.as_of)
            if first_day is not None and when < first_day:
                continue
            tier = e.tier if isinstance(e.tier, str) else e.previous_tier
            style = tier_style(tier, tiers) if isinstance(tier, str) else {"colour": MUTED, "dash": "dot"}
            label = f"{e.kind} {e.tier}" if isinstance(e.tier, str) else f"{e.kind} ({e.previous_tier})"
            fig.add_shape(type="line", x0=when, x1=when, y0=0, y1=1, xref="x", yref="paper",
                          line=dict(color=style["colour"], width=3, dash=style["dash"]))
            fig.add_annotation(x=when, y=top * 1.08, xref="x", yref="y", text=label, showarrow=False,
                               font=dict(color=style["colour"], size=14), xanchor="right", textangle=-90,
                               yanchor="top")
    fig.update_layout(**base_layout(height=height, barmode="overlay", bargap=0.1,
                                    margin=dict(l=50, r=50, t=20, b=30), legend=dict(orientation="h", y=-0.12)))
    fig.update_yaxes(title_text="cases", gridcolor="#2a323b", rangemode="tozero", range=[0, top * 1.15], row=1, col=1)
    fig.update_yaxes(title_text="tests", gridcolor="#2a323b", rangemode="tozero", row=2, col=1, secondary_y=False)
    fig.update_yaxes(title_text="positivity", tickformat=".0%", showgrid=False, rangemode="tozero",
                     row=2, col=1, secondary_y=True)
    fig.update_xaxes(gridcolor="#2a323b")
    return fig


def history_summary(totals: dict, events: pd.DataFrame, *, window_days: int, min_count: int,
                    tests_estimated: bool) -> html.Div:
    """Totals over the window (services.clusters.place_history, disclosed) and the zone decisions, oldest first."""
    tested, positive = totals.get("tested"), totals.get("positive")
    if totals.get("tested__suppressed") or tested is None:
        tests_text = f"<{min_count} tests" if totals.get("tested__suppressed") else "no tests"
        positivity = ""
    else:
        tests_text = f"{tested:,.0f} tests" + (" (estimated from area reports)" if tests_estimated else "")
        positivity = (f", {positive / tested:.1%} positive" if tested > 0 and positive is not None
                      and not totals.get("positive__suppressed") else "")
    items = []
    for e in (events.itertuples(index=False) if events is not None else ()):
        what = (f"{e.kind} {e.tier}" + (f" (was {e.previous_tier})" if isinstance(e.previous_tier, str) else "")
                if isinstance(e.tier, str) else f"{e.kind} (was {e.previous_tier})")
        items.append(html.Li([html.B(f"{_day(e.as_of)} · {what}"), f" · zone {e.zone_id} · rule {e.rule_id} "
                              f"{e.rule_version}", html.Br(), html.Span(str(e.reason or ""), style={"color": MUTED})]))
    return html.Div([
        html.P([html.Span(f"Last {window_days} days: "),
                html.B(shown(totals.get("cases"), totals.get("cases__suppressed", False), min_count),
                       className="history-cases"),
                f" cases · {tests_text}{positivity}"]),
        html.H3("Zone history", style={"fontSize": "1rem", "margin": "0.3rem 0"}),
        html.Ul(items, className="zone-events") if items else html.P("Never in a zone.", className="empty"),
    ])
