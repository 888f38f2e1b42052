"""CAP warnings: the list, composing, approving (issuing), rejecting and cancelling, and agencies'
acknowledgements; with the delivery log and other agencies' alerts (read models of /alerts and
GET /api/v1/warnings).

Permissions: reading needs view_alerts; composing, approving, rejecting and cancelling need
issue_warnings (nothing is sent before a person with it approves, unless a rule in warnings.*
says approval: automatic); acknowledging for an agency needs acknowledge_warnings, and police
acknowledge only for police recipients. A signed link acknowledges without signing in: the
signature names the warning and the recipient (delivery.warnings.ack_link). Every decision is
audited in the transaction that makes it (warning_proposed, warning_issued, warning_rejected,
warning_acknowledged).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from auth.principal import Principal
from cap.message import CERTAINTIES, SEVERITIES, URGENCIES, ExerciseOnly
from delivery.warnings import Issued, WarningStateError, issue_warning, new_identifier, verify_ack_link
from geo.areas import geometry_from_geojson, outer_rings_latlng
from settings import Settings
from store import Store
from store import queries as q
from store import queries_warnings as qw
from store.queries_access import append_audit_in, submit_audited
from store.queries_warnings import WarningDraft

__all__ = ["ExerciseOnly", "Issued", "WarningInputError", "WarningStateError", "acknowledge_by_link",
           "acknowledge_warning", "approve_warning", "cancel_warning", "cap_document", "compose_warning",
           "channel_health", "inbound_alerts", "reject_warning", "warning_list"]
MAX_TEXT = 2000
AREA_KINDS = ("boundary", "community", "precinct", "district")


class WarningInputError(ValueError):
    """A composed warning is missing something or has a value CAP does not allow; ``field`` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class WarningList:
    rows: pd.DataFrame  # qw.WARNING_COLUMNS + recipients_expected, acknowledged, not_acknowledged, deliveries
    exercise: bool


def _recipients_asked(settings: Settings) -> list:
    return [r for r in settings.warnings.recipients if r.acknowledges]


def warning_list(store: Store, settings: Settings, principal: Principal, *, approval: str | None = None,
                 limit: int = 200) -> WarningList:
    principal.require("view_alerts")
    if approval not in (None, "proposed", "approved", "rejected"):
        raise WarningInputError("approval", "approval must be proposed, approved or rejected")
    rows = qw.warnings(store, approval, max(1, min(limit, 1000)))
    ids = [int(w) for w in rows["warning_id"]]
    acks = qw.warning_acks(store, ids)
    sent = qw.deliveries(store, "cap", [str(i) for i in ids])
    asked = _recipients_asked(settings)
    acked_by: dict[int, list[dict]] = {}
    for a in acks.to_dict("records"):
        acked_by.setdefault(int(a["warning_id"]), []).append(a)
    acknowledged, missing, delivery = [], [], []
    for r in rows.to_dict("records"):
        wid = int(r["warning_id"])
        got = {a["recipient_id"]: a for a in acked_by.get(wid, [])}
        acknowledged.append([{"recipient": k, "at": v["acknowledged_at"], "via": v["via"], "by": v["actor"]}
                             for k, v in got.items()])
        missing.append([x.id for x in asked if x.id not in got] if r["approval"] == "approved" else [])
        mine = sent[sent["ref"] == str(wid)]
        delivery.append([{"recipient": d["recipient_id"], "channel": d["channel"], "state": d["state"],
                          "attempts": int(d["attempts"]), "last_error": d["last_error"],
                          "delivered_at": d["delivered_at"]} for d in mine.to_dict("records")])
    rows = rows.assign(acknowledged=acknowledged, not_acknowledged=missing, deliveries=delivery)
    return WarningList(rows, qw.is_exercise(store))


def cap_document(store: Store, principal: Principal, warning_id: int) -> str | None:
    """The CAP 1.2 XML exactly as issued; None for an unknown or not (yet) issued warning."""
    principal.require("view_alerts")
    row = qw.warning(store, warning_id)
    if row is None or row["approval"] != "approved" or not isinstance(row.get("cap_xml"), str):
        return None
    return row["cap_xml"]


def _text(field: str, value, *, required: bool = True) -> str | None:
    value = (value or "").strip() if isinstance(value, str) or value is None else None
    if value is None:
        raise WarningInputError(field, f"{field} must be text")
    if not value:
        if required:
            raise WarningInputError(field, f"{field} is required")
        return None
    if len(value) > MAX_TEXT:
        raise WarningInputError(field, f"{field} is longer than {MAX_TEXT} characters")
    return value


def _areas(store: Store, area_ids) -> str:
    if not area_ids or not isinstance(area_ids, (list, tuple)):
        raise WarningInputError("areas", "name at least one area (ids from GET /api/v1/areas)")
    table = q.areas(store, AREA_KINDS).set_index("area_id")
    areas = []
    for area_id in area_ids:
        if not isinstance(area_id, str) or area_id not in table.index:
            raise WarningInputError("areas", f"no area {str(area_id)[:40]!r}")
        row = table.loc[area_id]
        areas.append({"description": str(row["name"]),
                      "polygons": outer_rings_latlng(geometry_from_geojson(row["geometry"]))})
    return qw.areas_json(areas)


def compose_warning(store: Store, settings: Settings, principal: Principal, *, headline: str, description: str,
                    area_ids, instruction: str | None = None, event: str = "Public health warning",
                    urgency: str = "Expected", severity: str = "Moderate", certainty: str = "Likely",
                    status: str | None = None, now: datetime | None = None) -> int:
    """Store a hand-written warning as proposed (it is sent once approved); returns its id."""
    principal.require("issue_warnings")
    exercise = qw.is_exercise(store)
    status = status or ("Exercise" if exercise else "Actual")
    if status not in ("Actual", "Exercise", "Test"):
        raise WarningInputError("status", "status must be Actual, Exercise or Test")
    if exercise and status != "Exercise":
        raise ExerciseOnly(f"this is a drill: warnings have status Exercise, not {status}")
    for field, value, allowed in (("urgency", urgency, URGENCIES), ("severity", severity, SEVERITIES),
                                  ("certainty", certainty, CERTAINTIES)):
        if value not in allowed:
            raise WarningInputError(field, f"{field} must be one of {', '.join(allowed)}")
    identifier = new_identifier(settings)
    draft = WarningDraft(identifier=identifier, series_id=identifier, msg_type="Alert", references_id=None,
                         status=status, rule="manual", source_key=None, proposed_by=principal.user,
                         event=_text("event", event), urgency=urgency, severity=severity, certainty=certainty,
                         headline=_text("headline", headline), description=_text("description", description),
                         instruction=_text("instruction", instruction, required=False), areas=_areas(store, area_ids))
    return _propose(store, principal, draft, now)


def _propose(store: Store, principal: Principal, draft: WarningDraft, now: datetime | None) -> int:
    now = now or datetime.now(timezone.utc)

    def job(con) -> int:
        warning_id = qw.insert_warning_in(con, draft, now)
        append_audit_in(con, principal.user, "warning_proposed", f"warning:{warning_id}",
                        {"role": principal.role, "msg_type": draft.msg_type, "status": draft.status,
                         "headline": draft.headline}, now)
        return warning_id
    return submit_audited(store, job).result(timeout=30)


def cancel_warning(store: Store, settings: Settings, principal: Principal, warning_id: int,
                   reason: str | None = None, now: datetime | None = None) -> int:
    """Propose a Cancel of the series an issued warning belongs to; returns the new proposal's id."""
    principal.require("issue_warnings")
    row = qw.warning(store, warning_id)
    if row is None or row["approval"] != "approved":
        raise WarningStateError(f"warning {warning_id} was not issued; there is nothing to cancel")
    head = store.submit(lambda con: qw.series_head_in(con, row["series_id"])).result(30)
    if head["msg_type"] == "Cancel":
        raise WarningStateError(f"the series of warning {warning_id} is already cancelled")
    reason = _text("reason", reason, required=False)
    draft = WarningDraft(
        identifier=new_identifier(settings), series_id=head["series_id"], msg_type="Cancel",
        references_id=int(head["warning_id"]), status=head["status"], rule="manual", source_key=None,
        proposed_by=principal.user, event=head["event"], urgency="Past", severity="Minor", certainty="Observed",
        headline=f"Cancelled: {head['headline']}"[:MAX_TEXT],
        description=reason or "This warning no longer applies.", instruction=None, areas=head["areas"])
    return _propose(store, principal, draft, now)


def approve_warning(store: Store, settings: Settings, principal: Principal, warning_id: int,
                    note: str | None = None) -> Issued:
    principal.require("issue_warnings")
    return issue_warning(store, settings, int(warning_id), actor=principal.user, role=principal.role,
                         note=_text("note", note, required=False))


def reject_warning(store: Store, principal: Principal, warning_id: int, note: str | None = None,
                   now: datetime | None = None) -> None:
    principal.require("issue_warnings")
    note = _text("note", note, required=False)
    now = now or datetime.now(timezone.utc)

    def job(con) -> None:
        row = qw.warning_in(con, int(warning_id))
        if row is None or row["approval"] != "proposed":
            raise WarningStateError(f"warning {warning_id} is not a proposal")
        qw.reject_in(con, int(warning_id), principal.user, note, now)
        append_audit_in(con, principal.user, "warning_rejected", f"warning:{int(warning_id)}",
                        {"role": principal.role, "note": note}, now)
    submit_audited(store, job).result(timeout=30)


def _record_ack(store: Store, warning_id: int, recipient_id: str, via: str, actor: str, role: str,
                now: datetime) -> bool:
    def job(con) -> bool:
        row = qw.warning_in(con, warning_id)
        if row is None or row["approval"] != "approved":
            raise WarningStateError(f"warning {warning_id} was not issued")
        new = qw.acknowledge_warning_in(con, warning_id, recipient_id, via, actor, now)
        if new:
            append_audit_in(con, actor, "warning_acknowledged", f"warning:{warning_id}",
                            {"role": role, "recipient": recipient_id, "via": via}, now)
        return new
    return submit_audited(store, job).result(timeout=30)


def acknowledge_warning(store: Store, settings: Settings, principal: Principal, warning_id: int,
                        recipient_id: str, now: datetime | None = None) -> bool:
    """Acknowledge an issued warning for a recipient; False if it had been acknowledged already."""
    principal.require("acknowledge_warnings")
    recipient = next((r for r in _recipients_asked(settings) if r.id == recipient_id), None)
    if recipient is None:
        raise WarningInputError("recipient", f"no recipient {str(recipient_id)[:40]!r} that acknowledges")
    if principal.role == "police" and recipient.agency != "police":
        raise WarningInputError("recipient", "police acknowledge for police recipients only")
    return _record_ack(store, int(warning_id), recipient.id, "ui", principal.user, principal.role,
                       now or datetime.now(timezone.utc))


def acknowledge_by_link(store: Store, settings: Settings, warning_id: int, recipient_id: str, expires: int,
                        signature: str, now: datetime | None = None) -> bool:
    """Acknowledge through a signed link (no sign-in: the signature is the credential)."""
    now = now or datetime.now(timezone.utc)
    problem = verify_ack_link(settings, store.path, warning_id, recipient_id, expires, signature, now)
    if problem is not None:
        raise WarningInputError("link", {"expired": "the link has expired",
                                         "bad_signature": "the link is not valid"}[problem])
    if recipient_id not in {r.id for r in _recipients_asked(settings)}:
        raise WarningInputError("link", "the recipient of this link is no longer configured")
    return _record_ack(store, warning_id, recipient_id, "link", f"link:{recipient_id}", "recipient", now)


def inbound_alerts(store: Store, principal: Principal, limit: int = 50) -> pd.DataFrame:
    """Other agencies' CAP alerts, newest first."""
    principal.require("view_alerts")
    return qw.inbound_alerts(store, limit)


def channel_health(store: Store, principal: Principal) -> dict:
    principal.require("view_alerts")
    from delivery.worker import channel_health as health
    return health(store)
