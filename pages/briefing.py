"""The mayor's daily briefing (/briefing): one day of the city on one page, and its PDF.

A date picker (default: the latest complete day, services.briefing), the headline figures with their
change against the day and the week before (tiles carry data-indicator/data-value: the same figures as
GET /api/v1/indicators?date=D), the narrative, the map of cases, zones and new clusters, the level,
capacity and days until the threshold, hot spots, precincts that changed tier, alerts of the last 24 h
and what the figures cannot say. The PDF button downloads /briefing.pdf for the shown day, or says what
is missing when the renderer (headless Chromium) is not installed.
"""
from __future__ import annotations

from datetime import date
from urllib.parse import quote

import dash
from dash import Input, Output, dcc, html

from auth.policy import current_principal
from auth.runtime import current_runtime
from components.briefing import briefing_figures
from components.figcache import as_dict, cached_component
from components.kpi import kpi_tile
from pages import _ids as ids
from pages._secure import secure_callback
from reports.briefing_pdf import MAX_ALERT_ROWS, renderer_status
from services.briefing import Briefing, NoBriefing, briefing_days, daily_briefing, latest_complete_day
from services.mapdata import area_outlines
from services.narrative import day_text
from services.read_cache import cached_read

dash.register_page(__name__, path="/briefing", title="pheoc · Daily briefing", name="Briefing", order=5)
GRAPH_CONFIG = {"displaylogo": False, "displayModeBar": False}
BUTTON = {"padding": "0.35rem 0.9rem", "background": "#0072B2", "color": "#ffffff", "borderRadius": "4px",
          "textDecoration": "none", "fontSize": "1.05rem", "border": "none"}
OUTPUTS = (ids.BRIEFING_ASOF, ids.BRIEFING_PDF, ids.BRIEFING_KPIS, ids.BRIEFING_NARRATIVE, ids.BRIEFING_LEVEL,
           ids.BRIEFING_CAPACITY, ids.BRIEFING_HOTSPOTS, ids.BRIEFING_PRECINCTS, ids.BRIEFING_ALERTS,
           ids.BRIEFING_NOTES)
GRAPHS = ((ids.BRIEFING_MAP, "map"), (ids.BRIEFING_TREND, "trend"), (ids.BRIEFING_CAPACITY_CHART, "capacity"),
          (ids.BRIEFING_RT, "rt"))


def _panel(title: str, body_id: str, **style) -> html.Div:
    return html.Div(className="panel", style={"marginTop": "0.6rem", **style},
                    children=[html.H2(title), html.Div(id=body_id)])


def _graph(title: str, graph_id: str, height: str) -> html.Div:
    return html.Div(className="panel", children=[html.H2(title), dcc.Graph(id=graph_id, config=GRAPH_CONFIG,
                                                                          style={"height": height})])


def _map_panel(title: str, graph_id: str) -> html.Div:
    """A map that fills its panel, however tall the grid row makes it (assets/pheoc-wall.css .panel-map)."""
    return html.Div(className="panel panel-map", children=[html.H2(title), dcc.Graph(
        id=graph_id, config=GRAPH_CONFIG, className="map-graph")])


def layout(date: str | None = None, **_query):
    rt = current_runtime()
    first, last = briefing_days(rt.store)
    default = latest_complete_day(rt.store, rt.settings) or last
    chosen = date if isinstance(date, str) and len(date) == 10 else (default.isoformat() if default else None)
    return html.Div(className="page page-briefing", children=[
        html.Div(className="panel", style={"display": "flex", "gap": "1.2rem", "alignItems": "center",
                                           "flexWrap": "wrap"}, children=[
            html.Label("Day", htmlFor=ids.BRIEFING_DATE, className="kpi-label"),
            html.Div(style={"width": "11rem"}, children=dcc.DatePickerSingle(
                id=ids.BRIEFING_DATE, date=chosen, display_format="YYYY-MM-DD", first_day_of_week=1,
                min_date_allowed=first.isoformat() if first else None,
                max_date_allowed=last.isoformat() if last else None)),
            html.Div(id=ids.BRIEFING_PDF),
            html.Div(id=ids.BRIEFING_ASOF, className="asof"),
        ]),
        html.Div(id=ids.BRIEFING_KPIS, className="kpi-row", style={"marginTop": "0.6rem"}),
        _panel("In brief", ids.BRIEFING_NARRATIVE),
        html.Div(className="grid-2", children=[
            _map_panel("Recent cases, zones and new clusters", ids.BRIEFING_MAP),
            html.Div(children=[_panel("Level", ids.BRIEFING_LEVEL, marginTop="0"),
                               _panel("Capacity and days until the threshold", ids.BRIEFING_CAPACITY),
                               _panel("Hot spots", ids.BRIEFING_HOTSPOTS)]),
        ]),
        html.Div(className="grid-2", children=[
            _graph("Cases, admissions and occupancy", ids.BRIEFING_TREND, "34vh"),
            html.Div(className="grid-2", style={"marginTop": "0"}, children=[
                _graph("Hospital beds and projection", ids.BRIEFING_CAPACITY_CHART, "34vh"),
                _graph("R(t) with its 95 % interval", ids.BRIEFING_RT, "34vh")]),
        ]),
        html.Div(className="grid-2", children=[_panel("Precincts that changed tier", ids.BRIEFING_PRECINCTS),
                                              _panel("Alerts of the last 24 h", ids.BRIEFING_ALERTS)]),
        _panel("About these figures", ids.BRIEFING_NOTES),
    ])


def _table(head: list[str], rows: list[list[str]], empty: str):
    if not rows:
        return html.Div(empty, className="kpi-detail")
    return html.Table(className="data", children=[html.Thead(html.Tr([html.Th(h) for h in head])),
                                                   html.Tbody([html.Tr([html.Td(v) for v in r]) for r in rows])])


def _pdf_button(b: Briefing):
    status = renderer_status(current_runtime().settings)
    if not status.available:
        return html.Div([html.Button("PDF", disabled=True, style={**BUTTON, "opacity": 0.5}),
                         html.Span(status.text, className="kpi-detail", style={"marginLeft": "0.6rem"})])
    return html.A("Download PDF", href=f"/briefing.pdf?date={quote(b.day.isoformat())}", style=BUTTON,
                  id="briefing-pdf-link")


def _level(b: Briefing):
    lv = b.level
    if lv is None:
        return html.Div("No level: no indicators stored for the day.", className="kpi-detail")
    return html.Div([
        html.Div([html.Span(style={"display": "inline-block", "width": "1rem", "height": "1rem", "marginRight": "0.5rem",
                                   "background": lv.colour or "#999"}),
                  html.B(lv.label or "not assessed"),
                  html.Span(f" ({lv.rulebook_name}, {lv.rulebook_version})", className="kpi-detail")],
                 style={"fontSize": "1.3rem"}),
        html.Div(lv.basis, className="kpi-detail"),
        html.Ul([html.Li(f"{c['area']}: {c['from_label']} → {c['to_label']}") for c in lv.changes])])


def _capacity(b: Briefing):
    c = b.capacity
    rows = [["Bed occupancy", c.bed_occupancy.display], ["ICU occupancy", c.icu_occupancy.display],
            [f"Days until {c.threshold:.0%} of beds (median)", c.days_to_beds.display],
            ["… 1 in 20 chance within", c.days_to_beds_upper.display],
            [f"Days until {c.threshold:.0%} of ICU beds", c.days_to_icu.display],
            ["Hospitals reporting", c.hospitals_reporting.display], ["Stale reports", c.stale_reports.display]]
    if c.first_to_fill:
        rows.append(["First hospital to fill", f"{c.first_to_fill[0]}: {c.first_to_fill[1]} d"])
    return _table(["", ""], rows, "")


def _outputs(b: Briefing) -> list:
    state = "" if b.complete else " (day in progress)"
    asof = f"Briefing of {day_text(b.day)}{state} · generated {b.generated_at.astimezone():%H:%M}"
    tiles = [kpi_tile(h.figure, " · ".join(t for t in (h.change_day.text, h.change_week.text) if t)
                      or "no comparison", h.figure.status) for h in b.headline]
    narrative = [html.P(s, className="narrative-sentence") for s in b.narrative]
    hot = _table(["Area", "Per 100k, 7 days", "Cases, 7 days", "This week / last"],
                 [[h.name, h.incidence.display, h.cases_7d.display, h.growth.display] for h in b.hot_spots],
                 "No area had cases in the last 7 days.")
    precincts = (html.Div("Not shown to your role (needs view_clusters at cell level).", className="kpi-detail")
                 if b.precincts is None else
                 _table(["Precinct", "Before", "Now"], [[c.name, c.tier_before or "none", c.tier or "none"]
                                                        for c in b.precincts.changes], "No precinct changed tier."))
    if b.alerts is None:
        alerts = html.Div("Not shown to your role (needs view_alerts).", className="kpi-detail")
    else:
        alerts = html.Div([_table(["Raised", "Severity", "Area", "Alert"],
                                  [[f"{r['raised_at']:%d %b %H:%M}", r["severity"], r["area_name"] or "city",
                                    r["title"]] for r in b.alerts.head(MAX_ALERT_ROWS).to_dict("records")],
                                  "No alerts were raised."),
                           html.Div(f"{len(b.alerts)} in all", className="kpi-detail")])
    notes = html.Ul([html.Li(n) for n in (*b.forecast_caveats,
                                           "Deaths are not a pheoc figure yet: they are not in this briefing.",
                                           *(f"Not shown to your role: {w}." for w in b.withheld))])
    return [asof, _pdf_button(b), tiles, narrative, _level(b), _capacity(b), hot, precincts, alerts, notes]


def _screen_figures(b: Briefing, outlines) -> dict[str, dict]:
    """The briefing's figures for the screen, as the plain dicts Dash sends (built once per briefing)."""
    return {name: as_dict(figure) for name, figure in briefing_figures(b, outlines).items()}


@secure_callback("view_briefing", *(Output(i, "children") for i in OUTPUTS),
                 *(Output(i, "figure") for i, _ in GRAPHS), Input(ids.BRIEFING_DATE, "date"),
                 types={f"{ids.BRIEFING_DATE}.date": ("string", "null")})
def refresh_briefing(value):
    rt = current_runtime()
    try:
        day = date.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        day = None
    principal = current_principal()
    try:
        # The briefing reads the feeds' freshness (ingest_log), readings' batches included.
        b = cached_read(rt.store, principal, "briefing", (day,),
                        lambda: daily_briefing(rt.store, rt.settings, principal, day), with_readings=True)
    except NoBriefing as exc:
        empty = {"data": [], "layout": {"paper_bgcolor": "#1a2027", "plot_bgcolor": "#1a2027"}}
        return (str(exc), "", [], html.P("No briefing for this day."), "", "", "", "", "", "",
                *(empty for _ in GRAPHS))
    figures = cached_component(_screen_figures, b, area_outlines(rt.store))
    return (*_outputs(b), *(figures[name] for _, name in GRAPHS))
