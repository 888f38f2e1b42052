"""The overview (wall screen) read model: KPI tiles, recent cases per H3 cell, trends, data freshness."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from store import Store
from store import queries as q

TREND_DAYS = 90
# Occupancy above these shares is shown amber/red: NYS used 90% of hospital capacity as a red trigger.
OCCUPANCY_WARN, OCCUPANCY_BAD = 0.75, 0.90


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    value: float | None
    display: str
    detail: str = ""
    status: str = "neutral"  # neutral | ok | warn | bad
    query: str = ""  # the named query behind the number, shown in the tile's tooltip


@dataclass(frozen=True)
class OverviewData:
    as_of: date | None
    kpis: tuple[Kpi, ...]
    case_cells: pd.DataFrame  # h3_cell, cases
    trend: pd.DataFrame  # day, cases, cases_7d_avg, admissions, icu_admissions, bed_occupancy, icu_occupancy
    freshness: pd.DataFrame
    rejected_total: int
    rejected_by_reason: pd.DataFrame


def _change(now: int, before: int) -> tuple[str, str]:
    """Text for a change against the week before, and a status (more cases is worse)."""
    if before == 0:
        return ("new" if now else "no change", "warn" if now else "neutral")
    pct = (now - before) / before * 100
    status = "bad" if pct >= 10 else "ok" if pct <= -10 else "neutral"
    return f"{pct:+.0f}% vs week before", status


def _share(part, whole) -> float | None:
    return None if not whole or pd.isna(whole) or pd.isna(part) else float(part) / float(whole)


def _occupancy_status(share: float | None) -> str:
    if share is None:
        return "neutral"
    return "bad" if share >= OCCUPANCY_BAD else "warn" if share >= OCCUPANCY_WARN else "ok"


def as_of_date(store: Store, today: date) -> date:
    """The day the overview reports on: today, or the last day with cases if the data stops earlier (replays)."""
    last = q.latest_case_date(store)
    return min(today, last) if last else today


def compute_kpis(store: Store, as_of: date) -> tuple[Kpi, ...]:
    population = q.city_population(store)
    day_now = q.case_count(store, as_of, as_of)
    day_before = q.case_count(store, as_of - timedelta(days=7), as_of - timedelta(days=7))
    week_now = q.case_count(store, *q.window(as_of, 7))
    week_before = q.case_count(store, *q.window(as_of - timedelta(days=7), 7))
    tested, positive = q.test_totals(store, *q.window(as_of, 7))
    capacity = q.latest_capacity(store)
    hospitals = capacity[capacity["kind"].isin(q.HOSPITAL_KINDS)]
    beds = _share(hospitals["beds_occupied"].sum(), hospitals["beds_total"].sum())
    icu = _share(hospitals["icu_occupied"].sum(), hospitals["icu_total"].sum())
    alerts = q.active_alert_count(store)
    incidence = week_now / population * 100_000 if population else None
    positivity = positive / tested if tested else None

    day_text, day_status = _change(day_now, day_before)
    week_text, week_status = _change(week_now, week_before)
    return (
        Kpi("cases_24h", "New cases (24 h)", day_now, f"{day_now:,}", f"{day_text} (same day)", day_status,
            "case_count"),
        Kpi("cases_7d", "New cases (7 d)", week_now, f"{week_now:,}", week_text, week_status, "case_count"),
        Kpi("incidence_7d", "7-day incidence /100k", incidence,
            "–" if incidence is None else f"{incidence:,.1f}", f"population {population:,}",
            "neutral" if incidence is None else "bad" if incidence >= 100 else "warn" if incidence >= 50 else "ok",
            "case_count, city_population"),
        Kpi("positivity_7d", "Test positivity (7 d)", positivity,
            "–" if positivity is None else f"{positivity:.1%}", f"{positive:,} of {tested:,} tests",
            "neutral" if positivity is None else "bad" if positivity >= 0.10 else "warn" if positivity >= 0.05
            else "ok", "test_totals"),
        Kpi("bed_occupancy", "Hospital bed occupancy", beds, "–" if beds is None else f"{beds:.0%}",
            f"{int(hospitals['beds_occupied'].sum()):,} of {int(hospitals['beds_total'].sum()):,} beds",
            _occupancy_status(beds), "latest_capacity"),
        Kpi("icu_occupancy", "ICU occupancy", icu, "–" if icu is None else f"{icu:.0%}",
            f"{int(hospitals['icu_occupied'].sum()):,} of {int(hospitals['icu_total'].sum()):,} ICU beds",
            _occupancy_status(icu), "latest_capacity"),
        Kpi("active_alerts", "Active alerts", alerts, f"{alerts:,}", "open, not acknowledged",
            "bad" if alerts else "ok", "active_alert_count"),
    )


def compute_trend(store: Store, as_of: date, tz: str, days: int = TREND_DAYS) -> pd.DataFrame:
    """Daily series for the last ``days`` days (or since the first case, if later)."""
    first = q.first_case_date(store)
    start = max(as_of - timedelta(days=days - 1), first) if first else as_of - timedelta(days=days - 1)
    cases = q.daily_cases(store, start, as_of)
    adm = q.daily_admissions(store, start, as_of)
    occ = q.daily_hospital_census(store, start, as_of, tz)
    trend = cases.merge(adm, on="day", how="left").merge(occ, on="day", how="left")
    trend["cases_7d_avg"] = trend["cases"].rolling(7, min_periods=1).mean()
    trend["bed_occupancy"] = trend["beds_occupied"] / trend["beds_total"]
    trend["icu_occupancy"] = trend["icu_occupied"] / trend["icu_total"]
    return trend


def overview(store: Store, today: date, tz: str, recent_days: int) -> OverviewData:
    """Everything the overview page shows, computed from named queries."""
    as_of = as_of_date(store, today)
    return OverviewData(
        as_of=as_of,
        kpis=compute_kpis(store, as_of),
        case_cells=q.case_counts_by_cell(store, *q.window(as_of, recent_days)),
        trend=compute_trend(store, as_of, tz),
        freshness=q.ingest_freshness(store),
        rejected_total=q.quarantine_count(store),
        rejected_by_reason=q.quarantine_by_reason(store),
    )
