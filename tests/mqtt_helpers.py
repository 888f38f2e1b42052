"""Fixtures and helpers for the MQTT tests: a real Mosquitto on a free loopback port, with passwords
and ACLs as pheoc runs it, a real DuckDB file on tmp_path, a small synthetic city (boundary, two
communities, sensors, facilities) written through the normal validation path, and payload builders.

The ingestor logs in the way an external deployment does: the settings name environment variables
(``INGEST_USER_ENV``/``INGEST_PASSWORD_ENV``) and the ``mosquitto`` fixture sets them to the broker's
ingest login, so a worker process started by a test inherits them too. Publishers log in with the
broker's ``publisher_login`` (``publisher(broker)``).

Use from a test module with ``from tests.mqtt_helpers import *`` (fixtures must be in the
module's namespace for pytest to find them).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ingest.batch import BatchBuilder
from ingest.broker import EmbeddedBroker, find_mosquitto
from ingest.context import ContextProvider
from ingest.mqtt import MqttIngestor, MqttPublisher
from ingest.topics import TopicLayout
from settings import IngestConfig, MqttConfig, Settings
from store import Store

PREFIX = "pheoc/testville"
LAYOUT = TopicLayout(PREFIX)
INGEST_USER_ENV = "PHEOC_TEST_MQTT_USER"
INGEST_PASSWORD_ENV = "PHEOC_TEST_MQTT_PASSWORD"

# A square city split into a west and an east community (GeoJSON is lng,lat).
WEST, EAST, SOUTH, NORTH, MID = 101.60, 101.80, 2.80, 3.00, 101.70


def _square(w: float, s: float, e: float, n: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


AREAS = [
    {"area_id": "city", "name": "Testville", "kind": "boundary", "geometry": _square(WEST, SOUTH, EAST, NORTH)},
    {"area_id": "c-west", "name": "West", "kind": "community", "population": 40_000,
     "geometry": _square(WEST, SOUTH, MID, NORTH)},
    {"area_id": "c-east", "name": "East", "kind": "community", "population": 60_000,
     "geometry": _square(MID, SOUTH, EAST, NORTH)},
]
SENSOR_IDS = [f"ww-{i:03d}" for i in range(1, 21)]
SENSORS = [{"sensor_id": sid, "kind": "wastewater", "name": f"Sensor {i}", "lat": 2.85 + 0.005 * i,
            "lng": 101.62 + 0.008 * i} for i, sid in enumerate(SENSOR_IDS)]
FACILITY_IDS = ["hosp-1", "hosp-2", "icu-1"]
FACILITIES = [
    {"facility_id": "hosp-1", "name": "General", "kind": "hospital", "lat": 2.90, "lng": 101.65, "beds": 400},
    {"facility_id": "hosp-2", "name": "East Medical", "kind": "hospital", "lat": 2.92, "lng": 101.75, "beds": 250},
    {"facility_id": "icu-1", "name": "ICU annex", "kind": "icu", "lat": 2.88, "lng": 101.72, "icu_beds": 40},
]


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def make_settings(*, batch_max_rows: int = 5000, batch_max_ms: int = 100, max_payload_bytes: int = 65_536,
                  client_id: str = "pheoc-test-ingest", port: int = 0, session_expiry_s: int = 3600) -> Settings:
    return Settings.model_validate({
        "city": {"name": "Testville", "slug": "testville"},
        "ingest": {"batch_max_rows": batch_max_rows, "batch_max_ms": batch_max_ms,
                   "max_payload_bytes": max_payload_bytes},
        "mqtt": {"mode": "external", "host": "127.0.0.1", "port": port, "topic_prefix": PREFIX,
                 "client_id": client_id, "session_expiry_s": session_expiry_s,
                 "username_env": INGEST_USER_ENV, "password_env": INGEST_PASSWORD_ENV},
    })


def register_city(store: Store, contexts: ContextProvider) -> None:
    """Write the areas, then the sensors and facilities (which are checked against the areas)."""
    for kind, records in (("area", AREAS), ("sensor", SENSORS), ("facility", FACILITIES)):
        builder = BatchBuilder("fixture", "file")
        ctx = contexts.get()
        for rec in records:
            assert builder.add(kind, dict(rec), json.dumps(rec).encode(), ctx), rec
        store.write_batch(builder.build()).result()
        contexts.invalidate()


def reading(sensor_id: str | None, seq: int, value: float = 1.5, *, ts: datetime | None = None,
            metric: str = "sars_cov_2_copies_per_l", unit: str | None = "copies/L") -> dict:
    rec = {"seq": seq, "ts": (ts or now_utc() - timedelta(minutes=1)).isoformat(), "metric": metric,
           "value": value}
    if unit is not None:
        rec["unit"] = unit
    if sensor_id is not None:
        rec["sensor_id"] = sensor_id
    return rec


def case(case_id: str, *, days_ago: int = 1, lat: float = 2.90, lng: float = 101.66, status: str = "confirmed") -> dict:
    return {"case_id": case_id, "reported_date": (now_utc() - timedelta(days=days_ago)).date().isoformat(),
            "lat": lat, "lng": lng, "status": status, "age_band": "30-39"}


def capacity(facility_id: str | None, minutes_ago: int, *, total: int = 400, occupied: int = 250) -> dict:
    rec = {"reported_at": (now_utc() - timedelta(minutes=minutes_ago)).isoformat(), "beds_total": total,
           "beds_occupied": occupied, "icu_total": 20, "icu_occupied": 12, "covid_patients": 30}
    if facility_id is not None:
        rec["facility_id"] = facility_id
    return rec


def encode(record) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, interval: float = 0.05,
             message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def count(store: Store, table: str) -> int:
    return int(store.scalar(f"SELECT count(*) FROM {table}"))


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def mosquitto(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedBroker]:
    """A real Mosquitto with persistence, passwords and ACLs, on a free loopback port; stopped with
    SIGTERM. Its folder is a fresh one under the system's temporary folder (not tmp_path, which a
    root test run keeps at mode 0700, out of reach of the 'mosquitto' user the broker then runs as)."""
    assert find_mosquitto(), "Mosquitto is required for the MQTT tests (apt-get install mosquitto)"
    broker = EmbeddedBroker(topic_prefix=PREFIX).start()
    assert broker.kind == "mosquitto"
    monkeypatch.setenv(INGEST_USER_ENV, broker.ingest_login.username)
    monkeypatch.setenv(INGEST_PASSWORD_ENV, broker.ingest_login.password)
    yield broker
    broker.stop()


def publisher(broker: EmbeddedBroker, **kwargs) -> MqttPublisher:
    """A publisher logged in as the broker's publish-only identity (not yet connected)."""
    return MqttPublisher(broker.host, broker.port, login=broker.publisher_login, protocol_v5=broker.mqtt_v5,
                         **kwargs)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def city_store(tmp_path: Path, settings: Settings) -> Iterator[tuple[Store, ContextProvider]]:
    """A DuckDB store on tmp_path with the test city registered."""
    store = Store(tmp_path / "pheoc.duckdb")
    contexts = ContextProvider(store, settings)
    register_city(store, contexts)
    yield store, contexts
    store.close()


def start_ingestor(store, contexts: ContextProvider, settings: Settings, broker: EmbeddedBroker,
                   **kwargs) -> MqttIngestor:
    ingestor = MqttIngestor(store, contexts, settings.mqtt, settings.ingest, host=broker.host, port=broker.port,
                            protocol_v5=broker.mqtt_v5, **kwargs).start()
    assert ingestor.wait_ready(15), "the ingestor did not connect and subscribe"
    return ingestor


__all__ = [
    "AREAS", "EAST", "FACILITIES", "FACILITY_IDS", "INGEST_PASSWORD_ENV", "INGEST_USER_ENV", "LAYOUT", "MID",
    "NORTH", "PREFIX", "SENSORS", "SENSOR_IDS", "SOUTH", "WEST", "IngestConfig", "MqttConfig", "capacity", "case",
    "city_store", "count", "encode", "make_settings", "mosquitto", "now_utc", "publisher", "reading",
    "register_city", "settings", "start_ingestor", "wait_for",
]
