"""Named queries shared by several features: areas, cells of recent cases, data freshness, quarantine.

Each takes the Store and typed parameters and returns a DataFrame or a scalar. The SQL lives in
store/ and nowhere else, so a number on screen traces back as page -> read model -> query (or
stored result). Cases are always read through the ``counted_cases`` view (store.definitions).
"""
from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from store.store import Store


def first_counted_case_day(store: Store) -> date | None:
    return store.scalar("SELECT min(reported_date) FROM counted_cases")


def city_population(store: Store) -> int:
    """City population: the boundary's if given, else the sum over the populated areas."""
    boundary = store.scalar("SELECT sum(population) FROM areas WHERE kind = 'boundary'")
    if boundary:
        return int(boundary)
    return int(store.scalar("SELECT coalesce(sum(population), 0) FROM populated_areas"))


def populated_area_list(store: Store) -> pd.DataFrame:
    """area_id, name, population (0 when unknown) of the populated areas, by name."""
    return store.read("SELECT area_id, name, coalesce(population, 0) AS population FROM populated_areas ORDER BY name")


def areas(store: Store, kinds: tuple[str, ...]) -> pd.DataFrame:
    """area_id, name, kind, population, geometry (GeoJSON text) of the given kinds."""
    marks = ", ".join("?" for _ in kinds)
    return store.read(
        f"SELECT area_id, name, kind, population, geometry FROM areas WHERE kind IN ({marks}) ORDER BY area_id",
        list(kinds))


def area_table(store: Store) -> pd.DataFrame:
    """area_id, name, kind, population, centroid_lat, centroid_lng of every area (no geometry)."""
    return store.read("SELECT area_id, name, kind, population, centroid_lat, centroid_lng FROM areas "
                      "ORDER BY kind, area_id")


def areas_version(store: Store) -> str:
    """Changes whenever an area is added or re-ingested (a cache key for shapes and per-cell populations)."""
    return str(store.scalar("SELECT count(*) || '/' || coalesce(max(ingested_at)::VARCHAR, '') FROM areas"))


def case_counts_by_cell(store: Store, start: date, end: date) -> pd.DataFrame:
    """h3_cell, cases: located counted cases reported in [start, end], per stored H3 cell."""
    return store.read(
        """SELECT h3_cell, count(*) AS cases FROM counted_cases
           WHERE reported_date BETWEEN ? AND ? AND h3_cell IS NOT NULL
           GROUP BY h3_cell ORDER BY cases DESC""", [start, end])


def case_counts_by_area(store: Store, start: date, end: date) -> pd.DataFrame:
    """area_id, cases: counted cases reported in [start, end] per populated area (0 where none)."""
    return store.read(
        """SELECT a.area_id, count(c.case_id) AS cases FROM populated_areas a
           LEFT JOIN counted_cases c ON c.area_id = a.area_id AND c.reported_date BETWEEN ? AND ?
           GROUP BY a.area_id ORDER BY a.area_id""", [start, end])


def ingest_freshness(store: Store) -> pd.DataFrame:
    """Per ingest channel and record kind: last record time, last commit, and totals."""
    return store.read(
        """SELECT channel, kind, max(last_record_at) AS last_record_at, max(committed_at) AS last_commit_at,
                  sum(accepted)::BIGINT AS accepted, sum(rejected)::BIGINT AS rejected,
                  sum(duplicate)::BIGINT AS duplicate, sum(conflicting)::BIGINT AS conflicting
           FROM ingest_log GROUP BY channel, kind ORDER BY channel, kind""")


def quarantine_count(store: Store, unresolved_only: bool = True) -> int:
    where = "WHERE resolved_at IS NULL" if unresolved_only else ""
    return int(store.scalar(f"SELECT count(*) FROM quarantine {where}"))


def quarantine_by_reason(store: Store) -> pd.DataFrame:
    """reason_code, kind, records, last_received_at for unresolved quarantine rows."""
    return store.read(
        """SELECT reason_code, coalesce(kind, 'unknown') AS kind, count(*) AS records,
                  max(received_at) AS last_received_at
           FROM quarantine WHERE resolved_at IS NULL GROUP BY ALL ORDER BY records DESC""")


def quarantine_recent(store: Store, limit: int = 50) -> pd.DataFrame:
    """The latest quarantined records (without raw payloads: those may hold personal data)."""
    return store.read(
        """SELECT quarantine_id, received_at, source, kind, reason_code, reason_detail, record_key
           FROM quarantine WHERE resolved_at IS NULL ORDER BY quarantine_id DESC LIMIT ?""", [limit])


def window(end: date, days: int) -> tuple[date, date]:
    """The inclusive [start, end] of the ``days`` days ending on ``end``."""
    return end - timedelta(days=days - 1), end
