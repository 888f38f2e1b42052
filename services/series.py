"""Daily series of one area (or the city) as stored by the indicators job, cut to the caller.

The overview's trend and the early-warning timeline both read this, so the two charts agree.
Daily counts of people from 1 to privacy.min_count - 1 are withheld below case level; the 7-day
average is drawn only where every day of its week is shown, since an average over a week with
one withheld day would give that day away.
"""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from auth.principal import Principal
from services.privacy import SUPPRESSED_SUFFIX, Disclosure, disclose
from settings import Settings
from store import Store
from store import queries_indicators as qi
from store.definitions import CITYWIDE

WEEK = 7
COUNT_COLUMNS = ("cases", "admissions", "icu_admissions")
CENSUS_COLUMNS = ("beds_total", "beds_occupied", "beds_covid", "icu_total", "icu_occupied")
PATIENT_COLUMNS = ("beds_occupied", "beds_covid", "icu_occupied")  # counts of people among the census


def daily_view(store: Store, settings: Settings, principal: Principal, area_id: str, start: date, end: date
               ) -> pd.DataFrame:
    """day, cases, admissions, icu_admissions (with ``__suppressed`` flags), cases_7d_avg, admissions_7d_avg,
    and the city's bed and ICU census with bed_occupancy and icu_occupancy, one row per day in [start, end]."""
    rows = qi.daily_series(store, start, end, [area_id])
    city = rows if area_id == CITYWIDE else qi.daily_series(store, start, end, [CITYWIDE])
    days = pd.date_range(start, end, freq="D", name="day")

    def by_day(frame: pd.DataFrame, columns) -> pd.DataFrame:
        return frame.assign(day=pd.to_datetime(frame["day"])).set_index("day").reindex(days)[list(columns)].astype(float)
    frame = by_day(rows, COUNT_COLUMNS).join(by_day(city, CENSUS_COLUMNS)).reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["bed_occupancy"] = frame["beds_occupied"] / frame["beds_total"].where(frame["beds_total"] > 0)
        frame["icu_occupancy"] = frame["icu_occupied"] / frame["icu_total"].where(frame["icu_total"] > 0)
    grain = "city" if area_id == CITYWIDE else "area"
    spec = Disclosure(f"daily_series:{grain}", grain=grain, counts=(*COUNT_COLUMNS, *PATIENT_COLUMNS),
                      derived=(("bed_occupancy", "beds_occupied"), ("icu_occupancy", "icu_occupied")))
    shown = disclose(principal, frame, spec, min_count=settings.privacy.min_count)
    for column in ("cases", "admissions"):
        hidden = shown[column + SUPPRESSED_SUFFIX].to_numpy(dtype=bool)
        week_hidden = pd.Series(hidden.astype(float)).rolling(WEEK, min_periods=1).sum().to_numpy() > 0
        average = frame[column].rolling(WEEK, min_periods=1).mean().to_numpy()
        shown[f"{column}_7d_avg"] = np.where(week_hidden, np.nan, average)
    return shown
