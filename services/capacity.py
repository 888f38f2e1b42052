"""Capacity read model (/capacity): facility status and stale reports, supplies on hand, spare capacity
next to rising demand, and the bed projection with "days until full".

* Report age is measured against *now*, or, in a database holding a replay of historical data
  (store table ``replay_sources``), against the newest report of the replay — otherwise every
  facility of a 2021 replay would be years stale.
* Days on hand = stock / daily use (the CDC/NHSN supply pathway asks facilities for exactly this);
  below ``capacity.supplies_warn_days`` an item is a warning, below ``supplies_critical_days`` critical.
* The Wuhan lesson (Chen et al. 2020, Lancet 395:1305, on Fangcang shelter hospitals): idle large
  venues (stadiums, exhibition halls, schools) are registered beforehand as ``potential_site``
  facilities; the page lists them with the nearest community area whose week-on-week cases are rising.
* Projection (analytics.forecast): daily cases are projected by the renewal equation from the
  current R(t); admissions are cases ``admission_lag_days`` later times a share, and the COVID-19
  census is admissions convolved with the Gamma length-of-stay survival (mean ``los_mean_days``).
  The share is calibrated so that the modelled census at the origin equals the COVID-19 patients the
  facilities report now (the census is linear in the share); without reported COVID-19 patients it
  is the ratio of linked admissions to earlier cases. Beds used by other patients are carried
  forward: occupied(t) = occupied(now) + COVID census(t) - COVID census(now). A facility gets the
  citywide change in proportion to its share of today's COVID-19 patients (of occupied beds if it
  reports none). "Days until full" is analytics.forecast.days_until_capacity at
  ``capacity.full_threshold`` of the beds reported now, for the median and the 95th percentile.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analytics.forecast import (
    NY_RED_ZONE_DAYS,
    CapacityOutlook,
    HospitalParameters,
    days_until_capacity,
    delayed_share,
    forecast,
    los_survival,
    occupancy_from_admissions,
)
from analytics.rt import discretised_gamma_si
from services.overview import OCCUPANCY_BAD, OCCUPANCY_WARN
from settings import Settings
from store import Store
from store import queries as q
from store import queries_capacity as qc

# Facilities whose beds make up "the city's hospital beds" (as on the overview); quarantine centres
# hold people in isolation, not in hospital beds, and are shown but not summed into hospital totals.
HOSPITAL_KINDS = q.HOSPITAL_KINDS
CITYWIDE = "__citywide__"
# The census at the origin needs a few mean stays of case history behind it (LOS tail ~5x the mean).
CASE_HISTORY_DAYS = 120
# 500 trajectories put the 5th/95th percentiles within a few per cent of their limit: enough for a screen.
PROJECTION_SAMPLES = 500
# A fixed seed: the same data gives the same band on every refresh; a flickering band would mislead.
PROJECTION_SEED = 0
# Serial-interval weights beyond 30 days are negligible for the configured SARS-CoV-2 interval.
SI_MAX_DAYS = 30
# Fewer cases than this in the last two weeks: R(t) is the prior more than the data; no projection.
MIN_RECENT_CASES = 10
# A rise from 1 to 2 cases is noise, not demand: an area needs this many recent cases to be "rising".
MIN_RISING_CASES = 5
EARTH_RADIUS_KM = 6371.0
STATUS_ORDER = ("neutral", "ok", "warn", "bad")  # least to most urgent


@dataclass(frozen=True)
class Tile:
    key: str
    label: str
    display: str
    detail: str
    status: str  # neutral | ok | warn | bad
    query: str


@dataclass(frozen=True)
class BedProjection:
    """Projected occupied beds (band columns mean, median, q05, q95; index = future dates)."""
    origin: date
    band: pd.DataFrame
    covid_band: pd.DataFrame
    occupied_now: float
    covid_now: float
    capacity: float
    outlook: CapacityOutlook
    admission_share: float
    r_mean: float
    r_std: float
    calibration: str


@dataclass(frozen=True)
class CapacityView:
    reference_time: datetime
    as_of: date
    replay: dict | None
    tiles: tuple[Tile, ...]
    facilities: pd.DataFrame  # bed-holding facilities with derived columns (see facility_rows)
    sites: pd.DataFrame  # potential sites with the nearest rising area
    demand: pd.DataFrame  # community areas with week-on-week change
    supplies: pd.DataFrame
    citywide: pd.DataFrame  # day, beds_total, beds_occupied, icu_*, ventilators_*, covid_patients, reporting
    projection: BedProjection | None
    projection_note: str


@dataclass(frozen=True)
class FacilityTrend:
    facility_id: str
    name: str
    history: pd.DataFrame  # day, beds_total, beds_occupied, icu_total, icu_occupied, ...
    band: pd.DataFrame | None
    capacity: float | None
    outlook: CapacityOutlook | None
    note: str


class ProjectionUnavailable(ValueError):
    """Why no projection can be made (shown on the page instead of a band)."""


# ---- reference time -----------------------------------------------------------------------------
def reference_time(store: Store, now: datetime) -> tuple[datetime, dict | None]:
    """(the time report ages are measured against, the replay source or None)."""
    replay = qc.replay_source(store)
    if replay is None:
        return now, None
    latest = qc.latest_report_time(store)
    return (pd.Timestamp(latest).to_pydatetime() if latest is not None else now), replay


# ---- facilities -----------------------------------------------------------------------------------
def _ratio(part: pd.Series, whole: pd.Series) -> pd.Series:
    whole = pd.to_numeric(whole, errors="coerce").astype(float)
    part = pd.to_numeric(part, errors="coerce").astype(float)
    return (part / whole.where(whole > 0)).astype(float)


def occupancy_status(share: float | None) -> str:
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return "neutral"
    return "bad" if share >= OCCUPANCY_BAD else "warn" if share >= OCCUPANCY_WARN else "ok"


def facility_rows(status: pd.DataFrame, ref: datetime, stale_after_hours: float) -> pd.DataFrame:
    """Bed-holding facilities with occupancy, free beds/ICU/ventilators, report age and stale flag."""
    rows = status[status["kind"] != "potential_site"].copy()
    num = {c: pd.to_numeric(rows[c], errors="coerce").astype(float) for c in qc.CAPACITY_COLUMNS}
    rows["occupancy"] = _ratio(num["beds_occupied"], num["beds_total"])
    rows["free_beds"] = num["beds_total"] - num["beds_occupied"]
    rows["icu_occupancy"] = _ratio(num["icu_occupied"], num["icu_total"])
    rows["icu_free"] = num["icu_total"] - num["icu_occupied"]
    rows["vent_free"] = num["ventilators_total"] - num["ventilators_in_use"]
    reported = pd.to_datetime(rows["reported_at"], utc=True)
    rows["report_age_h"] = ((pd.Timestamp(ref).tz_convert("UTC") - reported).dt.total_seconds() / 3600).astype(float)
    # Never reported counts as stale: a facility that is silent is exactly what the flag is for.
    rows["stale"] = rows["report_age_h"].isna() | (rows["report_age_h"] > stale_after_hours)
    rows["status"] = [occupancy_status(v) for v in rows["occupancy"]]
    return rows.reset_index(drop=True)


def format_age(hours: float | None) -> str:
    if hours is None or (isinstance(hours, float) and math.isnan(hours)):
        return "never"
    if hours < 1:
        return f"{max(hours * 60, 0):.0f} min"
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.0f} d"


# ---- supplies -------------------------------------------------------------------------------------
def days_on_hand(stock, daily_use) -> np.ndarray:
    """stock / daily use; NaN where no use is reported (or none is used): no basis for a number."""
    stock = np.asarray(pd.to_numeric(pd.Series(stock), errors="coerce"), dtype=float)
    use = np.asarray(pd.to_numeric(pd.Series(daily_use), errors="coerce"), dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(use > 0, stock / use, np.nan)


def supply_rows(supplies: pd.DataFrame, ref: datetime, warn_days: float, critical_days: float,
                stale_after_hours: float) -> pd.DataFrame:
    rows = supplies.copy()
    rows["days_on_hand"] = days_on_hand(rows["stock"], rows["daily_use"]) if len(rows) else []
    reported = pd.to_datetime(rows["reported_at"], utc=True)
    rows["report_age_h"] = ((pd.Timestamp(ref).tz_convert("UTC") - reported).dt.total_seconds() / 3600).astype(float)
    rows["stale"] = rows["report_age_h"] > stale_after_hours
    doh = rows["days_on_hand"].astype(float)
    rows["status"] = np.where(doh < critical_days, "bad", np.where(doh < warn_days, "warn",
                              np.where(doh.isna(), "neutral", "ok")))
    return rows.sort_values(["days_on_hand", "name", "item"], na_position="last").reset_index(drop=True)


# ---- demand and potential sites -------------------------------------------------------------------
def area_demand(growth: pd.DataFrame, rising_change: float) -> pd.DataFrame:
    """Adds ``change`` (week on week, NaN without a previous week) and ``rising``."""
    rows = growth.copy()
    recent = rows["cases_recent"].astype(float)
    before = rows["cases_before"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rows["change"] = np.where(before > 0, recent / before - 1.0, np.nan)
    rows["rising"] = (recent >= MIN_RISING_CASES) & (recent > before * (1.0 + rising_change))
    return rows


def haversine_km(lat1, lng1, lat2, lng2) -> np.ndarray:
    """Great-circle distance (km); arrays broadcast."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lng2) - np.asarray(lng1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def potential_site_rows(status: pd.DataFrame, demand: pd.DataFrame) -> pd.DataFrame:
    """Potential sites with their own area's trend and the nearest area with rising demand."""
    sites = status[status["kind"] == "potential_site"].copy().reset_index(drop=True)
    rising = demand[demand["rising"] & demand["centroid_lat"].notna()]
    by_area = demand.set_index("area_id") if len(demand) else None
    sites["area_change"] = [by_area["change"].get(a, np.nan) if by_area is not None else np.nan
                            for a in sites["area_id"]]
    sites["area_rising"] = [bool(by_area["rising"].get(a, False)) if by_area is not None else False
                            for a in sites["area_id"]]
    nearest_name, nearest_km = [], []
    for lat, lng in zip(sites["lat"], sites["lng"]):
        if rising.empty:
            nearest_name.append(None)
            nearest_km.append(np.nan)
            continue
        dist = haversine_km(lat, lng, rising["centroid_lat"].to_numpy(float), rising["centroid_lng"].to_numpy(float))
        i = int(np.argmin(dist))
        nearest_name.append(rising["name"].iloc[i])
        nearest_km.append(float(dist[i]))
    sites["nearest_rising_area"] = nearest_name
    sites["nearest_rising_km"] = nearest_km
    return sites.sort_values(["nearest_rising_km", "name"], na_position="last").reset_index(drop=True)


# ---- citywide series ------------------------------------------------------------------------------
def citywide_daily(daily: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Sum per day over hospital facilities; ``reporting`` = facilities with a usable report that day."""
    cols = [c for c in qc.CAPACITY_COLUMNS if c != "staff_on_duty"]
    if daily.empty:
        return pd.DataFrame(columns=["day", *cols, "reporting"])
    hosp = daily[daily["facility_id"].map(kinds).isin(HOSPITAL_KINDS)].copy()
    for c in cols:
        hosp[c] = pd.to_numeric(hosp[c], errors="coerce").astype(float)
    grouped = hosp.groupby("day", sort=True)
    out = grouped[cols].sum(min_count=1)
    out["reporting"] = grouped["beds_total"].count()
    return out.reset_index()


# ---- projection -----------------------------------------------------------------------------------
def serial_interval(settings: Settings) -> np.ndarray:
    ew = settings.early_warning
    return discretised_gamma_si(ew.serial_interval_mean, ew.serial_interval_std, SI_MAX_DAYS)


def unit_census(cases: np.ndarray, lag_days: int, los_mean: float, los_std: float) -> float:
    """The COVID-19 census today if every case were admitted (share 1): the calibration's denominator."""
    flows = delayed_share(np.asarray(cases, dtype=float), 1.0, lag_days)
    return float(occupancy_from_admissions(flows, los_survival(los_mean, los_std))[-1])


def project_beds(cases: pd.Series, *, occupied_now: float, capacity: float, covid_now: float | None,
                 settings: Settings, admissions: pd.Series | None = None) -> BedProjection:
    """Projected occupied beds and days until full; raises ProjectionUnavailable with the reason."""
    cfg = settings.capacity
    if not capacity or not math.isfinite(capacity) or capacity <= 0:
        raise ProjectionUnavailable("no bed totals reported")
    if occupied_now is None or not math.isfinite(occupied_now):
        raise ProjectionUnavailable("no occupied beds reported")
    history = pd.Series(cases, dtype=float)
    if history.tail(14).sum() < MIN_RECENT_CASES:
        raise ProjectionUnavailable(f"fewer than {MIN_RECENT_CASES} cases in the last 14 days: no basis for R(t)")
    unit_now = unit_census(history.to_numpy(), cfg.admission_lag_days, cfg.los_mean_days, cfg.los_std_days)
    if covid_now is not None and math.isfinite(covid_now) and unit_now > 0:
        share = min(max(covid_now / unit_now, 0.0), 1.0)
        calibration = "share of cases admitted fitted to the COVID-19 patients reported now"
        covid_model_now = covid_now
    elif admissions is not None and float(admissions.sum()) > 0:
        lagged = history.shift(cfg.admission_lag_days).fillna(0.0).tail(28).sum()
        share = min(float(admissions.tail(28).sum()) / lagged, 1.0) if lagged > 0 else 0.0
        calibration = "share of cases admitted from the last 28 days of admissions"
        covid_model_now = share * unit_now
    else:
        raise ProjectionUnavailable("no COVID-19 patient counts or admissions: cases cannot be tied to beds")
    hospital = HospitalParameters(
        admission_share=1.0, admission_lag_days=cfg.admission_lag_days, los_mean_days=cfg.los_mean_days,
        los_std_days=cfg.los_std_days, icu_share=0.0, icu_lag_days=cfg.admission_lag_days,
        icu_los_mean_days=cfg.los_mean_days, icu_los_std_days=cfg.los_std_days)
    try:
        result = forecast(history, serial_interval(settings), hospital, horizon_days=cfg.forecast_days,
                          n_samples=PROJECTION_SAMPLES, window=settings.early_warning.rt_window,
                          seed=PROJECTION_SEED, r_relax_days=settings.early_warning.forecast_r_relax_days)
    except ValueError as exc:
        raise ProjectionUnavailable(f"R(t) not estimable: {exc}") from None
    # The census is linear in the admission share, and quantiles commute with a positive scale.
    covid_band = result.beds * share
    band = covid_band + (occupied_now - covid_model_now)
    band = band.clip(lower=0.0)
    outlook = days_until_capacity(band, capacity, cfg.full_threshold, current_occupancy=occupied_now)
    return BedProjection(origin=pd.Timestamp(history.index[-1]).date(), band=band, covid_band=covid_band,
                         occupied_now=float(occupied_now), covid_now=float(covid_model_now), capacity=float(capacity),
                         outlook=outlook, admission_share=share, r_mean=result.r_mean, r_std=result.r_std,
                         calibration=calibration)


def facility_band(city: BedProjection, occupied_now: float, weight: float) -> pd.DataFrame:
    """A facility's projected occupied beds: its share of the citywide change in COVID-19 census."""
    return (occupied_now + weight * (city.covid_band - city.covid_now)).clip(lower=0.0)


def facility_weights(rows: pd.DataFrame) -> pd.Series:
    """Each hospital's share of today's COVID-19 patients (of occupied beds where none are reported)."""
    hosp = rows[rows["kind"].isin(HOSPITAL_KINDS)]
    covid = pd.to_numeric(hosp["covid_patients"], errors="coerce").astype(float)
    basis = covid if covid.notna().any() and covid.sum() > 0 else pd.to_numeric(
        hosp["beds_occupied"], errors="coerce").astype(float)
    total = basis.sum()
    weights = basis.fillna(0.0) / total if total > 0 else basis.fillna(0.0) * 0.0
    return pd.Series(weights.to_numpy(), index=hosp["facility_id"].to_numpy())


def outlook_text(outlook: CapacityOutlook | None, horizon: int) -> tuple[str, str, str]:
    """(display, detail, status) of "days until full"."""
    if outlook is None:
        return "–", "no projection", "neutral"
    pct = f"{outlook.threshold:.0%}"
    if outlook.days_median == 0:
        return "now", f"at or above {pct} of beds", "bad"
    if outlook.days_median is None:
        upper = f"; 1 in 20 chance within {outlook.days_upper} d" if outlook.days_upper is not None else ""
        return f"> {horizon} d", f"{pct} of beds not reached in {horizon} days{upper}", (
            "warn" if outlook.days_upper is not None else "ok")
    upper = f" (from {outlook.days_upper} d at the 95th percentile)" if outlook.days_upper is not None else ""
    status = "bad" if outlook.days_median <= NY_RED_ZONE_DAYS else "warn"
    return f"{outlook.days_median} d", f"until {pct} of beds{upper}", status


# ---- the page's read model ------------------------------------------------------------------------
_cache: dict[tuple, object] = {}
_cache_lock = threading.Lock()


def _data_version(store: Store) -> tuple:
    """Changes whenever something is committed: a new ingest batch or a replay load."""
    return (str(store.path), store.scalar("SELECT coalesce(max(batch_id), 0) FROM ingest_log"),
            store.scalar("SELECT count(*) FROM replay_sources"))


def _cached(key: tuple, compute):
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    value = compute()
    with _cache_lock:
        if len(_cache) > 64:  # a handful of facilities x data versions; keep memory bounded
            _cache.clear()
        _cache[key] = value
    return value


def case_history(store: Store, as_of: date) -> pd.Series:
    cases = q.daily_cases(store, as_of - timedelta(days=CASE_HISTORY_DAYS - 1), as_of)
    return pd.Series(cases["cases"].to_numpy(dtype=float), index=pd.DatetimeIndex(pd.to_datetime(cases["day"])))


def admission_history(store: Store, as_of: date) -> pd.Series:
    adm = q.daily_admissions(store, as_of - timedelta(days=CASE_HISTORY_DAYS - 1), as_of)
    return pd.Series(adm["admissions"].to_numpy(dtype=float), index=pd.DatetimeIndex(pd.to_datetime(adm["day"])))


def _as_of(store: Store, ref: datetime, tz: str) -> date:
    """The reporting day: the reference day, or the last day with cases if those stop earlier."""
    ref_day = pd.Timestamp(ref).tz_convert(ZoneInfo(tz)).date()
    last_case = q.latest_case_date(store)
    return min(ref_day, last_case) if last_case else ref_day


def _projection(store: Store, settings: Settings, as_of: date, facilities: pd.DataFrame
                ) -> tuple[BedProjection | None, str]:
    hosp = facilities[facilities["kind"].isin(HOSPITAL_KINDS) & ~facilities["stale"]]
    capacity = float(pd.to_numeric(hosp["beds_total"], errors="coerce").sum())
    occupied = float(pd.to_numeric(hosp["beds_occupied"], errors="coerce").sum())
    covid = pd.to_numeric(hosp["covid_patients"], errors="coerce")
    covid_now = float(covid.sum()) if covid.notna().any() else None
    try:
        proj = project_beds(case_history(store, as_of), occupied_now=occupied, capacity=capacity, covid_now=covid_now,
                            settings=settings, admissions=admission_history(store, as_of))
    except ProjectionUnavailable as exc:
        return None, str(exc)
    note = (f"R(t) {proj.r_mean:.2f} ± {proj.r_std:.2f}; {proj.calibration} "
            f"({proj.admission_share:.1%} of cases); facilities with a current report only")
    return proj, note


def capacity_view(store: Store, settings: Settings, now: datetime) -> CapacityView:
    """Everything /capacity shows, from the named queries in store/queries_capacity.py."""
    cfg = settings.capacity
    ref, replay = reference_time(store, now)
    tz = settings.city.timezone
    as_of = _as_of(store, ref, tz)
    status = qc.facility_status(store)
    facilities = facility_rows(status, ref, cfg.stale_after_hours)
    demand = area_demand(qc.area_case_growth(store, as_of), cfg.rising_demand_change)
    sites = potential_site_rows(status, demand)
    supplies = supply_rows(qc.latest_supplies(store), ref, cfg.supplies_warn_days, cfg.supplies_critical_days,
                           cfg.stale_after_hours)
    ref_day = pd.Timestamp(ref).tz_convert(ZoneInfo(tz)).date()
    daily = qc.daily_capacity(store, ref_day - timedelta(days=cfg.trend_days - 1), ref_day, tz,
                              cfg.stale_after_hours)
    kinds = dict(zip(status["facility_id"], status["kind"]))
    citywide = citywide_daily(daily, kinds)
    version = _data_version(store)
    key = ("city", version, as_of, cfg, tuple(facilities["stale"]))
    projection, note = _cached(key, lambda: _projection(store, settings, as_of, facilities))
    facilities = _with_facility_outlooks(facilities, projection, cfg.full_threshold)
    tiles = _tiles(facilities, supplies, sites, projection, cfg.forecast_days)
    return CapacityView(reference_time=ref, as_of=as_of, replay=replay, tiles=tiles, facilities=facilities,
                        sites=sites, demand=demand, supplies=supplies, citywide=citywide, projection=projection,
                        projection_note=note)


def _with_facility_outlooks(rows: pd.DataFrame, city: BedProjection | None, threshold: float) -> pd.DataFrame:
    rows = rows.copy()
    rows["days_until_full"] = np.nan
    rows["days_until_full_upper"] = np.nan
    if city is None or rows.empty:
        return rows
    current = rows[~rows["stale"]]
    weights = facility_weights(current)
    for i, r in rows.iterrows():
        total, occupied = r["beds_total"], r["beds_occupied"]
        if r["stale"] or r["facility_id"] not in weights.index or pd.isna(total) or pd.isna(occupied) or total <= 0:
            continue
        band = facility_band(city, float(occupied), float(weights[r["facility_id"]]))
        out = days_until_capacity(band, float(total), threshold, current_occupancy=float(occupied))
        # None = not within the horizon: shown as "> horizon", kept apart from NaN (= no projection).
        rows.at[i, "days_until_full"] = out.days_median if out.days_median is not None else math.inf
        rows.at[i, "days_until_full_upper"] = out.days_upper if out.days_upper is not None else math.inf
    return rows


def _tiles(facilities: pd.DataFrame, supplies: pd.DataFrame, sites: pd.DataFrame, projection: BedProjection | None,
           horizon: int) -> tuple[Tile, ...]:
    hosp = facilities[facilities["kind"].isin(HOSPITAL_KINDS)]
    current = hosp[~hosp["stale"]]

    def total(col: str, frame: pd.DataFrame = current) -> float:
        return float(pd.to_numeric(frame[col], errors="coerce").sum())

    beds, occ = total("beds_total"), total("beds_occupied")
    icu, icu_occ = total("icu_total"), total("icu_occupied")
    vent, vent_use = total("ventilators_total"), total("ventilators_in_use")
    share = occ / beds if beds else None
    icu_share = icu_occ / icu if icu else None
    stale = int(facilities["stale"].sum())
    low = supplies[supplies["status"].isin(("warn", "bad"))]
    days_display, days_detail, days_status = outlook_text(projection.outlook if projection else None, horizon)
    # The city can have room while one facility is about to fill: name the first one to fill.
    finite = facilities[np.isfinite(pd.to_numeric(facilities["days_until_full"], errors="coerce"))]
    if len(finite):
        first = finite.loc[finite["days_until_full"].astype(float).idxmin()]
        days = int(first["days_until_full"])
        days_detail += f"; {first['name']}: {'now' if days == 0 else f'{days} d'}"
        worst = "bad" if days <= NY_RED_ZONE_DAYS else "warn"
        days_status = worst if STATUS_ORDER.index(worst) > STATUS_ORDER.index(days_status) else days_status
    potential = float(pd.to_numeric(sites["beds"], errors="coerce").sum()) if len(sites) else 0.0
    return (
        Tile("bed_occupancy", "Hospital bed occupancy", "–" if share is None else f"{share:.0%}",
             f"{occ:,.0f} of {beds:,.0f} beds", occupancy_status(share), "facility_status"),
        Tile("free_beds", "Free hospital beds", f"{beds - occ:,.0f}", f"in {len(current)} reporting facilities",
             "neutral", "facility_status"),
        Tile("icu_occupancy", "ICU occupancy", "–" if icu_share is None else f"{icu_share:.0%}",
             f"{icu_occ:,.0f} of {icu:,.0f} ICU beds", occupancy_status(icu_share), "facility_status"),
        Tile("ventilators", "Ventilators in use", f"{vent_use:,.0f}" if vent else "–",
             f"of {vent:,.0f}" if vent else "none reported", "neutral", "facility_status"),
        Tile("days_until_full", "Days until full", days_display, days_detail, days_status,
             "daily_cases, facility_status (analytics.forecast)"),
        Tile("stale_reports", "Stale reports", f"{stale:,}", f"of {len(facilities)} facilities",
             "bad" if stale else "ok", "facility_status"),
        Tile("low_supplies", "Supplies running low", f"{len(low):,}",
             f"{int((low['status'] == 'bad').sum())} critical" if len(low) else "all above the warning level",
             "bad" if (low["status"] == "bad").any() else "warn" if len(low) else "ok", "latest_supplies"),
        Tile("potential_beds", "Potential extra beds", f"{potential:,.0f}", f"at {len(sites)} potential sites",
             "neutral", "facility_status"),
    )


def facility_trend(store: Store, settings: Settings, facility_id: str | None, now: datetime) -> FacilityTrend:
    """History and projection of one facility (``None``/CITYWIDE: the city's hospitals together)."""
    view = capacity_view(store, settings, now)
    cfg = settings.capacity
    if not facility_id or facility_id == CITYWIDE:
        band = view.projection.band if view.projection else None
        return FacilityTrend(CITYWIDE, "All hospitals", view.citywide, band,
                             view.projection.capacity if view.projection else None,
                             view.projection.outlook if view.projection else None, view.projection_note)
    match = view.facilities[view.facilities["facility_id"] == facility_id]
    if match.empty:
        return FacilityTrend(facility_id, facility_id, view.citywide.iloc[0:0], None, None, None,
                             "unknown facility")
    row = match.iloc[0]
    tz = settings.city.timezone
    ref_day = pd.Timestamp(view.reference_time).tz_convert(ZoneInfo(tz)).date()
    history = qc.daily_capacity(store, ref_day - timedelta(days=cfg.trend_days - 1), ref_day, tz,
                                cfg.stale_after_hours, facility_id=facility_id)
    band = capacity = outlook = None
    note = view.projection_note
    if view.projection is not None and row["kind"] in HOSPITAL_KINDS and not row["stale"] \
            and pd.notna(row["beds_total"]) and row["beds_total"] > 0 and pd.notna(row["beds_occupied"]):
        weights = facility_weights(view.facilities[~view.facilities["stale"]])
        band = facility_band(view.projection, float(row["beds_occupied"]), float(weights.get(facility_id, 0.0)))
        capacity = float(row["beds_total"])
        outlook = days_until_capacity(band, capacity, cfg.full_threshold, current_occupancy=float(row["beds_occupied"]))
        note = f"share {weights.get(facility_id, 0.0):.0%} of the citywide change in COVID-19 patients"
    elif row["stale"]:
        note = "no current report: no projection"
    elif row["kind"] not in HOSPITAL_KINDS:
        note = "not a hospital: no projection"
    return FacilityTrend(facility_id, str(row["name"]), history, band, capacity, outlook, note)


# Columns of facility_rows the page may sort by (anything else falls back to occupancy).
SORTABLE_COLUMNS = frozenset({"name", "occupancy", "free_beds", "icu_occupancy", "vent_free", "covid_patients",
                              "days_until_full", "report_age_h", "stale"})
DEFAULT_SORT = ("occupancy", True)


def sort_facilities(rows: pd.DataFrame, column: str, descending: bool) -> pd.DataFrame:
    """Rows sorted by one column, missing values last in either direction, ties by name."""
    if column not in SORTABLE_COLUMNS or column not in rows:
        column, descending = DEFAULT_SORT
    key = rows[column]
    if column == "name":
        key = key.astype(str).str.lower()
    elif column == "stale":
        key = key.astype(bool).astype(int)
    else:
        key = pd.to_numeric(key, errors="coerce").astype(float)
    missing = key.isna()
    order = rows.assign(__missing=missing.to_numpy(), __key=key.to_numpy(), __name=rows["name"].astype(str))
    order = order.sort_values(["__missing", "__key", "__name"], ascending=[True, not descending, True],
                              kind="stable")
    return order.drop(columns=["__missing", "__key", "__name"]).reset_index(drop=True)
