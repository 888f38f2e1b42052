"""DDL of the sensor figures; applied by store.schema.apply_schema.

* ``sensor_states``: each sensor's state as the sensor job last judged it (jobs/sensor_alerts.py): its
  latest reading of its kind's metric, when it was last heard from at all, its battery where it reports
  one, and the state (normal / above / silent / no_data). One row per sensor, replaced at every run.
* ``sensor_leads``: the lead of each wastewater sampler (and of the city's samplers together, series
  ``city``) over the city's counted cases: the lag in days at which the cross-correlation of daily
  changes peaks, with that correlation (jobs/sensor_lead.py).
"""
from __future__ import annotations

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS sensor_states (
        sensor_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL,
        state VARCHAR NOT NULL CHECK (state IN ('normal','above','silent','no_data')),
        metric VARCHAR, value DOUBLE, value_at TIMESTAMPTZ, threshold DOUBLE, last_seen TIMESTAMPTZ,
        expected_interval_s INTEGER, battery_pct DOUBLE, battery_at TIMESTAMPTZ, since TIMESTAMPTZ,
        checked_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sensor_leads (
        series VARCHAR PRIMARY KEY, as_of DATE NOT NULL, lag_days INTEGER, correlation DOUBLE,
        days_used INTEGER NOT NULL, window_days INTEGER NOT NULL, computed_at TIMESTAMPTZ NOT NULL,
        method_version VARCHAR NOT NULL)""",
)
