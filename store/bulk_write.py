"""The writer's insert of one Arrow table of validated rows (a bulk file's block, an MQTT batch of readings).

The same outcome as ``Store._insert_kind`` gives a pandas frame, for tens of thousands of rows in
one statement: inside the table, an identical repeat of a key is a duplicate and a different record
under the same key a conflict (the first occurrence, by ``__row``, goes on); the primary key's
``ON CONFLICT DO NOTHING`` inserts the rest and counts them; only when some were not inserted are the
candidates compared with the stored rows by content hash (a row just inserted matches itself; a
different hash under the key was there before: a conflict, quarantined; the rest are replays).

The ordinary table repeats no key (a file's block, a batch of messages): then the rows are inserted
straight from the registered Arrow table, hashing as they go (store/row_hash.py) unless the table
arrives hashed (a bulk file's block), without staging them or numbering repeats; only a table that
repeats a key is staged with window functions.
"""
from __future__ import annotations

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
    # The store's own hash (readings): computed here from the typed columns, unless the table arrives with
    # it (a bulk file's block, hashed by store.row_hash.with_reading_hashes on the ingesting thread).
    stored_hash = None if "content_hash" in rows.column_names else store_hash_sql(spec.table)
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
        # Only the count comes back (RETURNING the keys cost a tenth of the insert): when it falls short,
        # the candidates not inserted are found by their stored twin, below.
        accepted = con.execute(
            f"INSERT INTO {spec.table} ({cols}, source, content_hash, ingested_at) "
            f"SELECT {cols}, ?, content_hash, ? FROM {firsts} ON CONFLICT DO NOTHING", [source, now]).fetchall()[0][0]
        picked = ", ".join(f's."{k}"' for k in spec.key)
        # In-table conflicts first, then those with stored rows: the order Store._insert_kind reports them in.
        conflict_rows = con.execute(
            f"SELECT {picked}, s.raw_payload FROM staged s WHERE NOT s.first AND NOT s.repeat ORDER BY s.__row"
        ).fetchall() if repeated else []
        if accepted < candidates:
            # Every candidate's key is stored now. One stored with another content hash was there before
            # (a row just inserted is its own twin): a conflict. The rest not inserted are replays.
            same_key = " AND ".join(f's."{k}" = t."{k}"' for k in spec.key)
            with_stored = con.execute(
                f"SELECT {picked}, s.raw_payload FROM {firsts} s JOIN {spec.table} t ON {same_key} "
                f"WHERE s.content_hash <> t.content_hash ORDER BY s.__row").fetchall()
            duplicate += candidates - accepted - len(with_stored)
            conflict_rows += with_stored
        last = None
        if spec.time_column:
            last = con.execute(f'SELECT max(CAST("{spec.time_column}" AS TIMESTAMPTZ)) FROM {staged}').fetchall()[0][0]
        if repeated:
            con.execute("DROP TABLE staged")
    finally:
        try:
            con.unregister("bulk_in")
        except Exception:  # noqa: BLE001  an aborted transaction refuses even this: the error above is the news
            pass
    conflicts = []
    for r in conflict_rows:
        rec_key = "|".join(str(v) for v in r[:-1])
        conflicts.append(QuarantineRow(
            source=source, kind=kind, reason_code="conflicting_duplicate",
            reason_detail=f"a different {kind} with key {rec_key} is already stored; not overwritten",
            raw_payload=bytes(r[-1] or b""), record_key=rec_key))
    return BatchResult(accepted, duplicate, len(conflicts)), conflicts, last
