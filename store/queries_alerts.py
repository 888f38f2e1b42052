"""Named queries of the alerts table (written by the jobs through queries_warning / queries_clusters)."""
from __future__ import annotations

import pandas as pd

from store.store import Store

ALERT_COLUMNS = ("alert_id", "raised_at", "severity", "kind", "area_id", "title", "detail", "status", "rule_id",
                 "rule_version", "resolved_at")


def alerts(store: Store, *, state: str = "open", kind: str | None = None, area_id: str | None = None) -> pd.DataFrame:
    """Alerts newest first. ``state``: open (not resolved), active, acknowledged, resolved or all."""
    where, params = [], []
    if state == "open":
        where.append("status <> 'resolved'")
    elif state != "all":
        where.append("status = ?")
        params.append(state)
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if area_id:
        where.append("area_id = ?")
        params.append(area_id)
    sql = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return store.read(sql + " ORDER BY raised_at DESC, alert_id DESC", params)
