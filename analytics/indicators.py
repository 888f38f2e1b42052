"""Daily early-warning indicators per area and citywide, from tidy daily series.

The definitions follow the public dashboards whose rulebooks pheoc ships (rulebooks/*.yaml):

* new cases per 100k, 7-day average of daily counts (Harvard Global Health Institute "Key Metrics for
  COVID Suppression", July 2020; Covid Act Now "daily new cases per 100k");
* new cases and new COVID-19 hospital admissions per 100k as 7-day *totals*, and the percent of staffed
  inpatient beds occupied by COVID-19 patients as a 7-day average (CDC COVID-19 Community Levels, Feb 2022);
* 7-day test positivity as sum of positive tests / sum of tests over the same 7 days (a ratio of sums, not
  a mean of daily ratios, so that a day with few tests does not weigh as much as a day with many);
* bed and ICU occupancy as occupied / total on the day (Covid Act Now "ICU capacity used");
* week-over-week growth (this week's cases / last week's) and the doubling time it implies;
* wastewater trend as CDC NWSS's 15-day percent change: the slope of a least-squares line through the
  natural log of concentration over the last 15 days, reported as 100 * (exp(slope * 14) - 1);
* sensor signals (e.g. fever-screening counts): 7-day sum against the previous 7-day sum.

Input is one DataFrame per area indexed by date with any of the columns in ``COUNT_COLUMNS`` and
``CENSUS_COLUMNS``; absent columns give NaN indicators rather than an error, because not every deployment
has every feed. Counts are flows (events per day): a missing day is taken as zero events. Census columns are
stocks (patients in beds, beds staffed): a missing day is unknown (NaN), never zero, because "nobody in
hospital" and "nobody reported" are different facts. Every ratio with a zero or missing denominator is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

# Daily flows: a day without a report contributes no events.
COUNT_COLUMNS: tuple[str, ...] = ("cases", "tested", "positive", "admissions")
# Daily stocks: beds staffed and patients in them on the day; unknown when not reported.
# beds_covid / icu_covid are the COVID-19 patients among beds_occupied / icu_occupied (CDC's bed metric).
BED_COLUMNS: tuple[str, ...] = ("beds_total", "beds_occupied", "beds_covid")
ICU_COLUMNS: tuple[str, ...] = ("icu_total", "icu_occupied", "icu_covid")
CENSUS_COLUMNS: tuple[str, ...] = BED_COLUMNS + ICU_COLUMNS

# Names of the indicator columns; rulebooks refer to indicators by these names.
CASES_PER_100K_7D_AVG = "cases_per_100k_7d_avg"
CASES_PER_100K_7D = "incidence_7d_per_100k"  # the API and rulebooks call it by this name
TEST_POSITIVITY_7D = "test_positivity_7d"
ADMISSIONS_PER_100K_7D = "admissions_per_100k_7d"
BED_OCCUPANCY = "bed_occupancy"
ICU_OCCUPANCY = "icu_occupancy"
COVID_BED_SHARE_7D = "covid_bed_share_7d"
WEEK_OVER_WEEK_GROWTH = "week_over_week_growth"
DOUBLING_TIME_DAYS = "doubling_time_days"
# Indicators computed elsewhere that rulebooks may also refer to: R(t) from analytics.rt (last window's
# posterior mean), wastewater_trend's percent_change and sensor_signal's ratio, under these names.
RT = "rt"
WASTEWATER_PERCENT_CHANGE = "wastewater_percent_change"
SENSOR_WEEK_RATIO = "sensor_week_ratio"
INDICATOR_COLUMNS: tuple[str, ...] = (
    CASES_PER_100K_7D_AVG,
    CASES_PER_100K_7D,
    TEST_POSITIVITY_7D,
    ADMISSIONS_PER_100K_7D,
    BED_OCCUPANCY,
    ICU_OCCUPANCY,
    COVID_BED_SHARE_7D,
    WEEK_OVER_WEEK_GROWTH,
    DOUBLING_TIME_DAYS,
)

CITYWIDE = "citywide"
PER_100K = 100_000.0
WEEK_DAYS = 7
# A 7-day average of a census needs most of the week reported to mean anything; 4 of 7 is a majority.
MIN_CENSUS_DAYS_PER_WEEK = 4
# CDC NWSS reports wastewater trend as the percent change over a 15-day window (14 days between ends).
WASTEWATER_WINDOW_DAYS = 15
# A line through fewer than 3 points has no residual to speak of; CDC NWSS also asks for several samples.
WASTEWATER_MIN_SAMPLES = 3


def complete_daily_range(
    daily: pd.DataFrame,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Reindex ``daily`` to every calendar day from ``start`` to ``end`` (defaults: its first/last date).

    Count columns get 0 on the added days; census columns get NaN. Columns that are neither are kept
    and left NaN on added days. Raises ValueError for duplicate dates or negative counts.
    """
    frame = _with_date_index(daily)
    first = pd.Timestamp(start) if start is not None else frame.index.min()
    last = pd.Timestamp(end) if end is not None else frame.index.max()
    days = pd.date_range(first, last, freq="D", name="date")
    completed = frame.reindex(days)
    for column in COUNT_COLUMNS:
        if column in completed:
            completed[column] = completed[column].fillna(0.0)
    return completed


def daily_indicators(
    daily: pd.DataFrame,
    population: float,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """All indicators of ``INDICATOR_COLUMNS`` for one area, one row per calendar day.

    Rolling 7-day indicators are NaN for the first 6 days of the range (a partial week would understate
    them); growth and doubling time need 14 days.
    """
    _check_population(population)
    frame = complete_daily_range(daily, start, end)
    column = _column_or_nan(frame)
    per_100k = PER_100K / population

    cases_7d = _rolling_week_sum(column("cases"))
    result = pd.DataFrame(index=frame.index)
    result[CASES_PER_100K_7D_AVG] = cases_7d / WEEK_DAYS * per_100k
    result[CASES_PER_100K_7D] = cases_7d * per_100k
    result[TEST_POSITIVITY_7D] = _ratio(
        _rolling_week_sum(column("positive")), _rolling_week_sum(column("tested"))
    )
    result[ADMISSIONS_PER_100K_7D] = _rolling_week_sum(column("admissions")) * per_100k
    result[BED_OCCUPANCY] = _ratio(column("beds_occupied"), column("beds_total"))
    result[ICU_OCCUPANCY] = _ratio(column("icu_occupied"), column("icu_total"))
    result[COVID_BED_SHARE_7D] = _census_week_share(column("beds_covid"), column("beds_total"))
    result[WEEK_OVER_WEEK_GROWTH] = week_over_week_growth(column("cases"))
    result[DOUBLING_TIME_DAYS] = doubling_time_days(result[WEEK_OVER_WEEK_GROWTH])
    return result


def area_indicators(
    daily_by_area: pd.DataFrame,
    populations: Mapping[str, float],
    area_column: str = "area",
    date_column: str = "date",
    include_citywide: bool = True,
) -> pd.DataFrame:
    """Indicators for every area (and the city as a whole), indexed by (area, date).

    ``daily_by_area`` is long: one row per area and date with ``area_column``, ``date_column`` and the
    count/census columns. Every area is completed to the same calendar range (the earliest to the latest
    date of any area) so that areas and the citywide row line up day by day. The citywide row sums counts
    over areas, and sums each census group (beds, ICU) only over the areas that reported *every* column
    of that group on the day, so that a facility reporting its beds but not its patients does not dilute
    the citywide occupancy.
    """
    for name in (area_column, date_column):
        if name not in daily_by_area.columns:
            raise ValueError(f"daily_by_area has no column {name!r}")
    areas = list(pd.unique(daily_by_area[area_column]))
    unknown = [area for area in areas if area not in populations]
    if unknown:
        raise ValueError(f"no population for area(s) {unknown}")
    if include_citywide and CITYWIDE in areas:
        raise ValueError(f"an area may not be called {CITYWIDE!r}: that name is the whole city")
    dates = pd.to_datetime(daily_by_area[date_column])
    first, last = dates.min(), dates.max()

    completed: dict[str, pd.DataFrame] = {}
    for area, rows in daily_by_area.groupby(area_column, sort=False):
        completed[str(area)] = complete_daily_range(
            rows.drop(columns=[area_column]).set_index(date_column), first, last
        )
    per_area = {
        area: daily_indicators(frame, populations[area]) for area, frame in completed.items()
    }
    if include_citywide:
        citywide_daily = _citywide_daily(list(completed.values()))
        per_area[CITYWIDE] = daily_indicators(
            citywide_daily, float(sum(populations[area] for area in completed))
        )
    return pd.concat(per_area, names=["area", "date"])


def week_over_week_growth(cases: pd.Series) -> pd.Series:
    """Cases in the 7 days ending each day divided by cases in the 7 days before those.

    NaN when last week had no cases (growth from zero is undefined) and during the first 13 days.
    1.0 means flat, 2.0 doubled in a week, 0.5 halved.
    """
    this_week = _rolling_week_sum(cases.astype(float))
    last_week = this_week.shift(WEEK_DAYS)
    return _ratio(this_week, last_week)


def doubling_time_days(growth_ratio: pd.Series) -> pd.Series:
    """Doubling time implied by a week-over-week ratio g: ln 2 / r with daily growth rate r = ln(g) / 7.

    Returns +inf when cases are not growing (g <= 1, including g = 0): the series never doubles at the
    current rate, and +inf sorts and compares correctly ("more than any threshold"). Returns NaN only when
    g itself is undefined (NaN), i.e. the growth could not be measured.
    """
    ratio = growth_ratio.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        daily_rate = np.log(ratio.where(ratio > 1.0)) / WEEK_DAYS
        doubling = math.log(2.0) / daily_rate
    doubling = doubling.where(ratio > 1.0, np.inf)
    return doubling.where(ratio.notna(), np.nan)


def wastewater_trend(
    concentration: pd.Series,
    window_days: int = WASTEWATER_WINDOW_DAYS,
    min_samples: int = WASTEWATER_MIN_SAMPLES,
) -> pd.DataFrame:
    """Trend of wastewater concentration over the ``window_days`` days ending each calendar day.

    ``concentration`` is indexed by sample date (irregular: sites sample 2-3 times a week). Samples that
    are not positive (below detection, or missing) are dropped: their logarithm is undefined, and a caller
    that prefers a substitute (e.g. half the limit of detection) should apply it before. Several samples on
    one day are averaged on the log scale. Returns, per day from the first to the last sample date:
    ``samples`` (in the window), ``log_slope_per_day`` (least-squares slope of ln concentration against
    day) and ``percent_change`` = 100 * (exp(slope * (window_days - 1)) - 1), CDC NWSS's percent change
    over the window; both NaN with fewer than ``min_samples`` samples.
    """
    if window_days < 2:
        raise ValueError(f"window_days must be at least 2, got {window_days}")
    if min_samples < 2:
        raise ValueError(f"min_samples must be at least 2 (a slope needs two points), got {min_samples}")
    values = pd.Series(concentration, dtype=float)
    values.index = pd.to_datetime(values.index)
    positive = values[values > 0]
    columns = ["samples", "log_slope_per_day", "percent_change"]
    if positive.empty:
        return pd.DataFrame(columns=columns, dtype=float)
    log_by_day = np.log(positive).groupby(level=0).mean()
    days = pd.date_range(log_by_day.index.min(), log_by_day.index.max(), freq="D", name="date")
    y = log_by_day.reindex(days)
    has_sample = y.notna().astype(float)
    # x counts days from the start of the series; the slope is unaffected by the origin, and small x keeps
    # the sums of squares well conditioned.
    x = pd.Series(np.arange(len(days), dtype=float), index=days).where(y.notna(), 0.0)
    y = y.fillna(0.0)

    def window_sum(series: pd.Series) -> pd.Series:
        return series.rolling(window_days, min_periods=1).sum()

    n = window_sum(has_sample)
    sum_x, sum_y = window_sum(x), window_sum(y)
    sum_xx, sum_xy = window_sum(x * x), window_sum(x * y)
    denominator = n * sum_xx - sum_x**2
    enough = (n >= min_samples) & (denominator > 0)
    slope = ((n * sum_xy - sum_x * sum_y) / denominator.where(enough)).where(enough)
    return pd.DataFrame(
        {
            "samples": n.astype(int),
            "log_slope_per_day": slope,
            "percent_change": 100.0 * np.expm1(slope * (window_days - 1)),
        },
        index=days,
    )


def sensor_signal(counts: pd.Series) -> pd.DataFrame:
    """A week of sensor counts (e.g. fever-screening positives) against the week before, per day.

    Missing days count as zero events, but ``days_reported_7d`` says how many of the 7 days actually
    reported so a silent sensor is not mistaken for a quiet one. Columns: ``sum_7d``,
    ``previous_sum_7d``, ``ratio`` (NaN when the previous week is zero), ``difference`` and
    ``days_reported_7d``.
    """
    values = pd.Series(counts, dtype=float)
    values.index = pd.to_datetime(values.index)
    values = values.groupby(level=0).sum(min_count=1)
    days = pd.date_range(values.index.min(), values.index.max(), freq="D", name="date")
    values = values.reindex(days)
    if (values < 0).any():
        raise ValueError("sensor counts must be non-negative")
    reported = values.notna().astype(float).rolling(WEEK_DAYS, min_periods=WEEK_DAYS).sum()
    this_week = _rolling_week_sum(values.fillna(0.0))
    last_week = this_week.shift(WEEK_DAYS)
    return pd.DataFrame(
        {
            "sum_7d": this_week,
            "previous_sum_7d": last_week,
            "ratio": _ratio(this_week, last_week),
            "difference": this_week - last_week,
            "days_reported_7d": reported,
        },
        index=days,
    )


def _with_date_index(daily: pd.DataFrame) -> pd.DataFrame:
    frame = daily.copy()
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index), name="date").normalize()
    if frame.index.has_duplicates:
        duplicated = frame.index[frame.index.duplicated()].unique()
        raise ValueError(f"duplicate dates in daily series: {[d.date().isoformat() for d in duplicated[:5]]}")
    if frame.empty:
        raise ValueError("daily series is empty")
    for column in COUNT_COLUMNS + CENSUS_COLUMNS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="raise").astype(float)
            if (frame[column] < 0).any():
                raise ValueError(f"column {column!r} has negative values")
    return frame.sort_index()


def _column_or_nan(frame: pd.DataFrame):
    def column(name: str) -> pd.Series:
        if name in frame:
            return frame[name]
        return pd.Series(np.nan, index=frame.index, dtype=float)

    return column


def _rolling_week_sum(values: pd.Series) -> pd.Series:
    # min_periods = 7: a partial first week would understate a weekly total.
    return values.rolling(WEEK_DAYS, min_periods=WEEK_DAYS).sum()


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator, NaN where the denominator is zero, negative or missing (never inf)."""
    usable = denominator > 0
    return (numerator / denominator.where(usable)).where(usable)


def _census_week_share(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """7-day average share of a census: sum of numerator / sum of denominator over reporting days."""
    both = numerator.notna() & denominator.notna()
    days_reported = both.astype(float).rolling(WEEK_DAYS, min_periods=WEEK_DAYS).sum()
    top = numerator.where(both, 0.0).rolling(WEEK_DAYS, min_periods=WEEK_DAYS).sum()
    bottom = denominator.where(both, 0.0).rolling(WEEK_DAYS, min_periods=WEEK_DAYS).sum()
    return _ratio(top, bottom).where(days_reported >= MIN_CENSUS_DAYS_PER_WEEK)


def _citywide_daily(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Sum area frames (already on one calendar) into one citywide daily frame."""
    present = {column for frame in frames for column in frame.columns}
    totals: dict[str, pd.Series] = {}
    for column in COUNT_COLUMNS:
        if column in present:
            totals[column] = sum(frame[column] for frame in frames if column in frame)
    for group in (BED_COLUMNS, ICU_COLUMNS):
        columns = [column for column in group if column in present]
        if not columns:
            continue
        complete_parts = []
        for frame in frames:
            part = frame.reindex(columns=columns)
            # A facility-day counts only when every column of the group was reported on it.
            complete_parts.append(part.where(part.notna().all(axis=1)))
        stacked = pd.concat(complete_parts, keys=range(len(complete_parts)))
        summed = stacked.groupby(level=1).sum(min_count=1)
        for column in columns:
            totals[column] = summed[column]
    return pd.DataFrame(totals)


def _check_population(population: float) -> None:
    if not (isinstance(population, (int, float, np.integer, np.floating)) and population > 0):
        raise ValueError(f"population must be a positive number, got {population!r}")
    if not math.isfinite(float(population)):
        raise ValueError(f"population must be finite, got {population!r}")
