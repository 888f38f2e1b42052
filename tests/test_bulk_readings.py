"""The vectorised readings validator (ingest.bulk_readings) against the record validator, on the bad-input corpus.

The same files go through FileIngestor twice, into two stores: once every record through the record
validator (``bulk_readings=False``), once through column expressions. Accepted rows (with their
content hashes), quarantine rows (reason, detail, raw payload, record key) and the per-file counts
must be identical; and the column expressions must have decided most rows themselves, with no row
where their code differs from the record validator's.
"""
from __future__ import annotations

import json
import math
import re
from datetime import timedelta, timezone

import pytest

from ingest import bulk_readings
from ingest.context import ContextProvider
from ingest.files import FileIngestor
from store import Store
from tests.mqtt_helpers import *  # noqa: F401,F403  (fixtures and helpers)
from tests.mqtt_helpers import encode, now_utc, register_city
from tests.test_mqtt import bad_corpus

HEADER = ("sensor_id", "seq", "ts", "metric", "value", "unit")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf: as a spreadsheet writes them
    return str(value)


def _corpus_lines() -> list[str]:
    """The corpus's reading records (those a CSV can hold) as CSV lines, each between two valid ones."""
    out = []
    good = iter(range(1, 10_000))
    ts = (now_utc() - timedelta(minutes=2)).isoformat()
    for bad in bad_corpus():
        if bad.kind != "reading" or "file" not in bad.channels or not isinstance(bad.record, dict):
            continue
        if set(bad.record) - set(HEADER):
            continue  # an unknown field is a column of its own: the file below
        out.append(",".join(_cell(bad.record.get(c)) for c in HEADER))
        out.append(f"ww-010,{next(good)},{ts},copies,1.5,copies/L")
    return out


def _generated_lines() -> list[str]:
    """Good and bad rows of every reason a readings CSV row can earn, in the spellings people use."""
    now = now_utc()
    ts = (now - timedelta(minutes=3)).isoformat()
    z = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    local = (now - timedelta(hours=3)).astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
    local = local[:-2] + ":" + local[-2:]
    future = (now + timedelta(hours=2)).isoformat()
    rows = [
        # good, in several spellings
        f"ww-001,1,{ts},copies,1.5,copies/L", f"ww-001,2,{z},copies,0,", f"ww-001,3,{local},copies,-0,L",
        f" ww-002 , +4 ,{ts} , copies ,  7 , L ", f"\tww-002\t,5,{z.replace('T', ' ')},copies,.5,L",
        f"ww-002,6,{ts},copies,5.,L", f"ww-002,007,{ts},copies,12345678.125,L", f"ww-003,8,{ts},copies,1e3,L",
        f"ww-003,9,{ts},copies,1.25E+2,L", f"ww-003,10,{ts},copies,0.00001234,L", f"ww-003,11,{ts},copies,1e20,L",
        f"ww-003,12,{ts},copies,1_000,L", f"ww-004,1e1,{ts},copies,1,L", f"ww-004,2.0,{ts},copies,1,L",
        f"ww-004,3,{(now - timedelta(minutes=1)).isoformat(timespec='milliseconds')},copies,1,L",
        f"ww-004,4,{(now - timedelta(minutes=1)).strftime('%Y-%m-%dT%H:%M:%S.1')}+00:00,copies,1,L",
        f"ww-004,5,{(now - timedelta(minutes=1)).strftime('%Y%m%dT%H%M%S')}Z,copies,1,L",
        f"ww-004,6,{(now - timedelta(minutes=1)).strftime('%Y-%m-%dT%H:%M:%S+0000')},copies,1,L",
        f"ww-004,7,{(now - timedelta(minutes=1)).strftime('%Y-%m-%dT%H:%M:%S.1234567+00:00')},copies,1,L",
        f"ww-005,1,{ts},it's,1,L", f"ww-005,2,{ts},back\\slash,1,L", f"ww-005,3,{ts},copies,1,µg/L",
        # identical repeat (duplicate) and same key, other content (conflict), inside the file
        f"ww-001,1,{ts},copies,1.5,copies/L", f"ww-001,2,{z},copies,99,",
        # bad
        f"ww-006,1,{ts},,1,L", f",2,{ts},copies,1,L", f"ww-006,,{ts},copies,1,L", f"ww-006,3,,copies,1,L",
        f"ww-006,4,{ts},copies,,L", f"ww-006,-5,{ts},copies,1,L", f"ww-006,-0,{ts},copies,1,L",
        f"ww-006,1.5,{ts},copies,1,L", f"ww-006,x,{ts},copies,1,L", f"ww-006,{2**63},{ts},copies,1,L",
        f"ww-006,{'9' * 5000},{ts},copies,1,L", f"ww-006,6,{ts},copies,high,L", f"ww-006,7,{ts},copies,nan,L",
        f"ww-006,8,{ts},copies,inf,L", f"ww-006,9,{ts},copies,1e400,L", f"ww-006,10,{ts},copies,True,L",
        f"ww-006,11,2026-01-01T00:00:00,copies,1,L", f"ww-006,12,2026-01-01 00:00,copies,1,L",
        f"ww-006,13,yesterday,copies,1,L", f"ww-006,14,1700000000,copies,1,L", f"ww-006,15,{future},copies,1,L",
        f"ww-006,16,2026-02-30T00:00:00Z,copies,1,L", f"ww-006,17,2026-01-01T24:00:00Z,copies,1,L",
        f"ww-006,18,2026-13-01T00:00:00Z,copies,1,L", f"ww-006,19,2026-01-01T00:00:00+24:00,copies,1,L",
        f"ww-006,20,0001-01-01T00:00:00+08:00,copies,1,L", f"ww-006,21,0001-01-01T00:00:00-01:00,copies,1,L",
        f"ww-006,22,9999-12-31T23:00:00-05:00,copies,1,L", f"ww-006,23,1900-01-01T00:00:00+00:00,copies,1,L",
        f"ww-006,24,1999-12-31T23:59:59.999999Z,copies,1,L", f"ww-006,25,0000-01-01T00:00:00Z,copies,1,L",
        f"ghost-9,1,{ts},copies,1,L", f"ww-00é,1,{ts},copies,1,L", f"ww-003,777,{ts},copies,2.0,L",
        "ww-006,26,2", f"ww-006,27,{ts},copies,1,L,extra", "", "   ", f"ww-006,28,{ts},copies,1,{'L' * 70_000}",
        f"ww-006,29,{ts},copies,1,L\x1c", f"ww-006,30,{ts},copies,{'1' * 40},L",
    ]
    return rows


def _store(folder, settings, stored: bytes) -> tuple[Store, ContextProvider]:
    folder.mkdir()
    store = Store(folder / "pheoc.duckdb")
    contexts = ContextProvider(store, settings)
    register_city(store, contexts)
    first = folder / "readings-first.ndjson"  # the record the conflicting ones collide with
    first.write_bytes(stored)
    assert FileIngestor(store, contexts).ingest_file(first).result.accepted == 1
    return store, contexts


def _state(store: Store):
    readings = store.read_rows("SELECT sensor_id, seq, ts, metric, value, unit, content_hash, source FROM readings "
                               "ORDER BY sensor_id, seq")
    readings = [r if r[-1] != "file:readings-first.ndjson" else r[:2] + r[3:] for r in readings]  # its ingest time
    quarantine = store.read_rows("SELECT source, kind, reason_code, reason_detail, record_key, raw_payload FROM "
                                 "quarantine ORDER BY source, raw_payload, reason_code")
    # the detail of a future time names the moment of judging, which differs between the two runs
    quarantine = [(*q[:3], re.sub(r"after now \(.*\)", "after now", q[3] or ""), *q[4:]) for q in quarantine]
    files = store.read_rows("SELECT sha256, name, status FROM ingested_files WHERE name NOT LIKE 'readings-first%' "
                            "ORDER BY name")
    return readings, quarantine, files


def _both_ways(tmp_path, settings, monkeypatch, files: dict[str, str]):
    """Ingest ``files`` once per path into stores of their own: (per-record, vectorised, the blocks' verdicts)."""
    folder = tmp_path / "files"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8", newline="")
    verdicts: list[bulk_readings.BlockVerdict] = []
    judge = bulk_readings.judge_block

    def spy(*args, **kwargs):
        verdicts.append(judge(*args, **kwargs))
        return verdicts[-1]

    monkeypatch.setattr(bulk_readings, "judge_block", spy)
    # small blocks: many blocks per file, line numbers carried across them, the writer busy with one
    # block while the next is judged
    monkeypatch.setattr(bulk_readings, "BLOCK_BYTES", 4096)
    outcome = {}
    stored = encode({"sensor_id": "ww-003", "seq": 777, "ts": (now_utc() - timedelta(minutes=5)).isoformat(),
                     "metric": "copies", "value": 1.0}) + b"\n"
    for bulk in (False, True):
        store, contexts = _store(tmp_path / f"bulk-{bulk}", settings, stored)
        try:
            ingestor = FileIngestor(store, contexts, bulk_readings=bulk)
            results = [ingestor.ingest_file(folder / name) for name in files]
            assert all(r.error is None for r in results), [r.error for r in results]
            outcome[bulk] = ([r.result for r in results], _state(store))
        finally:
            store.close()
    per_record, vectorised = outcome[False], outcome[True]
    assert vectorised[0] == per_record[0]  # accepted, duplicate, conflicting, rejected per file
    for got, want, what in zip(vectorised[1], per_record[1], ("readings", "quarantine", "ingested files")):
        assert got == want, what
    assert sum(v.disagreements for v in verdicts) == 0
    return per_record, vectorised, verdicts


def test_vectorised_and_record_validators_agree_on_the_corpus(tmp_path, settings, monkeypatch):
    lines = _corpus_lines() + _generated_lines()
    files = {
        "readings-corpus.csv": ",".join(HEADER) + "\n" + "\n".join(lines) + "\n",
        # the same records with Windows line ends, no final line end and a byte-order mark
        "readings-crlf.csv": "\ufeff" + ",".join(HEADER) + "\r\n" + "\r\n".join(lines),
        "readings-colour.csv": ",".join(HEADER) + ",colour\n" + "\n".join(f"{ln},red" for ln in lines[:6]) + "\n",
        "readings-no-unit.csv": ",".join(HEADER[:5]) + "\n" + "\n".join(ln.rsplit(",", 1)[0] for ln in lines) + "\n",
    }
    per_record, _, verdicts = _both_ways(tmp_path, settings, monkeypatch, files)
    readings, quarantine, _ = per_record[1]
    codes = {q[2] for q in quarantine}
    assert codes >= {"missing_field", "unknown_field", "wrong_type", "invalid_value", "value_out_of_range",
                     "negative_count", "timestamp_without_timezone", "invalid_timestamp", "future_timestamp",
                     "date_too_old", "unknown_sensor", "conflicting_duplicate", "malformed_csv", "payload_too_large"}
    assert len(readings) > 20
    # every file went the bulk way, the column expressions judged most rows and never disagreed
    assert sum(v.lines for v in verdicts) >= 3 * len(lines)
    decided = {c for v in verdicts for c in v.vector_codes.values()}
    assert decided >= {"missing_field", "unknown_field", "negative_count", "timestamp_without_timezone",
                       "future_timestamp", "date_too_old", "unknown_sensor", "malformed_csv"}
    assert 0 < sum(v.by_record_validator for v in verdicts) < sum(v.lines for v in verdicts) / 2


def _uniform_lines(zone: str, digits: int) -> list[str]:
    """Rows as a logger writes them (every time of one width, printable ASCII, no blank line), good and bad:
    blocks of them take the CSV reader and the fixed-width reading of times (ingest.bulk_readings)."""
    now = now_utc()
    frac = (lambda t: f".{t.microsecond:06d}"[:digits + 1]) if digits else (lambda t: "")  # noqa: E731
    if len(zone) == 6:  # times written in that offset's local time
        hours, minutes = int(zone[1:3]), int(zone[4:])
        here = timezone((1 if zone[0] == "+" else -1) * timedelta(hours=hours, minutes=minutes))
    else:
        here = timezone.utc
    stamp = lambda t: t.astimezone(here).strftime("%Y-%m-%dT%H:%M:%S") + frac(t) + zone  # noqa: E731
    width = len(stamp(now))
    tail = width - 19
    rows = [f"ww-00{1 + i % 5},{i + 1},{stamp(now - timedelta(minutes=5 + i, microseconds=7919 * i))},copies,"
            f"{(i * 37) % 1000 / 8},copies/L" for i in range(400)]
    # other fractions and zones that make the same width, each as valid as the ones around them
    for k, (z, chars) in enumerate((("+08:00", tail - 6), ("Z", tail - 1), ("", tail), ("-03:30", tail - 6))):
        if 2 <= chars <= 7:
            t = now - timedelta(hours=1, microseconds=123457 * k)
            rows.insert(13 * k + 2, f"ww-002,{5000 + k},{t.strftime('%Y-%m-%dT%H:%M:%S')}"
                        f"{f'.{t.microsecond:06d}'[:chars]}{z},copies,2.5,L")
    bad = [  # each cut or padded to the same width
        "2026-13-01T00:00:00", "2026-02-30T00:00:00", "2026-01-01T24:00:00", "2026-01-01T00:60:00",
        "2026-01-01T00:00:60", "0000-01-01T00:00:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59",
        "1900-01-01T00:00:00", "1999-12-31T23:59:59", "2026-01-01X00:00:00", "2026/01/01T00:00:00",
        "2026-01-01T00:00:0a", "2026-01-01 00:00:00", stamp(now + timedelta(hours=2))[:19],
    ]
    for j, t in enumerate(bad):
        rows.insert(20 * j + 3, f"ww-006,{1000 + j},{(t + frac(now) + zone)[:width].ljust(width, '0')},copies,1.5,L")
    if len(zone) == 6:  # offsets of the same width that are no offset, or out of range
        for j, z in enumerate(("+24:00", "+08:60", "+0800X", "x08:00", "+08-00", "-00:00", "+08:0Z")):
            rows.insert(30 * j + 7, f"ww-006,{2000 + j},{stamp(now - timedelta(hours=1))[:-6]}{z},copies,1,L")
    if digits:  # a fraction that is not one
        rows.insert(17, f"ww-006,3000,{stamp(now - timedelta(hours=1)).replace('.', ',', 1)[:width]},copies,1,L")
        rows.insert(19, f"ww-006,3001,{stamp(now - timedelta(hours=1))[:20]}{'x' * digits}{zone},copies,1,L")
    rows.insert(5, f"ghost-9,1,{stamp(now - timedelta(hours=1))},copies,1,L")  # unknown sensor
    rows.insert(9, f"ww-001,1,{stamp(now - timedelta(hours=1))},copies,99,L")  # same key, other content
    return [r for r in rows if len(r.split(",")) == len(HEADER) and len(r.split(",")[2]) == width]


@pytest.mark.parametrize(("zone", "digits"), [("+08:00", 0), ("Z", 6), ("", 0), ("-05:00", 1), ("Z", 3)])
def test_plain_files_read_by_column_and_fixed_width_agree_with_the_record_validator(tmp_path, settings,
                                                                                    monkeypatch, zone, digits):
    lines = _uniform_lines(zone, digits)
    calls = {"columns": 0, "fixed": 0}
    columns, fixed = bulk_readings._csv_columns, bulk_readings._timestamp_parts_fixed

    def counted(name, fn):
        def inner(*args):
            out = fn(*args)
            calls[name] += out is not None
            return out
        return inner

    monkeypatch.setattr(bulk_readings, "_csv_columns", counted("columns", columns))
    monkeypatch.setattr(bulk_readings, "_timestamp_parts_fixed", counted("fixed", fixed))
    files = {"readings-logger.csv": ",".join(HEADER) + "\n" + "\n".join(lines) + "\n",
             "readings-logger-crlf.csv": ",".join(HEADER) + "\r\n" + "\r\n".join(lines)}
    per_record, _, verdicts = _both_ways(tmp_path, settings, monkeypatch, files)
    blocks = len(verdicts)
    assert blocks > 4 and calls["columns"] == blocks and calls["fixed"] == blocks
    codes = {q[2] for q in per_record[1][1]}
    if zone:
        assert {"future_timestamp", "date_too_old", "invalid_timestamp", "unknown_sensor",
                "conflicting_duplicate"} <= codes
        assert len(per_record[1][0]) > 350
    else:  # without an offset, every row but those of the same width with one is refused, for that first
        assert {"timestamp_without_timezone", "invalid_timestamp"} <= codes
    assert sum(v.by_record_validator for v in verdicts) < sum(v.lines for v in verdicts) / 4


def test_a_quoted_csv_takes_the_record_path(tmp_path, city_store, monkeypatch):
    store, contexts = city_store
    path = tmp_path / "readings-quoted.csv"
    ts = (now_utc() - timedelta(minutes=2)).isoformat()
    path.write_text(",".join(HEADER) + f'\nww-001,1,{ts},"copies, raw",1,L\n', encoding="utf-8")
    monkeypatch.setattr(bulk_readings, "judge_block", lambda *a, **k: pytest.fail("a quoted file went the bulk way"))
    assert FileIngestor(store, contexts).ingest_file(path).result.accepted == 1
    assert json.loads(json.dumps(store.scalar("SELECT metric FROM readings"))) == "copies, raw"
