"""DDL for the early-warning feature; applied by store.schema.apply_schema after the core tables.

Tables (all prefixed ``ew_``):

* ``ew_rulebook_choices``: append-only history of the operator's active-rulebook choice. The latest row is
  the active rulebook; with no row, settings.early_warning.active_rulebook is the default. A choice is a
  configuration event, so it is kept with who made it and the rulebook version it pointed at.
* ``ew_area_levels``: the current level of each area under the rulebook (id + version) that gave it.
* ``ew_level_changes``: every change of an area's level, with the rulebook id and version that caused it,
  whether data or a rulebook switch caused it, and the switch (choice) when it was one.
* ``ew_alarms``: aberration-detection episodes (EARS C1/C2/C3, EWMA) per series, area and method.
* ``ew_forecast_runs`` / ``ew_forecast_bands``: the job's renewal-equation projection of cases and
  admissions per area (kept per as-of day, replaced when the job reruns that day). The days-until-
  capacity outlook is in ``capacity_outlook`` (store/schema_indicators.py). The levels are computed
  from ``indicator_values`` of the as-of day, so a rulebook switch re-levels the same numbers.
"""
from __future__ import annotations

DDL: tuple[str, ...] = (
    "CREATE SEQUENCE IF NOT EXISTS ew_rulebook_choice_seq",
    """CREATE TABLE IF NOT EXISTS ew_rulebook_choices (
        choice_id BIGINT PRIMARY KEY DEFAULT nextval('ew_rulebook_choice_seq'),
        chosen_at TIMESTAMPTZ NOT NULL, chosen_by VARCHAR NOT NULL,
        rulebook_id VARCHAR NOT NULL, rulebook_version VARCHAR NOT NULL,
        previous_rulebook_id VARCHAR, previous_rulebook_version VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS ew_area_levels (
        area_id VARCHAR PRIMARY KEY, as_of DATE NOT NULL,
        rulebook_id VARCHAR NOT NULL, rulebook_version VARCHAR NOT NULL,
        level VARCHAR, level_rank INTEGER, colour VARCHAR, basis VARCHAR, assessed_at TIMESTAMPTZ NOT NULL)""",
    "CREATE SEQUENCE IF NOT EXISTS ew_level_change_seq",
    """CREATE TABLE IF NOT EXISTS ew_level_changes (
        change_id BIGINT PRIMARY KEY DEFAULT nextval('ew_level_change_seq'),
        area_id VARCHAR NOT NULL, as_of DATE NOT NULL, recorded_at TIMESTAMPTZ NOT NULL,
        from_level VARCHAR, from_rulebook_id VARCHAR, from_rulebook_version VARCHAR,
        to_level VARCHAR, rulebook_id VARCHAR NOT NULL, rulebook_version VARCHAR NOT NULL,
        direction VARCHAR NOT NULL CHECK (direction IN ('up','down','initial','unassessed','switch')),
        cause VARCHAR NOT NULL CHECK (cause IN ('data','rulebook_switch')),
        choice_id BIGINT, basis VARCHAR)""",
    "CREATE SEQUENCE IF NOT EXISTS ew_alarm_seq",
    """CREATE TABLE IF NOT EXISTS ew_alarms (
        alarm_id BIGINT PRIMARY KEY DEFAULT nextval('ew_alarm_seq'),
        series VARCHAR NOT NULL, area_id VARCHAR NOT NULL, method VARCHAR NOT NULL,
        started_on DATE NOT NULL, last_alarm_on DATE NOT NULL,
        observed DOUBLE, upperbound DOUBLE,
        status VARCHAR NOT NULL CHECK (status IN ('active','resolved')), resolved_on DATE,
        updated_at TIMESTAMPTZ NOT NULL, UNIQUE (series, area_id, method, started_on))""",
    """CREATE TABLE IF NOT EXISTS ew_forecast_runs (
        as_of DATE NOT NULL, area_id VARCHAR NOT NULL, computed_at TIMESTAMPTZ NOT NULL,
        horizon_days INTEGER NOT NULL, r_mean DOUBLE, r_std DOUBLE,
        admission_share DOUBLE, icu_share DOUBLE, note VARCHAR, PRIMARY KEY (as_of, area_id))""",
    # Databases made before the capacity outlook moved to its own table (schema_indicators) and the
    # indicators to indicator_values: drop what nothing writes any more.
    *(f"ALTER TABLE ew_forecast_runs DROP COLUMN IF EXISTS {c}" for c in (
        "beds_capacity", "beds_threshold", "beds_days_median", "beds_days_upper", "icu_capacity", "icu_threshold",
        "icu_days_median", "icu_days_upper", "capacity_trigger")),
    "DROP TABLE IF EXISTS ew_indicators",
    """CREATE TABLE IF NOT EXISTS ew_forecast_bands (
        as_of DATE NOT NULL, area_id VARCHAR NOT NULL, series VARCHAR NOT NULL, day DATE NOT NULL,
        mean DOUBLE, median DOUBLE, q05 DOUBLE, q95 DOUBLE, PRIMARY KEY (as_of, area_id, series, day))""",
)
