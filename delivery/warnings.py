"""Issuing a CAP warning: render the stored proposal as CAP 1.2, keep it, queue it for every recipient.

Approval, the CAP document, the outbox rows and the audit record commit in one writer transaction:
an approved warning is always queued, and a queued one always approved. Whether the database is a
drill's is read inside that transaction (``store_mode``) and handed to cap.to_xml, which refuses any
status but Exercise for a drill: a drill cannot emit an Actual warning whatever the page, the API
or a rule asked for.

Agencies that acknowledge get a signed link (``ack_link``): HMAC-SHA256 over the warning, the
recipient and an expiry, keyed by the variable named in warnings.link_secret_env or, without it,
by a random key kept beside the database (``<db>.link-key``, mode 0600) so links survive restarts.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from cap.message import CapArea, CapInfo, CapMessage, CapReference, cap_time, to_xml
from delivery import chosen_recipients, deliver_in, outbox_messages
from settings import Settings
from store import Store
from store import queries_warnings as qw
from store.queries_access import append_audit_in, submit_audited

CAP_KIND = "cap"  # outbox kind of CAP warnings; MQTT topic <warnings.mqtt_topic>/cap/<series>
CAP_CONTENT_TYPE = "application/cap+xml"  # the media type OASIS registered for CAP documents


class WarningStateError(ValueError):
    """The warning is not in a state that allows this (e.g. approving one already decided)."""


def new_identifier(settings: Settings) -> str:
    """A CAP identifier unique for this sender: the city and 16 random hex digits (no spaces, commas, < or &)."""
    return f"pheoc-{settings.city.slug}-{uuid.uuid4().hex[:16]}"


# ---- signed acknowledgement links ------------------------------------------------------------------------
def _key_file(db_path: Path) -> Path:
    return Path(db_path).with_name(Path(db_path).name + ".link-key")


def link_key(settings: Settings, db_path: Path) -> bytes:
    configured = os.environ.get(settings.warnings.link_secret_env)
    if configured:
        return configured.encode()
    path = _key_file(db_path)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()


def _signature(key: bytes, warning_id: int, recipient_id: str, expires: int) -> str:
    mac = hmac.new(key, f"{warning_id}.{recipient_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def ack_link(settings: Settings, db_path: Path, warning_id: int, recipient_id: str, now: datetime) -> str:
    expires = int((now + timedelta(hours=settings.warnings.link_valid_hours)).timestamp())
    query = urlencode({"w": warning_id, "r": recipient_id, "e": expires,
                       "s": _signature(link_key(settings, db_path), warning_id, recipient_id, expires)})
    return f"{settings.warnings.public_url.rstrip('/')}/warnings/ack?{query}"


def verify_ack_link(settings: Settings, db_path: Path, warning_id: int, recipient_id: str, expires: int,
                    signature: str, now: datetime) -> str | None:
    """None when the link is genuine and current, else why not ("expired", "bad_signature")."""
    good = _signature(link_key(settings, db_path), warning_id, recipient_id, expires)
    if not hmac.compare_digest(good.encode(), (signature or "").encode()):
        return "bad_signature"
    if now.timestamp() > expires:
        return "expired"
    return None


# ---- rendering ---------------------------------------------------------------------------------------------
def cap_areas(areas_json: str) -> tuple[CapArea, ...]:
    return tuple(CapArea(a["description"], tuple(tuple((float(p[0]), float(p[1])) for p in ring)
                                                 for ring in a.get("polygons", ())))
                 for a in json.loads(areas_json))


EXERCISE_NOTE = "EXERCISE: a drill message about a scripted scenario, not a real event"


def cap_message(settings: Settings, row: dict, sent: datetime, referenced: dict | None, *,
                exercise: bool) -> CapMessage:
    """The CAP message of a stored warning row, sent at ``sent`` (city time, with its offset); a drill's
    carries the EXERCISE note besides its status."""
    w = settings.warnings
    info = CapInfo(
        event=row["event"], urgency=row["urgency"], severity=row["severity"], certainty=row["certainty"],
        sender_name=w.sender_name, headline=row["headline"], description=row["description"],
        instruction=row["instruction"] or None, language=w.language,
        response_types=("AllClear",) if row["msg_type"] == "Cancel" else (),
        expires=sent + timedelta(hours=w.expires_hours), web=f"{w.public_url.rstrip('/')}/alerts",
        areas=cap_areas(row["areas"]))
    references = ()
    if referenced is not None:
        references = (CapReference(referenced["sender"], referenced["identifier"], referenced["sent"]),)
    return CapMessage(
        identifier=row["identifier"], sender=w.sender, sent=sent, status=row["status"], msg_type=row["msg_type"],
        scope=w.scope, restriction=("Agencies of the command centre of " + settings.city.name)
        if w.scope == "Restricted" else None, infos=(info,), references=references, incidents=row["series_id"],
        note=EXERCISE_NOTE if exercise else None)


@dataclass(frozen=True)
class Issued:
    warning_id: int
    identifier: str
    status: str
    deliveries: tuple[int, ...]


def issue_warning(store: Store, settings: Settings, warning_id: int, *, actor: str, role: str,
                  note: str | None = None, now: datetime | None = None) -> Issued:
    """Approve a proposed warning: build its CAP document, keep it, queue it, audit it (one transaction).

    The caller has checked the permission (services.warnings, or a rule set to approval automatic).
    """
    now = now or datetime.now(timezone.utc)
    sent = now.astimezone(ZoneInfo(settings.city.timezone)).replace(microsecond=0)
    recipients = chosen_recipients(settings, None)
    links = {r.id: ack_link(settings, store.path, warning_id, r.id, now) for r in recipients if r.acknowledges}

    def job(con) -> Issued:
        row = qw.warning_in(con, warning_id)
        if row is None:
            raise WarningStateError(f"no warning {warning_id}")
        if row["approval"] != "proposed":
            raise WarningStateError(f"warning {warning_id} is {row['approval']}, not proposed")
        referenced = qw.warning_in(con, int(row["references_id"])) if row["references_id"] is not None else None
        if row["msg_type"] != "Alert" and (referenced is None or referenced["approval"] != "approved"):
            raise WarningStateError(f"warning {warning_id} updates or cancels a warning that was never issued")
        # Drill or not is the database's own mark, read here, where the document is built.
        exercise = qw.is_exercise_in(con)
        message = cap_message(settings, row, sent, referenced, exercise=exercise)
        xml = to_xml(message, exercise=exercise)
        qw.issue_in(con, warning_id, actor, note, settings.warnings.sender, cap_time(sent),
                    cap_time(message.infos[0].expires) if message.infos[0].expires else None, xml, now)
        messages = outbox_messages(settings, CAP_KIND, str(warning_id), xml.encode(), recipients,
                                   content_type=CAP_CONTENT_TYPE, subject=f"[{row['status']}] {row['headline']}",
                                   topic_key=row["series_id"], ack_urls=links)
        ids = deliver_in(con, messages, now)
        append_audit_in(con, actor, "warning_issued", f"warning:{warning_id}",
                        {"role": role, "identifier": row["identifier"], "msg_type": row["msg_type"],
                         "status": row["status"], "rule": row["rule"], "deliveries": len(ids), "note": note}, now)
        return Issued(warning_id, row["identifier"], row["status"], tuple(ids))
    issued = submit_audited(store, job).result(timeout=30)
    from delivery.worker import wake
    wake(store)
    return issued
