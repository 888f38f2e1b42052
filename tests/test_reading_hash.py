"""Readings' content hash is the store's (store/row_hash.py): one definition for every door, and rows
stored under the earlier hash are migrated, so that a replay of them is a duplicate, not a conflict."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pyarrow as pa

from ingest.batch import BatchBuilder
from ingest.records import ValidationContext, content_hash
from store import Store
from store.store import IngestBatch

NOW = datetime.now(timezone.utc).replace(microsecond=0)
COLUMNS = ("sensor_id", "seq", "ts", "metric", "value", "unit")


def _documented_hash(sensor_id, seq, ts, metric, value, unit) -> str:
    """The text store/row_hash.py documents, hashed in Python: the SQL must give exactly this."""
    epoch_us = (ts - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    text = "\x1f".join((sensor_id, str(seq), str(epoch_us), f"{len(metric.encode())}:{metric}", "%.17g" % value,
                        "" if unit is None else "=" + unit))
    return hashlib.md5(text.encode()).hexdigest()


def _records():
    return [
        {"sensor_id": "ww-1", "seq": 1, "ts": (NOW - timedelta(hours=1)).isoformat(), "metric": "copies",
         "value": 0.1, "unit": "copies/L"},
        {"sensor_id": "ww-1", "seq": 2, "ts": (NOW - timedelta(hours=2, microseconds=5)).isoformat(),
         "metric": "temp\u00e9", "value": 1e-5, "unit": None},
        {"sensor_id": "ww-2", "seq": 3, "ts": (NOW - timedelta(days=3)).isoformat(), "metric": "m",
         "value": -0.0, "unit": "x"},
        {"sensor_id": "ww-2", "seq": 4, "ts": (NOW - timedelta(days=4)).isoformat(), "metric": "m",
         "value": 1e16, "unit": ""},
    ]


def _batch(records) -> IngestBatch:
    builder = BatchBuilder("test", "file")
    ctx = ValidationContext(now=NOW, check_registries=False)
    for rec in records:
        assert builder.add("reading", dict(rec), repr(rec).encode(), ctx)
    return builder.build()


def _arrow(batch: IngestBatch) -> IngestBatch:
    frame = batch.rows_by_kind["reading"]
    table = pa.Table.from_pandas(frame[[*COLUMNS, "raw_payload"]], preserve_index=False)
    table = table.append_column("__row", pa.array(range(len(frame)), pa.int64()))
    return IngestBatch(batch.source, batch.channel, {"reading": table})


def test_the_store_hashes_readings_as_documented_from_every_path(tmp_path):
    with Store(tmp_path / "a.duckdb") as a, Store(tmp_path / "b.duckdb") as b:
        a.write_batch(_batch(_records())).result()  # a pandas frame (per-record files, MQTT)
        b.write_batch(_arrow(_batch(_records()))).result()  # an Arrow table (bulk files)
        sql = "SELECT sensor_id, seq, ts, metric, value, unit, content_hash FROM readings ORDER BY seq"
        rows_a, rows_b = a.read_rows(sql), b.read_rows(sql)
    assert rows_a == rows_b and len(rows_a) == 4
    for *typed, digest in rows_a:
        assert digest == _documented_hash(*typed)


def test_readings_under_the_earlier_hash_are_migrated_and_replays_stay_duplicates(tmp_path):
    path = tmp_path / "old.duckdb"
    with Store(path) as store:
        store.write_batch(_batch(_records())).result()
        # As an earlier pheoc stored them: BLAKE2b of the record validator's text (ingest.records.content_hash).
        for sensor_id, seq, ts, metric, value, unit in store.read_rows(f"SELECT {', '.join(COLUMNS)} FROM readings"):
            old = content_hash(dict(zip(COLUMNS, (sensor_id, seq, ts.astimezone(timezone.utc), metric, value, unit))),
                               COLUMNS)
            store.write("UPDATE readings SET content_hash = ? WHERE sensor_id = ? AND seq = ?", [old, sensor_id, seq])
        assert store.scalar("SELECT count(*) FROM readings WHERE strlen(content_hash) = 24") == 4
    with Store(path) as store:  # reopened: the schema upgrade rewrites them
        assert store.scalar("SELECT count(*) FROM readings WHERE strlen(content_hash) = 32") == 4
        replay = store.write_batch(_batch(_records())).result()
        bulk_replay = store.write_batch(_arrow(_batch(_records()))).result()
        changed = [dict(r, value=r["value"] + 1) for r in _records()[:1]]
        conflict = store.write_batch(_arrow(_batch(changed))).result()
    assert (replay.accepted, replay.duplicate, replay.conflicting) == (0, 4, 0)
    assert (bulk_replay.accepted, bulk_replay.duplicate, bulk_replay.conflicting) == (0, 4, 0)
    assert (conflict.accepted, conflict.duplicate, conflict.conflicting) == (0, 0, 1)


def test_an_arrow_block_that_repeats_a_key_counts_repeats_and_conflicts_in_order(tmp_path):
    first, second = _records()[:2]
    records = [first, dict(first), dict(first, value=9.0), second]
    with Store(tmp_path / "r.duckdb") as store:
        result = store.write_batch(_arrow(_batch(records))).result()
        quarantined = store.read_rows("SELECT reason_code, record_key FROM quarantine")
        stored = store.read_rows("SELECT seq, value FROM readings ORDER BY seq")
    assert (result.accepted, result.duplicate, result.conflicting) == (2, 1, 1)
    assert quarantined == [("conflicting_duplicate", "ww-1|1")]
    assert stored == [(1, 0.1), (2, 1e-5)]
