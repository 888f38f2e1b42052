"""Users (/users, permission manage_users): who may sign in, with their role, precincts and open
sessions; disable or enable a user, or end their sessions, while the command centre runs."""
from __future__ import annotations

import dash
from dash import ALL, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from auth.policy import current_principal
from auth.runtime import current_runtime
from auth.users import UserError
from pages import _ids as ids
from pages._redraw import only_changed
from pages._secure import clicked_pattern_id, secure_callback
from services.users import change_access, user_list

dash.register_page(__name__, path="/users", title="pheoc · Users", name="Users", order=96)

BUTTON = {"background": "#101418", "color": "#e8eaed", "border": "1px solid #3a444f", "padding": "0.2rem 0.6rem",
          "cursor": "pointer", "marginRight": "0.4rem", "fontSize": "0.95rem"}


def layout(**_query):
    return html.Div(className="page page-users", children=[
        dcc.Interval(id=ids.USERS_REFRESH, interval=30_000, n_intervals=0),
        dcc.Store(id=ids.USERS_DRAWN, data=None),
        html.Div(id=ids.USERS_STATUS, className="kpi-detail", style={"fontSize": "1.05rem", "minHeight": "1.4rem"}),
        html.Div(id=ids.USERS_TABLE, className="panel", style={"marginTop": "0.6rem", "overflowX": "auto"}),
        html.P("Adding users and setting passwords: `python app.py users add|reset-password` with the server "
               "stopped (passwords are never typed into a web page here).", className="asof"),
    ])


def _button(user: str, action: str, label: str) -> html.Button:
    return html.Button(label, id={"type": ids.USERS_ACTION, "user": user, "action": action}, n_clicks=0,
                       style=BUTTON)


def _table(rows):
    head = html.Tr([html.Th(h) for h in ("User", "Name", "Role", "Precincts", "State", "Open sessions", "")])
    body = []
    for r in rows.to_dict("records"):
        actions = [_button(r["username"], "enable", "Enable") if r["disabled"] else
                   _button(r["username"], "disable", "Disable")]
        if r["open_sessions"]:
            actions.append(_button(r["username"], "end_sessions", "End sessions"))
        body.append(html.Tr(**{"data-user": r["username"]}, children=[
            html.Td(r["username"]), html.Td(r["display_name"]), html.Td(r["role_label"]), html.Td(r["precincts"]),
            html.Td("disabled" if r["disabled"] else "active"), html.Td(str(r["open_sessions"])), html.Td(actions)]))
    return html.Table([html.Thead(head), html.Tbody(body)], className="data")


@secure_callback(
    "manage_users",
    Output(ids.USERS_TABLE, "children"), Output(ids.USERS_DRAWN, "data"),
    Input(ids.USERS_REFRESH, "n_intervals"), Input(ids.USERS_STATUS, "children"), State(ids.USERS_DRAWN, "data"),
    # The status line changes after an action: the table is drawn again to show its effect.
    types={f"{ids.USERS_STATUS}.children": ("string", "null"), f"{ids.USERS_DRAWN}.data": ("object", "null")},
)
def refresh_users(_n, _status, drawn):
    # Redrawn only when it changed, so the action button an admin has focused stays (pages._redraw).
    drawn, (table,) = only_changed(drawn, {"table": _table(user_list(current_runtime().store, current_principal()))})
    return table, drawn


@secure_callback(
    "manage_users",
    Output(ids.USERS_STATUS, "children"),
    Input({"type": ids.USERS_ACTION, "user": ALL, "action": ALL}, "n_clicks"),
    prevent_initial_call=True,
)
def act_on_user(_clicks):
    clicked = clicked_pattern_id()
    if clicked is None:
        raise PreventUpdate
    try:
        return change_access(current_runtime().store, current_principal(), str(clicked.get("user", "")),
                             str(clicked.get("action", "")))
    except UserError as exc:
        return f"Not done: {exc}"
