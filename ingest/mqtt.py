"""MQTT ingest that loses nothing: QoS 1, a persistent session, and acknowledgement after commit.

Guarantees and how they are kept (MQTT 5.0, OASIS Standard, sections 3.1.2.4, 3.1.2.11, 4.4, 4.9;
paho-mqtt 2.x with ``CallbackAPIVersion.VERSION2``):

- A stable client id, ``clean_start=False`` and a Session Expiry Interval make the session
  persistent: QoS 1 messages published while pheoc is down are queued by the broker and delivered
  when it reconnects. The id is ``mqtt.client_id`` plus a random part made once per installation
  (:func:`installation_client_id`): stable across restarts, not guessable by another client, which
  could otherwise take the session over (the broker's passwords and ACLs keep strangers out).
- ``manual_ack=True``: a message is acknowledged (PUBACK) only after the DuckDB transaction holding
  its batch has committed. A crash before that leaves it unacknowledged, and the broker delivers
  it again; the store's natural keys make the replay a counted duplicate, never a second row.
- An acknowledgement is sent only on the connection the message arrived on: a packet id is free
  for reuse once acknowledged, and after a reconnect (certainly after a lost session) a late
  PUBACK could acknowledge a different, uncommitted message. Messages whose connection has gone
  are redelivered by the broker instead and count as duplicates.
- ``on_message`` only appends the message to a bounded buffer. When the buffer is full it waits:
  the broker and TCP hold the rest (backpressure; nothing is dropped).
- A batching thread takes up to ``ingest.batch_max_rows`` messages or waits at most
  ``ingest.batch_max_ms``, validates them (oversized, non-UTF-8 and malformed payloads, and objects
  that repeat a key, are quarantined with their raw bytes; each element of an array is judged on
  its own), and submits one batch to the store's writer. An acking thread
  waits for each commit in order, retries a failed one, and then acknowledges its messages. The
  two threads overlap validation of the next batch with the commit of the previous one.
- Every callback catches its own exceptions (counted and logged); a watchdog restarts the network
  loop if it ever dies and reconnects a client left disconnected.

Readings, the bulk of the traffic, go through :func:`fast_reading_row`, which accepts only
well-formed records and produces exactly the row that ``ingest.records.validate_record`` would
(their content hash is computed by the store, in SQL: store/row_hash.py); anything unusual is left to ``validate_record`` itself,
and other kinds go through ``BatchBuilder.add``, so the reason codes are the same as for files.
Payloads are parsed by orjson, and strictly (``ingest.jsontext.loads_strict``) only when a quote
count cannot prove that no key repeats (:func:`loads_record_json`). The PUBACKs of a committed
batch go out as one write (:func:`send_pubacks`). Together these keep the ingestor within reach of
a bare paho subscriber (see bench/ingest.py).
"""
from __future__ import annotations

import itertools
import json
import logging
import math
import os
import queue
import re
import secrets
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pandas as pd
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.batch import BatchBuilder, commit_rows_one_by_one, describe_exception
from ingest.broker import Login
from ingest.context import ContextProvider
from ingest.jsontext import DuplicateKey, loads_strict
from ingest.records import FIELD_SPECS, Reject, ValidationContext, validate_record
from ingest.topics import TopicLayout, TopicRoute
from settings import ConfigError, IngestConfig, MqttConfig
from store import Store, StoreClosed
from store.schema import INGEST_TABLES
from store.store import BatchResult, IngestBatch

log = logging.getLogger(__name__)

# MQTT's largest Receive Maximum. The client acknowledges a whole batch at once after its commit,
# so the broker must be allowed to have at least a batch in flight; a small window (Mosquitto's
# default is 20) would cap throughput at a window per commit.
RECEIVE_MAXIMUM = 65_535
KEEPALIVE_S = 30
RECONNECT_MIN_DELAY_S = 1
RECONNECT_MAX_DELAY_S = 10
WATCHDOG_INTERVAL_S = 0.5
IDLE_WAIT_S = 0.5  # how often an idle batching thread looks up to notice stop()
PIPELINE_DEPTH = 2  # batches submitted but not yet acknowledged: one committing, one ready
COMMIT_RETRY_BASE_S = 0.2
COMMIT_RETRY_MAX_S = 5.0
# After this many failed commits of the same batch, commit it row by row so that one record the
# store refuses (a bug or a constraint validation missed) cannot stop all ingest behind it.
ISOLATE_AFTER_ATTEMPTS = 3
UTF8_BOM = b"\xef\xbb\xbf"
MAX_UNACKNOWLEDGED_PUBLISHES = 20_000  # MqttPublisher(wait=False) waits for the oldest beyond this
PUBACK = 0x40
_PUBACK_HEAD = (PUBACK << 24) | (2 << 16)  # fixed header byte, remaining length 2, then the packet id
_READING_FIELDS = frozenset(FIELD_SPECS["reading"])
_READING_FIELDS_ORDER = INGEST_TABLES["reading"].columns
_READING_COLUMNS = (*_READING_FIELDS_ORDER, "raw_payload")  # no content_hash: the store computes it
# Beyond 2**53 a float cannot hold every integer, and a reading's value is stored as a float: such
# numbers (and such seq numbers, rare enough) are left to the general validator to judge.
_EXACT_FLOAT_INT = 2 ** 53
_from_iso = datetime.fromisoformat
_isfinite = math.isfinite
_UTC = timezone.utc
_REJECTED = object()  # MessageBatch._parse: the payload was quarantined


@dataclass(frozen=True, slots=True)
class MqttStats:
    """Counters for /healthz: counts only, nothing from the payloads."""
    connected: bool
    connections: int  # accepted CONNACKs: more than one means the connection was lost (or taken over)
    received: int
    committed_batches: int
    acked: int
    errors: int
    loop_restarts: int
    queued: int
    accepted: int
    rejected: int
    duplicate: int
    conflicting: int
    last_error: str | None


# One received message, handed from the network thread to the batching thread as a plain tuple
# (topic, payload, mid, qos, epoch): built once per message on the hottest path, where a tuple
# costs a quarter of a NamedTuple and a tenth of a frozen dataclass. ``epoch`` numbers the
# connection it arrived on (acknowledgements are valid only on that one).
_Received = tuple


class BoundedBuffer:
    """A FIFO with a capacity: put() waits while it is full; take() hands over many at once.

    Lighter than ``queue.Queue`` on the hot path: the taker says how many items it wants before
    being woken, so a fast producer does not wake it once per message. Built for one producer
    (the network thread) and one consumer (the batching thread).
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: deque = deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._enough = threading.Condition(self._lock)
        self._want = 1 << 62  # nobody waiting: puts do not notify
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: Any) -> bool:
        """Append, waiting while full; False (not appended) once the buffer is closed."""
        with self._lock:
            while len(self._items) >= self.capacity and not self._closed:
                self._not_full.wait()
            if self._closed:
                return False
            self._items.append(item)
            if len(self._items) >= self._want:
                self._enough.notify()
            return True

    def take(self, max_items: int, min_items: int, timeout: float) -> list:
        """Wait up to ``timeout`` s for ``min_items`` (fewer if closed), return at most ``max_items``."""
        min_items = max(1, min(min_items, self.capacity))
        with self._lock:
            if len(self._items) < min_items and not self._closed:
                deadline = time.monotonic() + timeout
                self._want = min_items
                try:
                    while len(self._items) < min_items and not self._closed:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._enough.wait(remaining)
                finally:
                    self._want = 1 << 62
            n = min(max_items, len(self._items))
            popleft = self._items.popleft
            out = [popleft() for _ in range(n)]
            if out:
                self._not_full.notify()
            return out

    def close(self) -> None:
        """Stop accepting; wake everyone. Items already in stay takeable."""
        with self._lock:
            self._closed = True
            self._not_full.notify_all()
            self._enough.notify_all()


def fast_reading_row(record: Any, sensor_ids: frozenset[str], check_registries: bool,
                     latest_allowed: datetime, earliest_allowed: datetime) -> tuple | None:
    """The stored row of a well-formed reading, or None to let the general validator judge it.

    Returns (sensor_id, seq, ts, metric, value, unit), equal to what
    ``validate_record("reading", ...)`` gives for the same record; it only
    skips the per-field dispatch that makes the general path several times slower. Only ASCII
    text is taken here: the validator checks other text for JSON's lone-surrogate escapes.
    """
    if type(record) is not dict or not _READING_FIELDS.issuperset(record):
        return None
    get = record.get
    sensor_id, seq, ts, metric, value, unit = get("sensor_id"), get("seq"), get("ts"), get("metric"), \
        get("value"), get("unit")
    if type(sensor_id) is not str or type(seq) is not int or type(ts) is not str or type(metric) is not str:
        return None
    if not 0 <= seq < _EXACT_FLOAT_INT:
        return None
    value_type = type(value)
    if value_type is float:
        if not _isfinite(value):
            return None
    elif value_type is int and -_EXACT_FLOAT_INT < value < _EXACT_FLOAT_INT:
        value = float(value)
    else:
        return None
    if not (sensor_id.isascii() and metric.isascii()):
        return None
    sensor_id = sensor_id.strip()
    metric = metric.strip()
    if not sensor_id or not metric:
        return None
    if unit is not None:
        if type(unit) is not str or not unit.isascii():
            return None
        unit = unit.strip() or None
    try:
        when = _from_iso(ts)
        if when.tzinfo is None:
            return None
        when = when.astimezone(_UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset moves year 1 or 9999 out of range
        return None
    if not earliest_allowed <= when <= latest_allowed:
        return None
    if check_registries and sensor_id not in sensor_ids:
        return None
    return sensor_id, seq, when, metric, value, unit


# ---- JSON payloads ------------------------------------------------------------------------------
def _keys_provably_unique(data: bytes, doc: dict) -> bool:
    """True when counting quotes proves that no object in ``data`` repeats a key.

    orjson, like the standard library, keeps the last of two equal keys, and it has no hook to
    refuse them; ``loads_strict`` does, but takes about 5 µs for a reading where orjson takes 0.7 µs
    (measured here). This check keeps orjson for the ordinary message. The text holds 2 * (key tokens + string values) quotes, plus one per escaped
    quote. ``doc`` has one entry per distinct top-level key, and each of its string values was a
    string token. If the quotes number exactly 2 * (len(doc) + its string values), the text has no
    key token besides those distinct top-level keys: no key repeats (and no object is nested).
    Anything else (a nested object, a list of strings, an escaped quote, a duplicate) is not
    proved, and the caller parses it strictly. Costs well under a microsecond per reading.
    """
    strings = len(doc)
    for value in doc.values():
        if type(value) is str:
            strings += 1
    return data.count(b'"') == 2 * strings


def loads_record_json(data: bytes) -> Any:
    """One JSON document (a message, or one element of an array), refusing repeated keys.

    Raises ``DuplicateKey``, ``UnicodeDecodeError`` (not UTF-8), or another ``ValueError`` /
    ``RecursionError`` (not JSON). A UTF-8 byte-order mark in front is accepted, as in files.
    """
    try:
        doc = orjson.loads(data)  # several times faster than the standard library, on every message
    except orjson.JSONDecodeError:
        # orjson refuses some text the standard library reads (NaN, integers beyond 64 bits, a BOM):
        # judged by the standard library, every message is read as before orjson was used.
        return _loads_strict_after_bom(data)
    if type(doc) is dict and not _keys_provably_unique(data, doc):
        return loads_strict(data)
    return doc


def _loads_strict_after_bom(data: bytes) -> Any:
    try:
        return loads_strict(data)
    except (ValueError, RecursionError):
        # Some publishers prefix a UTF-8 byte-order mark; accept it as the file ingestor does.
        # Checked only after a failure, to keep the common path free of it.
        if not data.startswith(UTF8_BOM):
            raise
        return loads_strict(data[len(UTF8_BOM):])


_JSON_SPACE = re.compile(r"[ \t\n\r]*")  # RFC 8259 §2: the four whitespace characters
_ELEMENT_SCANNER = json.JSONDecoder()  # finds where each element ends; its values are not used


def json_array_elements(text: str) -> list[str]:
    """The source text of each element of the JSON array ``text`` (a BOM in front is allowed).

    Each element of an MQTT array payload is judged on its own, and a bad one is quarantined with
    its own bytes (a repeated key included, which a parsed and re-encoded element would have lost).
    Raises ValueError (or RecursionError) when ``text`` is not exactly one well-formed array.
    """
    i = _JSON_SPACE.match(text, 1 if text.startswith("\ufeff") else 0).end()
    if text[i:i + 1] != "[":
        raise ValueError("not a JSON array")
    i = _JSON_SPACE.match(text, i + 1).end()
    elements: list[str] = []
    if text[i:i + 1] != "]":
        while True:
            _, end = _ELEMENT_SCANNER.raw_decode(text, i)
            elements.append(text[i:end])
            i = _JSON_SPACE.match(text, end).end()
            if text[i:i + 1] == "]":
                break
            if text[i:i + 1] != ",":
                raise ValueError(f"expected ',' or ']' after an array element at character {i}")
            i = _JSON_SPACE.match(text, i + 1).end()
    if _JSON_SPACE.match(text, i + 1).end() != len(text):
        raise ValueError(f"extra data after the array at character {i + 1}")
    return elements


def _is_array(payload: bytes) -> bool:
    body = payload[len(UTF8_BOM):] if payload.startswith(UTF8_BOM) else payload
    return body.lstrip(b" \t\n\r")[:1] == b"["


class MessageBatch:
    """Turns a run of MQTT messages into one IngestBatch: readings on the fast path, the rest
    (and every reading the fast path declines) through BatchBuilder."""

    def __init__(self, source: str, layout: TopicLayout, ctx: ValidationContext, max_payload_bytes: int):
        self.builder = BatchBuilder(source, "mqtt")
        self._source = source
        self._layout = layout
        self._ctx = ctx
        self._max_payload = max_payload_bytes
        self._readings: list[tuple] = []
        self._latest = ctx.now + ctx.max_future_skew
        day = ctx.earliest_date
        self._earliest = datetime(day.year, day.month, day.day, tzinfo=_UTC)
        self._check = ctx.check_registries
        self._sensor_ids = ctx.sensor_ids

    def add_message(self, topic: str, payload: bytes) -> None:
        """Validate every record of one message; a bad one becomes a quarantine row."""
        route = self._layout.route(topic)
        if route.kind is None:
            self.builder.reject("unknown_kind", f"topic {topic!r:.200} is not part of the layout under "
                                f"{self._layout.prefix!r}", payload, source=f"mqtt:{topic}", record_key=topic)
            return
        if len(payload) > self._max_payload:
            self._reject(route, topic, payload, "payload_too_large", f"{len(payload)} bytes > {self._max_payload}")
            return
        if payload[:1] == b"{":
            # The ordinary message, one object: loads_record_json written out (this runs for every message).
            try:
                record = orjson.loads(payload)
            except orjson.JSONDecodeError:
                record = self._parse(route, topic, payload, _loads_strict_after_bom)
            else:
                if not _keys_provably_unique(payload, record):
                    record = self._parse(route, topic, payload, loads_strict)
        elif _is_array(payload):
            self._add_array(route, topic, payload)
            return
        else:
            record = self._parse(route, topic, payload)
        if record is not _REJECTED:
            self._add_one(route, record, payload, topic)

    def _parse(self, route: TopicRoute, topic: str, data: bytes, loads=loads_record_json) -> Any:
        """The parsed document, or _REJECTED once it is quarantined with its reason."""
        try:
            return loads(data)
        except DuplicateKey as exc:
            self._reject(route, topic, data, "duplicate_key", str(exc))
        except UnicodeDecodeError as exc:
            self._reject(route, topic, data, "not_utf8", f"byte {exc.start} is not UTF-8")
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            self._reject(route, topic, data, "malformed_json", str(exc)[:200] or type(exc).__name__)
        return _REJECTED

    def _add_array(self, route: TopicRoute, topic: str, payload: bytes) -> None:
        """Each element on its own: a bad one is quarantined with its own bytes, the others are stored."""
        try:
            elements = json_array_elements(payload.decode("utf-8"))
        except UnicodeDecodeError as exc:
            self._reject(route, topic, payload, "not_utf8", f"byte {exc.start} is not UTF-8")
            return
        except (ValueError, RecursionError) as exc:  # not one well-formed array: nothing of it is taken
            self._reject(route, topic, payload, "malformed_json", str(exc)[:200] or type(exc).__name__)
            return
        for element in elements:
            raw = element.encode("utf-8")
            record = self._parse(route, topic, raw)
            if record is not _REJECTED:
                self._add_one(route, record, raw, topic)

    def _reject(self, route: TopicRoute, topic: str, payload: bytes, code: str, detail: str) -> None:
        self.builder.reject(code, detail, payload, kind=route.kind, source=f"mqtt:{topic}", record_key=topic)

    def _add_one(self, route: TopicRoute, record: Any, raw: bytes, topic: str) -> None:
        try:
            self._add_record(route, record, raw, topic)
        except Exception as exc:  # a record the code does not foresee: keep it for a person, go on
            log.warning("mqtt: a record on %r could not be processed", topic[:100], exc_info=True)
            self._reject(route, topic, raw, "unexpected_error", describe_exception(exc))

    def _add_record(self, route: TopicRoute, record: Any, raw: bytes, topic: str) -> None:
        if route.id_field is not None and type(record) is dict:
            given = record.get(route.id_field)
            if given is None or (type(given) is str and not given.strip()):
                record[route.id_field] = route.id_value
            elif type(given) is str and given != route.id_value and given.strip() != route.id_value:
                self._reject(route, topic, raw, "topic_mismatch",
                             f"{route.id_field} {given!r:.60} in the payload, {route.id_value!r:.60} in the topic")
                return
            # a non-text id is left to validation, which reports wrong_type
        if route.kind != "reading":
            self.builder.add(route.kind, record, raw, self._ctx, source=f"mqtt:{topic}")
            return
        row = fast_reading_row(record, self._sensor_ids, self._check, self._latest, self._earliest)
        if row is not None:
            self._readings.append((*row, raw))
            return
        # The general path, as BatchBuilder.add does it, but into the same list so that readings
        # keep their arrival order (the first of two conflicting records is the one stored).
        try:
            full = validate_record("reading", record, self._ctx)
        except Reject as rej:
            self.builder.reject(rej.code, rej.detail, raw, kind="reading", source=f"mqtt:{topic}")
            return
        self._readings.append((*(full[c] for c in _READING_FIELDS_ORDER), raw))

    def reject_unprocessable(self, topic: str, payload: bytes, exc: BaseException) -> None:
        """A message the code itself failed on (a bug): keep it for a person rather than lose it."""
        self.builder.reject("unexpected_error", describe_exception(exc), payload, source=f"mqtt:{topic}",
                            record_key=topic)

    def build(self) -> IngestBatch:
        batch = self.builder.build()
        if not self._readings:
            return batch
        frame = pd.DataFrame(dict(zip(_READING_COLUMNS, zip(*self._readings))))
        return IngestBatch(source=batch.source, channel=batch.channel,
                           rows_by_kind={**batch.rows_by_kind, "reading": frame}, quarantined=batch.quarantined)


def send_pubacks(client: paho.Client, mids: Sequence[int]) -> None:
    """Queue the PUBACKs of a committed batch as one write instead of one per message.

    ``client.ack()`` queues a 4-byte packet, wakes the network thread and costs it one send()
    per message; for a 5,000-message batch that is most of the acknowledging cost, paid in the
    thread that also reads the messages. A PUBACK with reason "success" and no properties is
    the same 4 bytes in MQTT 3.1.1 and 5.0 (fixed header 0x40, remaining length 2, packet id), so
    the batch's packets are concatenated and queued once through paho's internal packet queue
    (the same call ``ack()`` makes; paho is pinned at 2.2). If that internal is ever missing, this
    falls back to the public one-by-one ``ack()``.
    """
    queue_packet = getattr(client, "_packet_queue", None)
    if queue_packet is None:
        for mid in mids:
            client.ack(mid, 1)
        return
    packet = struct.pack(f"!{len(mids)}I", *[_PUBACK_HEAD | mid for mid in mids])
    queue_packet(PUBACK, packet, 0, 0)


def _connect_properties(mqtt: MqttConfig) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = mqtt.session_expiry_s
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props


def _new_client(mqtt: MqttConfig, client_id: str, protocol_v5: bool, *, manual_ack: bool,
                login: Login | None) -> paho.Client:
    """A paho client logging in as ``login`` (the embedded broker's), else with the credentials
    the config names (``mqtt.username_env`` and ``mqtt.password_env``), over TLS if ``mqtt.tls``."""
    if protocol_v5:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
                             manual_ack=manual_ack)
    else:  # amqtt speaks 3.1.1 only; clean_session=False is its persistent session
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311,
                             clean_session=False, manual_ack=manual_ack)
    user, password = (login.username, login.password) if login else mqtt.credentials()
    if user is not None:
        client.username_pw_set(user, password)
    if mqtt.tls:
        _set_tls(client, mqtt)
    client.reconnect_delay_set(RECONNECT_MIN_DELAY_S, RECONNECT_MAX_DELAY_S)
    return client


def _set_tls(client: paho.Client, mqtt: MqttConfig) -> None:
    """TLS with the configured files (None: the system's CA certificates, no client certificate).

    Each file is loaded once here first, so that a missing, unreadable or wrong file stops start-up
    with a message naming its key rather than failing inside paho, or at the first connection.
    """
    ca, cert, key = mqtt.tls_ca_file, mqtt.tls_cert_file, mqtt.tls_key_file
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"config 'mqtt.tls_ca_file': {ca} is not a readable PEM CA certificate ({exc})") from None
    if cert is not None:
        for name, path in (("mqtt.tls_cert_file", cert), ("mqtt.tls_key_file", key)):
            if not os.access(path, os.R_OK):
                raise ConfigError(f"config '{name}': {path} does not exist or cannot be read")
        try:
            # A callable password: an encrypted key fails here instead of OpenSSL prompting on a terminal.
            context.load_cert_chain(cert, key, password=_no_key_password)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"config 'mqtt.tls_cert_file'/'mqtt.tls_key_file': {cert} and {key} are not a "
                              f"matching PEM certificate and unencrypted key ({exc})") from None
    client.tls_set(ca_certs=None if ca is None else str(ca), certfile=None if cert is None else str(cert),
                   keyfile=None if key is None else str(key))


def _no_key_password() -> bytes:
    raise ssl.SSLError("the key is encrypted; pheoc needs an unencrypted key readable only by its own user")


# The random part of the client id: 64 bits, beyond the reach of a publisher trying ids.
CLIENT_ID_SUFFIX_BYTES = 8


def installation_client_id(configured: str, id_file: Path) -> str:
    """The ingestor's client id for this installation: ``<configured>-<random hex>``, made once and
    kept in ``id_file`` (beside the database) so that every later start resumes the same session.

    Why not ``mqtt.client_id`` as it is: MQTT gives a session to whoever connects with its id and
    disconnects the client holding it (MQTT 5.0 §3.1.4), so any identity the broker lets in could
    throw the ingestor off, again and again, with a known id. Why stable: the persistent session
    that keeps messages while pheoc is away is found by this id. The file is taken as it is: to
    resume a session of an older id (e.g. plain ``pheoc-ingest`` before an upgrade), write it there.
    """
    try:
        kept = id_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        if not kept.startswith(f"{configured}-") and kept != configured:
            log.warning("mqtt.client_id is %r, but this installation's client id is %r (from %s), which is "
                        "used so that its session is resumed; delete that file to start a new session",
                        configured, kept, id_file)
        return kept
    made = f"{configured}-{secrets.token_hex(CLIENT_ID_SUFFIX_BYTES)}"
    id_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(id_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another start made it a moment ago: use that one
        return installation_client_id(configured, id_file)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(made + "\n")
    return made


def _backoff_s(attempt: int) -> float:
    """Exponential back-off between retries, capped."""
    return min(COMMIT_RETRY_MAX_S, COMMIT_RETRY_BASE_S * 2 ** attempt)


def _failed_future(exc: BaseException) -> Future:
    fut: Future = Future()
    fut.set_exception(exc)
    return fut


class MqttIngestor:
    """Subscribes under the topic prefix and stores every message's records through the store.

    ``host``/``port`` override the config (the embedded broker picks its port at start);
    ``protocol_v5=False`` is for amqtt. ``login`` is the embedded broker's ingest login; without
    it, the credentials named by the config are used. ``queue_max_messages`` bounds the buffer
    between the network thread and the batching thread (default: two batches).
    """

    def __init__(self, store: Store, contexts: ContextProvider, mqtt: MqttConfig, ingest: IngestConfig, *,
                 host: str | None = None, port: int | None = None, protocol_v5: bool = True,
                 login: Login | None = None, queue_max_messages: int | None = None):
        self._store = store
        self._contexts = contexts
        self._mqtt = mqtt
        self._ingest = ingest
        self.host = host or mqtt.host
        self.port = port if port is not None else mqtt.port
        self._v5 = protocol_v5
        self.layout = TopicLayout(mqtt.topic_prefix)
        self._source = f"mqtt:{self.layout.prefix}"
        self._buffer = BoundedBuffer(queue_max_messages or 2 * ingest.batch_max_rows)
        self._pending: queue.Queue = queue.Queue(maxsize=PIPELINE_DEPTH)
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._resync = threading.Event()  # set when a message was not handed over: reconnect
        self._disconnecting_on_purpose = False
        self._epoch = 0
        self._epoch_lock = threading.Lock()  # an ack is queued only while its connection is current
        self._lock = threading.Lock()  # guards the counters more than one thread writes
        self._received = 0
        self._committed_batches = 0
        self._acked = 0
        self._errors = 0
        self._loop_restarts = 0
        self._connections = 0
        self._totals = BatchResult()
        self._last_error: str | None = None
        self._client = _new_client(mqtt, mqtt.client_id, protocol_v5, manual_ack=True, login=login)
        # Our callbacks catch their own exceptions; this is the second line of defence.
        self._client.suppress_exceptions = True
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._threads: list[threading.Thread] = []
        self._started = False

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> "MqttIngestor":
        if self._started:
            return self
        self._started = True
        self._threads = [threading.Thread(target=self._batch_loop, name="mqtt-batcher", daemon=True),
                         threading.Thread(target=self._ack_loop, name="mqtt-acker", daemon=True),
                         threading.Thread(target=self._watchdog_loop, name="mqtt-watchdog", daemon=True)]
        for t in self._threads:
            t.start()
        self._connect_async()
        self._client.loop_start()
        return self

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """True once connected and subscribed (tests and the worker wait for this)."""
        return self._subscribed.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Commit and acknowledge what was received, then disconnect. The session stays on the
        broker, which keeps queueing for it until it returns (or the session expires)."""
        if not self._started or self._stopping.is_set():
            return
        self._stopping.set()
        batcher, acker, watchdog = self._threads
        watchdog.join(timeout)
        self._buffer.close()  # the network thread stops handing over; what is in still gets stored
        batcher.join(timeout)
        self._pending.put(None)
        acker.join(timeout)
        self._client.disconnect()  # queued after the last PUBACKs, which therefore go out first
        self._client.loop_stop()

    def __enter__(self) -> "MqttIngestor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stats(self) -> MqttStats:
        with self._lock:
            t = self._totals
            return MqttStats(self._client.is_connected(), self._connections, self._received, self._committed_batches,
                             self._acked, self._errors, self._loop_restarts, len(self._buffer), t.accepted,
                             t.rejected, t.duplicate, t.conflicting, self._last_error)

    def _record_error(self, what: str, exc: BaseException | None = None) -> None:
        with self._lock:
            self._errors += 1
            # Only the exception's type: its text can quote a record (e.g. a case id), and this
            # goes to /healthz, which must hold nothing personal. The log keeps the detail.
            self._last_error = f"{what}: {type(exc).__name__}" if exc else what
        log.warning("mqtt ingest: %s", what, exc_info=exc)

    def _connect_async(self) -> None:
        if self._v5:
            self._client.connect_async(self.host, self.port, KEEPALIVE_S, clean_start=False,
                                       properties=_connect_properties(self._mqtt))
        else:
            self._client.connect_async(self.host, self.port, KEEPALIVE_S)

    # ---- network thread callbacks: minimal work, never raise -----------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            if reason_code.is_failure:
                self._record_error(f"broker refused the connection: {reason_code}")
                return
            with self._epoch_lock:
                self._epoch += 1  # acks for messages of earlier connections are dropped from now on
            with self._lock:
                self._connections += 1
            if self._v5:
                # retainHandling=1: retained messages only for a new subscription, not on every reconnect
                client.subscribe(self.layout.subscription, options=SubscribeOptions(qos=1, retainHandling=1))
            else:
                client.subscribe(self.layout.subscription, qos=1)
            log.info("mqtt connected to %s:%d (session present: %s)", self.host, self.port, flags.session_present)
        except Exception as exc:
            self._record_error("on_connect failed", exc)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        try:
            if any(rc.is_failure for rc in reason_codes):
                self._record_error(f"subscription refused: {reason_codes}")
            else:
                self._subscribed.set()
        except Exception as exc:
            self._record_error("on_subscribe failed", exc)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            with self._epoch_lock:
                # From here on, acks for this connection's messages are withheld: paho drops
                # unsent packets when it reconnects, and one queued after that would go out on
                # the new connection.
                self._epoch += 1
            self._subscribed.clear()
            if not self._stopping.is_set():
                log.warning("mqtt disconnected (%s); paho reconnects", reason_code)
        except Exception as exc:
            self._record_error("on_disconnect failed", exc)

    def _on_message(self, client, userdata, message) -> None:
        try:
            self._received += 1
            # Blocks while the buffer is full: backpressure. False only while stopping: the
            # message then stays unacknowledged and the broker delivers it again next time.
            self._buffer.put((message.topic, message.payload, message.mid, message.qos, self._epoch))
        except Exception as exc:
            # Not acknowledged, so not lost: the broker redelivers it on the next connection,
            # which the watchdog makes at once.
            self._record_error("on_message failed", exc)
            self._resync.set()

    # ---- batching thread -----------------------------------------------------------------------
    def _batch_loop(self) -> None:
        max_rows = self._ingest.batch_max_rows
        max_wait = self._ingest.batch_max_ms / 1000
        buffer = self._buffer
        while True:
            try:
                items = buffer.take(max_rows, 1, IDLE_WAIT_S)
                if not items:
                    if buffer.closed:
                        return
                    continue
                deadline = time.monotonic() + max_wait
                while len(items) < max_rows and not buffer.closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    want = max_rows - len(items)
                    items.extend(buffer.take(want, want, remaining))
                if not self._submit(items):
                    return
            except Exception as exc:  # never let the batching thread die
                self._record_error("batching failed", exc)
                time.sleep(COMMIT_RETRY_BASE_S)

    def _build(self, items: Sequence[_Received]) -> IngestBatch:
        ctx = self._contexts.get()
        batch = MessageBatch(self._source, self.layout, ctx, self._ingest.max_payload_bytes)
        add = batch.add_message
        for topic, payload, _mid, _qos, _epoch in items:
            try:
                add(topic, payload)
            except Exception as exc:
                self._record_error(f"message on {topic!r:.100} could not be processed", exc)
                batch.reject_unprocessable(topic, payload, exc)
        return batch.build()

    def _submit(self, items: list[_Received]) -> bool:
        """Validate and hand one batch to the store; False if stopping made that impossible."""
        attempt = 0
        while True:
            try:
                batch = self._build(items)
                break
            except Exception as exc:  # e.g. the registries could not be read: retry, drop nothing
                attempt += 1
                self._record_error(f"building a batch failed (attempt {attempt})", exc)
                if self._stopping.wait(_backoff_s(attempt)):
                    return False
        fut = self._write(batch)
        if fut is None:
            return False
        self._pending.put((batch, fut, items))  # waits while PIPELINE_DEPTH batches are unacknowledged
        return True

    def _write(self, batch: IngestBatch) -> Future | None:
        """Hand a batch to the store's writer: None once the store is closed; any other error becomes a
        failed future, so the ack thread retries it like a failed commit."""
        try:
            return self._store.write_batch(batch)
        except StoreClosed:
            return None
        except Exception as exc:
            return _failed_future(exc)

    # ---- acking thread -------------------------------------------------------------------------
    def _ack_loop(self) -> None:
        while True:
            job = self._pending.get()
            if job is None:
                return
            batch, fut, items = job
            try:
                result = self._await_commit(batch, fut)
                if result is None:
                    continue  # not committed: left unacknowledged for the broker to redeliver
                with self._lock:
                    self._totals = self._totals + result
                    self._committed_batches += 1
                self._ack(items)
            except Exception as exc:
                self._record_error("acknowledging failed", exc)

    def _await_commit(self, batch: IngestBatch, fut: Future) -> BatchResult | None:
        attempt = 0
        while True:
            try:
                return fut.result()
            except StoreClosed:
                return None
            except Exception as exc:
                attempt += 1
                self._record_error(f"commit failed (attempt {attempt})", exc)
            if self._stopping.is_set():
                return None
            if attempt >= ISOLATE_AFTER_ATTEMPTS:
                try:
                    return commit_rows_one_by_one(self._store, batch)
                except StoreClosed:
                    return None
                except Exception as exc:
                    self._record_error("row-by-row commit failed", exc)
            if self._stopping.wait(_backoff_s(attempt)):
                return None
            fut = self._write(batch)
            if fut is None:
                return None

    def _ack(self, items: Sequence[_Received]) -> None:
        """Acknowledge a committed batch, only for messages that came on the current connection."""
        with self._epoch_lock:
            epoch = self._epoch
            mids = [mid for _topic, _payload, mid, qos, e in items if qos == 1 and e == epoch]
            stale = sum(1 for item in items if item[3] == 1 and item[4] != epoch)
            if mids:
                send_pubacks(self._client, mids)
        with self._lock:
            self._acked += len(mids)
        if stale:
            log.info("mqtt: %d committed messages arrived on an earlier connection; the broker redelivers "
                     "them and they count as duplicates", stale)

    # ---- watchdog ------------------------------------------------------------------------------
    def _watchdog_loop(self) -> None:
        while not self._stopping.wait(WATCHDOG_INTERVAL_S):
            try:
                self._watch_once()
            except Exception as exc:
                self._record_error("watchdog failed", exc)

    def _watch_once(self) -> None:
        client = self._client
        if self._resync.is_set() and client.is_connected():
            # A message could not be handed over, so it is neither stored nor acknowledged. The
            # broker redelivers unacknowledged messages only on a new connection: make one.
            self._resync.clear()
            self._disconnecting_on_purpose = True
            log.warning("mqtt: reconnecting so that the broker redelivers an unhandled message")
            client.disconnect()  # the network loop then ends; the next pass reconnects
            return
        # loop_start() refuses while the network thread runs; if it starts one, the old one ended.
        if client.loop_start() != paho.MQTT_ERR_SUCCESS:
            return
        if self._disconnecting_on_purpose:
            self._disconnecting_on_purpose = False
        else:
            with self._lock:
                self._loop_restarts += 1
            self._record_error("the MQTT network loop had stopped; restarted it")
        if not client.is_connected():
            client.loop_stop()  # a loop started while disconnected would just end again
            self._connect_async()
            client.loop_start()


class MqttPublisher:
    """A thin paho wrapper for publishers (the demo's live simulator, tests, the benchmark).

    ``publish`` sends at QoS 1 and by default waits for the broker's PUBACK. Messages published
    while disconnected are kept by paho and sent after it reconnects. ``login`` (e.g. the embedded
    broker's ``publisher_login``) comes before the credentials named by ``mqtt``.
    """

    _ids = itertools.count(1)

    def __init__(self, host: str, port: int, *, mqtt: MqttConfig | None = None, login: Login | None = None,
                 client_id: str | None = None, protocol_v5: bool = True, max_inflight: int = 1000):
        mqtt = mqtt or MqttConfig()
        self._client = _new_client(mqtt, client_id or f"pheoc-pub-{os.getpid()}-{next(self._ids)}", protocol_v5,
                                   manual_ack=False, login=login)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)  # keep every message while disconnected
        self._client.on_publish = self._on_publish
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._host, self._port = host, port
        self._connected = threading.Event()
        self._answered = threading.Event()  # a CONNACK came, accepting or refusing
        self._refusal = None  # the reason code of a refused CONNECT
        self._unwaited: list[paho.MQTTMessageInfo] = []
        self._refused: dict[int, Any] = {}  # mid -> reason code of a PUBACK that refused it

    def connect(self, timeout: float = 10.0) -> "MqttPublisher":
        self._client.connect_async(self._host, self._port, KEEPALIVE_S)
        self._client.loop_start()
        self._answered.wait(timeout)
        if not self._connected.is_set():
            self.close()
            if self._refusal is not None:
                raise ConnectionRefusedError(f"MQTT broker {self._host}:{self._port} refused the connection: "
                                             f"{self._refusal}")
            raise ConnectionError(f"could not connect to MQTT broker {self._host}:{self._port}")
        return self

    def __enter__(self) -> "MqttPublisher":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refusal = reason_code
        else:
            self._connected.set()
        self._answered.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if getattr(reason_code, "is_failure", False):
            self._refused[mid] = reason_code

    def publish(self, topic: str, payload: bytes, *, wait: bool = True, timeout: float = 30.0,
                retain: bool = False) -> int:
        """Publish at QoS 1; with ``wait``, return only once the broker has acknowledged it.

        Returns the message id. Raises RuntimeError if the broker refused the message and
        TimeoutError if no acknowledgement came in time. Without ``wait``, call flush() later.
        ``retain``: the broker keeps the message for later subscribers (CAP warnings, delivery/).
        """
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc == paho.MQTT_ERR_NO_CONN:
            # paho keeps a QoS 1 message published while disconnected and sends it after
            # reconnecting; it is pending, not failed.
            info.rc = paho.MQTT_ERR_SUCCESS
        elif info.rc != paho.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"paho could not queue the message: {paho.error_string(info.rc)}")
        if wait:
            self._wait(info, timeout)
        else:
            self._unwaited.append(info)
            if len(self._unwaited) >= MAX_UNACKNOWLEDGED_PUBLISHES:
                # Packet ids are 16-bit: keep well below 65,535 outstanding or paho refuses.
                oldest = self._unwaited[:MAX_UNACKNOWLEDGED_PUBLISHES // 2]
                del self._unwaited[:MAX_UNACKNOWLEDGED_PUBLISHES // 2]
                for pending in oldest:
                    self._wait(pending, timeout)
        return info.mid

    def _wait(self, info: paho.MQTTMessageInfo, timeout: float) -> None:
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"no PUBACK for message {info.mid} within {timeout} s")
        reason = self._refused.pop(info.mid, None)
        if reason is not None:
            raise RuntimeError(f"the broker refused message {info.mid}: {reason}")

    def flush(self, timeout: float = 120.0) -> None:
        """Wait until every message published without waiting has been acknowledged."""
        deadline = time.monotonic() + timeout
        pending, self._unwaited = self._unwaited, []
        for info in pending:
            self._wait(info, max(0.0, deadline - time.monotonic()))
