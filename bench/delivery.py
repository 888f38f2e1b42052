"""Delivery latency per channel: through the outbox (queue, worker, send, record) vs a direct send.

Prints one JSON line per channel. Each channel has a real local peer, as in tests/test_delivery.py:
Mosquitto (the embedded broker, its publisher login and ACL, a subscriber on the warnings topic), a
local HTTP server for the HMAC-signed webhook, and aiosmtpd for e-mail. For each of ``--messages``
CAP-sized messages (4 KiB, the size of a zone warning with its polygons):

* ``outbox``: ``delivery.deliver()`` (one writer transaction) -> the DeliveryWorker (woken at once)
  claims the row, sends it, records the attempt -> the time the peer has the message;
* ``direct`` (baseline): the same sender called in the caller's thread, nothing stored: the floor a
  delivery log with retries and restart safety is paid for against.

Latency is from the call to the peer's receipt (for MQTT, the subscriber's on_message). Reported:
p50 and p95 in milliseconds of both, and the overhead of the outbox at p50.

Run: ``python bench/delivery.py [--messages N]`` (needs Mosquitto, and aiosmtpd from the test extras).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import paho.mqtt.client as paho  # noqa: E402

KEY_ENV = "PHEOC_BENCH_WEBHOOK_KEY"
PAYLOAD_BYTES = 4096


class Peers:
    """The three receivers; ``arrived[marker]`` is the monotonic time each message reached its peer."""

    def __init__(self, warnings_topic: str):
        from aiosmtpd.controller import Controller

        from ingest.broker import EmbeddedBroker

        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        peers = self

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                peers.mark(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.webhook_url = f"http://127.0.0.1:{self.http.server_address[1]}/cap"

        class Mail:
            async def handle_DATA(self, server, session, envelope):
                # The CAP document is a base64 attachment: the subject carries the marker.
                subject = message_from_bytes(envelope.content)["Subject"]
                peers.mark(f"<identifier>{subject}</identifier>".encode())
                return "250 OK"

        from tests.browser import free_port
        self.smtp_port = free_port()
        self.smtp = Controller(Mail(), hostname="127.0.0.1", port=self.smtp_port)
        self.smtp.start()
        self.broker = EmbeddedBroker(topic_prefix="pheoc/bench", warnings_topic=warnings_topic).start()
        login = self.broker.warnings_reader_login
        self.sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-reader", protocol=paho.MQTTv5)
        self.sub.username_pw_set(login.username, login.password)
        ready = threading.Event()
        self.sub.on_connect = lambda c, u, f, rc, p: (c.subscribe(f"{warnings_topic}/#", qos=1), ready.set())
        self.sub.on_message = lambda c, u, m: self.mark(m.payload)
        self.sub.connect(self.broker.host, self.broker.port)
        self.sub.loop_start()
        ready.wait(10)
        time.sleep(0.3)

    def mark(self, data: bytes) -> None:
        marker = data[data.find(b"<identifier>") + 12:data.find(b"</identifier>")].decode(errors="replace")
        with self.cond:
            self.arrived.setdefault(marker, time.monotonic())
            self.cond.notify_all()

    def wait(self, marker: str, timeout: float = 30) -> float:
        with self.cond:
            self.cond.wait_for(lambda: marker in self.arrived, timeout)
            return self.arrived[marker]

    def close(self) -> None:
        self.sub.loop_stop()
        self.sub.disconnect()
        self.broker.stop()
        self.smtp.stop()
        self.http.shutdown()


def payload(marker: str) -> bytes:
    head = f'<?xml version="1.0"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>{marker}' \
           '</identifier><note>'
    tail = "</note></alert>"
    return (head + "x" * (PAYLOAD_BYTES - len(head) - len(tail)) + tail).encode()


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100)
    args = parser.parse_args()
    os.environ[KEY_ENV] = "bench-webhook-key-0123456789abcdef"
    from delivery import deliver
    from delivery.channels import EmailSender, MqttSender, WebhookSender
    from delivery.worker import DeliveryWorker
    from settings import Settings
    from store import Store

    folder = Path(tempfile.mkdtemp(prefix="pheoc-bench-delivery-"))
    peers = Peers("pheoc/warnings")
    try:
        settings = Settings.model_validate({
            "city": {"name": "Bench", "slug": "bench"}, "store": {"path": str(folder / "bench.duckdb")},
            "mqtt": {"mode": "external", "topic_prefix": "pheoc/bench"},
            "warnings": {"worker_interval_s": 1.0, "smtp": {"port": peers.smtp_port}, "recipients": [
                {"id": "public", "name": "Public", "agency": "public", "channel": "mqtt", "acknowledges": False},
                {"id": "police", "name": "Police", "agency": "police", "channel": "webhook",
                 "url": peers.webhook_url, "secret_env": KEY_ENV},
                {"id": "hospitals", "name": "Hospitals", "agency": "hospital", "channel": "email",
                 "email": "duty@hospital.bench"}]}})
        w = settings.warnings
        senders = {"webhook": WebhookSender({r.id: r for r in w.recipients}, 10),
                   "email": EmailSender(w.smtp, 10),
                   "mqtt": MqttSender(peers.broker.host, peers.broker.port, mqtt=settings.mqtt,
                                      login=peers.broker.publisher_login, protocol_v5=True)}
        with Store(settings.store.path) as store:
            worker = DeliveryWorker(store, settings, senders).start()
            recipient_of = {"mqtt": "public", "webhook": "police", "email": "hospitals"}
            for channel, recipient in recipient_of.items():
                target = {"mqtt": "pheoc/warnings/cap/bench", "webhook": peers.webhook_url,
                          "email": "duty@hospital.bench"}[channel]
                direct, outbox = [], []
                for i in range(args.messages):
                    # Alternate the two ways so load on the shared machine falls on both alike.
                    marker = f"direct-{channel}-{i}"
                    t0 = time.monotonic()
                    senders[channel].send({"delivery_id": i, "kind": "cap", "ref": marker, "recipient_id": recipient,
                                           "channel": channel, "target": target, "payload": payload(marker),
                                           "content_type": "application/cap+xml", "subject": marker,
                                           "ack_url": None})
                    direct.append((peers.wait(marker) - t0) * 1000)
                    marker = f"outbox-{channel}-{i}"
                    t0 = time.monotonic()
                    deliver(store, settings, "cap", marker, payload(marker), [recipient],
                            content_type="application/cap+xml", subject=marker, topic_key="bench")
                    outbox.append((peers.wait(marker) - t0) * 1000)
                (d50, d95), (o50, o95) = percentiles(direct), percentiles(outbox)
                print(json.dumps({"bench": "delivery", "channel": channel, "messages": args.messages,
                                  "payload_bytes": PAYLOAD_BYTES, "outbox_p50_ms": round(o50, 2),
                                  "outbox_p95_ms": round(o95, 2), "direct_p50_ms": round(d50, 2),
                                  "direct_p95_ms": round(d95, 2), "outbox_overhead_p50_ms": round(o50 - d50, 2)}),
                      flush=True)
            worker.stop()
    finally:
        peers.close()


if __name__ == "__main__":
    main()
