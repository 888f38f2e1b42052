"""Read model and actions of /users (permission manage_users): who may sign in, and ending access.

The CLI (`python app.py users ...`) needs the server stopped, since one process owns the database;
this page is how an administrator disables a user, enables one again or ends a user's sessions
while the command centre runs. Every action goes through auth.users (audited in the same
transaction). An administrator cannot disable their own account from here: the last way in
should not be one click away from being locked.
"""
from __future__ import annotations

import pandas as pd

from auth.principal import ROLE_BY_NAME, Principal
from auth.users import UserError, end_sessions, set_disabled
from store import Store
from store import queries_access as qa


def user_list(store: Store, principal: Principal) -> pd.DataFrame:
    """username, display_name, role, role_label, precincts, disabled, open_sessions for every user."""
    principal.require("manage_users")
    rows = [{"username": u.username, "display_name": u.display_name or "", "role": u.role,
             "role_label": ROLE_BY_NAME[u.role].label if u.role in ROLE_BY_NAME else u.role,
             "precincts": ", ".join(u.precincts), "disabled": u.disabled,
             "open_sessions": qa.active_sessions(store, u.username)} for u in qa.list_users(store)]
    return pd.DataFrame(rows, columns=["username", "display_name", "role", "role_label", "precincts", "disabled",
                                       "open_sessions"])


def change_access(store: Store, principal: Principal, username: str, action: str) -> str:
    """``action``: disable, enable or end_sessions. Returns what was done, in words."""
    principal.require("manage_users")
    if action not in ("disable", "enable", "end_sessions"):
        raise UserError(f"unknown action {action!r}")
    if username == principal.user and action != "enable":
        raise UserError("you cannot lock yourself out here; ask another administrator, or use the CLI")
    if action == "end_sessions":
        ended = end_sessions(store, username, actor=principal.user)
        return f"ended {ended} session(s) of {username}"
    ended = set_disabled(store, username, action == "disable", actor=principal.user)
    return f"{username} disabled, {ended} session(s) ended" if action == "disable" else f"{username} enabled"
