"""Precincts (/precincts): precinct risk for police, and the address check before entering a house.

The address check comes first (on a phone it is what an officer opens the page for): type the address,
pick it from the matches offered as you type (or type "lat, lng"), say why, and the answer appears in
large type, from services.address_check, the same function as GET /api/v1/address-check. Below it, the
precincts on a map by zone tier, the sortable table of their figures, and the selected precinct's panel:
its daily cases and 7-day rate, the zones inside it and the open alerts of its areas.

Roles without ``check_address`` (executive, analyst) see the risk only; the check's controls are not in
their layout, and its callbacks refuse them.
"""
from __future__ import annotations

import dash
from flask import current_app
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from auth.policy import current_principal
from auth.runtime import current_runtime
from components.figcache import cached_component, cached_figure
from components.precincts import COLUMNS, DEFAULT_SORT, answer_card, precinct_map_figure, precinct_panel, precinct_table
from pages import _ids as ids
from pages._secure import clicked_pattern_id, secure_callback
from services.address_check import AddressCheckRefused, check_address, point_of_text
from services.address_search import address_by_id, suggest_addresses
from services.mapdata import area_outlines
from services.precincts import UnknownPrecinct, precinct_detail, precinct_risk
from services.read_cache import cached_read

dash.register_page(__name__, path="/precincts", title="pheoc · Precincts", name="Precincts", order=15)

RATE_LIMITER_KEY = "pheoc.ratelimit"
SORTABLE = tuple(key for key, _ in COLUMNS)
# Precinct figures change when the indicators job reruns (every few minutes at most).
MIN_REFRESH_S = 30
POINT_PREFIX = "point:"


def _address_panel() -> html.Div:
    return html.Div(className="panel address-check", children=[
        html.H2("Address check before entering"),
        dcc.Dropdown(id=ids.ADDRESS_INPUT, options=[], searchable=True, clearable=True,
                     placeholder="Type the address (or lat, lng)…", style={"fontSize": "1.2rem", "color": "#111"}),
        html.Div(style={"display": "flex", "gap": "0.5rem", "marginTop": "0.5rem", "flexWrap": "wrap"}, children=[
            dcc.Input(id=ids.ADDRESS_PURPOSE, type="text", placeholder="Purpose, e.g. domestic call", maxLength=200,
                      debounce=False, style={"flex": "1 1 14rem", "fontSize": "1.2rem", "padding": "0.4rem", "color": "#111",
                             "background": "#fff"}),
            html.Button("Check", id=ids.ADDRESS_BUTTON, n_clicks=0,
                        style={"fontSize": "1.3rem", "padding": "0.4rem 1.4rem", "fontWeight": 700}),
        ]),
        html.Div(id=ids.ADDRESS_ANSWER, **{"aria-live": "polite"}),
        html.P("Each check is recorded with your name and purpose.", style={"color": "var(--muted)",
                                                                             "fontSize": "0.9rem"}),
    ])


def layout(**_query):
    settings = current_runtime().settings
    principal = current_principal()
    col, desc = DEFAULT_SORT
    top = [_address_panel()] if principal.can("check_address") else []
    return html.Div(className="page page-precincts", children=[
        dcc.Interval(id=ids.PRECINCTS_REFRESH, interval=max(settings.wall.refresh_s, MIN_REFRESH_S) * 1000,
                     n_intervals=0),
        dcc.Store(id=ids.PRECINCTS_SORT, data={"col": col, "desc": desc}),
        dcc.Store(id=ids.PRECINCTS_SELECTED, data=None),
        html.Div(id=ids.PRECINCTS_ASOF, className="asof"),
        html.Div(className="grid-2", children=[
            *top,
            html.Div(className="panel", children=[
                html.H2("Precincts by containment-zone tier"),
                dcc.Graph(id=ids.PRECINCTS_MAP, config={"displaylogo": False, "scrollZoom": False,
                                                        "displayModeBar": False},
                          style={"height": "46vh", "minHeight": "260px"})]),
        ]),
        html.Div(className="panel", style={"overflowX": "auto", "marginTop": "0.6rem"}, children=[
            html.H2("Precinct risk (click a heading to sort, a precinct to open it)"),
            html.Div(id=ids.PRECINCTS_TABLE)]),
        html.Div(className="panel", style={"marginTop": "0.6rem"}, children=[
            html.H2("Precinct"),
            html.Div(id=ids.PRECINCTS_DETAIL, children=html.P("Click a precinct on the map or in the table.",
                                                              className="empty"))]),
    ])


@secure_callback(
    "view_precincts",
    Output(ids.PRECINCTS_ASOF, "children"), Output(ids.PRECINCTS_MAP, "figure"), Output(ids.PRECINCTS_TABLE, "children"),
    Input(ids.PRECINCTS_REFRESH, "n_intervals"), Input(ids.PRECINCTS_SORT, "data"),
    types={f"{ids.PRECINCTS_SORT}.data": "object"},
)
def refresh_precincts(_n, sort):
    rt = current_runtime()
    s = rt.settings
    principal = current_principal()
    risk = cached_read(rt.store, principal, "precincts", (), lambda: precinct_risk(rt.store, s, principal),
                       with_readings=False)
    col = sort.get("col") if isinstance(sort, dict) and sort.get("col") in SORTABLE else DEFAULT_SORT[0]
    desc = bool(sort.get("desc", True)) if isinstance(sort, dict) else True
    fig = cached_figure(precinct_map_figure, area_outlines(rt.store, ("boundary", "precinct")), risk.rows, risk.tiers)
    table = precinct_table(risk.rows, sort_col=col, descending=desc, button_type=ids.PRECINCTS_SORT_BUTTON,
                           row_type=ids.PRECINCTS_ROW, min_count=s.privacy.min_count)
    if risk.as_of is None:
        asof = "No precinct figures yet (the indicators job has not run, or no precincts are loaded)."
    else:
        scope = " · your precincts only" if risk.scoped else ""
        asof = (f"Precinct figures of {risk.as_of:%a %d %b %Y}: counted cases by where they were reported; "
                f"counts under {s.privacy.min_count} withheld{scope}")
    return asof, fig, table


@secure_callback(
    "view_precincts",
    Output(ids.PRECINCTS_SORT, "data"),
    Input({"type": ids.PRECINCTS_SORT_BUTTON, "col": ALL}, "n_clicks"), State(ids.PRECINCTS_SORT, "data"),
    prevent_initial_call=True, types={f"{ids.PRECINCTS_SORT}.data": "object"},
)
def sort_precincts(_clicks, current):
    clicked = clicked_pattern_id()
    if clicked is None:
        raise PreventUpdate
    col = clicked.get("col")
    if col not in SORTABLE:
        raise PreventUpdate
    current = current if isinstance(current, dict) else {}
    desc = not current.get("desc", True) if current.get("col") == col else col != "name"
    return {"col": col, "desc": desc}


@secure_callback(
    "view_precincts",
    Output(ids.PRECINCTS_SELECTED, "data"),
    Input(ids.PRECINCTS_MAP, "clickData"), Input({"type": ids.PRECINCTS_ROW, "index": ALL}, "n_clicks"),
    prevent_initial_call=True,
)
def select_precinct(click, _rows):
    trigger = ctx.triggered_id
    if isinstance(trigger, dict):
        if not any(t.get("value") for t in ctx.triggered):
            return no_update
        return str(trigger.get("index", ""))[:64] or no_update
    points = (click or {}).get("points") or []
    chosen = points[0].get("customdata") if points else None
    return str(chosen)[:64] if isinstance(chosen, str) else no_update


@secure_callback(
    "view_precincts",
    Output(ids.PRECINCTS_DETAIL, "children"),
    Input(ids.PRECINCTS_SELECTED, "data"), types={f"{ids.PRECINCTS_SELECTED}.data": ("string", "null")},
)
def show_precinct(selected):
    if not isinstance(selected, str) or not selected:
        return html.P("Click a precinct on the map or in the table.", className="empty")
    rt = current_runtime()
    principal = current_principal()
    try:
        detail = cached_read(rt.store, principal, "precincts.detail", (selected[:64],),
                             lambda: precinct_detail(rt.store, rt.settings, principal, selected), with_readings=False)
    except UnknownPrecinct:
        # Not the id back: a precinct the caller may not see reads as one that does not exist.
        return html.P("No such precinct among the ones you may see.", className="empty")
    return cached_component(precinct_panel, detail)


# ---- the address check ----------------------------------------------------------------------------------
@secure_callback(
    "check_address",
    Output(ids.ADDRESS_INPUT, "options"),
    Input(ids.ADDRESS_INPUT, "search_value"), State(ids.ADDRESS_INPUT, "value"),
    types={f"{ids.ADDRESS_INPUT}.search_value": ("string", "null")},
    prevent_initial_call=True,
)
def offer_addresses(typed, chosen):
    rt = current_runtime()
    options = []
    if isinstance(chosen, str) and chosen:  # keep the chosen address listed, or the box would empty itself
        options.append(_option_of(rt.store, chosen))
    typed = (typed or "").strip()[:200]
    if not typed:
        return [o for o in options if o] if options else no_update
    point = point_of_text(typed)
    if point is not None:
        options.append({"label": f"Point {point[0]:.6f}, {point[1]:.6f}",
                        "value": f"{POINT_PREFIX}{point[0]:.6f},{point[1]:.6f}"})
    options.extend({"label": a.text, "value": a.address_id} for a in suggest_addresses(rt.store, typed, 10))
    seen, unique = set(), []
    for o in options:
        if o and o["value"] not in seen:
            seen.add(o["value"])
            unique.append(o)
    return unique


def _option_of(store, value: str) -> dict | None:
    if value.startswith(POINT_PREFIX):
        return {"label": "Point " + value[len(POINT_PREFIX):].replace(",", ", "), "value": value}
    found = address_by_id(store, value)
    return {"label": found.text, "value": found.address_id} if found else None


@secure_callback(
    "check_address",
    Output(ids.ADDRESS_ANSWER, "children"),
    Input(ids.ADDRESS_BUTTON, "n_clicks"), Input(ids.ADDRESS_PURPOSE, "n_submit"),
    State(ids.ADDRESS_INPUT, "value"), State(ids.ADDRESS_PURPOSE, "value"),
    types={f"{ids.ADDRESS_PURPOSE}.n_submit": ("integer", "null")},
    prevent_initial_call=True,
)
def run_address_check(clicks, submits, chosen, purpose):
    if not (clicks or submits):
        raise PreventUpdate
    if not isinstance(chosen, str) or not chosen:
        return html.P("Choose an address from the list first.", className="address-problem",
                      style={"fontSize": "1.3rem"})
    rt = current_runtime()
    place: dict = {"address_id": chosen[:64]}
    label = None
    if chosen.startswith(POINT_PREFIX):
        point = point_of_text(chosen[len(POINT_PREFIX):])
        if point is None:
            return html.P("That point is not a latitude and longitude.", style={"fontSize": "1.3rem"})
        place = {"lat": point[0], "lng": point[1]}
        label = f"Point {point[0]:.6f}, {point[1]:.6f}"
    else:
        found = address_by_id(rt.store, chosen[:64])
        label = found.text if found else None
    try:
        answer = check_address(rt.store, rt.settings, current_principal(),
                               current_app.extensions[RATE_LIMITER_KEY],
                               purpose=purpose if isinstance(purpose, str) else None, **place)
    except AddressCheckRefused as exc:
        return html.P(_refusal_text(exc), className="address-problem", style={"fontSize": "1.3rem"},
                      **{"data-refused": exc.code})
    return answer_card(answer, label)


def _refusal_text(exc: AddressCheckRefused) -> str:
    if exc.code == "purpose_required":
        return "Say why you are checking this address (purpose), then check again."
    if exc.code == "rate_limited":
        return "Too many checks: wait a minute, then check again."
    return exc.message[:1].upper() + exc.message[1:] + "."

