"""Sending what pheoc issues (CAP warnings, briefings) to agencies and the public, with nothing lost.

The one entry point for a feature that sends something::

    from delivery import deliver
    ids = deliver(store, settings, kind="briefing", ref="2026-12-02", payload=pdf_bytes,
                  content_type="application/pdf", subject="Daily briefing 2 Dec 2026",
                  recipients=("mayor-office", "public-health"))   # None: every recipient with a channel

``deliver`` writes one row per recipient and channel to the ``delivery_outbox`` table and returns
their ids; nothing is sent in the caller's thread. The ``DeliveryWorker`` (started by ``app.py
serve``) sends due rows over MQTT (retained, to ``<warnings.mqtt_topic>/<kind>/<topic_key>``),
webhooks (HTTP POST signed with HMAC-SHA256) and e-mail (SMTP), retries with doubling back-off up to
``warnings.max_attempts``, and logs every attempt. A row being sent when the process stops is sent
again after the restart (at-least-once: receivers tell repeats apart by ``X-Pheoc-Delivery`` / the
CAP identifier). ``deliver_in`` does the same inside a writer transaction, so that what causes a
delivery (an approval) and the delivery commit together.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from settings import Settings, WarningRecipient
from store import Store
from store import queries_warnings as qw
from store.queries_warnings import OutboxMessage

CHANNELS = ("mqtt", "webhook", "email")


class UnknownRecipient(ValueError):
    """A recipient id that warnings.recipients does not list."""


def channel_available(settings: Settings, channel: str) -> bool:
    """MQTT needs a broker (mqtt.mode other than off); webhooks and e-mail are always configured."""
    return channel in CHANNELS and (channel != "mqtt" or settings.mqtt.mode != "off")


def chosen_recipients(settings: Settings, recipients: Sequence[str] | None) -> list[WarningRecipient]:
    """The recipients named (all with a channel when None), checked against the configuration."""
    known = {r.id: r for r in settings.warnings.recipients}
    if recipients is None:
        return [r for r in known.values() if r.channel != "none"]
    unknown = sorted(set(recipients) - set(known))
    if unknown:
        raise UnknownRecipient(f"no recipient {', '.join(unknown)} in warnings.recipients")
    return [known[r] for r in dict.fromkeys(recipients)]


def target_of(settings: Settings, recipient: WarningRecipient, kind: str, topic_key: str) -> str:
    if recipient.channel == "mqtt":
        return f"{settings.warnings.mqtt_topic}/{kind}/{topic_key}"
    if recipient.channel == "webhook":
        return str(recipient.url)
    return str(recipient.email)


def outbox_messages(settings: Settings, kind: str, ref: str, payload: bytes, recipients: Sequence[WarningRecipient],
                    *, content_type: str, subject: str | None = None, topic_key: str | None = None,
                    ack_urls: dict[str, str] | None = None) -> list[OutboxMessage]:
    """The outbox rows for ``payload`` to each recipient whose channel is available here."""
    ack_urls = ack_urls or {}
    return [OutboxMessage(kind=kind, ref=ref, recipient_id=r.id, channel=r.channel,
                          target=target_of(settings, r, kind, topic_key or ref), content_type=content_type,
                          payload=payload, subject=subject, ack_url=ack_urls.get(r.id))
            for r in recipients if channel_available(settings, r.channel)]


def deliver_in(con, messages: Sequence[OutboxMessage], now: datetime) -> list[int]:
    """Queue messages inside the caller's writer transaction."""
    return qw.enqueue_in(con, messages, now)


def deliver(store: Store, settings: Settings, kind: str, ref: str, payload: bytes,
            recipients: Sequence[str] | None = None, *, content_type: str = "application/json",
            subject: str | None = None, topic_key: str | None = None) -> list[int]:
    """Queue ``payload`` for each recipient (ids from warnings.recipients); returns the outbox ids.

    Queued once per (kind, ref, recipient, channel): calling again for the same ref queues nothing new.
    """
    messages = outbox_messages(settings, kind, ref, payload, chosen_recipients(settings, recipients),
                               content_type=content_type, subject=subject, topic_key=topic_key)
    now = datetime.now(timezone.utc)
    ids = store.submit(lambda con: deliver_in(con, messages, now)).result(timeout=30)
    from delivery.worker import wake
    wake(store)
    return ids
