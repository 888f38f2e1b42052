"""Store: idempotent schema, single writer with whole-batch transactions, replay vs conflict, readers."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pandas as pd
import pytest

from ingest.batch import BatchBuilder
from ingest.records import ValidationContext
from store import Store
from store.schema import INGEST_TABLES
from store.store import IngestBatch, QuarantineRow

CTX = ValidationContext(now=datetime(2026, 11, 24, tzinfo=timezone.utc), check_registries=False)


def reading(seq, value=1.0, sensor="S1"):
    return {"sensor_id": sensor, "seq": seq, "ts": f"2026-11-20T10:{seq % 60:02d}:00+08:00", "metric": "flow",
            "value": value, "unit": "l/s"}


def batch_of(records, source="test"):
    b = BatchBuilder(source, "file")
    for r in records:
        assert b.add("reading", r, repr(r).encode(), CTX)
    return b.build()


def test_schema_is_idempotent(tmp_path):
    path = tmp_path / "s.duckdb"
    with Store(path) as s:
        s.write_batch(batch_of([reading(1)])).result()
    with Store(path) as s:  # applying the schema again keeps the data
        assert s.scalar("SELECT count(*) FROM readings") == 1
        assert set(s.table_counts()) >= {t.table for t in INGEST_TABLES.values()} | {
            "quarantine", "ingest_log", "alerts", "audit_log", "ingested_files"}


def test_replay_is_counted_and_conflict_quarantined(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        first = s.write_batch(batch_of([reading(i) for i in range(10)])).result()
        assert (first.accepted, first.duplicate, first.conflicting) == (10, 0, 0)
        again = s.write_batch(batch_of([reading(i) for i in range(10)])).result()
        assert (again.accepted, again.duplicate, again.conflicting) == (0, 10, 0)
        changed = s.write_batch(batch_of([reading(3, value=99.0), reading(10)])).result()
        assert (changed.accepted, changed.duplicate, changed.conflicting) == (1, 0, 1)
        assert s.scalar("SELECT value FROM readings WHERE seq = 3") == 1.0  # never silently overwritten
        q = s.read("SELECT reason_code, record_key, raw_payload FROM quarantine")
        assert list(q["reason_code"]) == ["conflicting_duplicate"]
        assert q["record_key"][0] == "S1|3" and b"99.0" in bytes(q["raw_payload"][0])
        log = s.read("SELECT sum(accepted) a, sum(duplicate) d, sum(conflicting) c FROM ingest_log")
        assert tuple(int(x) for x in log.iloc[0]) == (11, 10, 1)


def test_duplicates_and_conflicts_inside_one_batch(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        r = s.write_batch(batch_of([reading(1), reading(1), reading(1, value=5.0)])).result()
        assert (r.accepted, r.duplicate, r.conflicting) == (1, 1, 1)


def test_failed_job_rolls_back_whole_batch_and_writer_survives(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        def half_then_fail(con):
            con.execute("INSERT INTO alerts (raised_at, severity, kind, title) VALUES (now(), 'info', 'x', 't')")
            raise RuntimeError("boom")
        with pytest.raises(RuntimeError):
            s.submit(half_then_fail).result()
        assert s.scalar("SELECT count(*) FROM alerts") == 0
        s.write_batch(batch_of([reading(1)])).result()  # the writer thread is still alive
        assert s.scalar("SELECT count(*) FROM readings") == 1


def test_quarantine_keeps_raw_bytes_and_reason(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        batch = IngestBatch(source="mqtt", channel="mqtt", quarantined=(
            QuarantineRow("mqtt", "not_utf8", "byte 0", b"\xff\xfe", kind="reading"),))
        r = s.write_batch(batch).result()
        assert r.rejected == 1
        row = s.read_rows("SELECT reason_code, raw_payload, kind FROM quarantine")[0]
        assert row == ("not_utf8", b"\xff\xfe", "reading")
        assert s.scalar("SELECT rejected FROM ingest_log") == 1


def test_bounded_queue_makes_producers_wait(tmp_path):
    with Store(tmp_path / "s.duckdb", queue_size=1) as s:
        gate = threading.Event()
        s.submit(lambda con: gate.wait(5))  # occupies the writer
        s.submit(lambda con: None)  # fills the one queue slot
        blocked = threading.Event()
        done = threading.Event()

        def producer():
            blocked.set()
            s.submit(lambda con: None).result()
            done.set()
        threading.Thread(target=producer, daemon=True).start()
        blocked.wait(2)
        time.sleep(0.3)
        assert not done.is_set()  # waiting for room, not dropped
        gate.set()
        assert done.wait(5)


def test_readers_on_other_threads_see_committed_rows(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        s.write_batch(batch_of([reading(i) for i in range(5)])).result()
        seen = []
        t = threading.Thread(target=lambda: seen.append(s.scalar("SELECT count(*) FROM readings")))
        t.start()
        t.join()
        assert seen == [5]


def test_bulk_batch_types_are_cast(tmp_path):
    """Dates, timestamps with offsets and booleans land in their SQL types."""
    b = BatchBuilder("t", "file")
    ok = b.add("case", {"case_id": "A1", "reported_date": "2026-11-20", "status": "confirmed",
                        "imported": "true", "h3_cell": "8965a5a0a0bffff"}, b"raw", CTX, from_text=True)
    assert ok
    with Store(tmp_path / "s.duckdb") as s:
        assert s.write_batch(b.build()).result().accepted == 1
        types = dict(s.read_rows("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'cases'"))
        row = s.read("SELECT reported_date, imported FROM cases").iloc[0]
        assert types["reported_date"] == "DATE" and pd.Timestamp(row["reported_date"]).day == 20
        assert bool(row["imported"]) is True


def test_replays_and_conflicts_are_told_apart_on_date_and_timestamp_keys(tmp_path):
    """The writer inserts on the primary key and compares only what was not inserted (issue 16): keys with
    a DATE (tests) or a TIMESTAMPTZ (capacity, supplies) among their columns are matched back exactly."""
    def test_rec(day, unit, tested=10):
        return {"test_date": f"2026-11-{day:02d}", "area_id": unit, "tested": tested, "positive": 1}

    def capacity(facility, hour, occupied=5):
        return {"facility_id": facility, "reported_at": f"2026-11-20T{hour:02d}:00:00+08:00", "beds_total": 50,
                "beds_occupied": occupied}

    def supply(facility, item, stock=3.0):
        return {"facility_id": facility, "reported_at": "2026-11-20T08:00:00+08:00", "item": item, "stock": stock}

    def batch(kind_records):
        b = BatchBuilder("test", "file")
        for kind, r in kind_records:
            assert b.add(kind, r, repr(r).encode(), CTX), r
        return b.build()

    stored = [("test", test_rec(1, "C01")), ("test", test_rec(2, "C01")), ("capacity", capacity("F1", 8)),
              ("capacity", capacity("F1", 9)), ("supply", supply("F1", "masks")), ("supply", supply("F1", "gloves"))]
    with Store(tmp_path / "s.duckdb") as s:
        assert s.write_batch(batch(stored)).result().accepted == 6
        mixed = [("test", test_rec(1, "C01")), ("test", test_rec(2, "C01", tested=11)), ("test", test_rec(3, "C01")),
                 ("test", test_rec(3, "C01")),
                 ("capacity", capacity("F1", 8)), ("capacity", capacity("F1", 9, occupied=6)),
                 ("capacity", capacity("F2", 8)),
                 ("supply", supply("F1", "masks")), ("supply", supply("F1", "gloves", stock=4.0)),
                 ("supply", supply("F1", "gowns"))]
        r = s.write_batch(batch(mixed)).result()
        assert (r.accepted, r.duplicate, r.conflicting) == (3, 4, 3)
        keys = s.read("SELECT kind, record_key FROM quarantine ORDER BY kind")
        assert list(keys["kind"]) == ["capacity", "supply", "test"]
        assert keys["record_key"].str.contains("F1|2026-11-20 09:00:00").iloc[0]
        assert keys["record_key"].str.endswith("|gloves").iloc[1] and keys["record_key"].str.contains("2026-11-02").iloc[2]
        assert s.scalar("SELECT tested FROM tests WHERE test_date = DATE '2026-11-02'") == 10  # not overwritten
        log = s.read("SELECT kind, sum(accepted) a, sum(duplicate) d, sum(conflicting) c FROM ingest_log "
                     "GROUP BY kind ORDER BY kind")
        assert [tuple(x) for x in log.itertuples(index=False)] == [
            ("capacity", 3, 1, 1), ("supply", 3, 1, 1), ("test", 3, 2, 1)]
