"""Capacity read model (/capacity): facility status, supplies on hand, spare capacity next to rising
demand, and the bed projection with "days until full" — all read from what the jobs stored.

* A facility's figures for the day are the report the indicators job counted for it (``facility_days``:
  its latest report, if no older than ``capacity.stale_after_hours`` at the end of the day, or now);
  a facility with none counted is stale. The citywide tiles are the same day's indicators
  (services.indicators), which sum exactly these rows, so the table adds up to the tiles.
* Report ages are measured against now, or, in a database holding a replay of historical data
  (``replay_sources``), against the newest report of the replay — otherwise every facility of a 2021
  replay would be years stale.
* Days until full (per facility, per area's hospitals, citywide) are the early-warning job's capacity
  outlook (analytics.capacity anchors the projected COVID-19 census on each hospital's occupancy).
* The Wuhan lesson (Chen et al. 2020, Lancet 395:1305, on Fangcang shelter hospitals): idle large
  venues are registered beforehand as ``potential_site`` facilities; the page lists them with the nearest
  community area whose cases are rising week on week (``week_over_week_growth`` of the indicators).
* Patients are people: occupied beds, ICU beds, ventilators in use and COVID-19 patients per facility
  are withheld when small (services.privacy), with complementary suppression across the hospitals,
  whose totals the tiles show.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from analytics import catalog as cat
from analytics import indicators as ind
from analytics.forecast import NY_RED_ZONE_DAYS
from auth.principal import Principal
from geo.distance import great_circle_distance_km
from services.indicators import Figure, IndicatorReport, NoIndicators, detail_of, disclosed_day_table, indicator_report
from services.privacy import SUPPRESSED_SUFFIX, Disclosure, disclose
from services.series import daily_view
from services.supplies import supply_rows
from settings import Settings
from store import Store
from store import queries_capacity as qc
from store import queries_indicators as qi
from store.definitions import CITYWIDE, HOSPITAL_KINDS

# A rise from 1 to 2 cases is noise, not demand: an area needs this many cases in 7 days to be "rising".
MIN_RISING_CASES = 5
PATIENT_COLUMNS = ("beds_occupied", "icu_occupied", "ventilators_in_use", "covid_patients")
FACILITIES = Disclosure("capacity.facilities", grain="area", counts=PATIENT_COLUMNS, complementary=PATIENT_COLUMNS,
                        derived=(("occupancy", "beds_occupied"), ("free_beds", "beds_occupied"),
                                 ("icu_occupancy", "icu_occupied"), ("vent_free", "ventilators_in_use")))
# The capacity tiles, in order.
TILE_KEYS = (ind.BED_OCCUPANCY, cat.BEDS_FREE, ind.ICU_OCCUPANCY, cat.VENTILATORS_IN_USE, cat.DAYS_TO_BED_THRESHOLD,
             cat.FACILITIES_STALE, cat.SUPPLIES_LOW, cat.POTENTIAL_BEDS)
STATUS_ORDER = ("neutral", "ok", "warn", "bad")  # least to most urgent
FACILITY_ROW_COLUMNS = ("facility_id", "name", "kind", "area_name", "lat", "lng", "status", "stale", "reported_at",
                        "last_report_at", "report_age_h", *qi.CAPACITY_COLUMNS, "occupancy", "free_beds",
                        "icu_occupancy", "icu_free", "vent_free", "days_until_full", "days_until_full_upper")


@dataclass(frozen=True)
class Tile:
    figure: Figure
    detail: str
    status: str


@dataclass(frozen=True)
class Outlook:
    days_median: int | None
    days_upper: int | None
    projected: bool
    capacity: float | None
    threshold: float
    horizon_days: int
    note: str


@dataclass(frozen=True)
class CapacityView:
    reference_time: datetime
    as_of: date | None
    replay: dict | None
    tiles: tuple[Tile, ...]
    facilities: pd.DataFrame  # bed-holding facilities (see facility_rows)
    sites: pd.DataFrame  # potential sites with the nearest rising area
    demand: pd.DataFrame  # community areas: area_id, name, cases_recent, cases_before, change, rising (+ flags)
    supplies: pd.DataFrame
    citywide: pd.DataFrame  # day, beds_total, beds_occupied, icu_*: the city's hospitals per day
    city_band: pd.DataFrame | None  # projected occupied beds, indexed by day
    city_outlook: Outlook | None


@dataclass(frozen=True)
class FacilityTrend:
    facility_id: str
    name: str
    history: pd.DataFrame  # day, beds_total, beds_occupied, icu_total, icu_occupied
    band: pd.DataFrame | None
    capacity: float | None
    outlook: Outlook | None
    note: str


def reference_time(store: Store, now: datetime) -> tuple[datetime, dict | None]:
    """(the time report ages are measured against, the replay source or None)."""
    replay = qc.replay_source(store)
    if replay is None:
        return now, None
    latest = qc.latest_report_time(store)
    return (pd.Timestamp(latest).to_pydatetime() if latest is not None else now), replay


def _ratio(part: pd.Series, whole: pd.Series) -> pd.Series:
    whole = pd.to_numeric(whole, errors="coerce").astype(float)
    part = pd.to_numeric(part, errors="coerce").astype(float)
    return (part / whole.where(whole > 0)).astype(float)


def occupancy_status(share) -> str:
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return "neutral"
    warn, bad = 0.75, 0.90  # as services.indicators.STATUS_BANDS for bed occupancy
    return "bad" if share >= bad else "warn" if share >= warn else "ok"


def _outlooks(store: Store, as_of: date, scope: str) -> pd.DataFrame:
    day = qi.latest_outlook_day(store, as_of)
    if day != as_of:
        return pd.DataFrame(columns=list(qi.OUTLOOK_COLUMNS))
    rows = qi.capacity_outlook(store, as_of, scope=scope)
    return rows[rows["resource"] == "beds"]


def facility_rows(store: Store, settings: Settings, principal: Principal, as_of: date, ref: datetime
                  ) -> pd.DataFrame:
    """Bed-holding facilities on ``as_of``: the counted report's figures (withheld when small), occupancy,
    free beds/ICU/ventilators, report age, stale flag and days until full."""
    rows = qi.stored_facility_days(store, as_of, as_of)
    registry = qc.facility_registry(store)[["facility_id", "owner", "lat", "lng", "area_name"]]
    rows = rows.merge(registry, on="facility_id", how="left")
    last = qi.latest_report_times(store)
    rows = rows.merge(last, on="facility_id", how="left")
    num = {c: pd.to_numeric(rows[c], errors="coerce").astype(float) for c in qi.CAPACITY_COLUMNS}
    rows["occupancy"] = _ratio(num["beds_occupied"], num["beds_total"])
    rows["free_beds"] = num["beds_total"] - num["beds_occupied"]
    rows["icu_occupancy"] = _ratio(num["icu_occupied"], num["icu_total"])
    rows["icu_free"] = num["icu_total"] - num["icu_occupied"]
    rows["vent_free"] = num["ventilators_total"] - num["ventilators_in_use"]
    reported = pd.to_datetime(rows["last_report_at"], utc=True)
    rows["report_age_h"] = ((pd.Timestamp(ref).tz_convert("UTC") - reported).dt.total_seconds() / 3600).astype(float)
    rows["stale"] = rows["reported_at"].isna()
    outlook = _outlooks(store, as_of, "facility").set_index("scope_id")
    horizon = settings.early_warning.forecast_days
    rows["days_until_full"] = [_days(outlook, f, "days_median", horizon) for f in rows["facility_id"]]
    rows["days_until_full_upper"] = [_days(outlook, f, "days_upper", horizon) for f in rows["facility_id"]]
    hospitals = rows[rows["kind"].isin(HOSPITAL_KINDS)]
    others = rows[~rows["kind"].isin(HOSPITAL_KINDS)]
    k = settings.privacy.min_count
    # Hospitals add up to the city's tiles; isolation beds stand alone (no total is shown for them).
    shown = pd.concat([disclose(principal, hospitals, FACILITIES, min_count=k),
                       disclose(principal, others, Disclosure("capacity.facilities", grain="area",
                                                               counts=PATIENT_COLUMNS, derived=FACILITIES.derived),
                                min_count=k)], ignore_index=True)
    shown["status"] = [occupancy_status(v) for v in shown["occupancy"]]
    return shown


def _days(outlook: pd.DataFrame, scope_id: str, column: str, horizon: int) -> float:
    """Days until full: a number, +inf when projected but not within the horizon, NaN without a projection."""
    if scope_id not in outlook.index:
        return math.nan
    row = outlook.loc[scope_id]
    if not bool(row["projected"]):
        return math.nan
    return float(row[column]) if pd.notna(row[column]) else math.inf


def area_demand(table: pd.DataFrame, names: dict[str, str], centroids: pd.DataFrame, rising_change: float
                ) -> pd.DataFrame:
    """Per community area (from the disclosed indicator table): cases this week and last, change, rising."""
    areas = table[table["area_id"] != CITYWIDE]
    out = pd.DataFrame({
        "area_id": areas["area_id"].to_numpy(),
        "name": [names.get(a, a) for a in areas["area_id"]],
        "cases_recent": areas[cat.NEW_CASES_7D].to_numpy(),
        "cases_recent__suppressed": areas[cat.NEW_CASES_7D + SUPPRESSED_SUFFIX].to_numpy(),
        "cases_before": areas[cat.NEW_CASES_PREVIOUS_7D].to_numpy(),
        "cases_before__suppressed": areas[cat.NEW_CASES_PREVIOUS_7D + SUPPRESSED_SUFFIX].to_numpy(),
        "growth": areas[ind.WEEK_OVER_WEEK_GROWTH].to_numpy(),
    })
    out["change"] = out["growth"] - 1.0
    recent = pd.to_numeric(out["cases_recent"], errors="coerce")
    # A withheld count is below privacy.min_count, and so below MIN_RISING_CASES too: not rising.
    out["rising"] = (recent >= MIN_RISING_CASES) & (out["growth"] > 1.0 + rising_change)
    return out.merge(centroids, on="area_id", how="left")


def potential_site_rows(store: Store, demand: pd.DataFrame) -> pd.DataFrame:
    """Potential sites with their own area's trend and the nearest area with rising demand."""
    registry = qc.facility_registry(store)
    sites = registry[registry["kind"] == "potential_site"].copy().reset_index(drop=True)
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
        dist = great_circle_distance_km(lat, lng, rising["centroid_lat"].to_numpy(float),
                                        rising["centroid_lng"].to_numpy(float))
        i = int(np.argmin(dist))
        nearest_name.append(rising["name"].iloc[i])
        nearest_km.append(float(dist[i]))
    sites["nearest_rising_area"] = nearest_name
    sites["nearest_rising_km"] = nearest_km
    return sites.sort_values(["nearest_rising_km", "name"], na_position="last").reset_index(drop=True)


def _tiles(report: IndicatorReport, facilities: pd.DataFrame, sites: pd.DataFrame) -> tuple[Tile, ...]:
    f = report.figures
    out = []
    for key in TILE_KEYS:
        figure = f[key]
        detail, status = detail_of(report, key), figure.status
        if key == cat.DAYS_TO_BED_THRESHOLD:
            detail, status = _days_detail(report, facilities)
        elif key == cat.FACILITIES_STALE:
            detail, status = f"of {len(facilities)} facilities", ("bad" if figure.value else "ok")
        elif key == cat.SUPPLIES_LOW:
            status = "bad" if f[cat.SUPPLIES_CRITICAL].value else "warn" if figure.value else "ok"
        elif key == cat.POTENTIAL_BEDS:
            detail = f"at {len(sites)} potential sites"
        out.append(Tile(figure, detail, "neutral" if figure.suppressed else status))
    return tuple(out)


def _days_detail(report: IndicatorReport, facilities: pd.DataFrame) -> tuple[str, str]:
    """The citywide outlook's words and status, and the first hospital to fill when that is sooner."""
    median, upper = report.figures[cat.DAYS_TO_BED_THRESHOLD], report.figures[cat.DAYS_TO_BED_THRESHOLD_UPPER]
    if median.value is not None:
        detail = f"median; 95th percentile {upper.display}"
        status = "bad" if median.value <= NY_RED_ZONE_DAYS else "warn"
    elif median.display.startswith(">"):
        detail = "not reached within the forecast" + (f"; 1 in 20 chance in {upper.display}" if upper.value else "")
        status = "warn" if upper.value is not None else "ok"
    else:
        detail, status = "no projection", "neutral"
    # The city can have room while one hospital is about to fill: name the first one to fill.
    finite = facilities[np.isfinite(pd.to_numeric(facilities["days_until_full"], errors="coerce"))]
    if len(finite):
        first = finite.loc[finite["days_until_full"].astype(float).idxmin()]
        days = int(first["days_until_full"])
        detail += f"; {first['name']}: {'now' if days == 0 else f'{days} d'}"
        worst = "bad" if days <= NY_RED_ZONE_DAYS else "warn"
        status = worst if STATUS_ORDER.index(worst) > STATUS_ORDER.index(status) else status
    return detail, status


def _city_outlook(store: Store, settings: Settings, as_of: date) -> tuple[Outlook | None, pd.DataFrame | None]:
    rows = _outlooks(store, as_of, "city")
    if rows.empty:
        return None, None
    r = rows.iloc[0]
    outlook = Outlook(_int(r["days_median"]), _int(r["days_upper"]), bool(r["projected"]), _float(r["capacity"]),
                      float(r["threshold"]), int(r["horizon_days"]), str(r["note"] or ""))
    band = qi.capacity_bands(store, as_of, "city", CITYWIDE, "beds").set_index("day")
    return outlook, (band if len(band) else None)


def _float(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _int(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def capacity_view(store: Store, settings: Settings, principal: Principal, now: datetime) -> CapacityView:
    """Everything /capacity shows, for this principal."""
    cfg = settings.capacity
    ref, replay = reference_time(store, now)
    supplies = supply_rows(store, settings, now)
    empty = pd.DataFrame()
    try:
        report = indicator_report(store, settings, principal, now=now)
    except NoIndicators:
        return CapacityView(ref, None, replay, (), pd.DataFrame(columns=list(FACILITY_ROW_COLUMNS)),
                            pd.DataFrame(columns=["facility_id", "name", "beds", "lat", "lng", "area_name"]),
                            pd.DataFrame(columns=["area_id", "name", "rising"]), supplies, empty, None, None)
    as_of = report.day
    facilities = facility_rows(store, settings, principal, as_of, ref)
    table = disclosed_day_table(store, settings, principal, as_of, now)
    areas = qc.populated_area_centroids(store)
    demand = area_demand(table, dict(zip(areas["area_id"], areas["name"])),
                         areas[["area_id", "centroid_lat", "centroid_lng"]], cfg.rising_demand_change)
    sites = potential_site_rows(store, demand)
    start = as_of - timedelta(days=cfg.trend_days - 1)
    citywide = daily_view(store, settings, principal, CITYWIDE, start, as_of)
    outlook, band = _city_outlook(store, settings, as_of)
    return CapacityView(ref, as_of, replay, _tiles(report, facilities, sites), facilities, sites, demand, supplies,
                        citywide, band, outlook)


def facility_trend(store: Store, settings: Settings, principal: Principal, facility_id: str | None, now: datetime
                   ) -> FacilityTrend:
    """History and projection of one facility (``None``/citywide: the city's hospitals together)."""
    cfg = settings.capacity
    try:
        as_of = indicator_report(store, settings, principal, now=now).day
    except NoIndicators:
        return FacilityTrend(facility_id or CITYWIDE, "All hospitals", pd.DataFrame(), None, None, None, "no data yet")
    start = as_of - timedelta(days=cfg.trend_days - 1)
    if not facility_id or facility_id == CITYWIDE:
        outlook, band = _city_outlook(store, settings, as_of)
        history = daily_view(store, settings, principal, CITYWIDE, start, as_of)
        return FacilityTrend(CITYWIDE, "All hospitals", history, band, outlook.capacity if outlook else None, outlook,
                             outlook.note if outlook else "no projection")
    history = qi.stored_facility_days(store, start, as_of, facility_id)
    if history.empty:
        return FacilityTrend(facility_id, facility_id, history, None, None, None, "unknown facility")
    name = str(history["name"].iloc[0])
    history = disclose(principal, history, Disclosure("capacity.facility_trend", grain="area",
                                                      counts=PATIENT_COLUMNS), min_count=settings.privacy.min_count)
    rows = qi.capacity_outlook(store, as_of, scope="facility", scope_id=facility_id)
    rows = rows[rows["resource"] == "beds"]
    if rows.empty or not bool(rows.iloc[0]["projected"]):
        note = "no current report: no projection" if history["reported_at"].iloc[-1:].isna().all() else (
            "not a hospital: no projection" if history["kind"].iloc[0] not in HOSPITAL_KINDS else "no projection")
        return FacilityTrend(facility_id, name, history, None, None, None, note)
    r = rows.iloc[0]
    outlook = Outlook(_int(r["days_median"]), _int(r["days_upper"]), True, _float(r["capacity"]), float(r["threshold"]),
                      int(r["horizon_days"]), str(r["note"] or ""))
    band = qi.capacity_bands(store, as_of, "facility", facility_id, "beds").set_index("day")
    if history["beds_occupied__suppressed"].any():
        band = None  # a projection anchored on a withheld count would give the count away
    return FacilityTrend(facility_id, name, history, band, outlook.capacity, outlook, outlook.note)


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


def capacity_outlooks(store: Store, as_of: date) -> pd.DataFrame:
    """Every stored outlook of ``as_of`` (city, each hospital, each area's hospitals; beds and ICU), without
    the occupied counts (the facility rows carry those, withheld where small)."""
    rows = qi.capacity_outlook(store, as_of)
    return rows.drop(columns=["occupied", "at_threshold"], errors="ignore")
