"""Delivery channels against real local peers: MQTT (a retained message on real Mosquitto, through its
ACL), a webhook (a local HTTP server checking the HMAC signature; retries with back-off), e-mail (a
local aiosmtpd server); a failing channel on /healthz and /alerts; and a server killed mid-delivery
losing nothing (the outbox row is sent again after the restart)."""
from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from settings import Settings
from store import Store
from store import queries_warnings as qw
from tests.browser import free_port
from tests.conftest import ROOT

WEBHOOK_KEY_ENV = "PHEOC_TEST_WEBHOOK_KEY"
WEBHOOK_KEY = "test-webhook-key-0123456789abcdef"
CAP = b'<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>\n'


class WebhookPeer:
    """A local HTTP server answering POSTs with the next status of ``statuses`` (then 200); it keeps each
    request and can hold requests until released."""

    def __init__(self, statuses=(), hold: bool = False):
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.arrived = threading.Event()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                peer.requests.append({"headers": dict(self.headers), "body": body, "at": time.monotonic()})
                peer.arrived.set()
                peer.release.wait(30)
                status = peer.statuses.pop(0) if peer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cap"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def make_settings(tmp_path: Path, webhook_url: str = "http://127.0.0.1:9/cap", smtp_port: int = 25,
                  **warnings) -> Settings:
    return Settings.model_validate({
        "city": {"name": "Testville", "slug": "testville"},
        "store": {"path": str(tmp_path / "pheoc.duckdb")},
        "mqtt": {"mode": "external", "topic_prefix": "pheoc/testville"},
        "warnings": {"recipients": [
            {"id": "public", "name": "Public topic", "agency": "public", "channel": "mqtt", "acknowledges": False},
            {"id": "police", "name": "Police", "agency": "police", "channel": "webhook", "url": webhook_url,
             "secret_env": WEBHOOK_KEY_ENV},
            {"id": "hospitals", "name": "Hospitals", "agency": "hospital", "channel": "email",
             "email": "duty@hospital.test"}],
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "from_address": "pheoc@testville.test"},
            "retry_backoff_s": 0.2, "retry_backoff_max_s": 0.4, "max_attempts": 3, "worker_interval_s": 0.05,
            "send_timeout_s": 5, **warnings}})


def senders(settings: Settings, **extra) -> dict:
    from delivery.channels import EmailSender, WebhookSender
    w = settings.warnings
    return {"webhook": WebhookSender({r.id: r for r in w.recipients}, w.send_timeout_s),
            "email": EmailSender(w.smtp, w.send_timeout_s), **extra}


def wait_for(predicate, timeout: float = 20, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


@pytest.fixture
def webhook_key(monkeypatch):
    monkeypatch.setenv(WEBHOOK_KEY_ENV, WEBHOOK_KEY)


@pytest.mark.mqtt
def test_mqtt_delivers_a_retained_warning_that_a_later_subscriber_reads(tmp_path):
    import paho.mqtt.client as paho

    from delivery import deliver
    from delivery.channels import MqttSender
    from delivery.worker import DeliveryWorker
    from ingest.broker import EmbeddedBroker, find_mosquitto

    assert find_mosquitto(), "Mosquitto is required (apt-get install mosquitto)"
    settings = make_settings(tmp_path)
    broker = EmbeddedBroker(topic_prefix="pheoc/testville", warnings_topic=settings.warnings.mqtt_topic).start()
    try:
        mqtt = MqttSender(broker.host, broker.port, mqtt=settings.mqtt, login=broker.publisher_login,
                          protocol_v5=broker.mqtt_v5)
        with Store(settings.store.path) as store:
            worker = DeliveryWorker(store, settings, senders(settings, mqtt=mqtt))
            ids = deliver(store, settings, "cap", "7", CAP, ["public"], content_type="application/cap+xml",
                          topic_key="series-1")
            # Outside the ACL's warnings topic the broker refuses the publish (MQTT 5 PUBACK "not authorised").
            store.submit(lambda con: qw.enqueue_in(con, [qw.OutboxMessage(
                "cap", "8", "public", "mqtt", "elsewhere/warnings", "application/cap+xml", CAP)],
                datetime_now())).result()
            worker.run_due()
            rows = qw.deliveries(store).set_index("ref")
            assert rows.loc["7", "state"] == "delivered" and int(rows.loc["7", "delivery_id"]) == ids[0]
            assert rows.loc["8", "state"] == "pending" and "refused" in rows.loc["8", "last_error"]
            worker.stop()
        received = []
        got = threading.Event()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="warnings-reader",
                             protocol=paho.MQTTv5 if broker.mqtt_v5 else paho.MQTTv311)
        login = broker.warnings_reader_login
        client.username_pw_set(login.username, login.password)
        client.on_message = lambda c, u, m: (received.append(m), got.set())
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{settings.warnings.mqtt_topic}/#", qos=1)
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:
            assert got.wait(10), "the retained warning did not reach a subscriber that came later"
        finally:
            client.loop_stop()
            client.disconnect()
        assert received[0].topic == f"{settings.warnings.mqtt_topic}/cap/series-1"
        assert received[0].retain and received[0].payload == CAP
    finally:
        broker.stop()


def datetime_now():
    from datetime import datetime, timezone
    return datetime.now(timezone.utc)


def test_webhook_is_signed_and_retried_with_back_off_until_delivered(tmp_path, webhook_key):
    from delivery import deliver
    from delivery.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER
    from delivery.worker import DeliveryWorker

    peer = WebhookPeer(statuses=(503, 500))
    settings = make_settings(tmp_path, webhook_url=peer.url)
    try:
        with Store(settings.store.path) as store:
            worker = DeliveryWorker(store, settings, senders(settings)).start()
            try:
                [delivery_id] = deliver(store, settings, "cap", "1", CAP, ["police"],
                                        content_type="application/cap+xml")
                wait_for(lambda: qw.deliveries(store).iloc[0]["state"] == "delivered", message="delivery")
            finally:
                worker.stop()
            attempts = qw.delivery_attempts(store, delivery_id)
            assert list(attempts["ok"]) == [False, False, True]
            assert "HTTP 503" in attempts.iloc[0]["error"] and "HTTP 500" in attempts.iloc[1]["error"]
        gaps = [b["at"] - a["at"] for a, b in zip(peer.requests, peer.requests[1:])]
        assert gaps[0] >= 0.2 * 0.9 and gaps[1] >= 0.4 * 0.9, gaps  # waits double from retry_backoff_s, capped
        for request in peer.requests:
            headers, body = request["headers"], request["body"]
            assert body == CAP and headers["Content-Type"] == "application/cap+xml"
            expected = "sha256=" + hmac.new(WEBHOOK_KEY.encode(), headers[TIMESTAMP_HEADER].encode() + b"." + body,
                                            hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
            assert headers["X-Pheoc-Delivery"] == str(delivery_id)
    finally:
        peer.close()


def test_email_goes_to_a_local_smtp_server_with_the_document_attached(tmp_path):
    from aiosmtpd.controller import Controller

    from delivery import deliver
    from delivery.worker import DeliveryWorker

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    settings = make_settings(tmp_path, smtp_port=port)
    try:
        with Store(settings.store.path) as store:
            worker = DeliveryWorker(store, settings, senders(settings))
            deliver(store, settings, "cap", "3", CAP, ["hospitals"], content_type="application/cap+xml",
                    subject="[Actual] Red zone declared")
            worker.run_due()
            assert qw.deliveries(store).iloc[0]["state"] == "delivered"
    finally:
        controller.stop()
    [envelope] = received
    assert envelope.rcpt_tos == ["duty@hospital.test"] and envelope.mail_from == "pheoc@testville.test"
    message = message_from_bytes(envelope.content)
    assert message["Subject"] == "[Actual] Red zone declared"
    parts = {p.get_content_type(): p for p in message.walk()}
    assert parts["application/cap+xml"].get_payload(decode=True) == CAP
    assert parts["application/cap+xml"].get_filename() == "cap-3.xml"


def test_a_failing_channel_shows_on_healthz_and_alerts_after_its_last_attempt(demo_city, tmp_path, webhook_key):
    from delivery import deliver
    from delivery.worker import DeliveryWorker
    from pages import _ids as ids
    from tests.app_helpers import app_on_copy, close_app
    from tests.auth_helpers import sign_in_client
    from tests.test_callback_authz import _body, _components

    dsettings, _ = demo_city
    closed = f"http://127.0.0.1:{free_port()}/cap"  # nobody listens there
    warnings = make_settings(tmp_path, webhook_url=closed, max_attempts=2).warnings
    app, store, settings = app_on_copy(dsettings, tmp_path, (("fail-op", "operator"),), warnings=warnings)
    try:
        worker = DeliveryWorker(store, settings, senders(settings))
        app.server.extensions["pheoc"].components["DeliveryWorker"] = worker
        deliver(store, settings, "cap", "5", CAP, ["police"], content_type="application/cap+xml")
        client = app.server.test_client()
        worker.run_due()
        health = client.get("/healthz").get_json()
        assert health["status"] == "degraded"
        channel = health["components"]["DeliveryWorker"]["channels"]["webhook"]
        assert not channel["ok"] and channel["retrying"] == 1 and "unreachable" in channel["last_error"]
        time.sleep(0.25)
        worker.run_due()
        row = qw.deliveries(store).iloc[0]
        assert row["state"] == "failed" and row["attempts"] == 2
        assert client.get("/healthz").get_json()["components"]["DeliveryWorker"]["channels"]["webhook"]["failed"] == 1
        sign_in_client(client, "fail-op")
        key = next(k for k in app.callback_map if ids.ALERTS_CHANNELS in k)
        text = client.post("/_dash-update-component", json=_body(key, app.callback_map[key], _components(app))) \
            .get_data(as_text=True)
        assert "webhook: FAILING" in text and '"data-ok":"false"' in text.replace(" ", "")
    finally:
        close_app(app, store)


CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from settings import Settings
from store import Store
from delivery.channels import WebhookSender
from delivery.worker import DeliveryWorker
settings = Settings.model_validate_json(open({settings!r}).read())
store = Store(settings.store.path)
w = settings.warnings
DeliveryWorker(store, settings, {{"webhook": WebhookSender({{r.id: r for r in w.recipients}}, 30)}}).start()
time.sleep(60)
"""


def test_nothing_is_lost_when_the_server_is_killed_mid_delivery(tmp_path, webhook_key):
    """A worker process is killed (SIGKILL) while its webhook request is in flight; the next start sends
    the message again and it is delivered."""
    from delivery import deliver
    from delivery.worker import DeliveryWorker

    peer = WebhookPeer(hold=True)
    settings = make_settings(tmp_path, webhook_url=peer.url)
    with Store(settings.store.path) as store:
        [delivery_id] = deliver(store, settings, "cap", "9", CAP, ["police"], content_type="application/cap+xml")
    (tmp_path / "settings.json").write_text(settings.model_dump_json())
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT), settings=str(tmp_path / "settings.json"))],
                             env=os.environ.copy())
    try:
        assert peer.arrived.wait(60), "the worker process did not send"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        peer.release.set()
        with Store(settings.store.path) as store:
            assert qw.deliveries(store).iloc[0]["state"] == "sending"  # it died between claim and finish
            worker = DeliveryWorker(store, settings, senders(settings)).start()
            try:
                wait_for(lambda: qw.deliveries(store).iloc[0]["state"] == "delivered", message="redelivery")
            finally:
                worker.stop()
            row = qw.deliveries(store).iloc[0]
            assert row["attempts"] == 2
        assert [r["headers"]["X-Pheoc-Delivery"] for r in peer.requests] == [str(delivery_id)] * 2
    finally:
        if child.poll() is None:
            child.kill()
        peer.close()
