"""DDL of the address gazetteer and of the per-precinct daily figures; applied by store.schema.apply_schema.

* ``addresses``: one row per address of the gazetteer (ingested as record kind "address"), with its
  point and ``search_key`` (geo.addresses.address_key of its text: case, accents, punctuation and
  spacing removed), computed once at ingest. Exact and prefix look-ups run on an in-memory sorted
  copy of the keys (services.address_search: binary search), rebuilt when the table changes; an ART
  index in DuckDB would answer one exact key, not "starts with" as the officer types.
* ``precinct_days``: per police precinct and day, the counted cases located in it (point in the
  precinct's polygon) and the 7- and 14-day sums with the periods before them and rates per 100,000,
  computed by the indicators job (jobs.precinct_figures) in the same transaction as the areas' figures.
"""
from __future__ import annotations

_BOOK = "source VARCHAR NOT NULL, content_hash VARCHAR NOT NULL, ingested_at TIMESTAMPTZ NOT NULL"

DDL: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS addresses (
        address_id VARCHAR PRIMARY KEY, text VARCHAR NOT NULL, lat DOUBLE NOT NULL, lng DOUBLE NOT NULL,
        search_key VARCHAR NOT NULL, {_BOOK})""",
    """CREATE TABLE IF NOT EXISTS precinct_days (
        day DATE NOT NULL, precinct_id VARCHAR NOT NULL, population BIGINT,
        cases INTEGER NOT NULL, cases_7d INTEGER NOT NULL, cases_previous_7d INTEGER NOT NULL,
        cases_14d INTEGER NOT NULL, cases_previous_14d INTEGER NOT NULL,
        rate_7d_per_100k DOUBLE, rate_14d_per_100k DOUBLE, PRIMARY KEY (day, precinct_id))""",
)
