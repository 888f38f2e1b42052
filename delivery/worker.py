"""The delivery worker: one thread that sends the outbox's due rows and reads inbound CAP files.

Each row is claimed (state ``sending``, attempt counted) in one writer transaction before it is
sent and finished in another after, so a crash between the two leaves it ``sending``; the next
start puts such rows back to ``pending`` (``recover_interrupted_in``), and nothing queued is lost.
A failed attempt waits ``retry_backoff_s * 2**(attempt-1)`` seconds, capped at ``retry_backoff_max_s``;
after ``max_attempts`` the row is ``failed`` for good and shows on /alerts and /healthz.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from datetime import datetime, timedelta, timezone
from pathlib import Path

from delivery.channels import DeliveryError
from settings import Settings
from store import Store
from store import queries_warnings as qw

log = logging.getLogger(__name__)
INBOUND_SCAN_S = 5.0  # other agencies' files are minutes apart; a few seconds' delay is nothing
_workers: "weakref.WeakSet[DeliveryWorker]" = weakref.WeakSet()


def wake(store: Store) -> None:
    """Tell the workers of ``store`` that rows were queued (they look at once instead of at their next tick)."""
    for worker in list(_workers):
        if worker.store is store:
            worker.wake()


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """The wait after failed attempt number ``attempt`` (1-based): doubling from base_s, capped at max_s."""
    return min(max_s, base_s * 2 ** max(0, attempt - 1))


class DeliveryWorker:
    """Sends due outbox rows with the senders given per channel ("mqtt", "webhook", "email")."""

    def __init__(self, store: Store, settings: Settings, senders: dict, *, inbound_dir: Path | None = None):
        self.store, self.settings, self.senders = store, settings, senders
        self.inbound_dir = inbound_dir
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="delivery", daemon=True)
        self._last_scan = 0.0

    def start(self) -> "DeliveryWorker":
        now = datetime.now(timezone.utc)
        recovered = self.store.submit(lambda con: qw.recover_interrupted_in(con, now)).result(timeout=30)
        if recovered:
            log.warning("delivery: %d message(s) were being sent when the server stopped; sending again", recovered)
        _workers.add(self)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.settings.warnings.send_timeout_s + 5)
        for sender in self.senders.values():
            close = getattr(sender, "close", None)
            if close:
                close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
                if self.inbound_dir is not None and time.monotonic() - self._last_scan >= INBOUND_SCAN_S:
                    self._last_scan = time.monotonic()
                    from delivery.inbound import read_inbound_folder
                    read_inbound_folder(self.store, self.inbound_dir)
            except Exception:  # the worker must outlive any one bad row or a store hiccup
                log.exception("delivery worker pass failed")
            self._wake.wait(self.settings.warnings.worker_interval_s)
            self._wake.clear()

    def run_due(self) -> int:
        """Send every row due now, one at a time; returns how many were attempted."""
        cfg = self.settings.warnings
        attempted = 0
        while not self._stop.is_set():
            started = datetime.now(timezone.utc)
            row = self.store.submit(lambda con: qw.claim_next_in(con, started)).result(30)
            if row is None:
                break
            attempted += 1
            attempt = int(row["attempts"])
            t0 = time.perf_counter()
            error = None
            sender = self.senders.get(row["channel"])
            try:
                if sender is None:
                    raise DeliveryError(f"channel {row['channel']} is not available on this server")
                sender.send(row)
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # a sender bug is a failed attempt, not a dead worker
                log.exception("delivery %s: unexpected error", row["delivery_id"])
                error = f"{type(exc).__name__}: {str(exc)[:160]}"
            duration_ms = (time.perf_counter() - t0) * 1000
            now = datetime.now(timezone.utc)
            next_at = None
            if error is not None and attempt < cfg.max_attempts:
                next_at = now + timedelta(seconds=backoff_s(attempt, cfg.retry_backoff_s, cfg.retry_backoff_max_s))
            self.store.submit(lambda con, i=int(row["delivery_id"]), a=attempt, e=error, n=next_at, d=duration_ms:
                              qw.finish_in(con, i, a, started, d, e, n, now)).result(30)
            if error is not None:
                log.warning("delivery %s to %s over %s failed (attempt %d): %s", row["delivery_id"],
                            row["recipient_id"], row["channel"], attempt, error)
        return attempted

    def health(self) -> dict:
        """For /healthz: per channel, pending/delivered/failed counts; not ok while any row failed or retries."""
        return channel_health(self.store)


def channel_health(store: Store) -> dict:
    status = qw.channel_status(store)
    channels = {}
    for r in status.to_dict("records"):
        failing = int(r["failed"]) > 0 or int(r["retrying"]) > 0
        channels[r["channel"]] = {
            "ok": not failing, "pending": int(r["pending"]), "delivered": int(r["delivered"]),
            "failed": int(r["failed"]), "retrying": int(r["retrying"]),
            "last_delivered_at": None if r["last_delivered_at"] is None or r["last_delivered_at"] != r["last_delivered_at"]
            else str(r["last_delivered_at"]),
            "last_error": r["last_error"] if isinstance(r["last_error"], str) else None}
    return {"ok": all(c["ok"] for c in channels.values()), "channels": channels}


def start_delivery(store: Store, settings: Settings, mqtt_broker: dict | None = None) -> DeliveryWorker:
    """The worker with a sender per available channel. ``mqtt_broker``: host, port, login, protocol_v5 of
    the embedded broker (whose publisher may write warnings.mqtt_topic); None with mqtt.mode external
    uses mqtt.host/port and the login named by warnings.mqtt_username_env / mqtt_password_env."""
    from delivery.channels import EmailSender, MqttSender, WebhookSender

    w = settings.warnings
    prefix = settings.mqtt.topic_prefix.strip("/")
    if w.mqtt_topic.strip("/") == prefix or w.mqtt_topic.startswith(prefix + "/"):
        from settings import ConfigError
        raise ConfigError(f"config 'warnings.mqtt_topic': {w.mqtt_topic} is under mqtt.topic_prefix ({prefix}); the "
                          "ingestor reads everything there and would quarantine the warnings")
    senders: dict = {"webhook": WebhookSender({r.id: r for r in w.recipients}, w.send_timeout_s),
                     "email": EmailSender(w.smtp, w.send_timeout_s)}
    if settings.mqtt.mode != "off":
        if mqtt_broker is not None:
            senders["mqtt"] = MqttSender(mqtt_broker["host"], mqtt_broker["port"], mqtt=settings.mqtt,
                                         login=mqtt_broker["login"], protocol_v5=mqtt_broker["protocol_v5"],
                                         client_id=f"{settings.mqtt.client_id}-delivery", timeout_s=w.send_timeout_s)
        else:
            mqtt = settings.mqtt.model_copy(update={"username_env": w.mqtt_username_env,
                                                    "password_env": w.mqtt_password_env})
            senders["mqtt"] = MqttSender(settings.mqtt.host, settings.mqtt.port, mqtt=mqtt,
                                         client_id=f"{settings.mqtt.client_id}-delivery", timeout_s=w.send_timeout_s)
    return DeliveryWorker(store, settings, senders, inbound_dir=settings.path(w.inbound_dir)).start()
