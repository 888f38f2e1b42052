"""The content hash of a stored reading, defined once, as SQL the writer evaluates (issue 16).

Readings are the bulk of what is ingested (files of millions of rows, MQTT at thousands a
second), so their ``content_hash`` is not computed in Python per row: the writer computes it in
the statement that inserts them, from the typed columns, whichever way they came (a bulk file's
Arrow block, an MQTT batch, a per-record file batch). A replay of a stored reading therefore
hashes the same however each copy arrived. Other kinds keep ``ingest.records.content_hash``.

The text hashed is version-stable on purpose (it must still match rows stored years ago):

    md5( sensor_id US seq US epoch_us(ts) US strlen(metric) ':' metric US printf('%.17g', value) US unit-or-empty )

with US the unit separator (0x1F), ``printf('%.17g')`` the C formatting of a double with 17
significant digits (exact, the same in C, Python and DuckDB), ``epoch_us`` microseconds since
1970 UTC, and a NULL unit written as nothing while a unit is written as ``=`` and its text. The
metric carries its length in bytes so that no metric/unit pair can imitate another.
Rows stored before this definition had a 24-hex-digit BLAKE2b hash; ``MIGRATIONS`` rewrites them
at start-up (store.schema.apply_schema), so they are not taken for conflicts.
"""
from __future__ import annotations

import duckdb
import pyarrow as pa

MD5_HEX_DIGITS = 32


def reading_hash_sql(q: str = "") -> str:
    """The SQL expression of a reading's content hash; ``q`` qualifies the columns (``"s."``)."""
    return (f"md5(concat({q}sensor_id, chr(31), CAST({q}seq AS VARCHAR), chr(31), CAST(epoch_us({q}ts) AS VARCHAR), "
            f"chr(31), CAST(strlen({q}metric) AS VARCHAR), ':', {q}metric, chr(31), printf('%.17g', {q}value), "
            f"chr(31), coalesce('=' || {q}unit, '')))")


def store_hash_sql(table: str, q: str = "") -> str | None:
    """The SQL content hash the store computes for ``table``, or None (the ingestor's hash is kept)."""
    return reading_hash_sql(q) if table == "readings" else None


# Rows stored under the earlier hash (BLAKE2b, 24 hex digits): rewritten once; afterwards the
# statement finds nothing to change (one scan of the hash column at start-up).
MIGRATIONS: tuple[str, ...] = (
    f"UPDATE readings SET content_hash = {reading_hash_sql()} WHERE strlen(content_hash) <> {MD5_HEX_DIGITS}",
)


def with_reading_hashes(rows: pa.Table) -> pa.Table:
    """``rows`` (a readings table: the kind's columns and more) with its ``content_hash`` column, computed
    by ``reading_hash_sql`` in the calling thread.

    The bulk file path calls this while validating, so that the writer thread, the slower of the two
    (the primary key's index), does not also hash: the same expression over the same typed columns,
    evaluated on another core. The columns must already have the readings table's types (string,
    int64, timestamp[us, UTC], float64, string: DuckDB reads them as VARCHAR, BIGINT, TIMESTAMPTZ,
    DOUBLE, VARCHAR), as ingest.bulk_readings builds them.
    """
    # A small in-memory database per call (a few ms, for a block of 100,000s of rows); one thread, so
    # the rows keep their order.
    with duckdb.connect(":memory:", config={"threads": 1}) as con:
        con.register("hash_in", rows)
        hashes = con.sql(f"SELECT {reading_hash_sql()} AS content_hash FROM hash_in").to_arrow_table()
    return rows.append_column("content_hash", hashes.column(0).combine_chunks())
