"""Early warning (/early-warning): indicator gauges coloured by the active rulebook, the aligned view of
new infections, severity and hospital capacity with the forecast band, R(t), days until 90 % capacity,
current aberration alarms and level changes. Area selector (citywide by default, or ?area=<id>) and a
rulebook selector that switches the active rulebook for everyone (permission set_rulebook; stored).
"""
from __future__ import annotations

from datetime import datetime, timezone

import dash
from dash import Input, Output, dcc, html, no_update

from analytics.forecast import NY_RED_ZONE_DAYS
from auth.policy import current_principal
from auth.runtime import current_runtime
from components.figcache import cached_component, cached_figure
from components.gauges import aligned_view_figure, capacity_tile, gauge_cards, rt_figure
from pages import _ids as ids
from pages._secure import secure_callback
from services import early_warning as ew
from services.read_cache import cached_read
from services.rulebooks import UnknownRulebook, current_rulebook, rulebook_options, set_active_rulebook

dash.register_page(__name__, path="/early-warning", title="pheoc · Early warning", name="Early warning", order=20)

# The job recomputes every early_warning.run_every_s; refreshing the page more often than this only
# redraws the same figures (and this page's figures are heavier than the overview's tiles).
MIN_REFRESH_S = 15
GRAPH_CONFIG = {"displaylogo": False, "displayModeBar": False}


def layout(area: str | None = None, **_query):
    rt = current_runtime()
    settings = rt.settings
    areas = ew.area_options(rt.store)
    area_id = area if area in dict(areas) else ew.CITYWIDE
    active = current_rulebook(rt.store, settings)
    # Everyone sees which rulebook is active; only a role with set_rulebook may change it (the callback
    # is refused server-side too: this only spares the others a control that cannot work for them).
    may_switch = "set_rulebook" in current_principal().permissions
    return html.Div(className="page page-early-warning", children=[
        dcc.Interval(id=ids.EW_REFRESH, interval=max(settings.wall.refresh_s, MIN_REFRESH_S) * 1000, n_intervals=0),
        dcc.Store(id=ids.EW_SWITCHED),
        html.Div(className="panel", style={"display": "flex", "flexWrap": "wrap", "gap": "1.5rem",
                                           "alignItems": "center"}, children=[
            html.Div(style={"minWidth": "18rem"}, children=[
                html.Label("Area", htmlFor=ids.EW_AREA, className="kpi-label"),
                dcc.Dropdown(id=ids.EW_AREA, options=[{"label": name, "value": value} for value, name in areas],
                             value=area_id, clearable=False, searchable=True,
                             style={"color": "#101418", "fontSize": "1.05rem"}),
            ]),
            html.Div(children=[
                html.Div("Rulebook (switches it for every screen)" if may_switch
                         else "Rulebook (your role may not change it)", className="kpi-label"),
                dcc.RadioItems(id=ids.EW_RULEBOOK, value=active.id, inline=True,
                               options=[{"label": label, "value": value, "disabled": not may_switch}
                                        for value, label in rulebook_options(settings)],
                               labelStyle={"marginRight": "1.2rem", "fontSize": "1.05rem", "color": "#e8eaed"},
                               inputStyle={"marginRight": "0.35rem"}),
            ]),
            html.Div(id=ids.EW_SWITCH_STATUS, className="kpi-detail"),
        ]),
        html.Div(id=ids.EW_ASOF, className="asof", style={"marginTop": "0.4rem"}),
        html.Div(id=ids.EW_LEVEL),
        html.Div(id=ids.EW_GAUGES, className="panel gauge-grid", style={"marginTop": "0.6rem"}),
        html.Div(className="grid-2", children=[
            html.Div(className="panel", children=[
                html.H2("New infections, severity and hospital capacity, with the 28-day forecast"),
                html.P(id=ids.EW_FORECAST_QUALITY, className="forecast-quality",
                       style={"color": "var(--muted)", "margin": "0.2rem 0"}),
                dcc.Graph(id=ids.EW_TIMELINE, config=GRAPH_CONFIG, style={"height": "78vh"})]),
            html.Div(children=[
                html.Div(className="panel", children=[
                    html.H2(f"Days until {settings.early_warning.capacity_threshold:.0%} hospital capacity "
                            "(citywide)"),
                    html.Div(id=ids.EW_CAPACITY)]),
                html.Div(className="panel", style={"marginTop": "0.6rem"}, children=[
                    html.H2("R(t), Cori et al. method, with 95 % credible interval"),
                    dcc.Graph(id=ids.EW_RT, config=GRAPH_CONFIG, style={"height": "24vh"})]),
                html.Div(className="panel", style={"marginTop": "0.6rem"}, children=[
                    html.H2("Current alarms (EARS C1/C2/C3, EWMA)"),
                    # It scrolls: keyboard users reach it with Tab to scroll it (WCAG 2.1.1).
                    html.Div(id=ids.EW_ALARMS, style={"maxHeight": "34vh", "overflowY": "auto"}, tabIndex="0",
                             role="region", **{"aria-label": "Current alarms"})]),
                html.Div(className="panel", style={"marginTop": "0.6rem"}, children=[
                    html.H2("Latest level changes"), html.Div(id=ids.EW_CHANGES)]),
            ]),
        ]),
    ])


def _level_banner(view) -> html.Div:
    """The area's level as the indicators job stored it (rulebook id and version with it)."""
    rb = view.rulebook
    stored = view.level or {}
    level_id = stored.get("level") if stored.get("rulebook_id") == rb.id else None
    if not level_id:
        basis = stored.get("basis") or "no indicators yet"
        text, colour = f"not assessed: {basis}", "#BBBBBB"
    else:
        level = rb.level(level_id)
        text, colour = f"{level.label}" + (f" — {level.description}" if level.description else ""), level.colour
    return html.Div(className="panel", id="ew-level-banner",
                    style={"borderLeft": f"12px solid {colour}", "marginTop": "0.4rem"}, children=[
        html.Div(f"{view.area_name}: level by {rb.name} (v{rb.version})", className="kpi-label"),
        html.Div(text, className="kpi-value", style={"color": colour, "fontSize": "2rem"},
                 **{"data-level": level_id or "", "data-rulebook": f"{rb.id}@{rb.version}"}),
        html.Div((stored.get("basis") or "") if level_id else "", className="kpi-detail"),
    ])


def _table(frame, columns: dict[str, str], empty: str, row_id: str = "", highlight: str | None = None
           ) -> html.Table | html.P:
    if frame.empty:
        return html.P(empty, className="empty")
    head = html.Tr([html.Th(label) for label in columns.values()])
    rows = []
    for r in frame.to_dict("records"):
        marked = bool(row_id) and highlight is not None and r[row_id] == highlight
        rows.append(html.Tr([html.Td("" if r[c] is None else str(r[c])) for c in columns],
                            style={"background": "#24313d", "fontWeight": 700} if marked else None,
                            **({"data-row": str(r[row_id])} if row_id else {})))
    return html.Table([html.Thead(head), html.Tbody(rows)], className="data")


@secure_callback(
    "view_early_warning",
    Output(ids.EW_ASOF, "children"), Output(ids.EW_LEVEL, "children"), Output(ids.EW_GAUGES, "children"),
    Output(ids.EW_TIMELINE, "figure"), Output(ids.EW_RT, "figure"), Output(ids.EW_CAPACITY, "children"),
    Output(ids.EW_ALARMS, "children"), Output(ids.EW_CHANGES, "children"), Output(ids.EW_FORECAST_QUALITY, "children"),
    Input(ids.EW_REFRESH, "n_intervals"), Input(ids.EW_AREA, "value"), Input(ids.EW_SWITCHED, "data"),
    types={f"{ids.EW_SWITCHED}.data": ("object", "null")},
)
def refresh_early_warning(_n, area_id, _switched):
    rt = current_runtime()
    settings = rt.settings
    principal = current_principal()
    area_id = area_id or ew.CITYWIDE
    view = cached_read(rt.store, principal, "early_warning", (str(area_id),),
                       lambda: ew.page_view(rt.store, settings, area_id, principal), with_readings=False)
    now = datetime.now(timezone.utc).astimezone()
    if view.as_of is None:
        asof = "No case data yet"
    else:
        asof = (f"{view.area_name} · data as of {view.as_of:%a %d %b %Y} · updated {now:%H:%M:%S}"
                + (f" · {view.forecast_note}" if view.forecast_note else ""))
    alarms = view.alarms
    if not alarms.empty:
        alarms = alarms.assign(started=[f"{d:%d %b}" for d in alarms["started_on"]],
                               last=[f"{d:%d %b}" for d in alarms["last_alarm_on"]],
                               other_area=alarms["area_id"] != view.area_id)
        # The selected area's alarms first (highlighted), then the rest of the city's, newest first.
        alarms = alarms.sort_values("other_area", kind="stable")
    changes = view.level_changes
    if not changes.empty:
        changes = changes.assign(
            when=changes["as_of"].dt.strftime("%d %b"),
            change=[f"{f} → {t}" for f, t in zip(changes["from_label"], changes["to_label"])],
            rulebook=[f"{r}@{v}" for r, v in zip(changes["rulebook_id"], changes["rulebook_version"])],
            why=[("switch" if c == "rulebook_switch" else "data") for c in changes["cause"]])
    return (
        asof,
        _level_banner(view),
        cached_component(gauge_cards, view.gauges, GRAPH_CONFIG),
        cached_figure(aligned_view_figure, view.timeline, view.bands, view.min_count,
                      settings.early_warning.capacity_threshold, view.as_of),
        cached_figure(rt_figure, view.rt, view.rt_note),
        capacity_tile(view.capacity, NY_RED_ZONE_DAYS),
        _table(alarms, {"series": "Series", "area": "Area", "methods": "Detectors", "started": "Started",
                        "last": "Last alarm", "observed": "Observed", "bound": "Upper bound"},
               "No current alarms: every watched series is within its expected range.", row_id="area_id",
               highlight=view.area_id),
        _table(changes, {"when": "Day", "area": "Area", "change": "Level", "rulebook": "Rulebook", "why": "Cause"},
               "No level changes recorded yet."),
        _quality_line(view.forecast_quality),
    )


def _quality_line(quality) -> list:
    """The read model's sentence, with the reason for the method beside it (fallbacks say so on screen)."""
    if quality is None or not quality.text:
        return []
    parts: list = [html.Span(quality.text, **{"data-method": quality.method or ""})]
    if quality.reason:
        parts.append(html.Span(f" Method chosen: {quality.reason}.", className="kpi-detail"))
    return parts


@secure_callback(
    "set_rulebook",
    Output(ids.EW_SWITCH_STATUS, "children"), Output(ids.EW_SWITCHED, "data"),
    Input(ids.EW_RULEBOOK, "value"), prevent_initial_call=True,
)
def switch_rulebook(rulebook_id):
    rt = current_runtime()
    try:
        switch = set_active_rulebook(rt.store, rt.settings, rulebook_id, current_principal())
    except UnknownRulebook as exc:
        return str(exc), no_update
    if not switch.changed:
        return f"{switch.rulebook_id} v{switch.rulebook_version} is already active", no_update
    return (f"Active rulebook: {switch.rulebook_id} v{switch.rulebook_version} (was {switch.previous_id}); "
            f"{switch.level_changes} area levels re-assessed and recorded",
            {"choice_id": switch.choice_id, "rulebook": f"{switch.rulebook_id}@{switch.rulebook_version}"})
