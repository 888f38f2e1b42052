"""Reading the audit log for people: filtered, newest first, a page at a time (the chain is in queries_access)."""
from __future__ import annotations

from datetime import datetime

import pandas as pd

from store.store import Store


def audit_page(store: Store, *, action: str | None = None, actor: str | None = None, since: datetime | None = None,
               until: datetime | None = None, before_seq: int | None = None, limit: int = 100) -> pd.DataFrame:
    """seq, logged_at, actor, action, target, detail of the newest records matching every filter given."""
    where, params = [], []
    for clause, value in (("action = ?", action), ("actor = ?", actor), ("logged_at >= ?", since),
                          ("logged_at < ?", until), ("seq < ?", before_seq)):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = "SELECT seq, logged_at, actor, action, target, detail FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return store.read(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit])


def audit_actions(store: Store) -> list[str]:
    """Every action the log holds, for the filter's choices."""
    return [r[0] for r in store.read_rows("SELECT DISTINCT action FROM audit_log ORDER BY action")]
