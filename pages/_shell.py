"""The frame around every page: top bar, navigation, and the wall-screen rotation.

Open any page with ``?wall=1`` and the screen cycles through ``wall.rotation`` every
``wall.rotation_s`` seconds, as a command-centre wall display does unattended.
"""
from __future__ import annotations

from urllib.parse import parse_qs

import dash
from dash import Input, Output, State, dcc, html, no_update

from flask import has_request_context

from auth.callbacks import permissions_of_module
from auth.policy import current_principal
from auth.principal import may_open_page
from auth.runtime import current_runtime
from pages._secure import secure_callback
from pages._frame import frame_bottom, frame_top, register_callbacks
from settings import Settings

WALL_TIMER = "wall-rotation-timer"


def _session_link() -> html.A:
    """'Sign out (user)' for a signed-in visitor, 'Sign in' otherwise (the layout is built per request)."""
    principal = current_principal() if has_request_context() else None
    if principal is not None and principal.signed_in:
        return html.A(f"Sign out ({principal.user})", href="/logout", className="nav-link nav-auth")
    return html.A("Sign in", href="/login", className="nav-link nav-auth")


def nav_links(principal) -> list:
    """Links to the pages this principal may open (a link to a page that answers 403 is no help)."""
    return [dcc.Link(p["name"], href=p["relative_path"], className="nav-link")
            for p in dash.page_registry.values()
            if may_open_page(principal, p.get("module"), permissions_of_module(p.get("module")))]


def shell_layout(settings: Settings) -> html.Div:
    principal = current_principal() if has_request_context() else None
    return html.Div(className="shell", children=[
        dcc.Location(id="url"),
        dcc.Interval(id=WALL_TIMER, interval=settings.wall.rotation_s * 1000, n_intervals=0),
        *frame_top(settings),  # skip link, kiosk bar, playlists (pages/_frame.py)
        html.Header(className="topbar", children=[
            html.Div([html.Span("pheoc", className="brand"), html.Span(settings.city.name, className="city")]),
            html.Nav((nav_links(principal) if principal is not None else [])
                     # Plain links: /login and /logout are Flask routes, not Dash pages.
                     + [_session_link()], **{"aria-label": "Pages"}),
        ]),
        *_exercise_banner(),
        *frame_bottom(),  # open panic-button incidents, the feeds' freshness strip (pages/_frame.py)
        html.Main(dash.page_container, id="main-content", tabIndex="-1"),
    ])


def _exercise_banner() -> list:
    """The EXERCISE banner on every page of a drill database (services.drill), above every page's content."""
    from auth.runtime import current_runtime
    from services.drill import exercise_banner

    text = exercise_banner(current_runtime().store) if has_request_context() else None
    return [html.Div(text, id="exercise-banner", className="exercise-banner", role="alert")] if text else []


def next_wall_page(rotation: tuple[str, ...], current: str) -> str | None:
    """The page after ``current`` in the rotation (None if there is nothing to rotate)."""
    if len(rotation) < 2:
        return None
    try:
        i = rotation.index(current)
    except ValueError:
        return rotation[0]
    return rotation[(i + 1) % len(rotation)]


@secure_callback(
    "view_overview",
    Output("url", "pathname"), Input(WALL_TIMER, "n_intervals"), State("url", "pathname"), State("url", "search"),
    prevent_initial_call=True,
)
def rotate_wall(_n, pathname, search):
    if parse_qs((search or "").lstrip("?")).get("wall") != ["1"]:
        return no_update
    target = next_wall_page(current_runtime().settings.wall.rotation, pathname or "/")
    return target if target else no_update


register_callbacks()  # the frame's incidents and freshness (pages/_frame.py)
