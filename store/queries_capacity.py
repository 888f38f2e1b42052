"""Named queries of the capacity page: facilities and their latest reports, daily capacity, supplies,
demand by area, and the replay marker. Every number on /capacity comes from one of these."""
from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pandas as pd

from store.store import Store

# Facilities that hold patients in beds; potential sites (stadiums, schools) have no occupancy yet.
BED_KINDS = ("hospital", "icu", "temporary_hospital", "quarantine_centre")
CAPACITY_COLUMNS = ("beds_total", "beds_occupied", "icu_total", "icu_occupied", "ventilators_total",
                    "ventilators_in_use", "staff_on_duty", "covid_patients")


def _kinds_sql(kinds: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{k}'" for k in kinds) + ")"  # constants of this module, never user input


def facility_status(store: Store) -> pd.DataFrame:
    """Every registered facility with its most recent capacity report (NULLs when it never reported).

    Columns: facility_id, name, kind, owner, lat, lng, area_id, area_name, beds (registry), icu_beds,
    reported_at, and the capacity fields of that report.
    """
    fields = ", ".join(f"r.{c}" for c in CAPACITY_COLUMNS)
    return store.read(
        f"""SELECT f.facility_id, f.name, f.kind, f.owner, f.lat, f.lng, f.area_id, a.name AS area_name,
                   f.beds, f.icu_beds, r.reported_at, {fields}
            FROM facilities f
            LEFT JOIN areas a ON a.area_id = f.area_id
            LEFT JOIN (SELECT *, row_number() OVER (PARTITION BY facility_id ORDER BY reported_at DESC) AS rn
                       FROM capacity_reports) r ON r.facility_id = f.facility_id AND r.rn = 1
            ORDER BY f.facility_id""")


def daily_capacity(store: Store, start: date, end: date, tz: str, max_age_hours: float,
                   facility_id: str | None = None) -> pd.DataFrame:
    """Per bed-holding facility and day in [start, end]: its latest report at the end of that local day.

    A report counts for later days until it is ``max_age_hours`` old (the stale limit), so a facility
    that skipped one day does not drop out of the citywide sum, but one that stopped reporting does.
    Columns: day, facility_id, reported_at and the capacity fields (NULL when no usable report).
    """
    fields = ", ".join(f"CASE WHEN fresh THEN {c} END AS {c}" for c in CAPACITY_COLUMNS)
    where = "AND f.facility_id = ?" if facility_id else ""
    params: list[Any] = [start, end, tz] + ([facility_id] if facility_id else []) + [max_age_hours]
    return store.read(
        f"""WITH days AS (SELECT d::DATE AS day FROM range(?::DATE, ?::DATE + INTERVAL 1 DAY, INTERVAL 1 DAY) t(d)),
                 grid AS (SELECT day, facility_id, timezone(?, (day + INTERVAL 1 DAY)::TIMESTAMP) AS day_end
                          FROM days CROSS JOIN facilities f WHERE f.kind IN {_kinds_sql(BED_KINDS)} {where}),
                 joined AS (SELECT g.day, g.facility_id, r.reported_at, r.* EXCLUDE (facility_id, reported_at),
                                   r.reported_at >= g.day_end - to_microseconds(CAST(? * 3600e6 AS BIGINT)) AS fresh
                            FROM grid g ASOF LEFT JOIN capacity_reports r
                              ON g.facility_id = r.facility_id AND g.day_end > r.reported_at)
            SELECT day, facility_id, CASE WHEN fresh THEN reported_at END AS reported_at, {fields}
            FROM joined ORDER BY facility_id, day""", params)


def latest_supplies(store: Store) -> pd.DataFrame:
    """The latest report of every (facility, item): facility_id, name, kind, item, reported_at, stock,
    daily_use, unit."""
    return store.read(
        """SELECT s.facility_id, f.name, f.kind, s.item, s.reported_at, s.stock, s.daily_use, s.unit
           FROM (SELECT *, row_number() OVER (PARTITION BY facility_id, item ORDER BY reported_at DESC) AS rn
                 FROM supply_reports) s
           JOIN facilities f USING (facility_id)
           WHERE s.rn = 1 ORDER BY f.name, s.item""")


def area_case_growth(store: Store, as_of: date, days: int = 7) -> pd.DataFrame:
    """Per community area: cases in the ``days`` days ending ``as_of`` and in the ``days`` before.

    Columns: area_id, name, population, centroid_lat, centroid_lng, cases_recent, cases_before.
    """
    return store.read(
        """SELECT a.area_id, a.name, a.population, a.centroid_lat, a.centroid_lng,
                  count(c.case_id) FILTER (WHERE c.reported_date > ?::DATE - ?::INTEGER) AS cases_recent,
                  count(c.case_id) FILTER (WHERE c.reported_date <= ?::DATE - ?::INTEGER) AS cases_before
           FROM areas a
           LEFT JOIN cases c ON c.area_id = a.area_id
                AND c.reported_date > ?::DATE - 2 * ?::INTEGER AND c.reported_date <= ?::DATE
           WHERE a.kind IN ('community', 'district')
           GROUP BY ALL ORDER BY a.area_id""", [as_of, days, as_of, days, as_of, days, as_of])


def latest_report_time(store: Store) -> datetime | None:
    """The newest capacity report time in the store (None without reports)."""
    return store.scalar("SELECT max(reported_at) FROM capacity_reports")


def replay_source(store: Store) -> dict[str, Any] | None:
    """The most recently loaded replay source of this database, or None for a live database."""
    rows = store.read("SELECT * FROM replay_sources ORDER BY loaded_at DESC LIMIT 1")
    return None if rows.empty else rows.iloc[0].to_dict()


def save_replay_source(store: Store, *, source_id: str, publisher: str, region: str, data_from: date | None,
                       data_to: date | None, loaded_at: datetime, placeholder_boundary: bool,
                       detail: dict[str, Any]) -> None:
    """Record (or update) that this database holds a replay of ``source_id``."""
    store.write(
        """INSERT INTO replay_sources VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (source_id) DO UPDATE SET publisher = excluded.publisher, region = excluded.region,
             data_from = excluded.data_from, data_to = excluded.data_to, loaded_at = excluded.loaded_at,
             placeholder_boundary = excluded.placeholder_boundary, detail = excluded.detail""",
        [source_id, publisher, region, data_from, data_to, loaded_at, placeholder_boundary,
         json.dumps(detail, default=str, sort_keys=True)])


def boundary_areas(store: Store) -> pd.DataFrame:
    """area_id, name, geometry (GeoJSON text) of the city boundary areas."""
    return store.read("SELECT area_id, name, geometry FROM areas WHERE kind = 'boundary' ORDER BY area_id")
