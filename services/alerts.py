"""Read model of the alerts the jobs raised (GET /api/v1/alerts; permission view_alerts).

Alert texts are written by the jobs with small counts already withheld (they are read by every role
that sees alerts), so the rows are area-level figures. Police bound to precincts see the alerts of
the whole city, as they see the city's figures: an alert names an area, not a person.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from auth.principal import Principal
from services.indicators import area_names
from store import Store
from store import queries_alerts as qal

STATES = ("open", "active", "acknowledged", "resolved", "all")


class BadAlertFilter(ValueError):
    """A filter value the alert list does not know; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class AlertList:
    rows: pd.DataFrame
    total: int


def alert_list(store: Store, principal: Principal, *, state: str = "open", kind: str | None = None,
               area_id: str | None = None, limit: int = 200) -> AlertList:
    principal.require("view_alerts")
    if state not in STATES:
        raise BadAlertFilter("state", f"state must be one of {', '.join(STATES)}")
    rows = qal.alerts(store, state=state, kind=kind, area_id=area_id)
    names = area_names(store)
    rows["area_name"] = [names.get(a) if isinstance(a, str) else None for a in rows["area_id"]]
    return AlertList(rows.head(max(1, min(limit, 1000))).reset_index(drop=True), len(rows))
