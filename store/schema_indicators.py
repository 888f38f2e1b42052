"""DDL of the stored picture of the city: what the jobs compute once and every screen reads.

* ``job_runs``: the latest run of each job, with the as-of day it computed for, a fingerprint of
  its inputs (a job whose inputs did not change does not run again), the method version and the
  parameters it used.
* ``daily_series``: per area (and ``citywide``) and day, the counts every indicator is computed
  from: counted cases, imported cases, tests, positives, admissions, ICU admissions; for the city
  also the hospital census (each hospital's latest report no older than the stale limit at the end
  of the day); per area the fever-kiosk count and wastewater log-concentration.
* ``facility_days``: per bed-holding facility and day, the report counted for that day (NULLs when
  none was fresh): the rows the citywide census is the sum of.
* ``indicator_values``: every indicator of every area and the city per day (long form).
* ``rt_estimates``: R(t) per area and day (Cori et al. 2013), with its posterior SD and 95 % interval;
  NULL where the window holds too few local cases to say anything.
* ``capacity_outlook`` / ``capacity_bands``: days until the occupancy threshold, median and upper,
  for the city, each hospital and each area's hospitals, for beds and ICU, with the projected band.
  ``projected`` false: no projection could be made (``note`` says why); true with NULL days: the
  threshold is not reached within ``horizon_days``.
"""
from __future__ import annotations

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS job_runs (
        job VARCHAR PRIMARY KEY, as_of DATE, computed_at TIMESTAMPTZ NOT NULL, input_fingerprint VARCHAR NOT NULL,
        method_version VARCHAR NOT NULL, parameters VARCHAR NOT NULL, seconds DOUBLE, summary VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS daily_series (
        day DATE NOT NULL, area_id VARCHAR NOT NULL,
        cases INTEGER NOT NULL, imported INTEGER NOT NULL, tested BIGINT NOT NULL, positive BIGINT NOT NULL,
        admissions INTEGER NOT NULL, icu_admissions INTEGER NOT NULL,
        beds_total DOUBLE, beds_occupied DOUBLE, beds_covid DOUBLE, icu_total DOUBLE, icu_occupied DOUBLE,
        ventilators_total DOUBLE, ventilators_in_use DOUBLE, hospitals_reporting INTEGER,
        fever DOUBLE, wastewater_log DOUBLE, PRIMARY KEY (day, area_id))""",
    """CREATE TABLE IF NOT EXISTS facility_days (
        day DATE NOT NULL, facility_id VARCHAR NOT NULL, reported_at TIMESTAMPTZ,
        beds_total INTEGER, beds_occupied INTEGER, icu_total INTEGER, icu_occupied INTEGER,
        ventilators_total INTEGER, ventilators_in_use INTEGER, staff_on_duty INTEGER, covid_patients INTEGER,
        PRIMARY KEY (day, facility_id))""",
    """CREATE TABLE IF NOT EXISTS indicator_values (
        day DATE NOT NULL, area_id VARCHAR NOT NULL, indicator VARCHAR NOT NULL, value DOUBLE,
        PRIMARY KEY (day, area_id, indicator))""",
    """CREATE TABLE IF NOT EXISTS rt_estimates (
        day DATE NOT NULL, area_id VARCHAR NOT NULL, mean DOUBLE, std DOUBLE, q025 DOUBLE, q975 DOUBLE,
        local_cases DOUBLE NOT NULL, PRIMARY KEY (day, area_id))""",
    """CREATE TABLE IF NOT EXISTS capacity_outlook (
        as_of DATE NOT NULL, scope VARCHAR NOT NULL CHECK (scope IN ('city','facility','area')),
        scope_id VARCHAR NOT NULL, resource VARCHAR NOT NULL CHECK (resource IN ('beds','icu')),
        capacity DOUBLE, occupied DOUBLE, threshold DOUBLE NOT NULL, at_threshold DOUBLE,
        projected BOOLEAN NOT NULL, days_median INTEGER, days_upper INTEGER, horizon_days INTEGER NOT NULL,
        trigger BOOLEAN NOT NULL,
        note VARCHAR, PRIMARY KEY (as_of, scope, scope_id, resource))""",
    """CREATE TABLE IF NOT EXISTS capacity_bands (
        as_of DATE NOT NULL, scope VARCHAR NOT NULL, scope_id VARCHAR NOT NULL, resource VARCHAR NOT NULL,
        day DATE NOT NULL, mean DOUBLE, median DOUBLE, q05 DOUBLE, q95 DOUBLE,
        PRIMARY KEY (as_of, scope, scope_id, resource, day))""",
)
