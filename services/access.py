"""Who may do what: roles, the permission table, and the server-side checks for callbacks, pages and exports.

Every Dash callback is a public HTTP endpoint, so pages register callbacks only through
pages._secure.secure_callback, which calls require() before the body runs. On top of that, auth/
(installed on the Flask app) checks every /_dash-update-component request against the permission
its callback declared before Dash dispatches it, and refuses callbacks that declared none.

The principal of a request is put on flask.g by auth's before_request hook from the server-side
session; a request without a valid session acts as the ``public`` role (open data only). Code that
runs outside a web request (jobs, the CLI, unit tests of services) acts as ``system``.
The tables below are data: the role table grants permission names (or patterns), the page table
names the permission that opens a page. See docs/security.md for the table as it applies.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, NoReturn

from flask import current_app, g, has_request_context, request
from werkzeug.exceptions import Forbidden, TooManyRequests

log = logging.getLogger(__name__)

# permission -> what it lets a principal do; pages name one of these per callback.
PERMISSIONS = {
    "check_address": "check whether an address lies in a containment zone (rate-limited)",
    "export_aggregates": "export area and cell aggregates (the purpose is recorded)",
    "export_cases": "export case-level records (the purpose is recorded)",
    "manage_users": "add, disable and reset users; revoke sessions",
    "read_audit": "read the audit log",
    "view_overview": "see the wall-screen overview (aggregates, cells)",
    "view_clusters": "see cluster detections and containment zones",
    "view_early_warning": "see indicators, alarms, Rt and forecasts",
    "view_capacity": "see facility capacity and supplies",
    "view_quarantine": "see rejected records and their reasons",
    "set_rulebook": "choose the active early-warning rulebook",
}


# ---- roles and the permission table --------------------------------------------------------------
# Detail levels, least to most: city/area totals with small counts suppressed; H3 cells and areas
# (still "<k" below privacy.min_count); individual cases ("points", the only level that sees small
# counts, because a single case is already case-level data).
DETAIL_LEVELS = ("aggregates", "cells", "points")


@dataclass(frozen=True)
class Role:
    name: str
    label: str
    detail: str
    grants: tuple[str, ...]  # permission names, or fnmatch patterns such as "view_*"
    bindable_to_precincts: bool = False


# The permission table (least privilege per role). Analysts and executives see
# aggregates and cells; only the data manager, who corrects records, works at case level. The
# operator runs the wall screen, so it sees every page ("view_*") at cell level.
ROLES: tuple[Role, ...] = (
    Role("operator", "Command-centre operator", "cells", ("view_*", "set_rulebook", "check_address")),
    Role("executive", "Executive (mayor)", "cells",
         ("view_overview", "view_clusters", "view_early_warning", "view_capacity", "export_aggregates")),
    Role("police", "Police", "cells", ("view_overview", "view_clusters", "check_address"),
         bindable_to_precincts=True),
    Role("analyst", "Public-health analyst", "cells",
         ("view_overview", "view_clusters", "view_early_warning", "view_capacity", "set_rulebook",
          "export_aggregates")),
    Role("data_manager", "Data manager", "points",
         ("view_overview", "view_capacity", "view_quarantine", "export_cases", "export_aggregates")),
    Role("admin", "Administrator", "aggregates", ("view_overview", "manage_users", "read_audit")),
    Role("public", "Public (not signed in)", "aggregates", ("view_overview",)),
)
ROLE_BY_NAME = {r.name: r for r in ROLES}
PUBLIC_ROLE = "public"
SIGNED_IN_ROLES = tuple(r.name for r in ROLES if r.name != PUBLIC_ROLE)

# Which permission opens a page (by its module). A page not listed opens for anyone holding one of
# the permissions its callbacks declare (so new pages follow their callbacks); the public role opens
# only pages listed here with a permission it holds.
PAGE_PERMISSIONS: dict[str, str] = {
    "pages.overview": "view_overview",
    "pages.quarantine": "view_quarantine",
}


def role_permissions(role: str) -> frozenset[str]:
    """The role's grants expanded against the permissions that exist now."""
    spec = ROLE_BY_NAME[role]
    return frozenset(p for p in PERMISSIONS if any(fnmatchcase(p, g) for g in spec.grants))


def permission_table() -> dict[str, tuple[str, frozenset[str]]]:
    """role -> (detail level, permissions): the table as it applies now (for docs and the closing note)."""
    return {r.name: (r.detail, role_permissions(r.name)) for r in ROLES}


# ---- principals --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    user: str
    role: str
    permissions: frozenset[str]
    may_see_small_counts: bool = False
    detail: str = "aggregates"
    precincts: frozenset[str] = frozenset()  # police bound to precincts (area_id); empty = the whole city

    @property
    def signed_in(self) -> bool:
        return self.role in SIGNED_IN_ROLES

    @property
    def may_see_points(self) -> bool:
        return self.detail == "points"

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def sees_at_least(self, level: str) -> bool:
        return DETAIL_LEVELS.index(self.detail) >= DETAIL_LEVELS.index(level)


def principal_for(user: str, role: str, precincts: tuple[str, ...] | frozenset[str] = ()) -> Principal:
    spec = ROLE_BY_NAME[role]
    return Principal(user=user, role=role, permissions=role_permissions(role),
                     may_see_small_counts=spec.detail == "points", detail=spec.detail,
                     precincts=frozenset(precincts) if spec.bindable_to_precincts else frozenset())


def public_principal() -> Principal:
    return principal_for("anonymous", PUBLIC_ROLE)


def system_principal() -> Principal:
    """Code outside a web request (jobs, CLI, tests of services): everything, at cell level."""
    return Principal(user="system", role="system", permissions=frozenset(PERMISSIONS), detail="cells")


PRINCIPAL_KEY = "pheoc_principal"  # flask.g attribute set by auth's before_request hook


def current_principal() -> Principal:
    """The caller: from the session inside a web request (public without one), `system` outside."""
    if not has_request_context():
        return system_principal()
    principal = g.get(PRINCIPAL_KEY)
    return principal if principal is not None else public_principal()


# ---- checks ------------------------------------------------------------------------------------
class PolicyDenied(Forbidden):
    """HTTP 403 for a request the permission table does not allow; recorded in the audit log."""

    def __init__(self, principal: Principal, target: str, reason: str):
        super().__init__(f"{principal.role} may not {target}")
        self.principal, self.target, self.reason = principal, target, reason


def deny(principal: Principal, target: str, reason: str = "missing_permission") -> NoReturn:
    """Record a policy denial in the audit log and refuse the request with HTTP 403."""
    try:
        audit("policy_denied", target, principal=principal, reason=reason)
    except Exception:  # the request is refused whether or not the log write went through
        log.exception("could not record a policy denial of %s for %s", target, principal.user)
    raise PolicyDenied(principal, target, reason)


def require(permission: str) -> Principal:
    """Return the caller if allowed; otherwise log the denial and refuse the request with HTTP 403."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    principal = current_principal()
    if permission not in principal.permissions:
        deny(principal, permission)
    return principal


def may_open_page(principal: Principal, module: str | None, callback_permissions: frozenset[str]) -> bool:
    """Whether the principal may open a page (see PAGE_PERMISSIONS for the rule)."""
    needed = PAGE_PERMISSIONS.get(module or "")
    if needed is not None:
        return needed in principal.permissions
    if not principal.signed_in and principal.role != "system":
        return False
    return not callback_permissions or bool(callback_permissions & principal.permissions)


# ---- audit of access ---------------------------------------------------------------------------
def audit(action: str, target: str | None = None, *, principal: Principal | None = None, wait: bool = False,
          **detail: Any) -> None:
    """Append to the audit log as the caller (inside a request of the running app).

    ``wait`` blocks until the record is committed: use it before handing out case-level data, so
    nothing is shown that the log does not hold.
    """
    from services.runtime import current_runtime
    from store.queries_access import submit_audit

    principal = principal or current_principal()
    info: dict[str, Any] = {"role": principal.role, **detail}
    if has_request_context():
        info.setdefault("addr", request.remote_addr)
    future = submit_audit(current_runtime().store, principal.user, action, target, info)
    if wait:
        future.result(timeout=30)


def record_data_access(target: str, level: str, **detail: Any) -> None:
    """Log who viewed case-level data (call before returning it; blocks until logged)."""
    audit("data_access", target, wait=True, level=level, **detail)


def record_export(target: str, purpose: str, level: str, rows: int, **detail: Any) -> None:
    """Log an export with its purpose (required) before the file is handed out."""
    if not purpose or not purpose.strip():
        raise ValueError("an export must state its purpose")
    audit("export", target, wait=True, purpose=purpose.strip(), level=level, rows=rows, **detail)


def throttle(kind: str) -> None:
    """Apply the configured rate limit (e.g. "address_check") to the caller; HTTP 429 when exceeded."""
    limiter = current_app.extensions.get("pheoc.ratelimit") if has_request_context() else None
    if limiter is None:
        return
    principal = current_principal()
    key = principal.user if principal.signed_in else f"addr:{request.remote_addr}"
    if not limiter.allow(kind, key):
        raise TooManyRequests(f"too many {kind.replace('_', ' ')} requests; wait a minute")
