"""The three ways out: a retained MQTT message, an HMAC-signed webhook POST, an e-mail over SMTP.

Each sender takes one outbox row (a dict of delivery_outbox's columns with its payload) and either
returns (delivered) or raises ``DeliveryError`` with a short reason that the delivery log keeps.
Nothing here retries: the worker decides when to try again.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from settings import MqttConfig, SmtpConfig, WarningRecipient

SIGNATURE_HEADER = "X-Pheoc-Signature"
TIMESTAMP_HEADER = "X-Pheoc-Timestamp"
DELIVERY_HEADER = "X-Pheoc-Delivery"
ACK_HEADER = "X-Pheoc-Ack-Url"


class DeliveryError(RuntimeError):
    """One attempt failed; the message is what the delivery log shows."""


def webhook_signature(key: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>``: the receiver recomputes it with the
    shared key and refuses a stale timestamp, so a captured request cannot be replayed later."""
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookSender:
    """HTTP POST of the payload; any 2xx answer is a delivery."""

    def __init__(self, recipients: dict[str, WarningRecipient], timeout_s: float):
        self._recipients, self._timeout = recipients, timeout_s
        # Only the configured URL, never a proxy from the environment: nothing leaves by another way.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def send(self, row: dict) -> None:
        recipient = self._recipients.get(row["recipient_id"])
        if recipient is None or not recipient.secret_env:
            raise DeliveryError(f"recipient {row['recipient_id']} is no longer configured for webhooks")
        key = os.environ.get(recipient.secret_env)
        if not key:
            raise DeliveryError(f"environment variable {recipient.secret_env} (the webhook key) is not set")
        body = bytes(row["payload"])
        timestamp = str(int(time.time()))
        headers = {"Content-Type": row["content_type"], DELIVERY_HEADER: str(row["delivery_id"]),
                   TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: webhook_signature(key.encode(), timestamp, body),
                   "User-Agent": "pheoc-delivery"}
        if row.get("ack_url"):
            headers[ACK_HEADER] = row["ack_url"]
        request = urllib.request.Request(row["target"], data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read(1024)
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"HTTP {exc.code} from the webhook") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"webhook unreachable: {type(reason).__name__}: {str(reason)[:120]}") from None


class EmailSender:
    """One e-mail per row: the subject, a short text with the acknowledgement link, the payload attached."""

    def __init__(self, smtp: SmtpConfig, timeout_s: float):
        self._smtp, self._timeout = smtp, timeout_s

    def message(self, row: dict) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self._smtp.from_address
        msg["To"] = row["target"]
        msg["Subject"] = row.get("subject") or f"pheoc {row['kind']} {row['ref']}"
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self._smtp.from_address.rpartition("@")[2] or "pheoc")
        msg[DELIVERY_HEADER] = str(row["delivery_id"])
        lines = [msg["Subject"], ""]
        if row.get("ack_url"):
            lines += ["Please acknowledge receipt:", row["ack_url"], ""]
        lines.append("The document is attached.")
        msg.set_content("\n".join(lines))
        maintype, _, subtype = str(row["content_type"]).partition("/")
        extension = "xml" if "xml" in subtype else subtype.split("+")[0] or "bin"
        msg.add_attachment(bytes(row["payload"]), maintype=maintype or "application",
                           subtype=subtype or "octet-stream", filename=f"{row['kind']}-{row['ref']}.{extension}")
        return msg

    def send(self, row: dict) -> None:
        cfg = self._smtp
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=self._timeout) as client:
                if cfg.starttls:
                    client.starttls(context=ssl.create_default_context())
                if cfg.username_env:
                    user, password = os.environ.get(cfg.username_env), os.environ.get(cfg.password_env or "")
                    if not user or not password:
                        raise DeliveryError(f"environment variables {cfg.username_env}/{cfg.password_env} "
                                            "(the SMTP login) are not set")
                    client.login(user, password)
                refused = client.send_message(self.message(row))
        except smtplib.SMTPException as exc:
            raise DeliveryError(f"SMTP: {type(exc).__name__}: {str(exc)[:120]}") from None
        except OSError as exc:
            raise DeliveryError(f"SMTP server unreachable: {type(exc).__name__}: {str(exc)[:120]}") from None
        if refused:
            raise DeliveryError(f"SMTP refused {', '.join(refused)}")


class MqttSender:
    """A retained QoS 1 message per row, acknowledged by the broker (PUBACK) before it counts.

    The MQTT client lives in ingest/ (the one package that imports paho): the same publisher the
    simulator uses, logged in as an identity the broker's ACL lets write the warnings topic.
    """

    def __init__(self, host: str, port: int, *, mqtt: MqttConfig, login=None, protocol_v5: bool = True,
                 client_id: str = "pheoc-delivery", timeout_s: float = 10.0):
        self._args = dict(mqtt=mqtt, login=login, client_id=client_id, protocol_v5=protocol_v5)
        self._host, self._port, self._timeout = host, port, timeout_s
        self._publisher = None
        self._lock = threading.Lock()

    def send(self, row: dict) -> None:
        from ingest.mqtt import MqttPublisher

        with self._lock:
            try:
                if self._publisher is None:
                    self._publisher = MqttPublisher(self._host, self._port, **self._args).connect(self._timeout)
                self._publisher.publish(row["target"], bytes(row["payload"]), retain=True, timeout=self._timeout)
            except (ConnectionError, TimeoutError, RuntimeError, OSError) as exc:
                self._drop()
                raise DeliveryError(f"MQTT: {type(exc).__name__}: {str(exc)[:120]}") from None

    def _drop(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.close()
            except Exception:  # a broken connection may fail to close; it is dropped either way
                pass
            self._publisher = None

    def close(self) -> None:
        with self._lock:
            self._drop()
