"""Named queries and writer jobs of the alert inbox, CAP warnings and delivery (tables in schema_warnings).

Functions ending in ``_in`` take the writer's connection and run inside one ``Store.submit`` job, so
a change, its audit record and the deliveries it causes commit together (or not at all).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from store.store import Store

ALERT_STATES = ("active", "acknowledged", "resolved")


class AlertStateError(ValueError):
    """An alert action that does not apply to the alert's current state (or an unknown alert)."""


# ---- store mode (drill) -------------------------------------------------------------------------------
def is_exercise(store: Store) -> bool:
    """Whether this database is a drill's (its own file, marked when the drill was built)."""
    return bool(store.scalar("SELECT count(*) FROM store_mode WHERE mode = 'exercise'"))


def is_exercise_in(con) -> bool:
    return bool(con.execute("SELECT count(*) FROM store_mode WHERE mode = 'exercise'").fetchone()[0])


def mark_exercise_in(con, scenario: str, now: datetime) -> None:
    con.execute("INSERT INTO store_mode VALUES ('exercise', ?, ?) ON CONFLICT DO NOTHING", [now, scenario])


def exercise_scenario(store: Store) -> str | None:
    return store.scalar("SELECT scenario FROM store_mode WHERE mode = 'exercise'")


# ---- alerts: acknowledgement and resolution -----------------------------------------------------------
def alert_actions(store: Store, alert_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """alert_id, action, acted_at, actor, role, note of every action (of the given alerts), oldest first."""
    sql = "SELECT alert_id, action, acted_at, actor, role, note FROM alert_actions"
    params: list = []
    if alert_ids is not None:
        if not alert_ids:
            return pd.DataFrame(columns=["alert_id", "action", "acted_at", "actor", "role", "note"])
        sql += f" WHERE alert_id IN ({', '.join('?' * len(alert_ids))})"
        params = [int(a) for a in alert_ids]
    return store.read(sql + " ORDER BY action_id", params)


def act_on_alert_in(con, alert_id: int, action: str, actor: str, role: str, note: str | None,
                    now: datetime) -> dict:
    """Acknowledge an active alert or resolve an open one; returns the alert's kind, area and states."""
    row = con.execute("SELECT status, kind, area_id, title FROM alerts WHERE alert_id = ?", [alert_id]).fetchone()
    if row is None:
        raise AlertStateError(f"no alert {alert_id}")
    status, kind, area_id, title = row
    if action == "acknowledge":
        if status != "active":
            raise AlertStateError(f"alert {alert_id} is {status}; only an active alert can be acknowledged")
        con.execute("UPDATE alerts SET status = 'acknowledged' WHERE alert_id = ?", [alert_id])
        new = "acknowledged"
    elif action == "resolve":
        if status == "resolved":
            raise AlertStateError(f"alert {alert_id} is already resolved")
        con.execute("UPDATE alerts SET status = 'resolved', resolved_at = ? WHERE alert_id = ?", [now, alert_id])
        new = "resolved"
    else:
        raise AlertStateError(f"unknown action {action!r}")
    con.execute("INSERT INTO alert_actions (alert_id, action, acted_at, actor, role, note) VALUES (?, ?, ?, ?, ?, ?)",
                [alert_id, action, now, actor, role, note])
    return {"kind": kind, "area_id": area_id, "title": title, "from": status, "to": new}


# ---- warnings ------------------------------------------------------------------------------------------
WARNING_COLUMNS = ("warning_id", "identifier", "series_id", "msg_type", "references_id", "status", "approval", "rule",
                   "source_key", "proposed_at", "proposed_by", "decided_at", "decided_by", "decision_note", "event",
                   "urgency", "severity", "certainty", "headline", "description", "instruction", "areas", "sender",
                   "sent", "expires")


@dataclass(frozen=True, slots=True)
class WarningDraft:
    """A warning to store as proposed. ``areas`` is JSON: [{"description", "polygons": [[[lat, lng], ...]]}]."""
    identifier: str
    series_id: str
    msg_type: str
    references_id: int | None
    status: str
    rule: str
    source_key: str | None
    proposed_by: str
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str
    description: str
    instruction: str | None
    areas: str


def insert_warning_in(con, draft: WarningDraft, now: datetime) -> int | None:
    """Store a proposal; None when its source_key was proposed before (automatic proposals are idempotent)."""
    rows = con.execute(
        """INSERT INTO warnings (identifier, series_id, msg_type, references_id, status, approval, rule, source_key,
               proposed_at, proposed_by, event, urgency, severity, certainty, headline, description, instruction,
               areas) VALUES (?, ?, ?, ?, ?, 'proposed', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT DO NOTHING RETURNING warning_id""",
        [draft.identifier, draft.series_id, draft.msg_type, draft.references_id, draft.status, draft.rule,
         draft.source_key, now, draft.proposed_by, draft.event, draft.urgency, draft.severity, draft.certainty,
         draft.headline, draft.description, draft.instruction, draft.areas]).fetchall()
    return int(rows[0][0]) if rows else None


def warning_in(con, warning_id: int) -> dict | None:
    cur = con.execute(f"SELECT {', '.join(WARNING_COLUMNS)}, cap_xml FROM warnings WHERE warning_id = ?",
                      [warning_id])
    row = cur.fetchone()
    return None if row is None else dict(zip((*WARNING_COLUMNS, "cap_xml"), row))


def warning(store: Store, warning_id: int) -> dict | None:
    frame = store.read(f"SELECT {', '.join(WARNING_COLUMNS)}, cap_xml FROM warnings WHERE warning_id = ?",
                       [warning_id])
    return None if frame.empty else frame.iloc[0].to_dict()


def warnings(store: Store, approval: str | None = None, limit: int = 200) -> pd.DataFrame:
    """Warnings newest first (without their XML)."""
    where, params = ("WHERE approval = ?", [approval]) if approval else ("", [])
    return store.read(f"SELECT {', '.join(WARNING_COLUMNS)} FROM warnings {where} ORDER BY warning_id DESC LIMIT ?",
                      [*params, limit])


def series_head_in(con, series_id: str) -> dict | None:
    """The latest issued message of a series (what an Update or Cancel must reference)."""
    row = con.execute("""SELECT warning_id FROM warnings WHERE series_id = ? AND approval = 'approved'
                         ORDER BY warning_id DESC LIMIT 1""", [series_id]).fetchone()
    return None if row is None else warning_in(con, int(row[0]))


def series_of_source_in(con, source_prefix: str) -> str | None:
    """The series of the latest issued or proposed warning whose source_key starts with ``source_prefix``."""
    row = con.execute("""SELECT series_id FROM warnings WHERE source_key LIKE ? AND approval <> 'rejected'
                         ORDER BY warning_id DESC LIMIT 1""", [source_prefix.replace("%", "") + "%"]).fetchone()
    return None if row is None else str(row[0])


def issue_in(con, warning_id: int, decided_by: str, note: str | None, sender: str, sent: str, expires: str | None,
             cap_xml: str, now: datetime) -> None:
    con.execute("""UPDATE warnings SET approval = 'approved', decided_at = ?, decided_by = ?, decision_note = ?,
                       sender = ?, sent = ?, expires = ?, cap_xml = ? WHERE warning_id = ?""",
                [now, decided_by, note, sender, sent, expires, cap_xml, warning_id])


def reject_in(con, warning_id: int, decided_by: str, note: str | None, now: datetime) -> None:
    con.execute("""UPDATE warnings SET approval = 'rejected', decided_at = ?, decided_by = ?, decision_note = ?
                   WHERE warning_id = ?""", [now, decided_by, note, warning_id])


# ---- acknowledgements by agencies ---------------------------------------------------------------------
def acknowledge_warning_in(con, warning_id: int, recipient_id: str, via: str, actor: str, now: datetime) -> bool:
    """Record an agency's acknowledgement; False when it had acknowledged already (the first one stands)."""
    rows = con.execute("""INSERT INTO warning_acks VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING 1""",
                       [warning_id, recipient_id, now, via, actor]).fetchall()
    return bool(rows)


def warning_acks(store: Store, warning_ids: Sequence[int] | None = None) -> pd.DataFrame:
    sql = "SELECT warning_id, recipient_id, acknowledged_at, via, actor FROM warning_acks"
    params: list = []
    if warning_ids is not None:
        if not warning_ids:
            return pd.DataFrame(columns=["warning_id", "recipient_id", "acknowledged_at", "via", "actor"])
        sql += f" WHERE warning_id IN ({', '.join('?' * len(warning_ids))})"
        params = [int(w) for w in warning_ids]
    return store.read(sql + " ORDER BY acknowledged_at", params)


# ---- delivery outbox -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message to one recipient over one channel (``target``: topic, URL or e-mail address)."""
    kind: str
    ref: str
    recipient_id: str
    channel: str
    target: str
    content_type: str
    payload: bytes
    subject: str | None = None
    ack_url: str | None = None  # where the recipient acknowledges (a signed link), if it is asked to


DELIVERY_COLUMNS = ("delivery_id", "kind", "ref", "recipient_id", "channel", "target", "subject", "content_type",
                    "ack_url", "created_at", "state", "attempts", "next_attempt_at", "last_attempt_at",
                    "last_error", "delivered_at")


def enqueue_in(con, messages: Sequence[OutboxMessage], now: datetime) -> list[int]:
    """Add messages to the outbox (due at once); a message already queued for the same kind, ref,
    recipient and channel is not queued twice. Returns the ids of the rows added."""
    ids = []
    for m in messages:
        rows = con.execute(
            """INSERT INTO delivery_outbox (kind, ref, recipient_id, channel, target, subject, content_type, payload,
                   ack_url, created_at, state, attempts, next_attempt_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?) ON CONFLICT DO NOTHING RETURNING delivery_id""",
            [m.kind, m.ref, m.recipient_id, m.channel, m.target, m.subject, m.content_type, m.payload, m.ack_url,
             now, now]).fetchall()
        ids.extend(int(r[0]) for r in rows)
    return ids


CLAIMED_COLUMNS = ("delivery_id", "kind", "ref", "recipient_id", "channel", "target", "subject", "content_type",
                   "payload", "ack_url", "attempts")


def claim_next_in(con, now: datetime) -> dict | None:
    """Take the oldest due pending row for sending (state 'sending', attempt counted) and return it with its
    payload; None when nothing is due. One statement: no other worker can take the same row."""
    row = con.execute(
        f"""UPDATE delivery_outbox SET state = 'sending', attempts = attempts + 1, last_attempt_at = ?
            WHERE delivery_id = (SELECT delivery_id FROM delivery_outbox WHERE state = 'pending' AND next_attempt_at <= ?
                                 ORDER BY next_attempt_at, delivery_id LIMIT 1)
            RETURNING {', '.join(CLAIMED_COLUMNS)}""", [now, now]).fetchone()
    return None if row is None else dict(zip(CLAIMED_COLUMNS, row))


def finish_in(con, delivery_id: int, attempt: int, started_at: datetime, duration_ms: float, error: str | None,
              next_attempt_at: datetime | None, now: datetime) -> None:
    """Record an attempt. ``error`` None: delivered; else pending again at ``next_attempt_at`` or, when
    that is None, finally failed."""
    con.execute("INSERT INTO delivery_attempts VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [delivery_id, attempt, started_at, duration_ms, error is None, error])
    if error is None:
        con.execute("""UPDATE delivery_outbox SET state = 'delivered', delivered_at = ?, last_error = NULL
                       WHERE delivery_id = ?""", [now, delivery_id])
    elif next_attempt_at is not None:
        con.execute("""UPDATE delivery_outbox SET state = 'pending', next_attempt_at = ?, last_error = ?
                       WHERE delivery_id = ?""", [next_attempt_at, error, delivery_id])
    else:
        con.execute("UPDATE delivery_outbox SET state = 'failed', last_error = ? WHERE delivery_id = ?",
                    [error, delivery_id])


def recover_interrupted_in(con, now: datetime) -> int:
    """Rows left 'sending' by a process that stopped mid-delivery are due again (at-least-once delivery:
    receivers tell repeats apart by the delivery id and the CAP identifier)."""
    return len(con.execute("""UPDATE delivery_outbox SET state = 'pending', next_attempt_at = ?
                              WHERE state = 'sending' RETURNING 1""", [now]).fetchall())


def deliveries(store: Store, kind: str | None = None, refs: Sequence[str] | None = None,
               limit: int = 500) -> pd.DataFrame:
    where, params = [], []
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if refs is not None:
        if not refs:
            return pd.DataFrame(columns=list(DELIVERY_COLUMNS))
        where.append(f"ref IN ({', '.join('?' * len(refs))})")
        params.extend(refs)
    sql = f"SELECT {', '.join(DELIVERY_COLUMNS)} FROM delivery_outbox"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return store.read(sql + " ORDER BY delivery_id DESC LIMIT ?", [*params, limit])


def delivery_attempts(store: Store, delivery_id: int) -> pd.DataFrame:
    return store.read("""SELECT attempt, started_at, duration_ms, ok, error FROM delivery_attempts
                         WHERE delivery_id = ? ORDER BY attempt""", [delivery_id])


def channel_status(store: Store) -> pd.DataFrame:
    """Per channel: pending, delivered and failed rows, pending rows that failed their last attempt,
    the last success and the last error."""
    return store.read(
        """SELECT channel,
                  count(*) FILTER (WHERE state IN ('pending','sending')) AS pending,
                  count(*) FILTER (WHERE state = 'delivered') AS delivered,
                  count(*) FILTER (WHERE state = 'failed') AS failed,
                  count(*) FILTER (WHERE state IN ('pending','sending') AND last_error IS NOT NULL) AS retrying,
                  max(delivered_at) AS last_delivered_at,
                  arg_max(last_error, last_attempt_at) FILTER (WHERE last_error IS NOT NULL) AS last_error
           FROM delivery_outbox GROUP BY channel ORDER BY channel""")


# ---- inbound CAP --------------------------------------------------------------------------------------
def insert_inbound_in(con, alert, file_name: str, raw_xml: str, now: datetime) -> bool:
    """Store another agency's alert (cap.InboundAlert); False if the same message was stored before."""
    rows = con.execute(
        """INSERT INTO inbound_alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT DO NOTHING RETURNING 1""",
        [alert.identifier, alert.sender, alert.sent, alert.status, alert.msg_type, alert.scope, alert.references,
         alert.sender_name, alert.event, alert.category, alert.urgency, alert.severity, alert.certainty,
         alert.headline, alert.description, alert.instruction, alert.area_desc, alert.expires, file_name, now,
         raw_xml]).fetchall()
    return bool(rows)


def inbound_alerts(store: Store, limit: int = 100) -> pd.DataFrame:
    return store.read(
        """SELECT identifier, sender, sent, status, msg_type, scope, references_text, sender_name, event, category,
                  urgency, severity, certainty, headline, description, instruction, area_desc, expires, file_name,
                  received_at FROM inbound_alerts ORDER BY received_at DESC, sent DESC LIMIT ?""", [limit])


def areas_json(areas: Sequence[dict]) -> str:
    return json.dumps(list(areas), separators=(",", ":"))
