"""The lead job: how many days each wastewater sampler's signal leads the city's counted cases.

For each sampler of a kind whose metric is the early-warning wastewater metric
(``early_warning.wastewater_metric``), and for the city's samplers together (series ``city``: the mean of
the samplers' daily log concentrations), analytics.sensors.lead_over_cases over the last
``sensors.lead_window_days`` days of daily geometric means (store.queries_indicators.daily_sensor_means,
the same daily means the indicators job reads) against the city's daily counted cases as the indicators
job stored them (``daily_series``). Stored in ``sensor_leads``; rerun only when its inputs changed.

The samplers' catchments are not areas in the store, so each is compared with the whole city's cases:
a catchment's own cases would be sharper, but pheoc does not know which homes drain where.
"""
from __future__ import annotations

import hashlib
import json
import time
from datetime import date, datetime, timedelta, timezone

import pandas as pd

from analytics.sensors import lead_over_cases
from settings import Settings
from store import Store
from store import queries_indicators as qi
from store import queries_sensors as qs

JOB = "sensor_lead"
METHOD_VERSION = "lead-xcorr-weekly-1"
CITY_SERIES = "city"


def lead_rows(store: Store, settings: Settings, as_of: date, now: datetime) -> pd.DataFrame:
    cfg, tz = settings.sensors, settings.city.timezone
    start = as_of - timedelta(days=cfg.lead_window_days - 1)
    metric = settings.early_warning.wastewater_metric
    kinds = [name for name, k in cfg.kinds.items() if k.metric == metric]
    cases = qs.citywide_daily_cases(store, start, as_of)
    case_series = pd.Series(cases["cases"].to_numpy(float), index=pd.to_datetime(cases["day"]))
    means = pd.concat([qi.daily_sensor_means(store, kind, metric, start, as_of, tz, log_scale=True) for kind in kinds]
                      ) if kinds else pd.DataFrame(columns=["sensor_id", "day", "value"])
    rows = []
    series: dict[str, pd.Series] = {}
    for sensor_id, mine in means.groupby("sensor_id"):
        series[str(sensor_id)] = pd.Series(mine["value"].to_numpy(float), index=pd.to_datetime(mine["day"]))
    if series:
        series[CITY_SERIES] = pd.concat(series.values(), axis=1).mean(axis=1)
    for name, s in series.items():
        lead = lead_over_cases(s.sort_index(), case_series, cfg.lead_max_lag_days) if len(case_series) \
            else None
        rows.append({"series": name, "as_of": as_of, "lag_days": None if lead is None else lead.lag_days,
                     "correlation": None if lead is None else lead.correlation,
                     "days_used": 0 if lead is None else lead.days_used, "window_days": cfg.lead_window_days,
                     "computed_at": now, "method_version": METHOD_VERSION})
    frame = pd.DataFrame(rows, columns=["series", "as_of", "lag_days", "correlation", "days_used", "window_days",
                                        "computed_at", "method_version"])
    frame["lag_days"] = frame["lag_days"].astype("Int64")
    frame["correlation"] = pd.to_numeric(frame["correlation"], errors="coerce").astype(float)
    return frame


def run(store: Store, settings: Settings, today: date) -> dict:
    """Recompute when the day, the parameters or the indicators job's output changed: readings arrive all day,
    but the leads are daily figures over weeks, and the cases they are compared with change only when the
    indicators job stores new ones."""
    cfg = settings.sensors
    indicators_at = qs.job_computed_at(store, "indicators")
    fingerprint = hashlib.sha256(json.dumps([str(indicators_at), str(today), cfg.lead_window_days,
                                             cfg.lead_max_lag_days, settings.early_warning.wastewater_metric,
                                             METHOD_VERSION]).encode()).hexdigest()
    # Kept with the run in job_runs, as the other jobs keep theirs: a restart does not recompute.
    last = qi.job_run(store, JOB)
    if last is not None and last["input_fingerprint"] == fingerprint:
        return {"status": "unchanged"}
    started = time.monotonic()
    now = datetime.now(timezone.utc)
    rows = lead_rows(store, settings, today, now)
    city = rows[rows["series"] == CITY_SERIES]
    lag = city["lag_days"].iloc[0] if len(city) else None
    summary = {"series": len(rows), "city_lag_days": None if lag is None or pd.isna(lag) else int(lag)}
    parameters = {"lead_window_days": cfg.lead_window_days, "lead_max_lag_days": cfg.lead_max_lag_days,
                  "wastewater_metric": settings.early_warning.wastewater_metric}

    def write(con) -> None:
        qs.replace_leads_in(con, rows)
        qi.save_job_run_in(con, JOB, today, now, fingerprint, METHOD_VERSION, parameters,
                           round(time.monotonic() - started, 3), summary)
    store.submit(write).result(timeout=60)
    return {"status": "computed", "method_version": METHOD_VERSION, **summary}
