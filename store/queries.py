"""Named queries: every number a page shows comes from one of these functions.

Each takes the Store and typed parameters and returns a DataFrame or a scalar. The SQL lives here
and nowhere else, so a number on screen traces back as page -> service -> query.
"""
from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from store.store import Store

HOSPITAL_KINDS = ("hospital", "icu", "temporary_hospital")
# A case counts once confirmed; recovered and deceased cases were confirmed first. Suspected ones
# are not cases yet (every page uses the same rule so the numbers agree).
COUNTED = "status <> 'suspected'"


def latest_case_date(store: Store) -> date | None:
    """The most recent reported date of any case (None if there are no cases)."""
    return store.scalar("SELECT max(reported_date) FROM cases")


def first_case_date(store: Store) -> date | None:
    return store.scalar("SELECT min(reported_date) FROM cases")


def city_population(store: Store) -> int:
    """City population: the boundary's if given, else the sum over community areas."""
    boundary = store.scalar("SELECT sum(population) FROM areas WHERE kind = 'boundary'")
    if boundary:
        return int(boundary)
    return int(store.scalar("SELECT coalesce(sum(population), 0) FROM areas WHERE kind IN ('community','district')"))


def case_count(store: Store, start: date, end: date) -> int:
    """Cases reported in [start, end] (inclusive)."""
    return int(store.scalar(f"SELECT count(*) FROM cases WHERE reported_date BETWEEN ? AND ? AND {COUNTED}",
                            [start, end]))


def test_totals(store: Store, start: date, end: date) -> tuple[int, int]:
    """(tested, positive) summed over [start, end]."""
    tested, positive = store.read_rows(
        "SELECT coalesce(sum(tested), 0), coalesce(sum(positive), 0) FROM tests WHERE test_date BETWEEN ? AND ?",
        [start, end])[0]
    return int(tested), int(positive)


def daily_cases(store: Store, start: date, end: date) -> pd.DataFrame:
    """One row per day in [start, end] (missing days as 0): day, cases."""
    return store.read(
        """SELECT d.day::DATE AS day, count(c.case_id) AS cases
           FROM range(?::DATE, ?::DATE + INTERVAL 1 DAY, INTERVAL 1 DAY) AS d(day)
           LEFT JOIN cases c ON c.reported_date = d.day::DATE AND c.status <> 'suspected'
           GROUP BY d.day ORDER BY d.day""", [start, end])


def daily_admissions(store: Store, start: date, end: date) -> pd.DataFrame:
    """One row per day: day, admissions (all), icu_admissions."""
    return store.read(
        """SELECT d.day::DATE AS day, count(a.admission_id) AS admissions,
                  count(a.admission_id) FILTER (WHERE a.icu) AS icu_admissions
           FROM range(?::DATE, ?::DATE + INTERVAL 1 DAY, INTERVAL 1 DAY) AS d(day)
           LEFT JOIN admissions a ON a.admitted_on = d.day::DATE
           GROUP BY d.day ORDER BY d.day""", [start, end])


def daily_hospital_census(store: Store, start: date, end: date, tz: str) -> pd.DataFrame:
    """day, beds_total, beds_occupied, beds_covid, icu_total, icu_occupied, hospitals: per day the sum over
    hospitals of each one's last report that day (in the city's time zone)."""
    return store.read(
        f"""WITH last AS (
              SELECT r.*, (r.reported_at AT TIME ZONE ?)::DATE AS day,
                     row_number() OVER (PARTITION BY r.facility_id, (r.reported_at AT TIME ZONE ?)::DATE
                                        ORDER BY r.reported_at DESC) AS rn
              FROM capacity_reports r JOIN facilities f USING (facility_id)
              WHERE f.kind IN {HOSPITAL_KINDS})
            SELECT day, sum(beds_total) AS beds_total, sum(beds_occupied) AS beds_occupied,
                   sum(covid_patients) AS beds_covid, sum(icu_total) AS icu_total,
                   sum(icu_occupied) AS icu_occupied, count(*) AS hospitals
            FROM last WHERE rn = 1 AND day BETWEEN ? AND ? GROUP BY day ORDER BY day""",
        [tz, tz, start, end])


def latest_capacity(store: Store) -> pd.DataFrame:
    """Each facility's most recent capacity report, with its kind and name."""
    return store.read(
        """SELECT f.facility_id, f.name, f.kind, r.reported_at, r.beds_total, r.beds_occupied,
                  r.icu_total, r.icu_occupied, r.ventilators_total, r.ventilators_in_use, r.covid_patients
           FROM facilities f
           LEFT JOIN (SELECT *, row_number() OVER (PARTITION BY facility_id ORDER BY reported_at DESC) AS rn
                      FROM capacity_reports) r ON r.facility_id = f.facility_id AND r.rn = 1
           ORDER BY f.facility_id""")


def active_alert_count(store: Store) -> int:
    return int(store.scalar("SELECT count(*) FROM alerts WHERE status = 'active'"))


def case_counts_by_cell(store: Store, start: date, end: date) -> pd.DataFrame:
    """h3_cell, cases: located cases reported in [start, end], per H3 cell."""
    return store.read(
        """SELECT h3_cell, count(*) AS cases FROM cases
           WHERE reported_date BETWEEN ? AND ? AND h3_cell IS NOT NULL AND status <> 'suspected'
           GROUP BY h3_cell ORDER BY cases DESC""", [start, end])


def areas(store: Store, kinds: tuple[str, ...]) -> pd.DataFrame:
    """area_id, name, kind, population, geometry (GeoJSON text) of the given kinds."""
    marks = ", ".join("?" for _ in kinds)
    return store.read(
        f"SELECT area_id, name, kind, population, geometry FROM areas WHERE kind IN ({marks}) ORDER BY area_id",
        list(kinds))


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
