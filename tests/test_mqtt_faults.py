"""MQTT ingest under faults: kill -9 of the ingestor, a broker restart, a failing store, a dead
network loop, a failing callback, a record the store refuses, and backpressure. Real Mosquitto,
real DuckDB; the crash test runs the ingestor as a separate process (tests/ingest_worker.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from ingest.context import ContextProvider
from store import Store
from tests.mqtt_helpers import *  # noqa: F401,F403  (fixtures and helpers)
from tests.mqtt_helpers import (LAYOUT, SENSOR_IDS, count, encode, make_settings, publisher, reading, register_city,
                                start_ingestor, wait_for)

WORKER = Path(__file__).resolve().parent / "ingest_worker.py"
pytestmark = pytest.mark.mqtt


class FaultyStore:
    """The real store, except that ``write_batch`` misbehaves when ``fault(batch, call)`` says so."""

    def __init__(self, store: Store, fault):
        self._store = store
        self._fault = fault
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    def write_batch(self, batch):
        self.calls += 1
        what = self._fault(batch, self.calls)
        if what == "raise":
            raise RuntimeError("injected: the store is unavailable")
        if what == "fail":
            fut: Future = Future()
            fut.set_exception(RuntimeError("injected: the commit failed"))
            return fut
        if what == "slow":
            time.sleep(0.02)
        return self._store.write_batch(batch)


def stored_keys(store: Store) -> set[tuple[str, int]]:
    return {(s, int(q)) for s, q in store.read_rows("SELECT sensor_id, seq FROM readings")}


def assert_no_duplicate_rows(store: Store) -> None:
    assert store.scalar("SELECT count(*) FROM readings") == \
        store.scalar("SELECT count(*) FROM (SELECT DISTINCT sensor_id, seq FROM readings)")


class WorkerProcess:
    """tests/ingest_worker.py as a child process; its stats lines are read as they come."""

    def __init__(self, db: Path, broker, log: Path, *args: str):
        self.stats: dict = {}
        self.ready = threading.Event()
        self._err = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, str(WORKER), "--db", str(db), "--host", broker.host,
                                      "--port", str(broker.port), *args],
                                     stdout=subprocess.PIPE, stderr=self._err, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("READY"):
                self.ready.set()
            elif line.startswith("{"):
                self.stats = json.loads(line)

    def kill_9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._err.close()

    def wait_exit(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._err.close()
        return code


@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_loses_nothing(tmp_path, mosquitto, settings):
    db = tmp_path / "pheoc.duckdb"
    with Store(db) as store:
        register_city(store, ContextProvider(store, settings))
    worker = WorkerProcess(db, mosquitto, tmp_path / "worker.log")
    assert worker.ready.wait(30), "worker did not start"

    n, kill_at = 4000, 1500
    good: set[tuple[str, int]] = set()
    bad: set[bytes] = set()
    killed_with = None
    with publisher(mosquitto) as pub:
        for i in range(n):
            sid = SENSOR_IDS[i % len(SENSOR_IDS)]
            if i % 97 == 13:  # a bad message now and then: its ledger entry is the quarantine
                payload = b'{"seq": %d, "broken": ' % i
                bad.add(payload)
            else:
                payload = encode(reading(None, i))
                good.add((sid, i))
            pub.publish(LAYOUT.readings(sid), payload, wait=False)
            if i % 100 == 99:
                time.sleep(0.02)  # a steady stream rather than one burst
            if i == kill_at:
                wait_for(lambda: worker.stats.get("acked", 0) > 0, 30, message="worker committing")
                killed_with = dict(worker.stats)
                worker.kill_9()
        pub.flush()  # the rest is held by the broker for the worker's persistent session

    assert 0 < killed_with["acked"] < n
    restarted = WorkerProcess(db, mosquitto, tmp_path / "worker2.log", "--exit-when-idle", "2")
    assert restarted.wait_exit(120) == 0
    assert restarted.stats["received"] > 0 and restarted.stats["errors"] == 0

    with Store(db) as store:
        assert stored_keys(store) == good  # stored: exactly the valid part of the ledger
        assert_no_duplicate_rows(store)
        quarantined = {bytes(raw) for (raw,) in store.read_rows("SELECT raw_payload FROM quarantine")}
        assert quarantined == bad  # quarantined: exactly the invalid part
        assert set(store.read_rows("SELECT DISTINCT reason_code FROM quarantine")) == {("malformed_json",)}


@pytest.mark.slow
def test_broker_restart_mid_stream_loses_nothing(mosquitto, city_store, settings):
    store, contexts = city_store
    ingestor = start_ingestor(store, contexts, settings, mosquitto)
    n = 3000
    ledger = {(SENSOR_IDS[i % len(SENSOR_IDS)], i) for i in range(n)}
    published = threading.Event()
    failure: list[BaseException] = []

    def publish_all():
        try:
            with publisher(mosquitto) as pub:
                for sid, i in sorted(ledger, key=lambda k: k[1]):
                    pub.publish(LAYOUT.readings(sid), encode(reading(None, i)), wait=False)
                    if i % 100 == 99:
                        time.sleep(0.03)
                pub.flush(120)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        published.set()

    publishing = threading.Thread(target=publish_all)
    publishing.start()
    wait_for(lambda: count(store, "readings") >= 800, message="stream under way")
    assert not published.is_set()  # mid-stream
    mosquitto.stop(remove_workdir=False)  # SIGTERM: Mosquitto saves its persistence file
    time.sleep(0.5)
    mosquitto.start()
    assert published.wait(120) and not failure, failure
    publishing.join()
    wait_for(lambda: count(store, "readings") >= n, 60, message="everything stored after the restart")
    time.sleep(0.5)
    ingestor.stop()
    assert stored_keys(store) == ledger
    assert_no_duplicate_rows(store)
    assert count(store, "quarantine") == 0


def test_store_failures_are_retried_and_the_loop_survives(mosquitto, city_store, settings):
    store, contexts = city_store
    # the first submission raises, the second returns a failed commit; the rest work
    faulty = FaultyStore(store, lambda batch, call: {1: "raise", 2: "fail"}.get(call))
    ingestor = start_ingestor(faulty, contexts, settings, mosquitto)
    with publisher(mosquitto) as pub:
        for i in range(100):
            pub.publish(LAYOUT.readings(SENSOR_IDS[i % 3]), encode(reading(None, i)), wait=False)
        pub.flush()
        wait_for(lambda: count(store, "readings") == 100, message="first stream stored")
        for i in range(100, 150):  # and the loop still runs
            pub.publish(LAYOUT.readings(SENSOR_IDS[i % 3]), encode(reading(None, i)), wait=False)
        pub.flush()
    wait_for(lambda: count(store, "readings") == 150, message="second stream stored")
    ingestor.stop()
    stats = ingestor.stats()
    assert stats.errors >= 2 and "RuntimeError" in stats.last_error
    assert "injected" not in stats.last_error  # exception text can quote a record: kept out of /healthz
    assert stats.acked == stats.received == 150
    assert_no_duplicate_rows(store)


@pytest.mark.slow
def test_a_record_the_store_refuses_is_quarantined_not_blocking(mosquitto, city_store, settings):
    store, contexts = city_store

    def refuse_poison(batch, call):
        frame = batch.rows_by_kind.get("reading")
        return "fail" if frame is not None and (frame["value"] == 666.0).any() else None

    ingestor = start_ingestor(FaultyStore(store, refuse_poison), contexts, settings, mosquitto)
    with publisher(mosquitto) as pub:
        for i in range(60):
            pub.publish(LAYOUT.readings(SENSOR_IDS[i % 3]), encode(reading(None, i, 666.0 if i == 30 else 1.0)),
                        wait=False)
        pub.flush()
    wait_for(lambda: count(store, "readings") == 59 and count(store, "quarantine") == 1, 60,
             message="all but the poison stored")
    ingestor.stop()
    code, detail, raw = store.read_rows("SELECT reason_code, reason_detail, raw_payload FROM quarantine")[0]
    assert code == "store_refused" and detail  # the same reason as a file row the store refuses
    assert json.loads(bytes(raw))["value"] == 666.0
    assert ingestor.stats().acked == 60


def test_watchdog_restarts_a_dead_network_loop(mosquitto, city_store, settings):
    store, contexts = city_store
    ingestor = start_ingestor(store, contexts, settings, mosquitto)
    ingestor._client.loop_stop()  # the network thread ends, as if an exception had killed it
    wait_for(lambda: ingestor.stats().loop_restarts >= 1, 10, message="the watchdog restarting the loop")
    with publisher(mosquitto) as pub:
        for i in range(50):
            pub.publish(LAYOUT.readings("ww-002"), encode(reading(None, i)), wait=False)
        pub.flush()
    wait_for(lambda: count(store, "readings") == 50, message="stored after the restart")
    ingestor.stop()


def test_a_failing_on_message_loses_nothing(mosquitto, city_store, settings):
    store, contexts = city_store
    ingestor = start_ingestor(store, contexts, settings, mosquitto)
    real_put = ingestor._buffer.put
    calls = {"n": 0}

    def put_failing_once(item):
        calls["n"] += 1
        if calls["n"] == 10:
            raise RuntimeError("injected: hand-over failed")
        return real_put(item)

    ingestor._buffer.put = put_failing_once
    with publisher(mosquitto) as pub:
        for i in range(40):
            pub.publish(LAYOUT.readings("ww-004"), encode(reading(None, i)), wait=False)
        pub.flush()
    # the failed message is redelivered on the new connection the watchdog makes
    wait_for(lambda: count(store, "readings") == 40, 30, message="the failed message redelivered")
    ingestor.stop()
    stats = ingestor.stats()
    assert stats.errors >= 1 and stats.loop_restarts == 0
    assert_no_duplicate_rows(store)


def test_backpressure_with_a_tiny_queue_and_a_slow_writer_loses_nothing(tmp_path, mosquitto):
    settings = make_settings(batch_max_rows=3, batch_max_ms=20)
    with Store(tmp_path / "slow.duckdb", queue_size=1) as store:
        contexts = ContextProvider(store, settings)
        register_city(store, contexts)
        slow = FaultyStore(store, lambda batch, call: "slow")
        ingestor = start_ingestor(slow, contexts, settings, mosquitto, queue_max_messages=4)
        most_queued = [0]
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                most_queued[0] = max(most_queued[0], len(ingestor._buffer))
                time.sleep(0.001)

        sampler = threading.Thread(target=sample)
        sampler.start()
        with publisher(mosquitto) as pub:
            for i in range(300):
                pub.publish(LAYOUT.readings(SENSOR_IDS[i % 7]), encode(reading(None, i)), wait=False)
            pub.flush()
        wait_for(lambda: count(store, "readings") == 300, 60, message="all stored through the narrow pipe")
        sampling.set()
        sampler.join()
        ingestor.stop()
        assert most_queued[0] == 4  # the buffer filled up and held there: the network thread waited
        assert count(store, "quarantine") == 0
        assert ingestor.stats().acked == 300
