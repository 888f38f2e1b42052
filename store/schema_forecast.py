"""DDL of the forecast-skill feature; applied by store.schema.apply_schema after the early-warning tables.

``ew_forecast_skill``: per as-of day, area and horizon (7 and 14 days), how each candidate forecast
method and the method the job uses (``method = 'chosen'``) did in the rolling-origin backtest on the
area's own case series (analytics.forecast_skill): origins scored, MAE, MAE of the naive forecast,
skill (1 - MAE / naive MAE), weighted interval score, and coverage of the 50 % and 90 % bands. The
early-warning job writes it with the day's forecasts, in the same transaction; pages and the briefing
read it (services.early_warning.forecast_quality) and never run a backtest.

``ew_forecast_runs`` gains the method the job forecast with and the sentence that says why.
"""
from __future__ import annotations

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS ew_forecast_skill (
        as_of DATE NOT NULL, area_id VARCHAR NOT NULL, method VARCHAR NOT NULL, horizon INTEGER NOT NULL,
        origins INTEGER NOT NULL, mae DOUBLE, mae_naive DOUBLE, skill DOUBLE, wis DOUBLE,
        coverage_50 DOUBLE, coverage_90 DOUBLE, PRIMARY KEY (as_of, area_id, method, horizon))""",
    "ALTER TABLE ew_forecast_runs ADD COLUMN IF NOT EXISTS method VARCHAR",
    "ALTER TABLE ew_forecast_runs ADD COLUMN IF NOT EXISTS method_note VARCHAR",
)
