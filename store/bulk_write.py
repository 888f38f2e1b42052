"""The writer's insert of one Arrow table of validated rows (a bulk file's block; ingest/bulk_readings.py).

The same outcome as ``Store._insert_kind`` gives a pandas frame, for tens of thousands of rows in
one statement: inside the table, an identical repeat of a key is a duplicate and a different record
under the same key a conflict (the first occurrence, by ``__row``, goes on); the primary key's
``ON CONFLICT DO NOTHING RETURNING`` inserts the rest, and only the rows not inserted are compared
with the stored ones by content hash (same: a replay; different: a conflict, quarantined).
"""
from __future__ import annotations

import warnings
from datetime import datetime

import pyarrow as pa

from store.schema import IngestTable
from store.store import BatchResult, QuarantineRow


def insert_arrow_rows(con, spec: IngestTable, types: dict[str, str], kind: str, rows: pa.Table, source: str,
                      now: datetime) -> tuple[BatchResult, list[QuarantineRow], datetime | None]:
    """Insert ``rows`` (the kind's columns, content_hash, raw_payload, __row) into ``spec.table``."""
    key = ", ".join(f'"{k}"' for k in spec.key)
    cols = ", ".join(f'"{c}"' for c in spec.columns)
    casts = ", ".join(f'CAST("{c}" AS {types[c]}) AS "{c}"' for c in spec.columns)
    con.register("bulk_in", rows)
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE staged AS SELECT __row, {casts}, content_hash, raw_payload, "
            f"row_number() OVER (PARTITION BY {key}, content_hash ORDER BY __row) > 1 AS repeat, "
            f"row_number() OVER (PARTITION BY {key} ORDER BY __row) = 1 AS first FROM bulk_in")
    finally:
        con.unregister("bulk_in")
    candidates, duplicate = con.execute(
        "SELECT count(*) FILTER (WHERE first), count(*) FILTER (WHERE repeat) FROM staged").fetchone()
    with warnings.catch_warnings():  # "an extra copy": of the returned keys only, which a parameterised insert needs
        warnings.simplefilter("ignore", UserWarning)
        inserted = con.execute(
            f"INSERT INTO {spec.table} ({cols}, source, content_hash, ingested_at) "
            f"SELECT {cols}, ?, content_hash, ? FROM staged WHERE first ORDER BY __row ON CONFLICT DO NOTHING "
            f"RETURNING {key}", [source, now]).to_arrow_table()
    accepted = inserted.num_rows
    same_key = " AND ".join(f's."{k}" = t."{k}"' for k in spec.key)
    picked = ", ".join(f's."{k}"' for k in spec.key)
    # In-table conflicts first, then those with stored rows: the order Store._insert_kind reports them in.
    conflict_rows = con.execute(
        f"SELECT {picked}, s.raw_payload FROM staged s WHERE NOT s.first AND NOT s.repeat ORDER BY s.__row").fetchall()
    if accepted < candidates:
        in_inserted = " AND ".join(f's."{k}" = i."{k}"' for k in spec.key)
        con.register("inserted_keys", inserted)
        try:
            stored = con.execute(
                f"SELECT {picked}, s.raw_payload, s.content_hash = t.content_hash AS same FROM staged s "
                f"JOIN {spec.table} t ON {same_key} WHERE s.first "
                f"AND NOT EXISTS (SELECT 1 FROM inserted_keys i WHERE {in_inserted}) ORDER BY s.__row").fetchall()
        finally:
            con.unregister("inserted_keys")
        duplicate += sum(1 for r in stored if r[-1])
        conflict_rows += [r[:-1] for r in stored if not r[-1]]
    last = None
    if spec.time_column:
        last = con.execute(f'SELECT max(CAST("{spec.time_column}" AS TIMESTAMPTZ)) FROM staged').fetchone()[0]
    con.execute("DROP TABLE staged")
    conflicts = []
    for r in conflict_rows:
        rec_key = "|".join(str(v) for v in r[:-1])
        conflicts.append(QuarantineRow(
            source=source, kind=kind, reason_code="conflicting_duplicate",
            reason_detail=f"a different {kind} with key {rec_key} is already stored; not overwritten",
            raw_payload=bytes(r[-1] or b""), record_key=rec_key))
    return BatchResult(accepted, duplicate, len(conflicts)), conflicts, last
