"""The indicators job: daily series, every indicator of every area per day, R(t) and levels, computed once.

``run(store, settings, today)`` builds the daily series from the records (jobs.daily_inputs),
computes the catalogue's indicators (analytics.catalog) per area and day and R(t) per area and
day (analytics.rt, Cori et al. 2013), levels every area on the as-of day by the active rulebook
(analytics.rulebooks, recording each change), and replaces the last ``HISTORY_DAYS`` days of
``daily_series``, ``facility_days``, ``indicator_values`` and ``rt_estimates`` in one writer
transaction. Levels live here rather than in the early-warning job so that a level always belongs
to the indicator values shown beside it. Older days keep what was stored when they were recent, so the history the briefing
compares against is what the screens showed.

It runs often (``indicators.run_every_s``) because the wall shows its figures, and it does not run
again while its inputs are unchanged: the fingerprint covers the input tables (rows and latest
ingest time, so an erasure counts too), which facilities' reports are fresh now (a report going
stale changes the census without any new row), the as-of day, the active rulebook and every
parameter it uses.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd

from analytics import catalog as cat
from analytics import indicators as ind
from analytics.rt import discretised_gamma_si, estimate_rt
from analytics.rulebooks import Rulebook, assess_areas
from jobs.daily_inputs import HISTORY_DAYS, DailyData, build_daily, to_rows
from jobs.precinct_figures import precinct_days
from rulebooks import active_rulebook, load_rulebooks
from settings import Settings
from store import Store
from store import queries_indicators as qi
from store import queries_precincts as qp
from store import queries_warning as qw
from store.definitions import CITYWIDE, as_of_day
from store.queries_warning import AreaLevel

JOB = "indicators"
METHOD_VERSION = "2"  # bump when a computation here changes, so stored days are recomputed (2: precinct_days)
# Days 0..30 hold all but about 1e-5 of the COVID-19 serial interval's mass (mean 4.7, sd 2.9 days).
SERIAL_INTERVAL_MAX_DAYS = 30
# Cori et al. 2013: the posterior coefficient of variation is 1/sqrt(1 + cases in the window); below
# 11 cases it exceeds 0.3 and EpiEstim's prior (mean 5) dominates the estimate.
MIN_CASES_FOR_RT = 11


def serial_interval(settings: Settings) -> np.ndarray:
    ew = settings.early_warning
    return discretised_gamma_si(ew.serial_interval_mean, ew.serial_interval_std, SERIAL_INTERVAL_MAX_DAYS)


def parameters(settings: Settings) -> dict:
    """Every setting the job's numbers depend on (stored with the run, part of the fingerprint)."""
    ew = settings.early_warning
    return {"history_days": HISTORY_DAYS, "rt_window": ew.rt_window, "serial_interval_mean": ew.serial_interval_mean,
            "serial_interval_std": ew.serial_interval_std, "min_cases_for_rt": MIN_CASES_FOR_RT,
            "stale_after_hours": settings.capacity.stale_after_hours, "fever_metric": ew.fever_metric,
            "wastewater_metric": ew.wastewater_metric, "timezone": settings.city.timezone}


def fingerprint(store: Store, settings: Settings, as_of: date, now: datetime, rulebook: Rulebook) -> str:
    inputs = {"tables": qi.input_versions(store), "rulebook": f"{rulebook.id}@{rulebook.version}",
              "fresh_facilities": qi.fresh_facilities(store, now, settings.capacity.stale_after_hours),
              "as_of": as_of.isoformat(), "parameters": parameters(settings), "version": METHOD_VERSION}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def run(store: Store, settings: Settings, today: date, now: datetime | None = None) -> dict:
    """One run (or none, when nothing changed); returns a JSON-ready summary for /healthz."""
    started = time.monotonic()
    now = now or datetime.now(timezone.utc)
    as_of = as_of_day(store, today, settings.city.timezone)
    if as_of is None:
        return {"status": "no data"}
    choice = qw.latest_rulebook_choice(store)
    rulebook = active_rulebook(load_rulebooks(settings), None if choice is None else choice["rulebook_id"],
                               settings.early_warning.active_rulebook)
    fp = fingerprint(store, settings, as_of, now, rulebook)
    last = qi.job_run(store, JOB)
    if last is not None and last["input_fingerprint"] == fp:
        return {"status": "unchanged", "as_of": as_of.isoformat()}
    data = build_daily(store, settings, as_of, now)
    values, rt = compute(data, settings)
    stored = data.last(HISTORY_DAYS)
    start = stored.days[0].date()
    daily_rows = to_rows(stored)
    facility_rows = stored.facilities.drop(columns=["kind"])
    values = values[values["day"] >= start]
    rt = rt[rt["day"] >= start]
    levels = area_levels(rulebook, values[values["day"] == as_of])
    precinct_rows = precinct_days(store, start, as_of)
    expected_choice = None if choice is None else int(choice["choice_id"])
    summary = {"as_of": as_of.isoformat(), "areas": len(data.area_ids()), "days": HISTORY_DAYS,
               "indicator_rows": len(values), "rulebook": f"{rulebook.id}@{rulebook.version}",
               "citywide_level": next((lv.level for lv in levels if lv.area_id == CITYWIDE), None)}

    def write(con) -> int:
        qi.replace_daily_series_in(con, daily_rows, start, as_of)
        qi.replace_facility_days_in(con, facility_rows, start, as_of)
        qi.replace_indicator_values_in(con, values, start, as_of)
        qi.replace_rt_estimates_in(con, rt, start, as_of)
        qp.replace_precinct_days_in(con, precinct_rows, start, as_of)
        # A rulebook switch committed while this run computed has already levelled the areas with the new
        # rulebook; levels of the old one must not overwrite them (the next run levels with the new one).
        latest = con.execute("SELECT max(choice_id) FROM ew_rulebook_choices").fetchone()[0]
        changes = qw.store_levels(con, as_of, levels, now) if latest == expected_choice else 0
        qi.save_job_run_in(con, JOB, as_of, now, fp if latest == expected_choice else "rulebook switched",
                           METHOD_VERSION, parameters(settings), round(time.monotonic() - started, 3), summary)
        return changes
    changes = store.submit(write).result()
    return {"status": "computed", **summary, "level_changes": changes, "seconds": round(time.monotonic() - started, 2)}


def area_levels(rulebook: Rulebook, values: pd.DataFrame) -> list[AreaLevel]:
    """Each area's overall level by ``rulebook`` from its indicator rows (area_id, indicator, value) of one day."""
    table: dict[str, dict[str, float | None]] = {}
    for row in values.itertuples(index=False):
        table.setdefault(str(row.area_id), {})[str(row.indicator)] = None if pd.isna(row.value) else float(row.value)
    return [AreaLevel(area_id, a.rulebook_id, a.rulebook_version, a.level, a.level_rank, a.colour, a.basis)
            for area_id, a in assess_areas(rulebook, table).items()]


# ---- the computation (pure, on DailyData) -------------------------------------------------------------
def rt_table(counts: pd.DataFrame, si: np.ndarray, window: int) -> pd.DataFrame:
    """R(t) per window ending each day: date, mean, std, q025, q975, local cases in the window.

    Windows with fewer than MIN_CASES_FOR_RT local cases are NaN (the prior would dominate). Imported
    cases seed transmission but are not counted as its result (Cori et al. 2013, Web Appendix).
    """
    cases = counts["cases"].to_numpy(dtype=float)
    imported = np.minimum(counts["imported"].to_numpy(dtype=float), cases)
    columns = ["date", "mean", "std", "q025", "q975", "local_cases"]
    if cases.size < window + 1:
        return pd.DataFrame(columns=columns)
    table = estimate_rt(cases - imported, si, window=window, imported=imported)
    local = (cases - imported).copy()
    local[0] = 0.0  # EpiEstim's convention: day 1's cases are all treated as imported
    window_cases = pd.Series(local).rolling(window).sum().to_numpy()[table["t_end"].to_numpy() - 1]
    enough = window_cases >= MIN_CASES_FOR_RT
    return pd.DataFrame({
        "date": counts.index[table["t_end"].to_numpy() - 1],
        **{c: np.where(enough, table[c], np.nan) for c in ("mean", "std", "q025", "q975")},
        "local_cases": window_cases,
    })


def _week_sum(series: pd.Series) -> pd.Series:
    return series.rolling(ind.WEEK_DAYS, min_periods=ind.WEEK_DAYS).sum()


def area_indicators(data: DailyData, area_id: str, si: np.ndarray, rt_window: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(wide indicator table indexed by date with the catalogue's stored keys, R(t) table) of one area."""
    counts = data.counts[area_id]
    daily = counts.join(data.census[["beds_total", "beds_occupied", "beds_covid", "icu_total", "icu_occupied"]])
    population = data.population(area_id)
    if population > 0:
        table = ind.daily_indicators(daily, population)
    else:  # rates need residents; counts are still worth storing
        table = pd.DataFrame(np.nan, index=daily.index, columns=list(ind.INDICATOR_COLUMNS))
        table[ind.BED_OCCUPANCY] = ind._ratio(daily["beds_occupied"], daily["beds_total"])
        table[ind.ICU_OCCUPANCY] = ind._ratio(daily["icu_occupied"], daily["icu_total"])
    week = _week_sum(counts["cases"])
    table[cat.NEW_CASES_24H] = counts["cases"]
    table[cat.NEW_CASES_7D] = week
    table[cat.NEW_CASES_PREVIOUS_7D] = week.shift(ind.WEEK_DAYS)
    table[cat.TESTS_7D] = _week_sum(counts["tested"])
    table[cat.POSITIVE_TESTS_7D] = _week_sum(counts["positive"])
    table[cat.ADMISSIONS_7D] = _week_sum(counts["admissions"])
    for key in (cat.BEDS_TOTAL, cat.BEDS_OCCUPIED, cat.ICU_TOTAL, cat.ICU_OCCUPIED, cat.HOSPITALS_REPORTING,
                cat.VENTILATORS_TOTAL, cat.VENTILATORS_IN_USE, cat.FACILITIES_STALE):
        table[key] = data.census[key]
    table[cat.BEDS_FREE] = data.census[cat.BEDS_TOTAL] - data.census[cat.BEDS_OCCUPIED]
    table[cat.POTENTIAL_BEDS] = data.potential_beds
    rt = rt_table(counts, si, rt_window)
    table[ind.RT] = rt.set_index("date")["mean"].reindex(table.index) if len(rt) else np.nan
    table[ind.WASTEWATER_PERCENT_CHANGE] = _wastewater_change(data.wastewater_log.get(area_id), table.index)
    table[ind.SENSOR_WEEK_RATIO] = _sensor_ratio(data.fever.get(area_id), table.index)
    return table[list(cat.STORED_KEYS)], rt


def compute(data: DailyData, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(indicator_values rows: day, area_id, indicator, value; rt_estimates rows) for every area and day."""
    si = serial_interval(settings)
    value_frames, rt_frames = [], []
    for area_id in data.area_ids():
        table, rt = area_indicators(data, area_id, si, settings.early_warning.rt_window)
        long = table.rename_axis("day").reset_index().melt(id_vars="day", var_name="indicator", value_name="value")
        long["area_id"] = area_id
        value_frames.append(long)
        if len(rt):
            rt_frames.append(rt.rename(columns={"date": "day"}).assign(area_id=area_id))
    values = pd.concat(value_frames, ignore_index=True)
    values["value"] = [_finite_or_nan(v) for v in values["value"]]
    values["day"] = pd.to_datetime(values["day"]).dt.date
    rt = (pd.concat(rt_frames, ignore_index=True) if rt_frames else
          pd.DataFrame(columns=["day", "mean", "std", "q025", "q975", "local_cases", "area_id"]))
    rt["day"] = pd.to_datetime(rt["day"]).dt.date
    return values[["day", "area_id", "indicator", "value"]], rt


def _wastewater_change(log_series: pd.Series | None, index: pd.DatetimeIndex) -> pd.Series:
    if log_series is None or log_series.dropna().empty:
        return pd.Series(np.nan, index=index)
    trend = ind.wastewater_trend(np.exp(log_series.dropna()))
    return trend["percent_change"].reindex(index)


def _sensor_ratio(series: pd.Series | None, index: pd.DatetimeIndex) -> pd.Series:
    if series is None or series.dropna().empty:
        return pd.Series(np.nan, index=index)
    signal = ind.sensor_signal(series.dropna())
    # A week mostly silent says nothing about fever in the area.
    ratio = signal["ratio"].where(signal["days_reported_7d"] >= ind.MIN_CENSUS_DAYS_PER_WEEK)
    return ratio.reindex(index)


def _finite_or_nan(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return np.nan
    return number if math.isfinite(number) else np.nan
