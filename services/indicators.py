"""The indicator read model: one area's (or the city's) figures on one day, cut to the caller.

Pages (KPI tiles, gauges), the JSON API (/api/v1/indicators) and the briefing all call
``indicator_report``, so one request gives one set of numbers everywhere. Values come from what
the jobs stored: ``indicator_values`` (indicators job), ``capacity_outlook`` (early-warning job)
and, for open alerts, the alerts table at the end of the day (now, for the latest day).

Small counts are withheld on the whole table of the day (every populated area and the city) before
one row is returned, so that no area's withheld count can be recovered by asking for the city and
all the other areas (complementary suppression: services.privacy).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd

from analytics import catalog as cat
from analytics import indicators as ind
from auth.principal import Principal
from services.formatting import display_value
from services.privacy import SUPPRESSED_SUFFIX, Disclosure, disclose
from services.supplies import supply_counts, supply_rows
from settings import Settings
from store import Store
from store import queries as q
from store import queries_indicators as qi
from store.definitions import CITYWIDE

CITYWIDE_NAME = "Citywide"
BEYOND_SUFFIX = "__beyond_horizon"
# Counts that add up over the populated areas to the city's: withholding one area's leaves the next
# smallest withheld too. (Hospital counts are the city's, repeated for every area: not parts.)
AREA_PARTS = (cat.NEW_CASES_24H, cat.NEW_CASES_7D, cat.NEW_CASES_PREVIOUS_7D, cat.TESTS_7D, cat.POSITIVE_TESTS_7D,
              cat.ADMISSIONS_7D)
COUNT_KEYS = tuple(k for k, s in cat.CATALOG.items() if s.kind == cat.COUNT)
DERIVED = tuple((k, s.basis) for k, s in cat.CATALOG.items() if s.basis)
# Where a figure turns amber and red on screen: NYS used 90 % of hospital capacity as a red trigger
# (amber from 75 %); Harvard GHI's and WHO's 5 % / 10 % test positivity; CDC's 50 / 100 new cases per
# 100k in 7 days (substantial / high transmission, 2021).
STATUS_BANDS: dict[str, tuple[float, float]] = {
    ind.BED_OCCUPANCY: (0.75, 0.90), ind.ICU_OCCUPANCY: (0.75, 0.90), ind.TEST_POSITIVITY_7D: (0.05, 0.10),
    cat.INCIDENCE_7D_PER_100K: (50.0, 100.0),
}


class UnknownArea(ValueError):
    """No populated area with this id (and it is not 'citywide')."""


class NoIndicators(LookupError):
    """Nothing is stored for this day (before the history, or the jobs have not run yet)."""


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    kind: str
    definition: str
    value: float | None  # None: unknown or withheld (see ``suppressed``); never a stand-in 0
    suppressed: bool
    display: str  # the text exactly as printed on screen
    status: str  # neutral | ok | warn | bad


@dataclass(frozen=True)
class IndicatorReport:
    day: date
    latest_day: date
    area_id: str
    area_name: str
    figures: dict[str, Figure]

    def value(self, key: str) -> float | None:
        return self.figures[key].value


def area_names(store: Store) -> dict[str, str]:
    """citywide and every populated area: id -> name."""
    areas = q.populated_area_list(store)
    return {CITYWIDE: CITYWIDE_NAME, **dict(zip(areas["area_id"], areas["name"]))}


def latest_day(store: Store) -> date | None:
    """The as-of day of the latest stored indicators."""
    return qi.latest_indicator_day(store)


def _status(key: str, value: float | None) -> str:
    if value is None or key not in STATUS_BANDS:
        return "neutral"
    warn, bad = STATUS_BANDS[key]
    return "bad" if value >= bad else "warn" if value >= warn else "ok"


def _moment(day: date, latest: date, settings: Settings, now: datetime) -> datetime:
    """When 'open alerts' is counted: now for the latest day, else the end of that local day."""
    if day >= latest:
        return now
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZoneInfo(settings.city.timezone))
    return min(end, now)


def day_table(store: Store, settings: Settings, day: date, now: datetime | None = None,
              area_ids: list[str] | None = None) -> pd.DataFrame:
    """Every figure of every area (or of ``area_ids``) and the city on ``day`` as stored (one row per area),
    before disclosure."""
    now = now or datetime.now(timezone.utc)
    latest = latest_day(store)
    long = qi.indicator_values(store, day, area_ids)
    if long.empty or latest is None:
        raise NoIndicators(f"no indicators stored for {day.isoformat()}")
    wide = long.pivot(index="area_id", columns="indicator", values="value")
    outlook_day = qi.latest_outlook_day(store, day)
    outlook = qi.capacity_outlook(store, outlook_day, scope="city") if outlook_day == day else pd.DataFrame()
    for key, resource, column in ((cat.DAYS_TO_BED_THRESHOLD, "beds", "days_median"),
                                  (cat.DAYS_TO_BED_THRESHOLD_UPPER, "beds", "days_upper"),
                                  (cat.DAYS_TO_ICU_THRESHOLD, "icu", "days_median")):
        rows = outlook[outlook["resource"] == resource] if len(outlook) else outlook
        # Hospitals serve the whole city: every area is assessed against the city's outlook.
        found = len(rows) and pd.notna(rows.iloc[0][column])
        wide[key] = float(rows.iloc[0][column]) if found else math.nan
        # Projected, but the threshold is not reached within the horizon: "> horizon", not "unknown".
        wide[key + BEYOND_SUFFIX] = bool(len(rows) and not found and bool(rows.iloc[0]["projected"]))
    at = _moment(day, latest, settings, now)
    open_alerts = qi.open_alert_counts(store, at)
    wide[cat.ACTIVE_ALERTS] = [float(open_alerts.get(area, 0)) for area in wide.index]
    # Supplies are the city's hospitals', like beds: the same figure for every area.
    low, critical = supply_counts(supply_rows(store, settings, at))
    wide[cat.SUPPLIES_LOW], wide[cat.SUPPLIES_CRITICAL] = float(low), float(critical)
    for key in cat.CATALOG:
        if key not in wide:
            wide[key] = math.nan
    beyond = [k + BEYOND_SUFFIX for k in cat.OUTLOOK_KEYS]
    return wide[[*cat.CATALOG, *beyond]].rename_axis("area_id").reset_index()


AREAS = Disclosure("indicators", grain="area", counts=COUNT_KEYS, derived=DERIVED, complementary=AREA_PARTS)
CITY = Disclosure("indicators", grain="city", counts=COUNT_KEYS, derived=DERIVED)


def disclosed_day_table(store: Store, settings: Settings, principal: Principal, day: date,
                        now: datetime | None = None, city_only: bool = False) -> pd.DataFrame:
    """day_table cut to the principal: small counts (and what derives from them) withheld, areas together.

    ``city_only``: just the city's row (withheld by its own counts alone; the areas' complementary
    suppression does not touch the city's total).
    """
    table = day_table(store, settings, day, now, [CITYWIDE] if city_only else None)
    k = settings.privacy.min_count
    city = disclose(principal, table[table["area_id"] == CITYWIDE], CITY, min_count=k)
    if city_only:
        return city
    areas = disclose(principal, table[table["area_id"] != CITYWIDE], AREAS, min_count=k)
    return pd.concat([city, areas], ignore_index=True)


def report_from_row(row: pd.Series, day: date, latest: date, area_name: str, settings: Settings) -> IndicatorReport:
    figures = {}
    min_count = settings.privacy.min_count
    for key, spec in cat.CATALOG.items():
        raw = row.get(key)
        value = None if raw is None or (isinstance(raw, float) and not math.isfinite(raw)) or pd.isna(raw) \
            else float(raw)
        suppressed = bool(row.get(key + SUPPRESSED_SUFFIX, False))
        display = display_value(spec.kind, value, suppressed=suppressed, min_count=min_count)
        if bool(row.get(key + BEYOND_SUFFIX, False)):
            display = f"> {settings.early_warning.forecast_days} d"
        figures[key] = Figure(key, spec.label, spec.unit, spec.kind, spec.definition, None if suppressed else value,
                              suppressed, display, "neutral" if suppressed else _status(key, value))
    return IndicatorReport(day, latest, str(row["area_id"]), area_name, figures)


def indicator_report(store: Store, settings: Settings, principal: Principal, area_id: str = CITYWIDE,
                     day: date | None = None, now: datetime | None = None) -> IndicatorReport:
    """The figures of one area (or ``citywide``) on ``day`` (default: the latest stored day)."""
    names = area_names(store)
    if area_id not in names:
        raise UnknownArea(f"no area {area_id!r}")
    latest = latest_day(store)
    if latest is None:
        raise NoIndicators("no indicators stored yet (the indicators job has not run)")
    day = day or latest
    table = disclosed_day_table(store, settings, principal, day, now, city_only=area_id == CITYWIDE)
    match = table[table["area_id"] == area_id]
    if match.empty:
        raise NoIndicators(f"no indicators stored for {area_id} on {day.isoformat()}")
    return report_from_row(match.iloc[0], day, latest, names[area_id], settings)


def detail_of(report: IndicatorReport, key: str) -> str:
    """The line under a figure's tile that says what it is made of, the same on every page."""
    f = report.figures
    details = {
        cat.INCIDENCE_7D_PER_100K: lambda: f"{f[cat.NEW_CASES_7D].display} cases in 7 days",
        ind.TEST_POSITIVITY_7D: lambda: f"{f[cat.POSITIVE_TESTS_7D].display} of {f[cat.TESTS_7D].display} tests",
        ind.BED_OCCUPANCY: lambda: f"{f[cat.BEDS_OCCUPIED].display} of {f[cat.BEDS_TOTAL].display} beds",
        ind.ICU_OCCUPANCY: lambda: f"{f[cat.ICU_OCCUPIED].display} of {f[cat.ICU_TOTAL].display} ICU beds",
        cat.BEDS_FREE: lambda: f"in {f[cat.HOSPITALS_REPORTING].display} reporting hospitals",
        cat.VENTILATORS_IN_USE: lambda: f"of {f[cat.VENTILATORS_TOTAL].display}",
        ind.RT: lambda: "7-day window, Cori et al." if f[ind.RT].value is not None else "too few cases to estimate",
        cat.ACTIVE_ALERTS: lambda: "raised and not resolved",
        cat.SUPPLIES_LOW: lambda: (f"{f[cat.SUPPLIES_CRITICAL].display} critical" if f[key].value
                                   else "all above the warning level"),
    }
    detail = details[key]() if key in details else ""
    return detail or ("small count withheld" if f[key].suppressed else "")


def previous_report(store: Store, settings: Settings, principal: Principal, report: IndicatorReport,
                    days_back: int) -> IndicatorReport | None:
    """The same area ``days_back`` days earlier, or None when nothing is stored for that day."""
    try:
        return indicator_report(store, settings, principal, report.area_id, report.day - timedelta(days=days_back))
    except NoIndicators:
        return None
