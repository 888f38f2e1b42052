"""DDL for the capacity feature; applied by store.schema.apply_schema after the core tables.

Facilities, capacity reports and supply reports are core ingest tables (store.schema). This feature
adds only ``replay_sources``: when a database holds a replay of historical open data (e.g. the
Malaysian Ministry of Health files, ingest.moh_malaysia), the pages must say so and measure report
ages against the end of the replayed data rather than against today, or every facility would be
"stale" by years.
"""
from __future__ import annotations

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS replay_sources (
        source_id VARCHAR PRIMARY KEY, publisher VARCHAR NOT NULL, region VARCHAR NOT NULL,
        data_from DATE, data_to DATE, loaded_at TIMESTAMPTZ NOT NULL, placeholder_boundary BOOLEAN NOT NULL,
        detail VARCHAR)""",
)
