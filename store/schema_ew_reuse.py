"""DDL of the early-warning job's reuse of its stored results; applied after the forecast-skill tables.

The job's per-area computations (forecast backtests, aberration detectors) are pure functions of the
area's series and the settings. Each stored result carries a digest of exactly its inputs
(jobs.memo.digest), so that a job started afresh answers an unchanged area from what it stored
instead of computing it again (jobs.stored_results):

* ``ew_forecast_runs.input_digest``: the digest of the inputs of that area's forecast, bands and
  backtest scores (``ew_forecast_bands``, ``ew_forecast_skill`` of the same as-of day and area).
* ``ew_series_alarms``: per watched series and area, the digest of the series its detectors ran on
  and the span of the alarm days still open at its end (all detectors together; NULL when none is
  open). Its open episodes are the ``ew_alarms`` rows of that series and area with status 'active'.
"""
from __future__ import annotations

DDL: tuple[str, ...] = (
    "ALTER TABLE ew_forecast_runs ADD COLUMN IF NOT EXISTS input_digest VARCHAR",
    """CREATE TABLE IF NOT EXISTS ew_series_alarms (
        series VARCHAR NOT NULL, area_id VARCHAR NOT NULL, input_digest VARCHAR NOT NULL,
        open_since DATE, open_last DATE, PRIMARY KEY (series, area_id))""",
)
