"""Early warning: daily series from the store, indicators, levels by the active rulebook, aberration
alarms, renewal-equation forecasts with hospital capacity outlooks, and the page's read model.

The analytics are in analytics/ (indicators, rt, aberration, rulebooks, forecast); this module feeds them
from named queries (store/queries_warning.py) and turns their results into records the job stores and the
page shows. Choices made here, each with its reason next to the constant:

* Hospitals serve the whole city, so every area is assessed against the citywide hospital census (bed and
  ICU occupancy, COVID-19 bed share), as New York State assessed hospital capacity by region in 2020.
  Admissions are counted by the patient's area (CDC Community Levels count admissions of residents).
* R(t) (Cori et al. 2013) is reported only for windows with at least ``MIN_CASES_FOR_RT`` local cases:
  with EpiEstim's default prior (shape 1) the posterior coefficient of variation is 1/sqrt(1 + cases), and
  with fewer cases the prior mean of 5 dominates the estimate.
* Alarms: EARS C1/C2/C3 (surveillance::earsC semantics) and the NSSP-ESSENCE EWMA on each daily series.
  An episode of one detector starts on its first alarm day and stays open until ``QUIET_DAYS_TO_RESOLVE``
  days pass without an alarm, so a detector that flickers day to day gives one episode, not several.
* Forecast: analytics.forecast's renewal projection from the current R(t). Admission and ICU shares and
  their delays are estimated from the store's linked admissions; the projected bed census is anchored on
  the observed occupancy: occupied(t) = occupied(origin) + COVID census(t) - COVID census(origin),
  so beds used by other patients are carried forward unchanged.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analytics import indicators as ind
from analytics.aberration import ears, ewma
from analytics.forecast import (
    NY_RED_ZONE_DAYS,
    HospitalParameters,
    capacity_trigger,
    days_until_capacity,
    forecast,
    los_survival,
    occupancy_from_admissions,
)
from analytics.rt import discretised_gamma_si, estimate_rt
from analytics.rulebooks import LevelAssessment, Rulebook, ThresholdBand, level_for, parse_rulebook
from auth.principal import Principal
from settings import Settings
from store.queries_access import append_audit_in, submit_audited
from store import Store
from store import queries as q
from store import queries_warning as qw
from store.queries_warning import AlarmEpisode, AlertSpec, AreaLevel, ForecastRun

log = logging.getLogger(__name__)

CITYWIDE = ind.CITYWIDE
CITYWIDE_NAME = "Citywide"
# Days of history loaded for a run: the EWMA's 28-day baseline and 2-day guard, the serial interval's
# 30-day reach for R(t), and several lengths of stay for the bed census at the forecast's origin.
HISTORY_DAYS = 120
# Days 0..30 hold all but about 1e-5 of the COVID-19 serial interval's mass (mean 4.7, sd 2.9 days).
SERIAL_INTERVAL_MAX_DAYS = 30
# Cori et al. 2013 posterior CV = 1/sqrt(1 + cases in window) < 0.3 needs at least 11 cases.
MIN_CASES_FOR_RT = 11
# An alarm episode ends after this many consecutive days without an alarm (EARS and EWMA flicker).
QUIET_DAYS_TO_RESOLVE = 3
# A count cannot be known better than to one case: with a baseline of identical counts (sd 0, common for
# small areas) surveillance's default minSigma = 0 would alarm on a single extra case.
COUNT_MIN_SIGMA = 1.0
# Wastewater is tested on ln(concentration) (a doubling is the same signal at any level); a floor of 0.1
# (about 10 %) keeps a run of near-identical days from turning sampling noise into an alarm.
LOG_CONCENTRATION_MIN_SIGMA = 0.1
EARS_METHODS = ("C1", "C2", "C3")
EWMA_METHOD = "EWMA"
ABERRATION_RULE_ID = "ears_c1_c2_c3+essence_ewma"
ABERRATION_RULE_VERSION = "1"
CAPACITY_RULE_ID = "nys_red_zone_21_days_to_90pct"
CAPACITY_RULE_VERSION = "2020-12-11"
ALERT_KIND_ABERRATION = "aberration"
ALERT_KIND_CAPACITY = "capacity_forecast"

# Daily series watched for aberrations: (key, label, is a count of people, on the log scale).
SERIES: tuple[tuple[str, str, bool, bool], ...] = (
    ("cases", "New cases", True, False),
    ("admissions", "Hospital admissions", True, False),
    ("fever", "Fever-screening alerts", False, False),
    ("wastewater", "Wastewater SARS-CoV-2 RNA", False, True),
)
SERIES_LABELS = {key: label for key, label, _, _ in SERIES}
COUNT_SERIES = frozenset(key for key, _, is_count, _ in SERIES if is_count)

# Forecast: enough trajectories for stable 5-95 % bands at a fraction of a second per area; a fixed seed
# so that rerunning the job on the same day stores the same numbers.
FORECAST_SAMPLES = 500
FORECAST_SEED = 20201211
# Admission and ICU shares are measured over the last 28 days of admissions (4 weeks: recent, not noisy).
SHARE_WINDOW_DAYS = 28
# Defaults used only until the store holds enough linked admissions and discharges to measure them: a
# couple of days from report to admission, and stays within the range of published COVID-19 hospital and
# ICU stays (Rees et al. 2020, "COVID-19 length of hospital stay: a systematic review", BMC Med 18:270).
DEFAULT_ADMISSION_LAG_DAYS, DEFAULT_ICU_LAG_DAYS = 2, 3
DEFAULT_LOS = (8.0, 5.0)
DEFAULT_ICU_LOS = (12.0, 8.0)
MIN_STAYS_FOR_LOS = 20  # fewer discharges than this say little about the spread of stays
LOS_LOOKBACK_DAYS = 180

# Indicators shown as gauges besides the rulebook's own (in this order), uncoloured when not in it.
GAUGE_INDICATORS: tuple[str, ...] = (
    ind.CASES_PER_100K_7D_AVG, ind.TEST_POSITIVITY_7D, ind.ADMISSIONS_PER_100K_7D, ind.RT,
    ind.BED_OCCUPANCY, ind.ICU_OCCUPANCY, ind.WASTEWATER_PERCENT_CHANGE, ind.SENSOR_WEEK_RATIO,
)
FRACTION_INDICATORS = frozenset({ind.TEST_POSITIVITY_7D, ind.BED_OCCUPANCY, ind.ICU_OCCUPANCY,
                                 ind.COVID_BED_SHARE_7D})
INDICATOR_LABELS = {
    ind.CASES_PER_100K_7D_AVG: ("Daily new cases per 100k (7-day avg)", "per 100k per day"),
    ind.CASES_PER_100K_7D: ("New cases per 100k (7 days)", "per 100k in 7 days"),
    ind.TEST_POSITIVITY_7D: ("Test positivity (7 days)", "of tests"),
    ind.ADMISSIONS_PER_100K_7D: ("Admissions per 100k (7 days)", "per 100k in 7 days"),
    ind.BED_OCCUPANCY: ("Hospital beds occupied", "of beds"),
    ind.ICU_OCCUPANCY: ("ICU beds occupied", "of ICU beds"),
    ind.COVID_BED_SHARE_7D: ("Beds with COVID-19 patients (7-day avg)", "of beds"),
    ind.WEEK_OVER_WEEK_GROWTH: ("Cases this week / last week", "ratio"),
    ind.DOUBLING_TIME_DAYS: ("Doubling time", "days"),
    ind.RT: ("R(t)", "secondary cases per case"),
    ind.WASTEWATER_PERCENT_CHANGE: ("Wastewater, 15-day change", "%"),
    ind.SENSOR_WEEK_RATIO: ("Fever alerts this week / last week", "ratio"),
}
NEUTRAL_GAUGE_COLOUR = "#3a444f"


# ================================================================================ rulebooks
class UnknownRulebook(ValueError):
    """The rulebook id is not among the configured rulebooks."""


def load_rulebooks(settings: Settings) -> dict[str, Rulebook]:
    """The configured rulebooks by id, in the configured order (re-read when a file changes)."""
    paths = tuple(settings.path(p) for p in settings.early_warning.rulebooks)
    stamps = tuple((str(p), p.stat().st_mtime_ns if p.exists() else 0) for p in paths)
    return dict(_load_rulebooks(stamps))


@lru_cache(maxsize=8)
def _load_rulebooks(stamps: tuple[tuple[str, int], ...]) -> tuple[tuple[str, Rulebook], ...]:
    loaded: dict[str, Rulebook] = {}
    for path_text, _mtime in stamps:
        path = Path(path_text)
        rulebook = parse_rulebook(yaml.safe_load(path.read_text(encoding="utf-8")))
        if rulebook.id in loaded:
            raise ValueError(f"early_warning.rulebooks: two files define rulebook id {rulebook.id!r} ({path})")
        loaded[rulebook.id] = rulebook
    return tuple(loaded.items())


def active_rulebook(store: Store, settings: Settings, rulebooks: Mapping[str, Rulebook] | None = None
                    ) -> Rulebook:
    """The operator's latest choice if it is still configured, else settings.early_warning.active_rulebook."""
    rulebooks = load_rulebooks(settings) if rulebooks is None else rulebooks
    choice = qw.latest_rulebook_choice(store)
    if choice is not None and choice["rulebook_id"] in rulebooks:
        return rulebooks[choice["rulebook_id"]]
    default = settings.early_warning.active_rulebook
    if default in rulebooks:
        return rulebooks[default]
    first = next(iter(rulebooks.values()))
    log.warning("early_warning.active_rulebook %r is not among the rulebooks; using %r", default, first.id)
    return first


@dataclass(frozen=True)
class RulebookSwitch:
    """What a switch did: the choice stored (None when the rulebook was already active) and level changes."""
    rulebook_id: str
    rulebook_version: str
    previous_id: str
    previous_version: str
    choice_id: int | None
    level_changes: int
    as_of: date | None

    @property
    def changed(self) -> bool:
        return self.choice_id is not None


def set_active_rulebook(store: Store, settings: Settings, rulebook_id: str, principal: Principal,
                        now: datetime | None = None) -> RulebookSwitch:
    """Make ``rulebook_id`` the active rulebook (needs permission ``set_rulebook``).

    The choice is stored with the rulebook's version; the stored indicators of the latest assessed day are
    levelled again by the new rulebook at once, and each area's change is stored with the new rulebook's
    id and version and the choice that caused it. Choosing the active rulebook again stores nothing.
    """
    principal.require("set_rulebook")
    rulebooks = load_rulebooks(settings)
    if rulebook_id not in rulebooks:
        raise UnknownRulebook(f"unknown rulebook {rulebook_id!r} (configured: {sorted(rulebooks)})")
    new = rulebooks[rulebook_id]
    current = active_rulebook(store, settings, rulebooks)
    as_of = qw.latest_indicator_day(store)
    if (current.id, current.version) == (new.id, new.version):
        return RulebookSwitch(new.id, new.version, current.id, current.version, None, 0, as_of)
    levels = assess_levels(new, indicator_table(qw.indicator_values(store, as_of))) if as_of else []
    now = now or datetime.now(timezone.utc)

    def write(con) -> tuple[int, int]:
        choice_id = qw.insert_rulebook_choice(con, now, principal.user, new.id, new.version,
                                              (current.id, current.version))
        changes = qw.store_levels(con, as_of, levels, now, choice_id=choice_id) if as_of else 0
        # A rule change is an audited action: same transaction, so the log cannot miss it.
        append_audit_in(con, principal.user, "rule_changed", f"rulebook:{new.id}",
                        {"role": principal.role, "from": f"{current.id}@{current.version}",
                         "to": f"{new.id}@{new.version}", "level_changes": changes}, now)
        return choice_id, changes

    choice_id, changes = submit_audited(store, write).result()
    log.info("rulebook switched from %s v%s to %s v%s by %s (%d level changes)", current.id, current.version,
             new.id, new.version, principal.user, changes)
    return RulebookSwitch(new.id, new.version, current.id, current.version, choice_id, changes, as_of)


def assess_levels(rulebook: Rulebook, values_by_area: Mapping[str, Mapping[str, float | None]]
                  ) -> list[AreaLevel]:
    """The rulebook's overall level for each area from its indicator values."""
    out = []
    for area_id, values in values_by_area.items():
        a = level_for(rulebook, values)
        out.append(AreaLevel(area_id, a.rulebook_id, a.rulebook_version, a.level, a.level_rank, a.colour, a.basis))
    return out


def indicator_table(values: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """{area_id: {indicator: value}} from long rows (area_id, indicator, value); NaN/NULL become None."""
    table: dict[str, dict[str, float | None]] = {}
    for row in values.itertuples(index=False):
        value = None if row.value is None or pd.isna(row.value) else float(row.value)
        table.setdefault(str(row.area_id), {})[str(row.indicator)] = value
    return table


# ================================================================================ daily inputs
@dataclass(frozen=True)
class DailyData:
    """Complete daily series for every populated area and the city, over ``days`` (ending at as_of).

    ``counts[area]``: cases, imported, tested, positive, admissions, icu_admissions (0 on days without
    events). ``census``: the citywide hospital census (NaN on days without reports). ``fever`` and
    ``wastewater_log``: per area, NaN on days no sensor reported.
    """
    as_of: date
    days: pd.DatetimeIndex
    areas: pd.DataFrame  # area_id, name, population
    city_population: int
    counts: dict[str, pd.DataFrame]
    census: pd.DataFrame
    fever: dict[str, pd.Series]
    wastewater_log: dict[str, pd.Series]

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


COUNT_FIELDS = ("cases", "imported", "tested", "positive", "admissions", "icu_admissions")
CENSUS_FIELDS = ("beds_total", "beds_occupied", "beds_covid", "icu_total", "icu_occupied")


def as_of_date(store: Store, today: date) -> date | None:
    """The day to assess: today, or the last day with cases when the data stop earlier (replays)."""
    last = q.latest_case_date(store)
    return None if last is None else min(today, last)


def load_daily(store: Store, settings: Settings, as_of: date, days: int = HISTORY_DAYS,
               area_ids: Sequence[str] | None = None) -> DailyData:
    """Every daily series of the feature from named queries (``area_ids`` limits the areas kept)."""
    start = as_of - timedelta(days=days - 1)
    tz = settings.city.timezone
    ew = settings.early_warning
    calendar = pd.date_range(start, as_of, freq="D", name="date")
    areas = qw.populated_areas(store)
    areas = areas[areas["population"] > 0].reset_index(drop=True)
    if area_ids is not None:
        areas = areas[areas["area_id"].isin(area_ids)].reset_index(drop=True)
    wanted = [CITYWIDE, *areas["area_id"]]

    long = pd.concat([
        qw.daily_cases_by_area(store, start, as_of),
        qw.daily_tests_by_area(store, start, as_of),
        qw.daily_admissions_by_area(store, start, as_of),
    ], ignore_index=True)
    counts = _complete_counts(long, calendar, wanted)
    census = _by_day(qw.daily_hospital_census(store, start, as_of, tz), calendar, CENSUS_FIELDS)
    fever = _sensor_series(qw.daily_sensor_means(store, "fever_kiosk", ew.fever_metric, start, as_of, tz),
                           calendar, wanted, combine="sum")
    wastewater = _sensor_series(qw.daily_sensor_means(store, "wastewater", ew.wastewater_metric, start, as_of, tz,
                                                      log_scale=True), calendar, wanted, combine="mean")
    return DailyData(as_of=as_of, days=calendar, areas=areas, city_population=q.city_population(store),
                     counts=counts, census=census, fever=fever, wastewater_log=wastewater)


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


def _by_day(frame: pd.DataFrame, calendar: pd.DatetimeIndex, columns: Sequence[str]) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(np.nan, index=calendar, columns=list(columns))
    indexed = frame.assign(day=pd.to_datetime(frame["day"])).set_index("day")
    return indexed[list(columns)].astype(float).reindex(calendar).rename_axis("date")


def _sensor_series(frame: pd.DataFrame, calendar: pd.DatetimeIndex, wanted: Sequence[str], combine: str
                   ) -> dict[str, pd.Series]:
    """Per area (and citywide) one value per day from per-sensor daily values: sum or mean over sensors."""
    out: dict[str, pd.Series] = {}
    if frame.empty:
        return out
    frame = frame.assign(day=pd.to_datetime(frame["day"]), value=frame["value"].astype(float))
    citywide = frame.groupby("day")["value"].agg(combine)
    out[CITYWIDE] = citywide.reindex(calendar)
    for area_id, rows in frame.dropna(subset=["area_id"]).groupby("area_id"):
        if area_id in wanted:
            out[str(area_id)] = rows.groupby("day")["value"].agg(combine).reindex(calendar)
    return out


# ================================================================================ indicators and R(t)
def serial_interval(settings: Settings) -> np.ndarray:
    ew = settings.early_warning
    return discretised_gamma_si(ew.serial_interval_mean, ew.serial_interval_std, SERIAL_INTERVAL_MAX_DAYS)


def rt_series(counts: pd.DataFrame, si: np.ndarray, window: int) -> pd.DataFrame:
    """R(t) per window ending each day: date, mean, q025, q975, local cases in the window.

    Windows with fewer than MIN_CASES_FOR_RT local cases are NaN (the prior would dominate). Imported
    cases seed transmission but are not counted as its result (Cori et al. 2013, Web Appendix).
    """
    cases = counts["cases"].to_numpy(dtype=float)
    imported = np.minimum(counts["imported"].to_numpy(dtype=float), cases)
    columns = ["date", "mean", "q025", "q975", "local_cases"]
    if cases.size < window + 1:
        return pd.DataFrame(columns=columns)
    table = estimate_rt(cases - imported, si, window=window, imported=imported)
    local = (cases - imported).copy()
    local[0] = 0.0  # EpiEstim's convention: day 1's cases are all treated as imported
    window_cases = pd.Series(local).rolling(window).sum().to_numpy()[table["t_end"].to_numpy() - 1]
    enough = window_cases >= MIN_CASES_FOR_RT
    return pd.DataFrame({
        "date": counts.index[table["t_end"].to_numpy() - 1],
        "mean": np.where(enough, table["mean"], np.nan),
        "q025": np.where(enough, table["q025"], np.nan),
        "q975": np.where(enough, table["q975"], np.nan),
        "local_cases": window_cases,
    })


def compute_indicators(data: DailyData, settings: Settings, si: np.ndarray) -> pd.DataFrame:
    """Long rows (area_id, indicator, value) of every area's and the city's indicators on data.as_of."""
    as_of = pd.Timestamp(data.as_of)
    rows = []
    census = data.census
    for area_id in data.area_ids():
        if not data.population(area_id) > 0:
            continue  # rates per 100k need a population (a city without one gets no indicators)
        counts = data.counts[area_id]
        daily = counts.join(census)
        table = ind.daily_indicators(daily, data.population(area_id))
        values = {name: table.at[as_of, name] for name in ind.INDICATOR_COLUMNS}
        rt = rt_series(counts, si, settings.early_warning.rt_window)
        values[ind.RT] = float(rt["mean"].iloc[-1]) if len(rt) else np.nan
        values[ind.WASTEWATER_PERCENT_CHANGE] = _wastewater_change(data.wastewater_log.get(area_id), as_of)
        values[ind.SENSOR_WEEK_RATIO] = _sensor_ratio(data.fever.get(area_id), as_of)
        rows.extend((area_id, name, _finite_or_nan(value)) for name, value in values.items())
    return pd.DataFrame(rows, columns=["area_id", "indicator", "value"])


def _wastewater_change(log_series: pd.Series | None, as_of: pd.Timestamp) -> float:
    if log_series is None or log_series.dropna().empty:
        return np.nan
    trend = ind.wastewater_trend(np.exp(log_series.dropna()))
    return float(trend.at[as_of, "percent_change"]) if as_of in trend.index else np.nan


def _sensor_ratio(series: pd.Series | None, as_of: pd.Timestamp) -> float:
    if series is None or series.dropna().empty:
        return np.nan
    signal = ind.sensor_signal(series.dropna())
    if as_of not in signal.index or signal.at[as_of, "days_reported_7d"] < ind.MIN_CENSUS_DAYS_PER_WEEK:
        return np.nan  # a week mostly silent says nothing about fever in the area
    return float(signal.at[as_of, "ratio"])


def _finite_or_nan(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return np.nan
    return number if math.isfinite(number) else np.nan


# ================================================================================ alarms
@dataclass(frozen=True)
class AlarmResult:
    episodes: tuple[AlarmEpisode, ...]
    alerts: tuple[AlertSpec, ...]


def open_episode(flags: np.ndarray, quiet_days: int = QUIET_DAYS_TO_RESOLVE) -> tuple[int, int] | None:
    """(first, last) index of the alarm episode still open at the end of ``flags``, or None.

    Alarm days separated by fewer than ``quiet_days`` days without one belong to one episode; the episode
    is closed once ``quiet_days`` days in a row pass without an alarm.
    """
    alarm_days = np.flatnonzero(np.asarray(flags, dtype=bool))
    if alarm_days.size == 0 or (len(flags) - 1 - alarm_days[-1]) >= quiet_days:
        return None
    breaks = np.flatnonzero(np.diff(alarm_days) - 1 >= quiet_days)
    first = alarm_days[breaks[-1] + 1] if breaks.size else alarm_days[0]
    return int(first), int(alarm_days[-1])


def detector_results(series: pd.Series, min_sigma: float) -> dict[str, pd.DataFrame]:
    """EARS C1/C2/C3 and EWMA (columns upperbound, alarm) on a daily series; gaps inside are interpolated.

    A sensor silent for a day leaves a gap; a straight line across it keeps the baselines usable without
    inventing a spike or a drop. Leading and trailing gaps are dropped (nothing to interpolate from).
    """
    values = series.astype(float).interpolate(limit_area="inside").dropna()
    results: dict[str, pd.DataFrame] = {}
    if len(values) < 2:
        return results
    for method in EARS_METHODS:
        results[method] = ears(values, method=method, min_sigma=min_sigma)
    # EWMA needs its 28-day baseline and 2-day guard band before the first point it can test.
    if len(values) > 31:
        results[EWMA_METHOD] = ewma(values)[["upperbound", "alarm"]]
    return results


def detect_alarms(data: DailyData, min_count: int) -> AlarmResult:
    """Open alarm episodes of every detector on every series and area, and one alert per series and area."""
    episodes: list[AlarmEpisode] = []
    alerts: list[AlertSpec] = []
    for area_id in data.area_ids():
        for key, label, is_count, log_scale in SERIES:
            series = _series_of(data, key, area_id)
            if series is None or series.dropna().empty or not (series.fillna(0) != 0).any():
                continue
            min_sigma = COUNT_MIN_SIGMA if is_count else (LOG_CONCENTRATION_MIN_SIGMA if log_scale else 0.0)
            results = detector_results(series, min_sigma)
            union = None
            for method, result in results.items():
                # A series that stopped before as_of has its flags end there: no new alarms after it.
                flags = result["alarm"].reindex(data.days, fill_value=False).to_numpy(dtype=bool)
                union = flags if union is None else union | flags
                found = open_episode(flags)
                if found is None:
                    continue
                first, last = found
                day = data.days[last]
                observed, bound = float(series.get(day, np.nan)), float(result["upperbound"].get(day, np.nan))
                if log_scale:
                    observed, bound = math.exp(observed), math.exp(bound)
                episodes.append(AlarmEpisode(key, area_id, method, data.days[first].date(), day.date(),
                                             observed, bound))
            found = open_episode(union) if union is not None else None
            if found is not None:
                methods = sorted({e.method for e in episodes if (e.series, e.area_id) == (key, area_id)})
                since = data.days[found[0]].date()
                last_day = data.days[found[1]]
                value = float(series.get(last_day, np.nan))
                shown = format_value(math.exp(value) if log_scale else value, is_count, min_count, False)
                alerts.append(AlertSpec(
                    dedupe_prefix=f"ew:{ALERT_KIND_ABERRATION}:{key}:{area_id}", since=since, severity="warning",
                    kind=ALERT_KIND_ABERRATION, area_id=None if area_id == CITYWIDE else area_id,
                    title=f"{label} above expected: {data.name(area_id)}",
                    detail=(f"{', '.join(methods) or 'aberration'} alarm since {since.isoformat()}; "
                            f"{last_day.date().isoformat()}: {shown}"),
                    rule_id=ABERRATION_RULE_ID, rule_version=ABERRATION_RULE_VERSION))
    return AlarmResult(tuple(episodes), tuple(alerts))


def _series_of(data: DailyData, key: str, area_id: str) -> pd.Series | None:
    if key == "cases":
        return data.counts[area_id]["cases"]
    if key == "admissions":
        return data.counts[area_id]["admissions"]
    if key == "fever":
        return data.fever.get(area_id)
    if key == "wastewater":
        return data.wastewater_log.get(area_id)
    raise KeyError(key)


def format_value(value: float | None, is_count: bool, min_count: int, may_see_small_counts: bool) -> str:
    """A number for display; counts of people from 1 to min_count - 1 as "<k" (re-identification risk)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if is_count:
        if 0 < value < min_count and not may_see_small_counts:
            return f"<{min_count}"
        return f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


# ================================================================================ forecasts
@dataclass(frozen=True)
class ForecastResult:
    run: ForecastRun
    bands: pd.DataFrame  # series, day, mean, median, q05, q95


def hospital_parameters(store: Store, data: DailyData) -> HospitalParameters:
    """Shares of cases admitted (and to ICU), delays and lengths of stay measured on the store's data."""
    stats = qw.admission_delay_and_stay(store, data.as_of - timedelta(days=LOS_LOOKBACK_DAYS - 1), data.as_of)
    by_icu = {bool(r.icu): r for r in stats.itertuples(index=False)}
    ward, icu = by_icu.get(False), by_icu.get(True)
    all_lag = _lag(ward, DEFAULT_ADMISSION_LAG_DAYS) if ward is not None else DEFAULT_ADMISSION_LAG_DAYS
    icu_lag = _lag(icu, DEFAULT_ICU_LAG_DAYS) if icu is not None else DEFAULT_ICU_LAG_DAYS
    los = _stay(ward, DEFAULT_LOS)
    icu_los = _stay(icu, DEFAULT_ICU_LOS)
    city = data.counts[CITYWIDE]
    return HospitalParameters(
        admission_share=_share(city["admissions"], city["cases"], all_lag),
        admission_lag_days=all_lag, los_mean_days=los[0], los_std_days=los[1],
        icu_share=_share(city["icu_admissions"], city["cases"], icu_lag),
        icu_lag_days=icu_lag, icu_los_mean_days=icu_los[0], icu_los_std_days=icu_los[1])


def _lag(row, default: int) -> int:
    if row is None or pd.isna(row.lag_median) or row.linked < MIN_STAYS_FOR_LOS:
        return default
    return int(round(float(row.lag_median)))


def _stay(row, default: tuple[float, float]) -> tuple[float, float]:
    if row is None or row.discharged < MIN_STAYS_FOR_LOS or pd.isna(row.los_mean) or pd.isna(row.los_std):
        return default
    mean, std = float(row.los_mean), float(row.los_std)
    # A stay of 0 days (same-day discharge) averages fine, but the Gamma needs a positive mean and spread.
    return (max(mean, 0.5), max(std, 0.5))


def _share(admissions: pd.Series, cases: pd.Series, lag: int) -> float:
    admitted = float(admissions.iloc[-SHARE_WINDOW_DAYS:].sum())
    source = cases.shift(lag).iloc[-SHARE_WINDOW_DAYS:].sum()
    if not source > 0:
        return 0.0
    return float(min(1.0, admitted / float(source)))


def forecast_area(data: DailyData, area_id: str, hospital: HospitalParameters, settings: Settings,
                  si: np.ndarray) -> ForecastResult:
    """Cases and admissions bands for an area; for the city also bed and ICU census and days to capacity."""
    ew = settings.early_warning
    counts = data.counts[area_id]
    base = dict(as_of=data.as_of, area_id=area_id, horizon_days=ew.forecast_days,
                admission_share=hospital.admission_share, icu_share=hospital.icu_share)
    recent = float(counts["cases"].iloc[-ew.rt_window:].sum() - counts["imported"].iloc[-ew.rt_window:].sum())
    if recent < MIN_CASES_FOR_RT:
        note = f"fewer than {MIN_CASES_FOR_RT} local cases in the last {ew.rt_window} days: no projection"
        return ForecastResult(ForecastRun(r_mean=None, r_std=None, note=note, **base), _empty_bands())
    try:
        result = forecast(counts["cases"], si, hospital, horizon_days=ew.forecast_days,
                          n_samples=FORECAST_SAMPLES, window=ew.rt_window, seed=FORECAST_SEED,
                          admissions_history=counts["admissions"], icu_admissions_history=counts["icu_admissions"],
                          r_relax_days=ew.forecast_r_relax_days)
    except ValueError as exc:  # e.g. R(t) of the last window not estimable: say so instead of failing the job
        return ForecastResult(ForecastRun(r_mean=None, r_std=None, note=f"no projection: {exc}", **base),
                              _empty_bands())
    frames = [_band_rows("cases", result.cases), _band_rows("admissions", result.admissions)]
    run = ForecastRun(r_mean=result.r_mean, r_std=result.r_std, **base)
    if area_id == CITYWIDE:
        run, census_frames = _capacity(data, hospital, result, run, ew.capacity_threshold)
        frames.extend(census_frames)
    return ForecastResult(run, pd.concat(frames, ignore_index=True))


def _capacity(data: DailyData, hospital: HospitalParameters, result, run: ForecastRun, threshold: float):
    census = data.census.dropna(subset=["beds_total", "beds_occupied"])
    if census.empty:
        return _with(run, note="no hospital capacity reports"), []
    counts = data.counts[CITYWIDE]
    latest = census.iloc[-1]
    frames = []
    updates: dict = {}
    for prefix, admissions, los, projected, total, occupied in (
            ("beds", counts["admissions"], (hospital.los_mean_days, hospital.los_std_days), result.beds,
             latest["beds_total"], latest["beds_occupied"]),
            ("icu", counts["icu_admissions"], (hospital.icu_los_mean_days, hospital.icu_los_std_days), result.icu,
             latest["icu_total"], latest["icu_occupied"])):
        if not (pd.notna(total) and total > 0 and pd.notna(occupied)):
            continue
        covid_now = occupancy_from_admissions(admissions.to_numpy(dtype=float), los_survival(*los))[-1]
        anchored = projected + (float(occupied) - covid_now)
        anchored = anchored.clip(lower=0.0)
        frames.append(_band_rows(f"{prefix}_occupied", anchored))
        outlook = days_until_capacity(anchored, float(total), threshold, current_occupancy=float(occupied))
        updates.update({f"{prefix}_capacity": float(total), f"{prefix}_threshold": outlook.beds_at_threshold,
                        f"{prefix}_days_median": outlook.days_median, f"{prefix}_days_upper": outlook.days_upper})
    if "beds_days_median" in updates:
        updates["capacity_trigger"] = capacity_trigger(updates["beds_days_median"], NY_RED_ZONE_DAYS)
    return _with(run, **updates), frames


def _with(run: ForecastRun, **changes) -> ForecastRun:
    return replace(run, **changes)


def _band_rows(series: str, band: pd.DataFrame) -> pd.DataFrame:
    frame = band.reset_index().rename(columns={band.index.name or "index": "day"})
    frame.insert(0, "series", series)
    return frame[["series", "day", "mean", "median", "q05", "q95"]]


def _empty_bands() -> pd.DataFrame:
    return pd.DataFrame(columns=["series", "day", "mean", "median", "q05", "q95"])


def capacity_alert(run: ForecastRun, threshold: float) -> AlertSpec | None:
    """A critical alert while the citywide bed census is projected to reach the threshold within 21 days."""
    if not run.capacity_trigger:
        return None
    return AlertSpec(
        dedupe_prefix=f"ew:{ALERT_KIND_CAPACITY}:{CITYWIDE}:beds", since=run.as_of, severity="critical",
        kind=ALERT_KIND_CAPACITY, area_id=None,
        title=f"Hospital beds projected to reach {threshold:.0%} within {NY_RED_ZONE_DAYS} days",
        detail=(f"median projection reaches {threshold:.0%} of {run.beds_capacity:,.0f} beds in "
                f"{run.beds_days_median} days (95th percentile: {run.beds_days_upper} days); NYS red-zone test"),
        rule_id=CAPACITY_RULE_ID, rule_version=CAPACITY_RULE_VERSION)


# ================================================================================ the page's read model
@dataclass(frozen=True)
class ThresholdMark:
    value: float
    level_label: str
    colour: str


@dataclass(frozen=True)
class IndicatorGauge:
    """One gauge: the value, the level and colour it has in the active rulebook, and the threshold marks."""
    indicator: str
    label: str
    unit: str
    value: float | None
    level_label: str | None
    colour: str | None
    lowest_colour: str
    thresholds: tuple[ThresholdMark, ...]
    axis_min: float
    axis_max: float
    is_fraction: bool
    in_rulebook: bool


@dataclass(frozen=True)
class CapacityView:
    beds_capacity: float | None
    beds_threshold: float | None
    beds_days_median: int | None
    beds_days_upper: int | None
    icu_capacity: float | None
    icu_days_median: int | None
    icu_days_upper: int | None
    trigger: bool
    horizon_days: int
    threshold: float
    note: str


@dataclass(frozen=True)
class EarlyWarningView:
    as_of: date | None
    area_id: str
    area_name: str
    area_options: tuple[tuple[str, str], ...]
    rulebook: Rulebook
    rulebook_options: tuple[tuple[str, str], ...]
    assessment: LevelAssessment | None
    gauges: tuple[IndicatorGauge, ...]
    timeline: pd.DataFrame
    bands: pd.DataFrame
    rt: pd.DataFrame
    rt_note: str
    capacity: CapacityView | None
    alarms: pd.DataFrame
    level_changes: pd.DataFrame
    min_count: int
    may_see_small_counts: bool
    extra: dict = field(default_factory=dict)


TIMELINE_DAYS = 90


def area_options(store: Store) -> tuple[tuple[str, str], ...]:
    """(area_id, name) for the area selector: the city first, then every populated area by name."""
    areas = qw.populated_areas(store)
    areas = areas[areas["population"] > 0]
    return ((CITYWIDE, CITYWIDE_NAME), *((str(r.area_id), str(r.name)) for r in areas.itertuples(index=False)))


def rulebook_options(settings: Settings) -> tuple[tuple[str, str], ...]:
    return tuple((rb.id, f"{rb.name} (v{rb.version})") for rb in load_rulebooks(settings).values())


def page_view(store: Store, settings: Settings, area_id: str, today: date, principal: Principal) -> EarlyWarningView:
    """Everything /early-warning shows for one area (or the city)."""
    options = area_options(store)
    names = dict(options)
    area_id = area_id if area_id in names else CITYWIDE
    rulebooks = load_rulebooks(settings)
    rulebook = active_rulebook(store, settings, rulebooks)
    stored_day = qw.latest_indicator_day(store)
    as_of = stored_day or as_of_date(store, today)
    min_count = settings.privacy.min_count
    empty = pd.DataFrame()
    if as_of is None:
        return EarlyWarningView(None, area_id, names[area_id], options, rulebook, rulebook_options(settings), None,
                                (), empty, empty, empty, "no case data yet", None, empty, empty, min_count,
                                principal.may_see_small_counts)
    values = indicator_table(qw.indicator_values(store, stored_day)).get(area_id, {}) if stored_day else {}
    assessment = level_for(rulebook, values) if values else None
    gauges = build_gauges(rulebook, assessment, values)

    data = load_daily(store, settings, as_of, area_ids=[] if area_id == CITYWIDE else [area_id])
    counts = data.counts[area_id]
    timeline = counts.join(data.census).iloc[-TIMELINE_DAYS:].reset_index()
    timeline["cases_7d_avg"] = counts["cases"].rolling(7, min_periods=1).mean().iloc[-TIMELINE_DAYS:].to_numpy()
    rt = rt_series(counts, serial_interval(settings), settings.early_warning.rt_window)
    rt = rt.iloc[-TIMELINE_DAYS:].reset_index(drop=True)
    rt_note = "" if rt["mean"].notna().any() else (
        f"R(t) needs at least {MIN_CASES_FOR_RT} local cases in a {settings.early_warning.rt_window}-day window")

    run = qw.latest_forecast_run(store, area_id)
    bands = qw.forecast_bands(store, run["as_of"], area_id) if run else _empty_bands()
    city_run = run if area_id == CITYWIDE else qw.latest_forecast_run(store, CITYWIDE)
    capacity = _capacity_view(city_run, settings) if city_run else None
    if area_id != CITYWIDE and run is not None:
        # The area's own cases and admissions, with the city's hospital census and its projection.
        city_bands = qw.forecast_bands(store, city_run["as_of"], CITYWIDE) if city_run else _empty_bands()
        bands = pd.concat([bands, city_bands[city_bands["series"].str.endswith("_occupied")]], ignore_index=True)
    elif area_id != CITYWIDE and city_run is not None:
        city_bands = qw.forecast_bands(store, city_run["as_of"], CITYWIDE)
        bands = city_bands[city_bands["series"].str.endswith("_occupied")].reset_index(drop=True)

    return EarlyWarningView(
        as_of=as_of, area_id=area_id, area_name=names[area_id], area_options=options, rulebook=rulebook,
        rulebook_options=rulebook_options(settings), assessment=assessment, gauges=gauges, timeline=timeline,
        bands=bands, rt=rt, rt_note=rt_note, capacity=capacity, alarms=alarm_rows(store, names, min_count,
                                                                                  principal.may_see_small_counts),
        level_changes=level_change_rows(store, names, rulebooks), min_count=min_count,
        may_see_small_counts=principal.may_see_small_counts,
        extra={"forecast_note": (run or {}).get("note") or "", "r_mean": (run or {}).get("r_mean")})


def _capacity_view(run: dict, settings: Settings) -> CapacityView:
    def whole(key):
        value = run.get(key)
        return None if value is None or pd.isna(value) else int(value)

    def number(key):
        value = run.get(key)
        return None if value is None or pd.isna(value) else float(value)

    return CapacityView(
        beds_capacity=number("beds_capacity"), beds_threshold=number("beds_threshold"),
        beds_days_median=whole("beds_days_median"), beds_days_upper=whole("beds_days_upper"),
        icu_capacity=number("icu_capacity"), icu_days_median=whole("icu_days_median"),
        icu_days_upper=whole("icu_days_upper"), trigger=bool(run.get("capacity_trigger") or False),
        horizon_days=int(run["horizon_days"]), threshold=settings.early_warning.capacity_threshold,
        note=str(run.get("note") or ""))


def build_gauges(rulebook: Rulebook, assessment: LevelAssessment | None, values: Mapping[str, float | None]
                 ) -> tuple[IndicatorGauge, ...]:
    """The rulebook's indicators (coloured by their level, threshold marks of the band that applies), then
    the other key indicators uncoloured."""
    band = _band(rulebook, assessment)
    gauges = []
    names = [r.name for r in rulebook.indicators]
    for rule in rulebook.indicators:
        value = values.get(rule.name)
        marks = tuple(ThresholdMark(t.value, rulebook.level(t.level).label, rulebook.level(t.level).colour)
                      for t in (band.thresholds_for(rule.name) if band else ()))
        if marks:
            first_rank = rulebook.level_rank(band.thresholds_for(rule.name)[0].level)
            lowest = rulebook.levels[first_rank - 1].colour
        else:
            lowest = NEUTRAL_GAUGE_COLOUR
        level_id = assessment.indicator_level(rule.name) if assessment else None
        level = rulebook.level(level_id) if level_id else None
        gauges.append(_gauge(rule.name, rule.label, rule.unit, value, level.label if level else None,
                             level.colour if level else None, lowest, marks, True))
    for name in GAUGE_INDICATORS:
        if name in names:
            continue
        label, unit = INDICATOR_LABELS[name]
        gauges.append(_gauge(name, label, unit, values.get(name), None, None, NEUTRAL_GAUGE_COLOUR, (), False))
    return tuple(gauges)


def _band(rulebook: Rulebook, assessment: LevelAssessment | None) -> ThresholdBand | None:
    if rulebook.selector is None:
        return rulebook.bands[0]
    if assessment is None or assessment.band is None:
        return None
    return next((b for b in rulebook.bands if b.name == assessment.band), None)


def _gauge(name, label, unit, value, level_label, colour, lowest, marks, in_rulebook) -> IndicatorGauge:
    value = None if value is None or not math.isfinite(value) else float(value)
    fraction = name in FRACTION_INDICATORS
    top_mark = max((m.value for m in marks), default=0.0)
    axis_min = min(0.0, value or 0.0, -100.0 if name == ind.WASTEWATER_PERCENT_CHANGE else 0.0)
    default_top = {ind.RT: 2.0, ind.WEEK_OVER_WEEK_GROWTH: 2.0, ind.SENSOR_WEEK_RATIO: 2.0,
                   ind.WASTEWATER_PERCENT_CHANGE: 200.0}.get(name, 1.0 if fraction else 10.0)
    axis_max = max(top_mark * 1.4, (value or 0.0) * 1.15, default_top if not marks else 0.0)
    if fraction:
        axis_max = min(max(axis_max, top_mark * 1.25 if marks else 0.3), 1.0)
        if value is not None and value > axis_max:
            axis_max = value
    return IndicatorGauge(name, label, unit, value, level_label, colour, lowest, marks, axis_min, axis_max,
                          fraction, in_rulebook)


def alarm_rows(store: Store, names: Mapping[str, str], min_count: int, may_see_small_counts: bool) -> pd.DataFrame:
    """Open alarms, one row per series and area: methods, started (earliest), last alarm, observed vs bound."""
    alarms = qw.active_alarms(store)
    columns = ["series", "area", "area_id", "methods", "started_on", "last_alarm_on", "observed", "bound"]
    if alarms.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (series, area_id), group in alarms.groupby(["series", "area_id"], sort=False):
        is_count = series in COUNT_SERIES
        last = group.sort_values("last_alarm_on").iloc[-1]
        rows.append({
            "series": SERIES_LABELS.get(series, series), "area": names.get(area_id, area_id), "area_id": area_id,
            "methods": " · ".join(f"{m.method} since {pd.Timestamp(m.started_on):%d %b}"
                                  for m in group.sort_values("started_on").itertuples(index=False)),
            "started_on": pd.Timestamp(group["started_on"].min()).date(),
            "last_alarm_on": pd.Timestamp(group["last_alarm_on"].max()).date(),
            "observed": format_value(float(last["observed"]), is_count, min_count, may_see_small_counts),
            "bound": format_value(float(last["upperbound"]), False, min_count, True),
        })
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["started_on", "series", "area"], ascending=[False, True, True]).reset_index(drop=True)


def level_change_rows(store: Store, names: Mapping[str, str], rulebooks: Mapping[str, Rulebook],
                      limit: int = 12) -> pd.DataFrame:
    """The latest level changes with level labels, the area's name and the rulebook id and version."""
    changes = qw.level_changes(store, limit=limit)
    if changes.empty:
        return changes

    def label(rulebook_id, level_id):
        rb = rulebooks.get(rulebook_id) if isinstance(rulebook_id, str) else None
        if not isinstance(level_id, str):
            return "–"
        try:
            return rb.level(level_id).label if rb else level_id
        except KeyError:
            return level_id

    changes = changes.copy()
    changes["area"] = [names.get(a, a) for a in changes["area_id"]]
    changes["from_label"] = [label(r, lv) for r, lv in zip(changes["from_rulebook_id"], changes["from_level"])]
    changes["to_label"] = [label(r, lv) for r, lv in zip(changes["rulebook_id"], changes["to_level"])]
    return changes
