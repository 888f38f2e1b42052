"""The indicator catalogue: every figure pheoc stores per area and day, named and defined once.

The key is the name everywhere: in ``indicator_values``, in the JSON API, in ``data-indicator``
on screen and in rulebooks. ``basis`` is the count of people a figure is computed from: where
that count is small enough to single someone out, the figure is withheld with it (a rate of 1
case per 100,000 in an area of 100,000 people is one case).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics import indicators as ind

# Kinds of figure, for formatting and for suppression.
COUNT = "count"  # a count of people (suppressed when small below case level)
TALLY = "tally"  # a count of things that are not people (beds, alerts): never suppressed
RATE = "rate"  # per 100,000 people
FRACTION = "fraction"  # 0..1, shown as a percentage
RATIO = "ratio"
PERCENT = "percent"  # already in per cent (e.g. a percent change)
DAYS = "days"
REPRODUCTION = "reproduction"


@dataclass(frozen=True)
class IndicatorSpec:
    key: str
    label: str
    unit: str
    kind: str
    definition: str
    basis: str | None = None  # the count of people the figure derives from

    @property
    def is_count_of_people(self) -> bool:
        return self.kind == COUNT


NEW_CASES_24H = "new_cases_24h"
NEW_CASES_7D = "new_cases_7d"
NEW_CASES_PREVIOUS_7D = "new_cases_previous_7d"
TESTS_7D = "tests_7d"
POSITIVE_TESTS_7D = "positive_tests_7d"
ADMISSIONS_7D = "admissions_7d"
BEDS_TOTAL = "beds_total"
BEDS_OCCUPIED = "beds_occupied"
ICU_TOTAL = "icu_total"
ICU_OCCUPIED = "icu_occupied"
HOSPITALS_REPORTING = "hospitals_reporting"
BEDS_FREE = "beds_free"
VENTILATORS_TOTAL = "ventilators_total"
VENTILATORS_IN_USE = "ventilators_in_use"
FACILITIES_STALE = "facilities_stale"
POTENTIAL_BEDS = "potential_beds"
SUPPLIES_LOW = "supplies_low"
SUPPLIES_CRITICAL = "supplies_critical"
DAYS_TO_BED_THRESHOLD = "days_to_bed_threshold"
DAYS_TO_BED_THRESHOLD_UPPER = "days_to_bed_threshold_upper"
DAYS_TO_ICU_THRESHOLD = "days_to_icu_threshold"
ACTIVE_ALERTS = "active_alerts"
INCIDENCE_7D_PER_100K = ind.CASES_PER_100K_7D

_SPECS = (
    IndicatorSpec(NEW_CASES_24H, "New cases (24 h)", "cases", COUNT,
                  "Counted cases (confirmed, recovered or deceased; not suspected) reported on the as-of day; "
                  "today so far while the as-of day is today."),
    IndicatorSpec(NEW_CASES_7D, "New cases (7 days)", "cases", COUNT,
                  "Counted cases reported in the 7 days ending on the as-of day."),
    IndicatorSpec(NEW_CASES_PREVIOUS_7D, "New cases (7 days before)", "cases", COUNT,
                  "Counted cases reported in the 7 days before those of new_cases_7d."),
    IndicatorSpec(INCIDENCE_7D_PER_100K, "New cases per 100k (7 days)", "per 100k in 7 days", RATE,
                  "new_cases_7d per 100,000 residents of the area (CDC Community Levels, 2022).", NEW_CASES_7D),
    IndicatorSpec(ind.CASES_PER_100K_7D_AVG, "Daily new cases per 100k (7-day avg)", "per 100k per day", RATE,
                  "new_cases_7d / 7 per 100,000 residents (Harvard GHI key metric, 2020).", NEW_CASES_7D),
    IndicatorSpec(TESTS_7D, "Tests (7 days)", "tests", COUNT, "Tests reported in the 7 days ending on the as-of day."),
    IndicatorSpec(POSITIVE_TESTS_7D, "Positive tests (7 days)", "tests", COUNT,
                  "Positive tests reported in the 7 days ending on the as-of day."),
    IndicatorSpec(ind.TEST_POSITIVITY_7D, "Test positivity (7 days)", "of tests", FRACTION,
                  "positive_tests_7d / tests_7d: a ratio of 7-day sums, not a mean of daily ratios.",
                  POSITIVE_TESTS_7D),
    IndicatorSpec(ADMISSIONS_7D, "Hospital admissions (7 days)", "admissions", COUNT,
                  "Hospital admissions of the area's residents in the 7 days ending on the as-of day."),
    IndicatorSpec(ind.ADMISSIONS_PER_100K_7D, "Admissions per 100k (7 days)", "per 100k in 7 days", RATE,
                  "admissions_7d per 100,000 residents (CDC Community Levels, 2022).", ADMISSIONS_7D),
    IndicatorSpec(BEDS_TOTAL, "Hospital beds", "beds", TALLY,
                  "Staffed beds of the city's hospitals in the reports counted for the day (each hospital's "
                  "latest report, if no older than capacity.stale_after_hours at the end of the day)."),
    IndicatorSpec(BEDS_OCCUPIED, "Hospital beds occupied", "patients", COUNT,
                  "Occupied beds in the same reports as beds_total."),
    IndicatorSpec(ind.BED_OCCUPANCY, "Hospital bed occupancy", "of beds", FRACTION,
                  "beds_occupied / beds_total of the city's hospitals; every area is assessed against the city's "
                  "hospitals, which serve all of it.", BEDS_OCCUPIED),
    IndicatorSpec(ICU_TOTAL, "ICU beds", "beds", TALLY, "Staffed ICU beds in the reports counted for the day."),
    IndicatorSpec(ICU_OCCUPIED, "ICU beds occupied", "patients", COUNT, "Occupied ICU beds in the same reports."),
    IndicatorSpec(ind.ICU_OCCUPANCY, "ICU occupancy", "of ICU beds", FRACTION,
                  "icu_occupied / icu_total of the city's hospitals.", ICU_OCCUPIED),
    IndicatorSpec(HOSPITALS_REPORTING, "Hospitals reporting", "hospitals", TALLY,
                  "Hospitals with a report counted for the day."),
    IndicatorSpec(BEDS_FREE, "Free hospital beds", "beds", TALLY, "beds_total - beds_occupied.", BEDS_OCCUPIED),
    IndicatorSpec(VENTILATORS_TOTAL, "Ventilators", "ventilators", TALLY,
                  "Ventilators of the city's hospitals in the reports counted for the day."),
    IndicatorSpec(VENTILATORS_IN_USE, "Ventilators in use", "patients", COUNT,
                  "Ventilators in use in the same reports."),
    IndicatorSpec(FACILITIES_STALE, "Stale reports", "facilities", TALLY,
                  "Bed-holding facilities (hospitals, quarantine centres) with no report counted for the day: "
                  "none, or the latest older than capacity.stale_after_hours."),
    IndicatorSpec(POTENTIAL_BEDS, "Potential extra beds", "beds", TALLY,
                  "Beds of the registered potential sites (halls, stadiums, schools) not yet in use."),
    IndicatorSpec(SUPPLIES_LOW, "Supplies running low", "items", TALLY,
                  "Facility supply items whose latest report (at the end of the day, or now) gives fewer days on "
                  "hand (stock / daily use) than capacity.supplies_warn_days."),
    IndicatorSpec(SUPPLIES_CRITICAL, "Supplies critical", "items", TALLY,
                  "As supplies_low, below capacity.supplies_critical_days."),
    IndicatorSpec(ind.COVID_BED_SHARE_7D, "Beds with COVID-19 patients (7-day avg)", "of beds", FRACTION,
                  "7-day sum of COVID-19 patients in beds / 7-day sum of beds, over days with reports "
                  "(CDC Community Levels, 2022).", BEDS_OCCUPIED),
    IndicatorSpec(ind.WEEK_OVER_WEEK_GROWTH, "Cases this week / last week", "ratio", RATIO,
                  "new_cases_7d / new_cases_previous_7d.", NEW_CASES_7D),
    IndicatorSpec(ind.DOUBLING_TIME_DAYS, "Doubling time", "days", DAYS,
                  "ln 2 / (ln(week_over_week_growth) / 7); none while cases are not growing.", NEW_CASES_7D),
    IndicatorSpec(ind.RT, "R(t)", "secondary cases per case", REPRODUCTION,
                  "Posterior mean of the reproduction number over the 7 days ending on the day (Cori et al. "
                  "2013, EpiEstim), from local cases with imported ones as infectors only; none with fewer "
                  "than 11 local cases in the window."),
    IndicatorSpec(ind.WASTEWATER_PERCENT_CHANGE, "Wastewater, 15-day change", "%", PERCENT,
                  "CDC NWSS 15-day percent change of SARS-CoV-2 RNA concentration (slope of ln concentration)."),
    IndicatorSpec(ind.SENSOR_WEEK_RATIO, "Fever alerts this week / last week", "ratio", RATIO,
                  "7-day sum of fever-kiosk alerts / the 7 days before; none when the week is mostly silent."),
    IndicatorSpec(DAYS_TO_BED_THRESHOLD, "Days until bed threshold", "days", DAYS,
                  "Days until the median projection of occupied hospital beds reaches early_warning."
                  "capacity_threshold of the beds reported (renewal-equation forecast from R(t)); none when "
                  "not reached within the forecast horizon or when no projection could be made."),
    IndicatorSpec(DAYS_TO_BED_THRESHOLD_UPPER, "Days until bed threshold (95th percentile)", "days", DAYS,
                  "As days_to_bed_threshold for the upper (95th percentile) projection: the earliest plausible day."),
    IndicatorSpec(DAYS_TO_ICU_THRESHOLD, "Days until ICU threshold", "days", DAYS,
                  "As days_to_bed_threshold for ICU beds."),
    IndicatorSpec(ACTIVE_ALERTS, "Open alerts", "alerts", TALLY,
                  "Alerts raised and not resolved (acknowledged or not) at the end of the day, or now for "
                  "the latest day."),
)
CATALOG: dict[str, IndicatorSpec] = {s.key: s for s in _SPECS}
# Computed by the indicators job and stored per area and day; the rest come from the capacity
# outlook of the early-warning job (days_to_*) or are counted when asked for.
# Supplies and open alerts are counted at the moment they are asked for (the end of the day, or now).
LIVE_KEYS = (ACTIVE_ALERTS, SUPPLIES_LOW, SUPPLIES_CRITICAL)
OUTLOOK_KEYS = (DAYS_TO_BED_THRESHOLD, DAYS_TO_BED_THRESHOLD_UPPER, DAYS_TO_ICU_THRESHOLD)
STORED_KEYS = tuple(k for k in CATALOG if k not in LIVE_KEYS + OUTLOOK_KEYS)


def small_counts(values: np.ndarray, min_count: int) -> np.ndarray:
    """The small-count rule on an array: a count of people from 1 to ``min_count - 1`` could single
    someone out (privacy.min_count). Zero does not, and neither does an unknown (NaN) value."""
    values = np.asarray(values, dtype=float)
    return np.isfinite(values) & (values > 0) & (values < min_count)


def is_small_count(value, min_count: int) -> bool:
    """small_counts for one value (anything that is not a number is not a small count)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return bool(small_counts(np.array([v]), min_count)[0])


def spec(key: str) -> IndicatorSpec:
    """The definition of ``key``; KeyError names the unknown key."""
    try:
        return CATALOG[key]
    except KeyError:
        raise KeyError(f"no indicator {key!r}") from None
