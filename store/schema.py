"""DuckDB schema, applied idempotently at every start (CREATE ... IF NOT EXISTS).

Ingested tables carry a natural primary key (so writes are ``ON CONFLICT DO NOTHING``) and a
``content_hash`` of the record as received, so a replayed record can be told apart from a
conflicting one (same key, different content) without comparing every column.
Geometry is stored as GeoJSON text: DuckDB's spatial extension would need a download, and
command centres run on closed networks.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IngestTable:
    """How one record kind lands in the store."""
    kind: str
    table: str
    key: tuple[str, ...]
    columns: tuple[str, ...]  # in insert order, excluding the bookkeeping columns added by the store
    time_column: str | None = None  # the record's own time, for data freshness ("last record at")


# Bookkeeping columns every ingested table has, filled by the writer.
BOOKKEEPING = ("source", "content_hash", "ingested_at")

INGEST_TABLES: dict[str, IngestTable] = {t.kind: t for t in (
    IngestTable("area", "areas", ("area_id",),
                ("area_id", "name", "kind", "population", "geometry", "centroid_lat", "centroid_lng")),
    IngestTable("sensor", "sensors", ("sensor_id",),
                ("sensor_id", "kind", "name", "lat", "lng", "h3_cell", "area_id")),
    IngestTable("facility", "facilities", ("facility_id",),
                ("facility_id", "name", "kind", "owner", "lat", "lng", "area_id", "beds", "icu_beds")),
    IngestTable("case", "cases", ("case_id",),
                ("case_id", "reported_date", "onset_date", "lat", "lng", "h3_cell", "area_id", "status",
                 "severity", "age_band", "imported"), "reported_date"),
    IngestTable("test", "tests", ("test_date", "unit_id"),
                ("test_date", "unit_id", "area_id", "h3_cell", "tested", "positive"), "test_date"),
    IngestTable("reading", "readings", ("sensor_id", "seq"),
                ("sensor_id", "seq", "ts", "metric", "value", "unit"), "ts"),
    IngestTable("capacity", "capacity_reports", ("facility_id", "reported_at"),
                ("facility_id", "reported_at", "beds_total", "beds_occupied", "icu_total", "icu_occupied",
                 "ventilators_total", "ventilators_in_use", "staff_on_duty", "covid_patients"), "reported_at"),
    IngestTable("supply", "supply_reports", ("facility_id", "reported_at", "item"),
                ("facility_id", "reported_at", "item", "stock", "daily_use", "unit"), "reported_at"),
    IngestTable("address", "addresses", ("address_id",), ("address_id", "text", "lat", "lng", "search_key")),
    IngestTable("admission", "admissions", ("admission_id",),
                ("admission_id", "case_id", "facility_id", "admitted_on", "icu", "discharged_on", "outcome"),
                "admitted_on"),
)}

_BOOK = "source VARCHAR NOT NULL, content_hash VARCHAR NOT NULL, ingested_at TIMESTAMPTZ NOT NULL"

DDL: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS areas (
        area_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL,
        kind VARCHAR NOT NULL CHECK (kind IN ('boundary','community','precinct','district')),
        population BIGINT CHECK (population >= 0), geometry VARCHAR NOT NULL,
        centroid_lat DOUBLE, centroid_lng DOUBLE, {_BOOK})""",
    f"""CREATE TABLE IF NOT EXISTS sensors (
        sensor_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, name VARCHAR,
        lat DOUBLE NOT NULL, lng DOUBLE NOT NULL, h3_cell VARCHAR, area_id VARCHAR, {_BOOK})""",
    f"""CREATE TABLE IF NOT EXISTS facilities (
        facility_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, kind VARCHAR NOT NULL, owner VARCHAR,
        lat DOUBLE NOT NULL, lng DOUBLE NOT NULL, area_id VARCHAR, beds INTEGER, icu_beds INTEGER, {_BOOK})""",
    f"""CREATE TABLE IF NOT EXISTS cases (
        case_id VARCHAR PRIMARY KEY, reported_date DATE NOT NULL, onset_date DATE,
        lat DOUBLE, lng DOUBLE, h3_cell VARCHAR, area_id VARCHAR,
        status VARCHAR NOT NULL CHECK (status IN ('suspected','confirmed','recovered','deceased')),
        severity VARCHAR, age_band VARCHAR, imported BOOLEAN DEFAULT FALSE, {_BOOK})""",
    f"""CREATE TABLE IF NOT EXISTS tests (
        test_date DATE NOT NULL, unit_id VARCHAR NOT NULL, area_id VARCHAR, h3_cell VARCHAR,
        tested INTEGER NOT NULL CHECK (tested >= 0), positive INTEGER NOT NULL CHECK (positive >= 0),
        {_BOOK}, PRIMARY KEY (test_date, unit_id))""",
    f"""CREATE TABLE IF NOT EXISTS readings (
        sensor_id VARCHAR NOT NULL, seq BIGINT NOT NULL, ts TIMESTAMPTZ NOT NULL, metric VARCHAR NOT NULL,
        value DOUBLE NOT NULL, unit VARCHAR, {_BOOK}, PRIMARY KEY (sensor_id, seq))""",
    f"""CREATE TABLE IF NOT EXISTS capacity_reports (
        facility_id VARCHAR NOT NULL, reported_at TIMESTAMPTZ NOT NULL,
        beds_total INTEGER, beds_occupied INTEGER, icu_total INTEGER, icu_occupied INTEGER,
        ventilators_total INTEGER, ventilators_in_use INTEGER, staff_on_duty INTEGER, covid_patients INTEGER,
        {_BOOK}, PRIMARY KEY (facility_id, reported_at))""",
    f"""CREATE TABLE IF NOT EXISTS supply_reports (
        facility_id VARCHAR NOT NULL, reported_at TIMESTAMPTZ NOT NULL, item VARCHAR NOT NULL,
        stock DOUBLE, daily_use DOUBLE, unit VARCHAR, {_BOOK}, PRIMARY KEY (facility_id, reported_at, item))""",
    f"""CREATE TABLE IF NOT EXISTS admissions (
        admission_id VARCHAR PRIMARY KEY, case_id VARCHAR, facility_id VARCHAR NOT NULL,
        admitted_on DATE NOT NULL, icu BOOLEAN NOT NULL DEFAULT FALSE, discharged_on DATE, outcome VARCHAR,
        {_BOOK})""",
    # Every record that failed validation or conflicted with a stored one: nothing is dropped silently.
    "CREATE SEQUENCE IF NOT EXISTS quarantine_seq",
    """CREATE TABLE IF NOT EXISTS quarantine (
        quarantine_id BIGINT PRIMARY KEY DEFAULT nextval('quarantine_seq'),
        received_at TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL, kind VARCHAR,
        reason_code VARCHAR NOT NULL, reason_detail VARCHAR, record_key VARCHAR, raw_payload BLOB,
        resolved_at TIMESTAMPTZ, resolved_by VARCHAR)""",
    "CREATE SEQUENCE IF NOT EXISTS ingest_log_seq",
    """CREATE TABLE IF NOT EXISTS ingest_log (
        batch_id BIGINT PRIMARY KEY DEFAULT nextval('ingest_log_seq'),
        source VARCHAR NOT NULL, channel VARCHAR NOT NULL, kind VARCHAR,
        committed_at TIMESTAMPTZ NOT NULL, last_record_at TIMESTAMPTZ,
        accepted INTEGER NOT NULL, rejected INTEGER NOT NULL, duplicate INTEGER NOT NULL,
        conflicting INTEGER NOT NULL)""",
    # Files already ingested, by content hash: dropping the same file twice changes nothing.
    """CREATE TABLE IF NOT EXISTS ingested_files (
        sha256 VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, ingested_at TIMESTAMPTZ NOT NULL,
        status VARCHAR NOT NULL, detail VARCHAR)""",
    "CREATE SEQUENCE IF NOT EXISTS alerts_seq",
    """CREATE TABLE IF NOT EXISTS alerts (
        alert_id BIGINT PRIMARY KEY DEFAULT nextval('alerts_seq'),
        raised_at TIMESTAMPTZ NOT NULL, severity VARCHAR NOT NULL CHECK (severity IN ('info','warning','critical')),
        kind VARCHAR NOT NULL, area_id VARCHAR, title VARCHAR NOT NULL, detail VARCHAR,
        status VARCHAR NOT NULL DEFAULT 'active' CHECK (status IN ('active','acknowledged','resolved')),
        rule_id VARCHAR, rule_version VARCHAR, dedupe_key VARCHAR UNIQUE, resolved_at TIMESTAMPTZ)""",
    # Append-only; the hash chain (issue 7) makes alteration detectable.
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq BIGINT PRIMARY KEY, logged_at TIMESTAMPTZ NOT NULL, actor VARCHAR NOT NULL, action VARCHAR NOT NULL,
        target VARCHAR, detail VARCHAR, prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL)""",
)


def all_ddl() -> tuple[str, ...]:
    """Core tables first, then each feature's own (kept in their own modules so features stay separate),
    then the views of store.definitions over them."""
    from store import (definitions, schema_access, schema_addresses, schema_capacity, schema_clusters,
                       schema_indicators, schema_tokens, schema_warning, schema_warnings)
    from store import schema_forecast, schema_hotspots
    from store import schema_sensors
    from store import schema_ew_reuse
    from store import row_hash
    return (DDL + schema_clusters.DDL + schema_warning.DDL + schema_capacity.DDL + schema_access.DDL
            + schema_tokens.DDL + schema_indicators.DDL + schema_warnings.DDL + schema_addresses.DDL
            + schema_hotspots.DDL + schema_forecast.DDL + schema_ew_reuse.DDL + schema_sensors.DDL + row_hash.MIGRATIONS
            + definitions.VIEWS)


def apply_schema(con) -> None:
    """Create every table and sequence that is missing; safe to run at every start."""
    for statement in all_ddl():
        con.execute(statement)
