"""Store writer benchmark: ms per 5,000-row readings batch as the readings table grows.

The writer decides what is new with the primary key (``INSERT … ON CONFLICT DO NOTHING RETURNING``
the keys inserted; only the rows not inserted are compared with the stored ones). The baseline, in
the same run and on an identical table, is the writer before issue 16: a join of the batch with the
whole table, then ``INSERT … WHERE NOT EXISTS (SELECT … FROM readings)`` — two scans of the table
per batch, so a batch costs more the more is stored (and a file load grows quadratically).

For each table size, both stores are filled with the same rows (bulk SQL, not timed), then
``--batches`` batches of new readings (real ``BatchBuilder`` frames, built beforehand) are written
through ``Store.write_batch`` and timed until committed; at the largest size one batch of replays
(every row already stored) is timed too. Prints one JSON line per size and way, and a summary line
with the growth from the smallest to the largest size.

Run: ``python bench/writer.py [--sizes 100000,1000000,5000000] [--batches 7]`` (a few minutes).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ingest.batch import BatchBuilder  # noqa: E402
from ingest.records import ValidationContext  # noqa: E402
from store import Store  # noqa: E402
from store.schema import INGEST_TABLES  # noqa: E402
from store.store import BatchResult, QuarantineRow  # noqa: E402

BATCH_ROWS = 5000  # the file ingestor's batch size (ingest/files.py)
SENSORS = 4230  # the city: 4,230 sensors
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
FILL_CHUNK = 1_000_000


class BaselineStore(Store):
    """The writer's per-kind insert as it was before issue 16 (kept here only as the baseline)."""

    def _insert_kind(self, con, kind, rows, source, now):
        spec = INGEST_TABLES[kind]
        key = list(spec.key)
        rows = rows.reset_index(drop=True)
        identical = rows.duplicated(subset=key + ["content_hash"], keep="first")
        rows_unique = rows[~identical]
        same_key = rows_unique.duplicated(subset=key, keep="first")
        conflict_frames = [rows_unique[same_key]]
        candidates = rows_unique[~same_key].copy()
        duplicate = int(identical.sum())
        candidates["__row"] = range(len(candidates))
        types = self._column_types[spec.table]
        casts = ", ".join(f"CAST(\"{c}\" AS {types[c]}) AS \"{c}\"" for c in spec.columns)
        con.register("batch_in", candidates[["__row", *spec.columns, "content_hash"]])
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS SELECT __row, {casts}, content_hash FROM batch_in")
        finally:
            con.unregister("batch_in")
        join = " AND ".join(f"s.\"{k}\" = t.\"{k}\"" for k in key)
        existing = con.execute(
            f"SELECT s.__row, s.content_hash = t.content_hash AS same FROM staged s JOIN {spec.table} t ON {join}"
        ).fetchall()
        duplicate += sum(1 for _, same in existing if same)
        conflict_rows = {r for r, same in existing if not same}
        if conflict_rows:
            conflict_frames.append(candidates[candidates["__row"].isin(conflict_rows)])
        cols = ", ".join(f"\"{c}\"" for c in spec.columns)
        accepted = len(con.execute(
            f"INSERT INTO {spec.table} ({cols}, source, content_hash, ingested_at) "
            f"SELECT {cols}, ?, content_hash, ? FROM staged s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {spec.table} t WHERE {join}) ON CONFLICT DO NOTHING "
            f"RETURNING 1", [source, now]).fetchall())
        last = con.execute(f"SELECT max(CAST(\"{spec.time_column}\" AS TIMESTAMPTZ)) FROM staged").fetchone()[0]
        con.execute("DROP TABLE staged")
        conflicts = [QuarantineRow(source=source, kind=kind, reason_code="conflicting_duplicate", reason_detail="",
                                   raw_payload=b"") for frame in conflict_frames for _ in range(len(frame))]
        return BatchResult(accepted, duplicate, len(conflicts)), conflicts, last


def reading(i: int) -> dict:
    """Reading number ``i`` of the city: sensors in turn, a minute apart per sensor."""
    return {"sensor_id": f"S{i % SENSORS:04d}", "seq": i // SENSORS,
            "ts": (START + timedelta(seconds=60 * (i // SENSORS), milliseconds=i % SENSORS)).isoformat(),
            "metric": "flow", "value": (i * 7919) % 100_003 / 10, "unit": "l/s"}


def fill(store: Store, start: int, stop: int) -> None:
    """Readings ``start``..``stop`` straight into the table, the same keys and times ``reading`` makes."""
    for lo in range(start, stop, FILL_CHUNK):
        hi = min(stop, lo + FILL_CHUNK)
        store.write(
            "INSERT INTO readings SELECT 'S' || lpad(CAST(i % ? AS VARCHAR), 4, '0'), i // ?, "
            "CAST(? AS TIMESTAMPTZ) + to_seconds(60 * (i // ?)) + to_milliseconds(i % ?), 'flow', (i * 7919) % 100003 / 10, 'l/s', "
            "'bench-fill', md5(CAST(i AS VARCHAR)), now() FROM range(?, ?) r(i)",
            [SENSORS, SENSORS, START, SENSORS, SENSORS, lo, hi])


def build_batches(first: int, count: int, ctx: ValidationContext) -> list:
    batches = []
    for b in range(count):
        builder = BatchBuilder("bench:writer", "file")
        for i in range(first + b * BATCH_ROWS, first + (b + 1) * BATCH_ROWS):
            rec = reading(i)
            assert builder.add("reading", rec, repr(rec).encode(), ctx)
        batches.append(builder.build())
    return batches


def timed(store: Store, batch) -> tuple[float, BatchResult]:
    t0 = time.perf_counter()
    result = store.write_batch(batch).result()
    return (time.perf_counter() - t0) * 1000, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000,5000000", help="table sizes (rows) to measure at")
    ap.add_argument("--batches", type=int, default=7, help="batches timed per size and way")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    ctx = ValidationContext(now=START + timedelta(days=3650), check_registries=False)
    results: dict[str, dict[int, float]] = {"primary_key": {}, "anti_join": {}}
    with tempfile.TemporaryDirectory(prefix="pheoc-bench-writer-") as tmp:
        stores = {"primary_key": Store(Path(tmp) / "pk.duckdb"), "anti_join": BaselineStore(Path(tmp) / "aj.duckdb")}
        try:
            filled = 0
            for size in sizes:
                for store in stores.values():
                    fill(store, filled, size)
                batches = build_batches(size, args.batches, ctx)
                for way, store in stores.items():
                    ms = []
                    for batch in batches:
                        elapsed, result = timed(store, batch)
                        assert result.accepted == BATCH_ROWS, result
                        ms.append(elapsed)
                    line = {"bench": "writer", "way": way, "table_rows": size, "batch_rows": BATCH_ROWS,
                            "batches": len(ms), "p50_ms": round(statistics.median(ms), 1),
                            "max_ms": round(max(ms), 1)}
                    if size == sizes[-1]:
                        replay_ms, replay = timed(store, batches[0])
                        assert replay.duplicate == BATCH_ROWS and replay.accepted == 0, replay
                        line["replay_batch_ms"] = round(replay_ms, 1)
                    results[way][size] = line["p50_ms"]
                    print(json.dumps(line), flush=True)
                # Both tables hold the same rows: the timed batches are part of them now.
                filled = size + args.batches * BATCH_ROWS
        finally:
            for store in stores.values():
                store.close()
    lo, hi = sizes[0], sizes[-1]
    print(json.dumps({"bench": "writer", "summary": True, "from_rows": lo, "to_rows": hi,
                      **{f"{way}_growth": round(r[hi] / r[lo], 2) for way, r in results.items()},
                      "speedup_at_largest": round(results["anti_join"][hi] / results["primary_key"][hi], 2),
                      "target_growth_max": 1.5}), flush=True)


if __name__ == "__main__":
    main()
