"""The early-warning job: aberration alarms, forecasts and the capacity outlook, computed once.

``run(store, settings, today)`` reads what the indicators job stored for its as-of day (daily
series, R(t)), and computes:

* aberration alarms: EARS C1/C2/C3 (surveillance::earsC semantics) and the NSSP-ESSENCE EWMA on each
  daily series. An episode of one detector starts on its first alarm day and stays open until
  ``QUIET_DAYS_TO_RESOLVE`` days pass without an alarm, so a detector that flickers gives one episode;
* forecasts per area: analytics.forecast_skill replays weekly forecasts along the area's case series
  (the renewal projection from the stored R(t), R relaxing to 1; a damped log-linear trend; their mean
  with the naive forecast; the naive forecast), uses the one that beat the naive forecast on that
  series' own past (else the naive forecast, and says so), with a band calibrated on its own past
  errors; its backtest scores (skill, WIS, 50/90 % coverage at 7 and 14 days) are stored beside the
  forecast. Admissions and beds follow from the case trajectories with shares, delays and stays measured
  on the store's linked admissions (early_warning.* defaults until there are enough);
* the capacity outlook: days until ``early_warning.capacity_threshold`` of beds and ICU beds, median
  and upper, for the city, each hospital and each area's hospitals (analytics.capacity anchors the
  projected census on the occupancy reported for the day);

and commits all of it in one writer transaction, so a page never sees half a run. Idempotent: a
rerun on unchanged inputs writes nothing (fingerprint), and on changed inputs replaces the day's
forecasts and outlooks and raises no alert twice (dedupe keys). Levels are the indicators job's: they
change whenever the indicators do.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd

from analytics import catalog as cat
from analytics import forecast_skill as fs
from analytics.aberration import ears, ewma
from analytics.capacity import allocation_weights, anchored_band
from analytics.forecast import (
    NY_RED_ZONE_DAYS,
    HospitalParameters,
    capacity_trigger,
    days_until_capacity,
    delayed_share,
    forecast,
    los_survival,
    occupancy_from_admissions,
)
from jobs import memo
from jobs.daily_inputs import DailyData, load_stored
from jobs.ew_reuse import SeriesAlarms, StoredResults
from jobs.indicators import MIN_CASES_FOR_RT, serial_interval
from settings import Settings
from store import Store
from store import queries_indicators as qi
from store import queries_ew_reuse as qr
from store import queries_forecast as qf
from store import queries_warning as qw
from store.definitions import CITYWIDE, HOSPITAL_KINDS
from store.queries_warning import AlarmEpisode, AlertSpec, ForecastRun

JOB = "early_warning"
METHOD_VERSION = "5"  # 3: method chosen per series by backtest, calibrated bands, skill stored; 4: weekday pattern;
# 5: shares admitted to three significant digits
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
MIN_STAYS_FOR_LOS = 20  # fewer linked admissions / discharges than this say little about delays and stays
LOS_LOOKBACK_DAYS = 180


def parameters(settings: Settings) -> dict:
    ew = settings.early_warning
    return {"forecast_days": ew.forecast_days, "forecast_r_relax_days": ew.forecast_r_relax_days,
            "capacity_threshold": ew.capacity_threshold, "admission_lag_days": ew.admission_lag_days,
            "icu_admission_lag_days": ew.icu_admission_lag_days, "los": [ew.los_mean_days, ew.los_std_days],
            "icu_los": [ew.icu_los_mean_days, ew.icu_los_std_days], "samples": FORECAST_SAMPLES,
            "seed": FORECAST_SEED, "min_count": settings.privacy.min_count}


def fingerprint(store: Store, settings: Settings, as_of: date) -> str:
    indicators_run = qi.job_run(store, "indicators") or {}
    inputs = {"indicators": indicators_run.get("input_fingerprint"), "as_of": as_of.isoformat(),
              "admissions": qi.input_versions(store)["admissions"], "parameters": parameters(settings),
              "version": METHOD_VERSION}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def run(store: Store, settings: Settings, today: date, now: datetime | None = None) -> dict:
    """One run (or none, when nothing changed); returns a JSON-ready summary (shown in /healthz)."""
    started = time.monotonic()
    now = now or datetime.now(timezone.utc)
    as_of = qi.latest_indicator_day(store)
    if as_of is None:
        return {"status": "skipped", "reason": "no indicators stored yet"}
    fp = fingerprint(store, settings, as_of)
    last = qi.job_run(store, JOB)
    if last is not None and last["input_fingerprint"] == fp:
        return {"status": "unchanged", "as_of": as_of.isoformat()}

    data = load_stored(store, as_of)
    # Unchanged areas are answered from memory (jobs.memo) or, after a restart, from what this job stored
    # under the same input digest (jobs.ew_reuse); only the others are computed.
    stored = StoredResults(store, as_of)
    alarms = detect_alarms(data, settings.privacy.min_count, stored)
    hospital = hospital_parameters(store, data, settings)
    forecasts, forecast_keys = remembered_forecasts(data, hospital, settings, qi.rt_on(store, as_of),
                                                    rt_histories(store, data), stored)
    city = next(f for f in forecasts if f.run.area_id == CITYWIDE)
    facilities = qi.stored_facility_days(store, as_of, as_of)
    outlooks, bands = capacity_outlook(data, city, hospital, facilities, settings)
    city_beds = outlooks[(outlooks["scope"] == "city") & (outlooks["resource"] == "beds")]
    capacity = capacity_alert(city_beds.iloc[0] if len(city_beds) else None, as_of)
    summary = {"as_of": as_of.isoformat(), "areas": len(data.area_ids()), "open_alarms": len(alarms.episodes)}

    def write(con) -> dict:
        written: dict = {}
        written["alarms"] = qw.sync_alarms(con, as_of, alarms.episodes, now)
        written["aberration_alerts"] = qw.sync_alerts(con, ALERT_KIND_ABERRATION, alarms.alerts, now)
        written["capacity_alerts"] = qw.sync_alerts(con, ALERT_KIND_CAPACITY, [capacity] if capacity else [], now)
        qw.replace_forecasts(con, as_of, [(result.run, result.bands) for result in forecasts], now, forecast_keys)
        qr.replace_series_alarms_in(con, pd.DataFrame(list(alarms.series_digests), columns=list(
            qr.SERIES_ALARM_COLUMNS)))
        qf.replace_skills_in(con, as_of, {result.run.area_id: result.skill for result in forecasts})
        qi.replace_capacity_outlook_in(con, as_of, outlooks, bands)
        qi.save_job_run_in(con, JOB, as_of, now, fp, METHOD_VERSION, parameters(settings),
                           round(time.monotonic() - started, 3), summary)
        return written

    written = store.submit(write).result()
    return {
        "status": "computed", **summary,
        "alerts_raised": written["aberration_alerts"]["raised"] + written["capacity_alerts"]["raised"],
        "alerts_resolved": written["aberration_alerts"]["resolved"] + written["capacity_alerts"]["resolved"],
        "citywide_r": None if city.run.r_mean is None else round(city.run.r_mean, 3),
        "beds_days_to_threshold": None if city_beds.empty else _none(city_beds.iloc[0]["days_median"]),
        "capacity_trigger": bool(capacity is not None),
        "seconds": round(time.monotonic() - started, 2),
    }


# ================================================================================ alarms
@dataclass(frozen=True)
class AlarmResult:
    episodes: tuple[AlarmEpisode, ...]
    alerts: tuple[AlertSpec, ...]
    # (series, area_id, input digest, open since, open last) per series tested: stored for the next start
    series_digests: tuple[tuple, ...] = ()


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


def series_alarms(data: DailyData, key: str, area_id: str, series: pd.Series, min_sigma: float,
                  log_scale: bool) -> SeriesAlarms:
    """The open episode of each detector on one series, and the open span of their alarm days together."""
    episodes: list[AlarmEpisode] = []
    union = None
    for method, result in detector_results(series, min_sigma).items():
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
        episodes.append(AlarmEpisode(key, area_id, method, data.days[first].date(), day.date(), observed, bound))
    found = open_episode(union) if union is not None else None
    span = None if found is None else (data.days[found[0]].date(), data.days[found[1]].date())
    return SeriesAlarms(tuple(episodes), span)


def detect_alarms(data: DailyData, min_count: int, stored: StoredResults | None = None) -> AlarmResult:
    """Open alarm episodes of every detector on every series and area, and one alert per series and area.

    Each series' detectors run only when the series changed: otherwise what they found is remembered
    (jobs.memo) or, after a restart, read back from ``stored`` (the same digest of the same inputs).
    """
    name = f"series-alarms-v{METHOD_VERSION}"
    episodes: list[AlarmEpisode] = []
    alerts: list[AlertSpec] = []
    digests: list[tuple] = []
    for area_id in data.area_ids():
        for key, label, is_count, log_scale in SERIES:
            series = series_of(data, key, area_id)
            values = None if series is None else series.to_numpy(dtype=float)
            if values is None or not (values[~np.isnan(values)] != 0).any():  # nothing, or nothing but zeros
                continue
            min_sigma = COUNT_MIN_SIGMA if is_count else (LOG_CONCENTRATION_MIN_SIGMA if log_scale else 0.0)
            digest = memo.digest(name, key, area_id, series, min_sigma, log_scale)
            found = memo.recall(name, digest)
            if found is None and stored is not None:
                found = stored.series_alarms(key, area_id, digest, (*EARS_METHODS, EWMA_METHOD))
                if found is not None:
                    memo.keep(name, digest, found)
            if found is None:
                found = memo.remembered(name, digest, lambda: series_alarms(data, key, area_id, series, min_sigma,
                                                                            log_scale))
            episodes.extend(found.episodes)
            digests.append((key, area_id, digest, *(found.open_span or (None, None))))
            if found.open_span is None:
                continue
            methods = sorted({e.method for e in found.episodes})
            since, last_day = found.open_span[0], pd.Timestamp(found.open_span[1])
            value = float(series.get(last_day, np.nan))
            shown = alert_value_text(math.exp(value) if log_scale else value, is_count, min_count)
            alerts.append(AlertSpec(
                dedupe_prefix=f"ew:{ALERT_KIND_ABERRATION}:{key}:{area_id}", since=since, severity="warning",
                kind=ALERT_KIND_ABERRATION, area_id=None if area_id == CITYWIDE else area_id,
                title=f"{label} above expected: {data.name(area_id)}",
                detail=(f"{', '.join(methods) or 'aberration'} alarm since {since.isoformat()}; "
                        f"{last_day.date().isoformat()}: {shown}"),
                rule_id=ABERRATION_RULE_ID, rule_version=ABERRATION_RULE_VERSION))
    return AlarmResult(tuple(episodes), tuple(alerts), tuple(digests))


def series_of(data: DailyData, key: str, area_id: str) -> pd.Series | None:
    if key in ("cases", "admissions"):
        return data.counts[area_id][key]
    if key == "fever":
        return data.fever.get(area_id)
    if key == "wastewater":
        return data.wastewater_log.get(area_id)
    raise KeyError(key)


def alert_value_text(value: float, is_count: bool, min_count: int) -> str:
    """An alert's figure as stored: alerts are read by every role, so small counts are withheld here."""
    if not math.isfinite(value):
        return "–"
    if is_count:
        return f"<{min_count}" if cat.is_small_count(value, min_count) else f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


# ================================================================================ forecasts
@dataclass(frozen=True)
class ForecastResult:
    run: ForecastRun
    bands: pd.DataFrame  # series, day, mean, median, q05, q95 (cases, admissions)
    census: dict[str, tuple[pd.DataFrame, float]] | None = None  # city: resource -> (projected census, census now)
    skill: pd.DataFrame | None = None  # forecast_skill.score_table of the series' backtest (7 and 14 days)


@dataclass(frozen=True)
class Hospital:
    """How cases turn into admissions and beds, and how that was found out."""
    parameters: HospitalParameters
    admissions_observed: bool  # admissions are reported: the past census is built from them
    calibration: str


def hospital_parameters(store: Store, data: DailyData, settings: Settings) -> Hospital:
    """Shares of cases admitted (and to ICU), delays and stays measured on the store's linked admissions.

    Where no admissions are reported (a city whose hospitals send only capacity reports, as FHIR SANER
    does) the share admitted is fitted to the COVID-19 patients reported on the as-of day instead: the
    modelled census is linear in the share, so one division makes it meet today's count.
    """
    ew = settings.early_warning
    stats = qi.admission_delay_and_stay(store, data.as_of - timedelta(days=LOS_LOOKBACK_DAYS - 1), data.as_of)
    by_icu = {bool(r.icu): r for r in stats.itertuples(index=False)}
    ward, icu = by_icu.get(False), by_icu.get(True)
    all_lag = _lag(ward, ew.admission_lag_days)
    icu_lag = _lag(icu, ew.icu_admission_lag_days)
    los = _stay(ward, (ew.los_mean_days, ew.los_std_days))
    icu_los = _stay(icu, (ew.icu_los_mean_days, ew.icu_los_std_days))
    city = data.counts[CITYWIDE]
    observed = float(city["admissions"].iloc[-SHARE_WINDOW_DAYS:].sum()) > 0
    share = _share(city["admissions"], city["cases"], all_lag)
    calibration = f"{share:.1%} of cases admitted, from the last {SHARE_WINDOW_DAYS} days of admissions"
    covid_now = data.census["beds_covid"].iloc[-1] if len(data.census) else np.nan
    if not observed and pd.notna(covid_now):
        unit = _census_now(city["cases"].to_numpy(dtype=float), 1.0, all_lag, los)
        share = float(min(max(covid_now / unit, 0.0), 1.0)) if unit > 0 else 0.0
        calibration = f"{share:.1%} of cases admitted, fitted to the {covid_now:,.0f} COVID-19 patients reported"
    parameters = HospitalParameters(
        admission_share=_significant(share), admission_lag_days=all_lag, los_mean_days=los[0], los_std_days=los[1],
        icu_share=_significant(_share(city["icu_admissions"], city["cases"], icu_lag)),
        icu_lag_days=icu_lag, icu_los_mean_days=icu_los[0], icu_los_std_days=icu_los[1])
    return Hospital(parameters, observed, calibration)


# A share admitted, measured on a few weeks of a city's admissions, is uncertain in its second digit. Kept
# to three significant digits (every digit the page and the briefing show), one more case in the city
# rarely changes it, and then the forecasts of the areas whose own cases did not change are reused
# (jobs.memo, jobs.ew_reuse) instead of all being recomputed for the new admissions bands.
SHARE_DIGITS = 3


def _significant(share: float) -> float:
    return float(f"{share:.{SHARE_DIGITS}g}") if math.isfinite(share) and share > 0 else share


def _census_now(cases: np.ndarray, share: float, lag: int, los: tuple[float, float]) -> float:
    """The COVID-19 census today if ``share`` of cases were admitted ``lag`` days after their report."""
    return float(occupancy_from_admissions(delayed_share(cases, share, lag), los_survival(*los))[-1])


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


def skill_config(settings: Settings) -> fs.SkillConfig:
    """The forecast method as configured: the R(t) window and relaxation the job uses."""
    ew = settings.early_warning
    return fs.SkillConfig(relax_days=ew.forecast_r_relax_days, window=ew.rt_window, min_window_cases=MIN_CASES_FOR_RT)


def rt_histories(store: Store, data: DailyData) -> dict[str, pd.Series]:
    """Per area the stored R(t) posterior mean of each day of the loaded history (NaN where not estimated),
    read for every area at once."""
    rows = qi.rt_means(store, data.days[0].date(), data.as_of)
    rows["day"] = pd.to_datetime(rows["day"])
    by_area = {area_id: group for area_id, group in rows.groupby("area_id", sort=False)}
    empty = pd.Series(np.nan, index=data.days, dtype=float)
    paths: dict[str, pd.Series] = {}
    for area_id in data.area_ids():
        mine = by_area.get(area_id)
        paths[area_id] = empty if mine is None else pd.Series(
            mine["mean"].to_numpy(dtype=float), index=pd.DatetimeIndex(mine["day"])).reindex(data.days)
    return paths


def remembered_forecasts(data: DailyData, hospital: Hospital, settings: Settings,
                         rt_now: dict[str, tuple[float, float]], rt_paths: dict[str, pd.Series],
                         stored: StoredResults | None = None) -> tuple[list[ForecastResult], dict[str, str]]:
    """forecast_area of every area, and per area the digest of everything it reads (jobs.memo).

    The backtests behind the choice of method are most of the job's time: an area whose inputs have the
    digest of a result remembered in this process, or (after a restart) of the one stored for the day,
    is answered from there, so a rerun for one area's new case computes that area and the city only.
    """
    name = f"forecast-v{METHOD_VERSION}"
    settings_json = settings.early_warning.model_dump_json()
    keys = {area_id: memo.digest(name, data.as_of, area_id, data.counts[area_id], hospital, settings_json,
                                 rt_now.get(area_id), rt_paths.get(area_id)) for area_id in data.area_ids()}
    results: dict[str, ForecastResult] = {}
    for area_id, key in keys.items():
        hit = memo.recall(name, key)
        if hit is not None:
            results[area_id] = hit
    # Not the city's: its census bands (the capacity outlook's start) are not stored as such (jobs.ew_reuse).
    restorable = {a: k for a, k in keys.items() if a not in results and a != CITYWIDE}
    if stored is not None and restorable:
        for area_id, found in stored.forecasts(restorable).items():
            results[area_id] = memo.keep(name, keys[area_id], ForecastResult(found.run, found.bands, None,
                                                                             found.skill))
    for area_id, key in keys.items():
        if area_id not in results:
            results[area_id] = memo.remembered(name, key, lambda a=area_id: forecast_area(
                data, a, hospital, settings, rt_now.get(a), rt_paths.get(a)))
    return [results[a] for a in data.area_ids()], keys


def forecast_area(data: DailyData, area_id: str, hospital: Hospital, settings: Settings,
                  rt: tuple[float, float] | None, rt_by_day: pd.Series | None = None) -> ForecastResult:
    """Cases and admissions bands for an area with the method its own past chose (analytics.forecast_skill),
    the backtest scores behind that choice, and for the city also the census bands."""
    ew = settings.early_warning
    h = hospital.parameters
    counts = data.counts[area_id]
    base = dict(as_of=data.as_of, area_id=area_id, horizon_days=ew.forecast_days,
                admission_share=h.admission_share, icu_share=h.icu_share)
    if rt is None or not all(math.isfinite(v) for v in rt):
        note = (f"fewer than {MIN_CASES_FOR_RT} local cases in the last {ew.rt_window} days: R(t) not estimated, "
                "no projection")
        return ForecastResult(ForecastRun(r_mean=None, r_std=None, note=note, **base), _empty_bands())
    r_mean, r_std = rt
    # Observed admissions replace the modelled ones for the past, so the census rests on what happened;
    # where none are reported the model's own past is the census (fitted to today's patients).
    observed = hospital.admissions_observed
    try:
        si = serial_interval(settings)
        cases = counts["cases"].to_numpy(dtype=float)
        path = None if rt_by_day is None else rt_by_day.reindex(counts.index).to_numpy(dtype=float)
        # The method's choice, its backtests and paths read the area's cases and R(t) only, not the hospital
        # parameters (estimated from the whole city's admissions, so they move with any new case): kept
        # apart, so that a case in one area does not redo every other area's backtests.
        name = f"project-v{METHOD_VERSION}"
        key = memo.digest(name, data.as_of, area_id, counts["cases"], ew.model_dump_json(), r_mean, path)
        chosen = memo.remembered(name, key, lambda: fs.project(
            cases, si, ew.forecast_days, skill_config(settings), FORECAST_SAMPLES, FORECAST_SEED, r_now=r_mean,
            rt_mean=path))
        result = forecast(counts["cases"], si, h, horizon_days=ew.forecast_days,
                          n_samples=FORECAST_SAMPLES, r_mean=r_mean, r_std=r_std, seed=FORECAST_SEED,
                          admissions_history=counts["admissions"] if observed else None,
                          icu_admissions_history=counts["icu_admissions"] if observed else None,
                          r_relax_days=ew.forecast_r_relax_days, case_samples=chosen.samples)
    except ValueError as exc:  # say why instead of failing the job
        return ForecastResult(ForecastRun(r_mean=None, r_std=None, note=f"no projection: {exc}", **base),
                              _empty_bands())
    bands = pd.concat([_band_rows("cases", result.cases), _band_rows("admissions", result.admissions)],
                      ignore_index=True)
    census = None
    if area_id == CITYWIDE:
        cases = counts["cases"].to_numpy(dtype=float)
        census = {}
        for resource, admissions, share, lag, los, projected in (
                ("beds", counts["admissions"], h.admission_share, h.admission_lag_days,
                 (h.los_mean_days, h.los_std_days), result.beds),
                ("icu", counts["icu_admissions"], h.icu_share, h.icu_lag_days,
                 (h.icu_los_mean_days, h.icu_los_std_days), result.icu)):
            now_modelled = (occupancy_from_admissions(admissions.to_numpy(dtype=float), los_survival(*los))[-1]
                            if observed else _census_now(cases, share, lag, los))
            census[resource] = (projected, float(now_modelled))
    note = hospital.calibration if area_id == CITYWIDE else ""
    run = ForecastRun(r_mean=result.r_mean, r_std=result.r_std, note=note, method=chosen.choice.method,
                      method_note=chosen.choice.note, **base)
    return ForecastResult(run, bands, census, chosen.evaluation.scores)


def _band_rows(series: str, band: pd.DataFrame) -> pd.DataFrame:
    frame = band.reset_index().rename(columns={band.index.name or "index": "day"})
    frame.insert(0, "series", series)
    return frame[["series", "day", "mean", "median", "q05", "q95"]]


def _empty_bands() -> pd.DataFrame:
    return pd.DataFrame(columns=["series", "day", "mean", "median", "q05", "q95"])


# ================================================================================ capacity outlook
RESOURCE_COLUMNS = {"beds": ("beds_total", "beds_occupied", "covid_patients"),
                    "icu": ("icu_total", "icu_occupied", None)}


def capacity_outlook(data: DailyData, city: ForecastResult, hospital: Hospital, facilities: pd.DataFrame,
                     settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(outlook rows, band rows) for the city, each hospital and each area's hospitals, beds and ICU."""
    ew = settings.early_warning
    threshold, horizon = ew.capacity_threshold, ew.forecast_days
    hospitals = facilities[facilities["kind"].isin(HOSPITAL_KINDS) & facilities["reported_at"].notna()]
    outlooks: list[dict] = []
    bands: list[tuple[str, str, str, pd.DataFrame]] = []  # scope, scope_id, resource, band

    def add(scope, scope_id, resource, capacity, occupied, band, note=""):
        row = {"as_of": data.as_of, "scope": scope, "scope_id": scope_id, "resource": resource,
               "capacity": capacity, "occupied": occupied, "threshold": threshold, "at_threshold": None,
               "projected": band is not None, "days_median": None, "days_upper": None, "horizon_days": horizon,
               "trigger": False, "note": note}
        if band is not None and capacity and capacity > 0 and occupied is not None and math.isfinite(occupied):
            out = days_until_capacity(band, float(capacity), threshold, current_occupancy=float(occupied))
            row.update(at_threshold=out.beds_at_threshold, days_median=out.days_median, days_upper=out.days_upper,
                       trigger=capacity_trigger(out.days_median, NY_RED_ZONE_DAYS))
            bands.append((scope, scope_id, resource, band))
        elif band is not None:
            row.update(projected=False, note="no beds reported")
        outlooks.append(row)

    for resource, (total_col, occupied_col, covid_col) in RESOURCE_COLUMNS.items():
        total = _sum(hospitals[total_col])
        occupied = _sum(hospitals[occupied_col])
        census = (city.census or {}).get(resource)
        if census is None:
            note = city.run.note or "no projection"
            add("city", CITYWIDE, resource, total, occupied, None, note)
            for r in hospitals.itertuples(index=False):
                add("facility", r.facility_id, resource, _num(getattr(r, total_col)), _num(getattr(r, occupied_col)),
                    None, note)
            continue
        projected, census_now = census
        add("city", CITYWIDE, resource, total, occupied,
            anchored_band(projected, census_now, occupied) if occupied is not None else None,
            f"R(t) {city.run.r_mean:.2f} ± {city.run.r_std:.2f}; {hospital.calibration}; "
            f"reports counted for {data.as_of}")
        weights = allocation_weights(hospitals["facility_id"], hospitals[covid_col] if covid_col else
                                     pd.Series(np.nan, index=hospitals.index), hospitals[occupied_col])
        for r in hospitals.itertuples(index=False):
            occupied_f = _num(getattr(r, occupied_col))
            band = (anchored_band(projected, census_now, occupied_f, float(weights.get(r.facility_id, 0.0)))
                    if occupied_f is not None else None)
            add("facility", r.facility_id, resource, _num(getattr(r, total_col)), occupied_f, band,
                f"{float(weights.get(r.facility_id, 0.0)):.0%} of the city's change in COVID-19 patients")
        for area_id, group in hospitals.dropna(subset=["area_id"]).groupby("area_id"):
            occupied_a = _sum(group[occupied_col])
            weight = float(weights.reindex(group["facility_id"]).fillna(0.0).sum())
            band = anchored_band(projected, census_now, occupied_a, weight) if occupied_a is not None else None
            add("area", str(area_id), resource, _sum(group[total_col]), occupied_a, band,
                f"{len(group)} hospital(s) in the area; {weight:.0%} of the city's change")
    outlook = pd.DataFrame(outlooks, columns=list(qi.OUTLOOK_COLUMNS))
    return outlook, _band_table(data.as_of, bands)


BAND_VALUES = ("mean", "median", "q05", "q95")


def _band_table(as_of: date, bands: list[tuple[str, str, str, pd.DataFrame]]) -> pd.DataFrame:
    """Every projection's band rows (qi.BAND_COLUMNS) in one frame, built from arrays: a frame per
    hospital and resource, concatenated, was most of the outlook's time at a hundred hospitals."""
    if not bands:
        return pd.DataFrame(columns=list(qi.BAND_COLUMNS))
    lengths = [len(band) for *_, band in bands]
    columns = {"as_of": [as_of] * sum(lengths)}
    for i, name in enumerate(("scope", "scope_id", "resource")):
        columns[name] = np.repeat(np.array([b[i] for b in bands], dtype=object), lengths)
    columns["day"] = np.concatenate([band.index.to_numpy() for *_, band in bands])
    for name in BAND_VALUES:
        columns[name] = np.concatenate([band[name].to_numpy(dtype=float) for *_, band in bands])
    return pd.DataFrame(columns)[list(qi.BAND_COLUMNS)]


def _num(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _sum(values: pd.Series) -> float | None:
    numbers = pd.to_numeric(values, errors="coerce")
    return float(numbers.sum()) if numbers.notna().any() else None


def _none(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value) else int(value)


def capacity_alert(city_beds: pd.Series | None, as_of: date) -> AlertSpec | None:
    """A critical alert while the citywide bed census is projected to reach the threshold within 21 days."""
    if city_beds is None or not bool(city_beds["trigger"]):
        return None
    threshold = float(city_beds["threshold"])
    upper = _none(city_beds["days_upper"])
    return AlertSpec(
        dedupe_prefix=f"ew:{ALERT_KIND_CAPACITY}:{CITYWIDE}:beds", since=as_of, severity="critical",
        kind=ALERT_KIND_CAPACITY, area_id=None,
        title=f"Hospital beds projected to reach {threshold:.0%} within {NY_RED_ZONE_DAYS} days",
        detail=(f"median projection reaches {threshold:.0%} of {float(city_beds['capacity']):,.0f} beds in "
                f"{_none(city_beds['days_median'])} days (95th percentile: {upper} days); NYS red-zone test"),
        rule_id=CAPACITY_RULE_ID, rule_version=CAPACITY_RULE_VERSION)
