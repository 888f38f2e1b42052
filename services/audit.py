"""Read model of the audit log for /audit and GET /api/v1/audit (permission read_audit).

The log is who did what; it holds user names, addresses and the parameters of reads, not health
data (case ids in it are redacted by an erasure), so it is shown to the auditor as stored.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from auth.audit import AuditReport, verify_chain
from auth.principal import Principal
from store import Store
from store import queries_access as qa
from store import queries_audit as qau

MAX_ROWS = 500


@dataclass(frozen=True)
class AuditView:
    rows: pd.DataFrame  # seq, logged_at, actor, action, target, detail (parsed JSON)
    actions: tuple[str, ...]
    more: bool  # more records match than were returned


def audit_view(store: Store, principal: Principal, *, action: str | None = None, actor: str | None = None,
               since: datetime | None = None, until: datetime | None = None, limit: int = 100) -> AuditView:
    principal.require("read_audit")
    limit = max(1, min(int(limit), MAX_ROWS))
    rows = qau.audit_page(store, action=action or None, actor=actor or None, since=since, until=until,
                          limit=limit + 1)
    more = len(rows) > limit
    rows = rows.head(limit).copy()
    rows["detail"] = [_parsed(d) for d in rows["detail"]]
    return AuditView(rows, tuple(qau.audit_actions(store)), more)


def _parsed(detail):
    if not isinstance(detail, str):
        return detail
    try:
        value = json.loads(detail)
    except ValueError:
        return detail
    if isinstance(value, dict):
        value.pop("nonce", None)  # random salt of the chain's digest: noise to a reader
    return value


def check_chain(store: Store, principal: Principal) -> AuditReport:
    """Run the hash-chain check (as `python app.py audit verify` does) on the running database.

    It runs as a job of the store's single writer, so no record is appended while it reads, and the
    head it compares with the anchor file is the head the anchor was written for.
    """
    principal.require("read_audit")

    def job(con) -> AuditReport:
        rows = [qa.AuditRow(*r) for r in con.execute(
            "SELECT seq, logged_at, actor, action, target, detail, prev_hash, hash FROM audit_log ORDER BY seq"
        ).fetchall()]
        return verify_chain(rows, qa.read_anchor(store.path))
    return store.submit(job).result(timeout=120)
