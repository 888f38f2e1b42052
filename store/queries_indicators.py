"""Named queries of the stored picture of the city (tables in store/schema_indicators.py).

Inputs of the indicators job (daily counts per area, the per-facility daily census, sensor
series), the job's writes (functions of a writer connection, run inside Store.submit so one run
commits as a whole), and the reads the read models make. Every count of cases reads the
``counted_cases`` view of store.definitions.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd

from store.definitions import CITYWIDE
from store.schema import INGEST_TABLES
from store.store import Store

# The figures of a capacity report (its columns after the key).
CAPACITY_COLUMNS = tuple(c for c in INGEST_TABLES["capacity"].columns if c not in ("facility_id", "reported_at"))
DAILY_COLUMNS = ("day", "area_id", "cases", "imported", "tested", "positive", "admissions", "icu_admissions",
                 "beds_total", "beds_occupied", "beds_covid", "icu_total", "icu_occupied", "ventilators_total",
                 "ventilators_in_use", "hospitals_reporting", "fever", "wastewater_log")
# Tables whose rows feed the indicators job; a change to any of them (new rows, an erasure) is a
# change of its inputs.
INPUT_TABLES = ("cases", "tests", "admissions", "capacity_reports", "supply_reports", "readings", "areas", "sensors",
                "facilities")


# ---- inputs ----------------------------------------------------------------------------------------
def input_versions(store: Store) -> dict[str, list]:
    """Per input table: [rows, latest ingest time]: changes whenever rows arrive or are erased."""
    out = {}
    for table in INPUT_TABLES:
        rows, latest = store.read_rows(f"SELECT count(*), max(ingested_at)::VARCHAR FROM {table}")[0]
        out[table] = [int(rows), latest]
    return out


def fresh_facilities(store: Store, now: datetime, max_age_hours: float) -> list[str]:
    """Facilities whose latest capacity report is no older than ``max_age_hours`` at ``now``."""
    return [r[0] for r in store.read_rows(
        """SELECT facility_id FROM capacity_reports GROUP BY facility_id
           HAVING max(reported_at) >= ?::TIMESTAMPTZ - to_microseconds(CAST(? * 3600e6 AS BIGINT))
              AND max(reported_at) <= ?::TIMESTAMPTZ
           ORDER BY facility_id""", [now, max_age_hours, now])]


def potential_site_beds(store: Store) -> int:
    """Beds registered at potential sites (venues that could become temporary hospitals)."""
    return int(store.scalar("SELECT coalesce(sum(beds), 0) FROM facilities WHERE kind = 'potential_site'"))


def supplies_at(store: Store, at: datetime) -> pd.DataFrame:
    """The latest report of every (facility, item) made at or before ``at``: facility_id, name, kind, item,
    reported_at, stock, daily_use, unit."""
    return store.read(
        """SELECT s.facility_id, f.name, f.kind, s.item, s.reported_at, s.stock, s.daily_use, s.unit
           FROM (SELECT *, row_number() OVER (PARTITION BY facility_id, item ORDER BY reported_at DESC) AS rn
                 FROM supply_reports WHERE reported_at <= ?) s
           JOIN facilities f USING (facility_id)
           WHERE s.rn = 1 ORDER BY f.name, s.item""", [at])


def latest_report_times(store: Store) -> pd.DataFrame:
    """facility_id, last_report_at: each facility's newest capacity report (for report ages on screen)."""
    return store.read("SELECT facility_id, max(reported_at) AS last_report_at FROM capacity_reports GROUP BY ALL")


def daily_cases_by_area(store: Store, start: date, end: date) -> pd.DataFrame:
    """area_id (NULL = not located in an area), day, cases, imported: counted cases per area and day."""
    return store.read(
        """SELECT area_id, reported_date AS day, count(*) AS cases, count(*) FILTER (WHERE imported) AS imported
           FROM counted_cases WHERE reported_date BETWEEN ? AND ? GROUP BY ALL ORDER BY day""", [start, end])


def daily_tests_by_area(store: Store, start: date, end: date) -> pd.DataFrame:
    """area_id (NULL for tests reported per H3 cell only), day, tested, positive."""
    return store.read(
        """SELECT area_id, test_date AS day, sum(tested)::BIGINT AS tested, sum(positive)::BIGINT AS positive
           FROM tests WHERE test_date BETWEEN ? AND ? GROUP BY ALL ORDER BY day""", [start, end])


def daily_admissions_by_area(store: Store, start: date, end: date) -> pd.DataFrame:
    """area_id, day, admissions, icu_admissions: by the patient's area when the case is known, else the
    hospital's (CDC counts admissions of residents; a hospital's area is the best guess without a case)."""
    return store.read(
        """SELECT coalesce(c.area_id, f.area_id) AS area_id, a.admitted_on AS day,
                  count(*) AS admissions, count(*) FILTER (WHERE a.icu) AS icu_admissions
           FROM admissions a LEFT JOIN cases c USING (case_id) LEFT JOIN facilities f USING (facility_id)
           WHERE a.admitted_on BETWEEN ? AND ? GROUP BY ALL ORDER BY day""", [start, end])


def facility_days(store: Store, start: date, end: date, tz: str, max_age_hours: float, now: datetime,
                  facility_id: str | None = None) -> pd.DataFrame:
    """Per bed-holding facility and day in [start, end]: the report counted for that day.

    The report counted is the facility's latest one before the end of the local day (or ``now``,
    for a day not over yet), provided it is no older than ``max_age_hours`` then (the stale limit):
    a facility that skipped a day stays in the citywide sum, one that stopped reporting drops out.
    Columns: day, facility_id, kind, reported_at and the capacity fields (NULL when none counts).
    """
    fields = ", ".join(f"CASE WHEN fresh THEN {c} END AS {c}" for c in CAPACITY_COLUMNS)
    where = "AND f.facility_id = ?" if facility_id else ""
    params: list[Any] = [start, end, tz, now] + ([facility_id] if facility_id else []) + [max_age_hours]
    return store.read(
        f"""WITH days AS (SELECT d::DATE AS day FROM range(?::DATE, ?::DATE + INTERVAL 1 DAY, INTERVAL 1 DAY) t(d)),
                 grid AS (SELECT day, facility_id, f.kind,
                                 least(timezone(?, (day + INTERVAL 1 DAY)::TIMESTAMP), ?::TIMESTAMPTZ) AS day_end
                          FROM days CROSS JOIN bed_facilities f WHERE TRUE {where}),
                 joined AS (SELECT g.day, g.facility_id, g.kind, r.reported_at,
                                   r.* EXCLUDE (facility_id, reported_at),
                                   r.reported_at >= g.day_end - to_microseconds(CAST(? * 3600e6 AS BIGINT)) AS fresh
                            FROM grid g ASOF LEFT JOIN capacity_reports r
                              ON g.facility_id = r.facility_id AND g.day_end >= r.reported_at)
            SELECT day, facility_id, kind, CASE WHEN fresh THEN reported_at END AS reported_at, {fields}
            FROM joined ORDER BY facility_id, day""", params)


def daily_sensor_means(store: Store, sensor_kind: str, metric: str, start: date, end: date, tz: str,
                       log_scale: bool = False) -> pd.DataFrame:
    """area_id, sensor_id, day, value: each sensor's mean ``metric`` reading per day (city time zone).

    ``log_scale`` averages ln(value) over positive readings instead (concentrations such as wastewater
    copies/L vary over orders of magnitude, so they are averaged as logarithms: a geometric mean). Days on
    which a sensor did not report are absent: a silent sensor is not a quiet one.
    """
    measure = "avg(ln(r.value))" if log_scale else "avg(r.value)"
    positive = "AND r.value > 0" if log_scale else ""
    # The time filter is on ts itself (one day of slack each side for the time zone), so DuckDB can skip
    # row groups; the exact local-day filter follows.
    return store.read(
        f"""SELECT s.area_id, r.sensor_id, (r.ts AT TIME ZONE ?)::DATE AS day, {measure} AS value
            FROM readings r JOIN sensors s USING (sensor_id)
            WHERE s.kind = ? AND r.metric = ? {positive}
              AND r.ts >= ?::DATE - INTERVAL 1 DAY AND r.ts < ?::DATE + INTERVAL 2 DAY
              AND (r.ts AT TIME ZONE ?)::DATE BETWEEN ? AND ?
            GROUP BY ALL ORDER BY day""", [tz, sensor_kind, metric, start, end, tz, start, end])


def admission_delay_and_stay(store: Store, start: date, end: date) -> pd.DataFrame:
    """icu, admissions, linked, lag_median, discharged, los_mean, los_std over admissions in [start, end].

    lag: days from the case's report to admission (cases linked by case_id); los: days from admission to
    discharge of those already discharged.
    """
    return store.read(
        """SELECT a.icu, count(*) AS admissions, count(c.case_id) AS linked,
                  median(a.admitted_on - c.reported_date) FILTER (WHERE a.admitted_on >= c.reported_date)
                      AS lag_median,
                  count(a.discharged_on) AS discharged,
                  avg(a.discharged_on - a.admitted_on) FILTER (WHERE a.discharged_on >= a.admitted_on)
                      AS los_mean,
                  stddev_samp(a.discharged_on - a.admitted_on) FILTER (WHERE a.discharged_on >= a.admitted_on)
                      AS los_std
           FROM admissions a LEFT JOIN counted_cases c USING (case_id)
           WHERE a.admitted_on BETWEEN ? AND ? GROUP BY a.icu ORDER BY a.icu""", [start, end])


# ---- the job's writes (inside Store.submit) ---------------------------------------------------------
def save_job_run_in(con, job: str, as_of: date | None, computed_at: datetime, fingerprint: str,
                    method_version: str, parameters: dict, seconds: float, summary: dict) -> None:
    con.execute("INSERT OR REPLACE INTO job_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [job, as_of, computed_at, fingerprint, method_version, json.dumps(parameters, sort_keys=True),
                 seconds, json.dumps(summary, sort_keys=True, default=str)])


def _replace_days_in(con, table: str, frame: pd.DataFrame, columns: Sequence[str], start: date, end: date,
                     day_column: str = "day") -> int:
    con.execute(f"DELETE FROM {table} WHERE {day_column} BETWEEN ? AND ?", [start, end])
    if frame.empty:
        return 0
    staged = frame[list(columns)]
    name = f"{table}_in"
    con.register(name, staged)
    try:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = ?", [table]).fetchall())
        # NaN is a float, not a missing value, to DuckDB: turn it into NULL on the way in.
        casts = ", ".join(
            f'CASE WHEN isnan(TRY_CAST("{c}" AS DOUBLE)) THEN NULL ELSE CAST("{c}" AS {types[c]}) END'
            if types[c] in ("DOUBLE", "INTEGER", "BIGINT") else f'CAST("{c}" AS {types[c]})' for c in columns)
        cols = ", ".join(f'"{c}"' for c in columns)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {casts} FROM {name}")
    finally:
        con.unregister(name)
    return len(staged)


def replace_daily_series_in(con, frame: pd.DataFrame, start: date, end: date) -> int:
    return _replace_days_in(con, "daily_series", frame, DAILY_COLUMNS, start, end)


def replace_facility_days_in(con, frame: pd.DataFrame, start: date, end: date) -> int:
    return _replace_days_in(con, "facility_days", frame, ("day", "facility_id", "reported_at", *CAPACITY_COLUMNS),
                            start, end)


def replace_indicator_values_in(con, frame: pd.DataFrame, start: date, end: date) -> int:
    return _replace_days_in(con, "indicator_values", frame, ("day", "area_id", "indicator", "value"), start, end)


def replace_rt_estimates_in(con, frame: pd.DataFrame, start: date, end: date) -> int:
    return _replace_days_in(con, "rt_estimates", frame,
                            ("day", "area_id", "mean", "std", "q025", "q975", "local_cases"), start, end)


OUTLOOK_COLUMNS = ("as_of", "scope", "scope_id", "resource", "capacity", "occupied", "threshold", "at_threshold",
                   "projected", "days_median", "days_upper", "horizon_days", "trigger", "note")
BAND_COLUMNS = ("as_of", "scope", "scope_id", "resource", "day", "mean", "median", "q05", "q95")


def replace_capacity_outlook_in(con, as_of: date, outlooks: pd.DataFrame, bands: pd.DataFrame) -> int:
    """Replace the capacity outlook (and its bands) of ``as_of``."""
    _replace_days_in(con, "capacity_bands", bands, BAND_COLUMNS, as_of, as_of, day_column="as_of")
    return _replace_days_in(con, "capacity_outlook", outlooks, OUTLOOK_COLUMNS, as_of, as_of, day_column="as_of")


# ---- reads -----------------------------------------------------------------------------------------
def job_run(store: Store, job: str) -> dict | None:
    frame = store.read("SELECT * FROM job_runs WHERE job = ?", [job])
    return None if frame.empty else frame.iloc[0].to_dict()


def latest_indicator_day(store: Store) -> date | None:
    """The as-of day of the latest indicators run (None before the first)."""
    return store.scalar("SELECT as_of FROM job_runs WHERE job = 'indicators'")


def indicator_days(store: Store) -> tuple[date | None, date | None]:
    row = store.read_rows("SELECT min(day), max(day) FROM indicator_values")[0]
    return row[0], row[1]


def indicator_values(store: Store, day: date, area_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """area_id, indicator, value stored for ``day`` (all areas, or the given ones)."""
    if area_ids is None:
        return store.read("SELECT area_id, indicator, value FROM indicator_values WHERE day = ? "
                          "ORDER BY area_id, indicator", [day])
    marks = ", ".join("?" for _ in area_ids) or "NULL"
    return store.read(f"SELECT area_id, indicator, value FROM indicator_values WHERE day = ? "
                      f"AND area_id IN ({marks}) ORDER BY area_id, indicator", [day, *area_ids])


def indicator_table(store: Store, day: date) -> dict[str, dict[str, float | None]]:
    """{area_id: {indicator: value}} stored for ``day``; missing values are None."""
    table: dict[str, dict[str, float | None]] = {}
    for area_id, indicator, value in store.read_rows(
            "SELECT area_id, indicator, value FROM indicator_values WHERE day = ?", [day]):
        table.setdefault(str(area_id), {})[str(indicator)] = None if value is None else float(value)
    return table


def rt_on(store: Store, day: date) -> dict[str, tuple[float, float]]:
    """{area_id: (posterior mean, sd)} of R(t) on ``day``, for the areas where it was estimated."""
    return {str(a): (float(m), float(s)) for a, m, s in store.read_rows(
        "SELECT area_id, mean, std FROM rt_estimates WHERE day = ? AND mean IS NOT NULL", [day])}


def indicator_history(store: Store, area_id: str, indicators: Sequence[str], start: date, end: date) -> pd.DataFrame:
    """day, indicator, value of one area over [start, end]."""
    marks = ", ".join("?" for _ in indicators)
    return store.read(f"SELECT day, indicator, value FROM indicator_values WHERE area_id = ? AND day BETWEEN ? AND ? "
                      f"AND indicator IN ({marks}) ORDER BY day, indicator", [area_id, start, end, *indicators])


def daily_series(store: Store, start: date, end: date, area_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The stored daily counts (DAILY_COLUMNS) over [start, end], for all areas or the given ones."""
    cols = ", ".join(DAILY_COLUMNS)
    if area_ids is None:
        return store.read(f"SELECT {cols} FROM daily_series WHERE day BETWEEN ? AND ? ORDER BY area_id, day",
                          [start, end])
    marks = ", ".join("?" for _ in area_ids) or "NULL"
    return store.read(f"SELECT {cols} FROM daily_series WHERE day BETWEEN ? AND ? AND area_id IN ({marks}) "
                      f"ORDER BY area_id, day", [start, end, *area_ids])


def stored_facility_days(store: Store, start: date, end: date, facility_id: str | None = None) -> pd.DataFrame:
    where, params = ("AND d.facility_id = ?", [facility_id]) if facility_id else ("", [])
    return store.read(
        f"""SELECT d.*, f.name, f.kind, f.area_id FROM facility_days d JOIN facilities f USING (facility_id)
            WHERE d.day BETWEEN ? AND ? {where} ORDER BY d.facility_id, d.day""", [start, end, *params])


def rt_estimates(store: Store, area_id: str, start: date, end: date) -> pd.DataFrame:
    """day, mean, std, q025, q975, local_cases of one area over [start, end]."""
    return store.read("SELECT day, mean, std, q025, q975, local_cases FROM rt_estimates "
                      "WHERE area_id = ? AND day BETWEEN ? AND ? ORDER BY day", [area_id, start, end])


def rt_means(store: Store, start: date, end: date) -> pd.DataFrame:
    """area_id, day, mean of R(t) of every area over [start, end], in one read (the job needs all areas)."""
    return store.read("SELECT area_id, day, mean FROM rt_estimates WHERE day BETWEEN ? AND ? ORDER BY area_id, day",
                      [start, end])


def capacity_outlook(store: Store, as_of: date, scope: str | None = None, scope_id: str | None = None
                     ) -> pd.DataFrame:
    where, params = "", [as_of]
    if scope is not None:
        where += " AND scope = ?"
        params.append(scope)
    if scope_id is not None:
        where += " AND scope_id = ?"
        params.append(scope_id)
    return store.read(f"SELECT * FROM capacity_outlook WHERE as_of = ?{where} ORDER BY scope, scope_id, resource",
                      params)


def latest_outlook_day(store: Store, on_or_before: date | None = None) -> date | None:
    if on_or_before is None:
        return store.scalar("SELECT max(as_of) FROM capacity_outlook")
    return store.scalar("SELECT max(as_of) FROM capacity_outlook WHERE as_of <= ?", [on_or_before])


def capacity_bands(store: Store, as_of: date, scope: str, scope_id: str, resource: str = "beds") -> pd.DataFrame:
    """day, mean, median, q05, q95 of one projection."""
    return store.read("SELECT day, mean, median, q05, q95 FROM capacity_bands WHERE as_of = ? AND scope = ? "
                      "AND scope_id = ? AND resource = ? ORDER BY day", [as_of, scope, scope_id, resource])


def open_alert_counts(store: Store, at: datetime) -> dict[str, int]:
    """Alerts open at ``at`` (raised by then, not resolved by then) per area, and the city's total under
    ``citywide``. An alert counts whether or not someone acknowledged it: it is open until its condition ends."""
    rows = store.read_rows(
        """SELECT coalesce(area_id, '') AS area_id, count(*) FROM alerts
           WHERE raised_at <= ? AND (resolved_at IS NULL OR resolved_at > ?) GROUP BY ALL""", [at, at])
    counts = {a: int(n) for a, n in rows if a}
    counts[CITYWIDE] = sum(int(n) for _, n in rows)
    return counts
