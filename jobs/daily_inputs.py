"""Daily series per area and for the city: built once from the store's records by the indicators job,
stored in ``daily_series``, and read back from there by the early-warning job.

Counts are flows (events per day; a day without events is 0). The hospital census is a stock, and
it is citywide: hospitals serve the whole city, so every area is assessed against the city's beds
(as New York State assessed hospital capacity by region in 2020). Sensor series are NaN on days no
sensor reported: a silent sensor is not a quiet one.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from settings import Settings
from store import Store
from store import queries as q
from store import queries_indicators as qi
from store.definitions import CITYWIDE, HOSPITAL_KINDS

CITYWIDE_NAME = "Citywide"
COUNT_FIELDS = ("cases", "imported", "tested", "positive", "admissions", "icu_admissions")
CENSUS_FIELDS = ("beds_total", "beds_occupied", "beds_covid", "icu_total", "icu_occupied", "ventilators_total",
                 "ventilators_in_use", "hospitals_reporting")
# Not stored in daily_series: bed-holding facilities (hospitals and quarantine centres) without a report
# counted for the day.
STALE_FIELD = "facilities_stale"
# Days of results kept up to date on every run: the EWMA's 28-day baseline and 2-day guard, R(t)'s
# serial-interval reach and several hospital stays fit comfortably in four months.
HISTORY_DAYS = 120
# Days read before the stored window so that every rolling figure on its first day is complete:
# 15-day wastewater trend, two 7-day weeks for growth, 30 days of serial interval for R(t).
LEAD_DAYS = 35


@dataclass(frozen=True)
class DailyData:
    """Complete daily series over ``days`` for every populated area and the city.

    ``counts[area]``: COUNT_FIELDS per day. ``census``: the citywide hospital census (NaN on days
    without a counted report). ``fever`` and ``wastewater_log``: per area, NaN on silent days.
    ``facilities``: the per-facility rows the census sums (facility_days), when built from records.
    """
    as_of: date
    days: pd.DatetimeIndex
    areas: pd.DataFrame  # area_id, name, population
    city_population: int
    counts: dict[str, pd.DataFrame]
    census: pd.DataFrame
    fever: dict[str, pd.Series]
    wastewater_log: dict[str, pd.Series]
    facilities: pd.DataFrame | None = None
    potential_beds: float = float("nan")

    def area_ids(self) -> list[str]:
        return [CITYWIDE, *self.areas["area_id"]]

    def population(self, area_id: str) -> float:
        if area_id == CITYWIDE:
            return float(self.city_population)
        return float(self.areas.set_index("area_id").at[area_id, "population"])

    def name(self, area_id: str) -> str:
        if area_id == CITYWIDE:
            return CITYWIDE_NAME
        match = self.areas.loc[self.areas["area_id"] == area_id, "name"]
        return str(match.iloc[0]) if len(match) else area_id

    def last(self, days: int) -> "DailyData":
        """The same data cut to its last ``days`` days."""
        keep = self.days[-days:]
        return DailyData(
            as_of=self.as_of, days=keep, areas=self.areas, city_population=self.city_population,
            counts={a: f.reindex(keep) for a, f in self.counts.items()}, census=self.census.reindex(keep),
            fever={a: s.reindex(keep) for a, s in self.fever.items()},
            wastewater_log={a: s.reindex(keep) for a, s in self.wastewater_log.items()},
            facilities=None if self.facilities is None else self.facilities[
                pd.to_datetime(self.facilities["day"]) >= keep[0]].reset_index(drop=True),
            potential_beds=self.potential_beds)


def populated_areas(store: Store) -> pd.DataFrame:
    """area_id, name, population of the populated areas with residents, by name."""
    areas = q.populated_area_list(store)
    return areas[areas["population"] > 0].reset_index(drop=True)


def build_daily(store: Store, settings: Settings, as_of: date, now: datetime,
                days: int = HISTORY_DAYS + LEAD_DAYS) -> DailyData:
    """Every daily series from the store's records, for the ``days`` days ending ``as_of``."""
    start = as_of - timedelta(days=days - 1)
    tz = settings.city.timezone
    ew = settings.early_warning
    calendar = pd.date_range(start, as_of, freq="D", name="date")
    areas = populated_areas(store)
    wanted = [CITYWIDE, *areas["area_id"]]
    long = pd.concat([qi.daily_cases_by_area(store, start, as_of), qi.daily_tests_by_area(store, start, as_of),
                      qi.daily_admissions_by_area(store, start, as_of)], ignore_index=True)
    facilities = qi.facility_days(store, start, as_of, tz, settings.capacity.stale_after_hours, now)
    fever = _sensor_series(qi.daily_sensor_means(store, "fever_kiosk", ew.fever_metric, start, as_of, tz),
                           calendar, wanted, combine="sum")
    wastewater = _sensor_series(qi.daily_sensor_means(store, "wastewater", ew.wastewater_metric, start, as_of, tz,
                                                      log_scale=True), calendar, wanted, combine="mean")
    return DailyData(as_of=as_of, days=calendar, areas=areas, city_population=q.city_population(store),
                     counts=_complete_counts(long, calendar, wanted), census=citywide_census(facilities, calendar),
                     fever=fever, wastewater_log=wastewater, facilities=facilities,
                     potential_beds=float(qi.potential_site_beds(store)))


def citywide_census(facilities: pd.DataFrame, calendar: pd.DatetimeIndex) -> pd.DataFrame:
    """Per day the sum over the city's hospitals of the reports counted that day (NaN: none counted)."""
    empty = pd.DataFrame(np.nan, index=calendar, columns=[*CENSUS_FIELDS, STALE_FIELD]).rename_axis("date")
    if facilities.empty:
        return empty
    all_days = facilities.assign(day=pd.to_datetime(facilities["day"]))
    stale = all_days["reported_at"].isna().groupby(all_days["day"]).sum().astype(float).reindex(calendar)
    rows = facilities[facilities["kind"].isin(HOSPITAL_KINDS) & facilities["reported_at"].notna()].copy()
    if rows.empty:
        return empty.assign(**{STALE_FIELD: stale.to_numpy()})
    rows["day"] = pd.to_datetime(rows["day"])
    rows = rows.rename(columns={"covid_patients": "beds_covid"})
    numeric = [c for c in CENSUS_FIELDS if c != "hospitals_reporting"]
    for c in numeric:
        rows[c] = pd.to_numeric(rows[c], errors="coerce").astype(float)
    grouped = rows.groupby("day")
    out = grouped[numeric].sum(min_count=1)
    out["hospitals_reporting"] = grouped["facility_id"].count().astype(float)
    out = out.reindex(calendar)
    out[STALE_FIELD] = stale.to_numpy()
    return out[[*CENSUS_FIELDS, STALE_FIELD]].rename_axis("date")


def _complete_counts(long: pd.DataFrame, calendar: pd.DatetimeIndex, wanted: Sequence[str]
                     ) -> dict[str, pd.DataFrame]:
    frame = long.copy()
    for column in COUNT_FIELDS:
        if column not in frame:
            frame[column] = 0.0
    frame["day"] = pd.to_datetime(frame["day"])
    values = frame[list(COUNT_FIELDS)].apply(pd.to_numeric, errors="coerce").fillna(0.0)
    values["day"], values["area_id"] = frame["day"], frame["area_id"]
    citywide = values.groupby("day")[list(COUNT_FIELDS)].sum()
    per_area = values.dropna(subset=["area_id"]).groupby(["area_id", "day"])[list(COUNT_FIELDS)].sum()
    out = {}
    for area_id in wanted:
        if area_id == CITYWIDE:
            source = citywide
        elif area_id in per_area.index.get_level_values(0):
            source = per_area.xs(area_id, level="area_id")
        else:
            source = pd.DataFrame(columns=list(COUNT_FIELDS), dtype=float)
        out[area_id] = source.reindex(calendar, fill_value=0.0).astype(float).rename_axis("date")
    return out


def _sensor_series(frame: pd.DataFrame, calendar: pd.DatetimeIndex, wanted: Sequence[str], combine: str
                   ) -> dict[str, pd.Series]:
    """Per area (and citywide) one value per day from per-sensor daily values: sum or mean over sensors."""
    out: dict[str, pd.Series] = {}
    if frame.empty:
        return out
    frame = frame.assign(day=pd.to_datetime(frame["day"]), value=frame["value"].astype(float))
    out[CITYWIDE] = frame.groupby("day")["value"].agg(combine).reindex(calendar)
    for area_id, rows in frame.dropna(subset=["area_id"]).groupby("area_id"):
        if area_id in wanted:
            out[str(area_id)] = rows.groupby("day")["value"].agg(combine).reindex(calendar)
    return out


# ---- to and from daily_series ------------------------------------------------------------------------
def to_rows(data: DailyData) -> pd.DataFrame:
    """DailyData as daily_series rows (the census on the citywide rows only)."""
    frames = []
    for area_id in data.area_ids():
        frame = data.counts[area_id].copy()
        if area_id == CITYWIDE:
            frame = frame.join(data.census)
        frame["fever"] = data.fever[area_id] if area_id in data.fever else np.nan
        frame["wastewater_log"] = data.wastewater_log[area_id] if area_id in data.wastewater_log else np.nan
        frame = frame.reset_index().rename(columns={"date": "day"})
        frame["area_id"] = area_id
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    for column in qi.DAILY_COLUMNS:
        if column not in rows:
            rows[column] = np.nan
    rows["day"] = pd.to_datetime(rows["day"]).dt.date
    return rows[list(qi.DAILY_COLUMNS)]


def load_stored(store: Store, as_of: date, days: int = HISTORY_DAYS) -> DailyData:
    """The daily series the indicators job stored, for the ``days`` days ending ``as_of``."""
    start = as_of - timedelta(days=days - 1)
    calendar = pd.date_range(start, as_of, freq="D", name="date")
    areas = populated_areas(store)
    rows = qi.daily_series(store, start, as_of)
    rows["day"] = pd.to_datetime(rows["day"])
    counts, fever, wastewater = {}, {}, {}
    # Every area's complete calendar in one reindex, then cut by position (area after area): a filter,
    # reindex and cast per area cost about a second at a hundred areas.
    wanted = [CITYWIDE, *areas["area_id"]]
    full = rows.set_index(["area_id", "day"]).reindex(pd.MultiIndex.from_product([wanted, calendar]))
    n = len(calendar)
    count_values = np.nan_to_num(full[list(COUNT_FIELDS)].to_numpy(dtype=float), nan=0.0)
    sensor_values = {name: full[name].to_numpy(dtype=float) for name in ("fever", "wastewater_log")}
    for i, area_id in enumerate(wanted):
        block = slice(i * n, (i + 1) * n)
        counts[area_id] = pd.DataFrame(count_values[block].copy(), index=calendar, columns=list(COUNT_FIELDS))
        for name, into in (("fever", fever), ("wastewater_log", wastewater)):
            values = sensor_values[name][block]
            if not np.isnan(values).all():
                into[area_id] = pd.Series(values.copy(), index=calendar, name=name)
    census = pd.DataFrame(full[list(CENSUS_FIELDS)].to_numpy(dtype=float)[:n], index=calendar,
                          columns=list(CENSUS_FIELDS))
    return DailyData(as_of=as_of, days=calendar, areas=areas, city_population=q.city_population(store),
                     counts=counts, census=census, fever=fever, wastewater_log=wastewater)
