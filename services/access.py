"""Server-side authorisation for every callback, export and action.

Every Dash callback is a public HTTP endpoint, so pages register callbacks only through
pages._secure.secure_callback, which calls require() before the callback body runs. Until logins
exist (issue 7), every request acts as the built-in `operator` principal; the permission each
callback needs is already declared, so adding sessions changes this module only.
"""
from __future__ import annotations

from dataclasses import dataclass

from werkzeug.exceptions import Forbidden

# permission -> what it lets a principal do; pages name one of these per callback.
PERMISSIONS = {
    "view_overview": "see the wall-screen overview (aggregates, cells)",
    "view_clusters": "see cluster detections and containment zones",
    "view_early_warning": "see indicators, alarms, Rt and forecasts",
    "view_capacity": "see facility capacity and supplies",
    "view_quarantine": "see rejected records and their reasons",
    "set_rulebook": "choose the active early-warning rulebook",
}


@dataclass(frozen=True)
class Principal:
    user: str
    role: str
    permissions: frozenset[str]
    may_see_small_counts: bool = False


_OPERATOR = Principal(user="operator", role="operator", permissions=frozenset(PERMISSIONS))


def current_principal() -> Principal:
    return _OPERATOR


def require(permission: str) -> Principal:
    """Return the caller if allowed; otherwise refuse the request with HTTP 403."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    principal = current_principal()
    if permission not in principal.permissions:
        raise Forbidden(f"{principal.role} may not {permission}")
    return principal
