"""Who may do what: roles, the permission table, detail levels and the Principal a request acts as.

Pure data and functions (no web framework), so read models in services/ can take a Principal and
cut their results to it without depending on Flask. The request-bound parts (the current
principal, require(), the audit of refusals) are in auth.policy.

The tables below are data: the role table grants permission names (or fnmatch patterns), the page
table names the permission that opens a page. docs/security.md shows the table as it applies.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

# permission -> what it lets a principal do. Each one is checked by a feature that exists today.
PERMISSIONS = {
    "manage_users": "see users and their sessions; end a session",
    "read_audit": "read the audit log and run its chain check",
    "view_overview": "see the wall-screen overview",
    "view_clusters": "see cluster detections and containment zones",
    "view_early_warning": "see indicators, alarms, R(t) and forecasts",
    "view_capacity": "see facility capacity and supplies",
    "view_quarantine": "see rejected records and their reasons",
    "view_alerts": "list the alerts the jobs raised (GET /api/v1/alerts)",
    "set_rulebook": "choose the active early-warning rulebook",
    "view_briefing": "read the daily briefing (/briefing, GET /api/v1/briefing) and download its PDF",
    "export_open_data": "export the open data (daily counts per area and H3 cell, as the public may see them)",
    "view_precincts": "see precinct risk: cases and rates per precinct, zone shares, alerts (/precincts)",
    "check_address": "check an address before entering: precinct, zone tier, active-case flag "
                     "(purpose recorded, audited, rate-limited)",
    "acknowledge_alerts": "acknowledge or resolve an alert (/alerts, POST /api/v1/alerts/<id>/acknowledge|resolve)",
    "issue_warnings": "compose, approve (issue), reject, update and cancel CAP warnings",
    "acknowledge_warnings": "acknowledge an issued warning on behalf of a recipient agency",
    "view_sensors": "see the city's sensors: states, thresholds, silent sensors, histories (/sensors)",
}

# Detail levels, least to most: city and area figures only ("aggregates"); H3 cells besides
# ("cells"); individual cases ("points"). Every level below "points" sees counts of people
# from 1 to privacy.min_count - 1 suppressed (services.privacy owns that rule).
DETAIL_LEVELS = ("aggregates", "cells", "points")


@dataclass(frozen=True)
class Role:
    name: str
    label: str
    detail: str
    grants: tuple[str, ...]  # permission names, or fnmatch patterns such as "view_*"
    bindable_to_precincts: bool = False


# The permission table (least privilege per role). Analysts and executives see areas and cells;
# only the data manager, who corrects records, works at case level. The operator runs the wall
# screen, so it holds every view ("view_*") at cell level.
ROLES: tuple[Role, ...] = (
    # check_address: police before entering a house, and the operator, who answers officers on the radio
    # who have no laptop at hand. Nobody else has an operational need to ask about one address.
    # Alerts and warnings: the operator works the alert inbox and issues warnings (the demo's operator
    # approves its zone warnings); the executive, the sending authority, may issue them too; the analyst,
    # who reads the signals, acknowledges alerts; police acknowledge warnings for their agency.
    Role("operator", "Command-centre operator", "cells", ("view_*", "set_rulebook", "check_address",
                                                          "acknowledge_alerts", "issue_warnings",
                                                          "acknowledge_warnings")),
    Role("executive", "Executive (mayor)", "cells",
         ("view_overview", "view_clusters", "view_early_warning", "view_capacity", "view_alerts", "view_precincts",
          "view_briefing", "issue_warnings", "view_sensors")),
    Role("police", "Police", "cells", ("view_overview", "view_clusters", "view_alerts", "view_precincts",
                                       "check_address", "acknowledge_warnings", "view_sensors"),
         bindable_to_precincts=True),
    Role("analyst", "Public-health analyst", "cells",
         ("view_overview", "view_clusters", "view_early_warning", "view_capacity", "view_alerts", "view_precincts",
          "set_rulebook", "view_briefing", "export_open_data", "acknowledge_alerts", "view_sensors")),
    # view_sensors: the operator (every view), the executive, the analyst, and police, who watch crowding at
    # the places they keep distancing in (the Putrajaya command centre's use of its footfall counters).
    # export_open_data: the data manager publishes the city's open data (the files are cut to the public's
    # detail level whoever exports them), and the analyst who prepares it.
    Role("data_manager", "Data manager", "points", ("view_overview", "view_capacity", "view_quarantine",
                                                    "export_open_data")),
    Role("admin", "Administrator", "aggregates", ("view_overview", "manage_users", "read_audit")),
    Role("public", "Public (not signed in)", "aggregates", ("view_overview",)),
)
ROLE_BY_NAME = {r.name: r for r in ROLES}
PUBLIC_ROLE = "public"
SIGNED_IN_ROLES = tuple(r.name for r in ROLES if r.name != PUBLIC_ROLE)

# Which permission opens a page (by its module). A page not listed opens for a signed-in principal
# holding one of the permissions its callbacks declare (so new pages follow their callbacks); the
# public role opens only pages listed here with a permission it holds.
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


class NotPermitted(PermissionError):
    """The principal lacks a permission an action needs (the web layer answers HTTP 403)."""

    def __init__(self, principal: "Principal", permission: str):
        super().__init__(f"{principal.role} may not {permission}")
        self.principal, self.permission = principal, permission


@dataclass(frozen=True)
class Principal:
    user: str
    role: str
    permissions: frozenset[str]
    detail: str = "aggregates"
    precincts: frozenset[str] = frozenset()  # police bound to precincts (area ids); empty = the whole city
    via: str = "session"  # how the caller authenticated: session, token, or system (jobs, CLI)

    @property
    def signed_in(self) -> bool:
        return self.role in SIGNED_IN_ROLES

    @property
    def may_see_points(self) -> bool:
        return self.detail == "points"

    @property
    def may_see_small_counts(self) -> bool:
        """Only case-level principals: a count of one is already case-level information."""
        return self.detail == "points"

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        """Raise NotPermitted unless the principal holds ``permission``."""
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        if permission not in self.permissions:
            raise NotPermitted(self, permission)

    def sees_at_least(self, level: str) -> bool:
        return DETAIL_LEVELS.index(self.detail) >= DETAIL_LEVELS.index(level)


def principal_for(user: str, role: str, precincts: tuple[str, ...] | frozenset[str] = (), *,
                  via: str = "session") -> Principal:
    spec = ROLE_BY_NAME[role]
    return Principal(user=user, role=role, permissions=role_permissions(role), detail=spec.detail,
                     precincts=frozenset(precincts) if spec.bindable_to_precincts else frozenset(), via=via)


def public_principal() -> Principal:
    return principal_for("anonymous", PUBLIC_ROLE, via="none")


def system_principal() -> Principal:
    """Code outside a web request (jobs, the CLI, tests of services): every permission, at cell level."""
    return Principal(user="system", role="system", permissions=frozenset(PERMISSIONS), detail="cells", via="system")


def may_open_page(principal: Principal, module: str | None, callback_permissions: frozenset[str]) -> bool:
    """Whether the principal may open a page (see PAGE_PERMISSIONS for the rule)."""
    needed = PAGE_PERMISSIONS.get(module or "")
    if needed is not None:
        return needed in principal.permissions
    if not principal.signed_in and principal.role != "system":
        return False
    return not callback_permissions or bool(callback_permissions & principal.permissions)
