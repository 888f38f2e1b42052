"""The writer's insert of one Arrow table of validated rows (a bulk file's block, an MQTT batch of readings).

The same outcome as ``Store._insert_kind`` gives a pandas frame, for tens of thousands of rows in
one statement: inside the table, an identical repeat of a key is a duplicate and a different record
under the same key a conflict (the first occurrence, by ``__row``, goes on); the primary key's
``ON CONFLICT DO NOTHING RETURNING`` inserts the rest, and only the rows not inserted are compared
with the stored ones by content hash (same: a replay; different: a conflict, quarantined).

The ordinary table repeats no key (a file's block, a batch of messages): then the rows are inserted
straight from the registered Arrow table, hashing as they go (store/row_hash.py), without staging
them or numbering repeats; only a table that repeats a key is staged with window functions.
"""
from __future__ import annotations

import warnings
from datetime import datetime

import pyarrow as pa

from store.row_hash import store_hash_sql
from store.schema import IngestTable
from store.store import BatchResult, QuarantineRow


def insert_arrow_rows(con, spec: IngestTable, types: dict[str, str], kind: str, rows: pa.Table, source: str,
                      now: datetime) -> tuple[BatchResult, list[QuarantineRow], datetime | None]:
    """Insert ``rows`` (the kind's columns, raw_payload, __row, and content_hash unless the store
    computes it for this table) into ``spec.table``."""
    key = ", ".join(f'"{k}"' for k in spec.key)
    cols = ", ".join(f'"{c}"' for c in spec.columns)
    casts = ", ".join(f'CAST("{c}" AS {types[c]}) AS "{c}"' for c in spec.columns)
    stored_hash = store_hash_sql(spec.table)
    # Typed rows with their content hash, computed from the typed columns when the store owns it.
    typed = f"SELECT __row, {casts}, raw_payload{'' if stored_hash else ', content_hash'} FROM bulk_in"
    hashed = f"SELECT *, {stored_hash} AS content_hash FROM ({typed})" if stored_hash else typed
    con.register("bulk_in", rows)
    try:
        repeated = con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM bulk_in GROUP BY {key} HAVING count(*) > 1)").fetchall()[0][0]
        if repeated:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE staged AS SELECT *, "
                f"row_number() OVER (PARTITION BY {key}, content_hash ORDER BY __row) > 1 AS repeat, "
                f"row_number() OVER (PARTITION BY {key} ORDER BY __row) = 1 AS first FROM ({hashed})")
            staged, firsts = "staged", "(SELECT * FROM staged WHERE first)"
            candidates, duplicate = con.execute(
                "SELECT count(*) FILTER (WHERE first), count(*) FILTER (WHERE repeat) FROM staged").fetchall()[0]
        else:
            staged, firsts = f"({hashed})", f"({hashed})"
            candidates, duplicate = rows.num_rows, 0
        with warnings.catch_warnings():  # "an extra copy": of the returned keys only
            warnings.simplefilter("ignore", UserWarning)
            inserted = con.execute(
                f"INSERT INTO {spec.table} ({cols}, source, content_hash, ingested_at) "
                f"SELECT {cols}, ?, content_hash, ? FROM {firsts} ON CONFLICT DO NOTHING "
                f"RETURNING {key}", [source, now]).to_arrow_table()
        accepted = inserted.num_rows
        picked = ", ".join(f's."{k}"' for k in spec.key)
        # In-table conflicts first, then those with stored rows: the order Store._insert_kind reports them in.
        conflict_rows = con.execute(
            f"SELECT {picked}, s.raw_payload FROM staged s WHERE NOT s.first AND NOT s.repeat ORDER BY s.__row"
        ).fetchall() if repeated else []
        if accepted < candidates:
            same_key = " AND ".join(f's."{k}" = t."{k}"' for k in spec.key)
            in_inserted = " AND ".join(f's."{k}" = i."{k}"' for k in spec.key)
            con.register("inserted_keys", inserted)
            try:
                stored = con.execute(
                    f"SELECT {picked}, s.raw_payload, s.content_hash = t.content_hash AS same FROM {firsts} s "
                    f"JOIN {spec.table} t ON {same_key} "
                    f"WHERE NOT EXISTS (SELECT 1 FROM inserted_keys i WHERE {in_inserted}) ORDER BY s.__row").fetchall()
            finally:
                con.unregister("inserted_keys")
            duplicate += sum(1 for r in stored if r[-1])
            conflict_rows += [r[:-1] for r in stored if not r[-1]]
        last = None
        if spec.time_column:
            last = con.execute(f'SELECT max(CAST("{spec.time_column}" AS TIMESTAMPTZ)) FROM {staged}').fetchall()[0][0]
        if repeated:
            con.execute("DROP TABLE staged")
    finally:
        con.unregister("bulk_in")
    conflicts = []
    for r in conflict_rows:
        rec_key = "|".join(str(v) for v in r[:-1])
        conflicts.append(QuarantineRow(
            source=source, kind=kind, reason_code="conflicting_duplicate",
            reason_detail=f"a different {kind} with key {rec_key} is already stored; not overwritten",
            raw_payload=bytes(r[-1] or b""), record_key=rec_key))
    return BatchResult(accepted, duplicate, len(conflicts)), conflicts, last
