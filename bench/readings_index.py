"""What the readings table's primary key costs a bulk load: the store's insert against the same rows into
a table without the key, in the same run (issue 16's readings target, >= 500k rows/s).

A bulk readings file reaches the store as blocks of typed, hashed rows (ingest.bulk_readings, about
130,000 rows per 8 MB block); the store inserts each with ``ON CONFLICT DO NOTHING`` on the primary key
(sensor_id, seq), which is what tells a replay or a conflicting reading from a new one
(store/bulk_write.py). Two ways, each into a new database file, the same blocks (built and hashed
beforehand, not timed, as the file ingestor hashes on the other core):

* ``store``: ``Store.write_batch`` of each block, the bulk file path's writer, until committed;
* ``unindexed``: the same columns inserted by a plain ``INSERT`` into a readings table identical but for
  the primary key, one transaction per block: the ceiling of any writer that keeps this table, since it
  checks nothing (no replay, no conflict is found).

Prints a line per way (rows/s over the whole load and over its first and last tenth) and a summary with
their ratio. The difference is the price of finding replays and conflicts row by row in the key's ART
index; a writer that reached the target would have to find them another way (for instance keyed by
each sensor's highest stored sequence number, looking up stored rows only for readings at or below it).

Run: ``python bench/readings_index.py [--rows 10000000]`` (about two minutes at 10M).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402  (the unindexed twin is written directly: it is no store table)

from store import Store  # noqa: E402
from store.schema import DDL  # noqa: E402
from store.row_hash import with_reading_hashes  # noqa: E402
from store.store import IngestBatch  # noqa: E402

SENSORS = 4230  # the city
BLOCK_ROWS = 130_000  # about one 8 MB block of a readings CSV (ingest.bulk_readings.BLOCK_BYTES)
START_US = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() * 1_000_000)


def block(first: int, rows: int) -> pa.Table:
    """Readings ``first``..``first + rows``: sensors in turn, a minute apart per sensor, typed and hashed
    as a bulk block reaches the store (with ``raw_payload`` and ``__row``)."""
    i = np.arange(first, first + rows)
    table = pa.table({
        "sensor_id": pa.array(np.char.add("S", np.char.zfill((i % SENSORS).astype(str), 4))),
        "seq": i // SENSORS,
        "ts": pa.array(START_US + 60_000_000 * (i // SENSORS) + 1000 * (i % SENSORS), pa.timestamp("us", tz="UTC")),
        "metric": pa.array(["flow"] * rows), "value": (i * 7919) % 100_003 / 10, "unit": pa.array(["l/s"] * rows),
    })
    table = with_reading_hashes(table)
    raw = pa.array([b"x"] * rows, pa.binary())  # the line as read; its bytes do not enter the insert's cost
    return table.append_column("raw_payload", raw).append_column("__row", pa.array(i - first + 2, pa.int64()))


def load_store(path: Path, blocks: list[pa.Table]) -> list[float]:
    times = []
    with Store(path) as store:
        for b in blocks:
            t0 = time.perf_counter()
            result = store.write_batch(IngestBatch("bench:readings-index", "file", {"reading": b}, ())).result()
            times.append(time.perf_counter() - t0)
            assert result.accepted == b.num_rows, result
    return times


def unindexed_readings_ddl() -> str:
    """The store's own readings table (store.schema), but for its primary key."""
    ddl = next(d for d in DDL if "TABLE IF NOT EXISTS readings (" in d)
    key = ", PRIMARY KEY (sensor_id, seq)"
    assert key in ddl, "the readings table's key changed: update this bench"
    return ddl.replace(key, "")


def load_unindexed(path: Path, blocks: list[pa.Table]) -> list[float]:
    con = duckdb.connect(str(path))
    con.execute(unindexed_readings_ddl())
    times = []
    for b in blocks:
        t0 = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        con.register("bulk_in", b)
        con.execute("INSERT INTO readings SELECT sensor_id, seq, ts, metric, value, unit, 'bench:readings-index', "
                    "content_hash, now() FROM bulk_in")
        con.unregister("bulk_in")
        con.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    con.close()
    return times


def rates(times: list[float], rows: list[int]) -> dict:
    """Rows/s over the load and over its first and last tenth of blocks, and the median and slowest block
    of each tenth in ms (a slow block among quick ones is DuckDB's checkpoint of its log, not the index)."""
    tenth = max(1, len(times) // 10)
    first, last = slice(None, tenth), slice(len(times) - tenth - 1, len(times) - 1)  # the short last block out
    ms = [t * 1000 for t in times]
    return {"rows_per_s": round(sum(rows) / sum(times)),
            "rows_per_s_first_tenth": round(sum(rows[first]) / sum(times[first])),
            "rows_per_s_last_tenth": round(sum(rows[last]) / sum(times[last])),
            "block_ms_median_first_tenth": round(statistics.median(ms[first]), 1),
            "block_ms_median_last_tenth": round(statistics.median(ms[last]), 1),
            "block_ms_max_first_tenth": round(max(ms[first]), 1), "block_ms_max_last_tenth": round(max(ms[last]), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="readings loaded by each way")
    args = ap.parse_args()
    starts = range(0, args.rows, BLOCK_ROWS)
    blocks = [block(s, min(BLOCK_ROWS, args.rows - s)) for s in starts]
    sizes = [b.num_rows for b in blocks]
    out = {}
    with tempfile.TemporaryDirectory(prefix="pheoc-bench-index-") as tmp:
        for way, load in (("store", load_store), ("unindexed", load_unindexed)):
            line = {"bench": "readings_index", "way": way, "rows": sum(sizes), "block_rows": BLOCK_ROWS,
                    **rates(load(Path(tmp) / f"{way}.duckdb", blocks), sizes)}
            out[way] = line
            print(json.dumps(line), flush=True)
    print(json.dumps({"bench": "readings_index", "summary": True, "target_rows_per_s": 500_000,
                      "store_over_unindexed": round(out["store"]["rows_per_s"] / out["unindexed"]["rows_per_s"], 3),
                      "store_meets_target": out["store"]["rows_per_s"] >= 500_000,
                      "unindexed_meets_target": out["unindexed"]["rows_per_s"] >= 500_000}), flush=True)


if __name__ == "__main__":
    main()
