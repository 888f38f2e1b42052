"""The daily briefing's read model: one day of the city for the mayor, cut to the caller.

The page (/briefing), GET /api/v1/briefing, the PDF (reports/), the CLI and the outbox all call
``daily_briefing`` and print what it holds, so they cannot disagree. Nothing here computes a figure:

* the headline figures are ``services.indicators.indicator_report`` of the city for the day (the same
  call as GET /api/v1/indicators?date=D), with the day before and the week before for the changes;
* the level is the stored level of the indicators job when the day is its as-of day, else the active
  rulebook's ``level_for`` on the day's stored indicators (the function the job levels with);
* days until the bed / ICU threshold are the early-warning job's capacity outlook for the day;
* hot spots are the day's stored area indicators (disclosed together, as the API gives them);
* clusters and zones are the cluster job's scan of the day (or the latest before it) and the zone
  decisions taken up to the day; alerts are those the jobs raised in the 24 hours to the day's end.

**The latest complete day** (the briefing's default date) is defined once, in ``latest_complete_day``:
the latest day with stored indicators that has ended in the city's time zone. Today is never complete
(its cases are still arriving); in a replay of past data the last stored day is complete.

Every table goes through services.privacy.disclose for the principal; sections the principal may not
see are left out and named in ``withheld``, never shown empty as if nothing happened.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd

from analytics import catalog as cat
from analytics import indicators as ind
from analytics.rulebooks import level_for
from auth.principal import Principal
from geo.areas import AreaShape, geometry_from_geojson
from geo.containment import areas_of_cells
from rulebooks import load_rulebooks, load_zone_rulebook
from services.capacity import capacity_outlooks
from services.clusters import CLUSTERS, ZONES
from services.early_warning import level_change_rows
from services.formatting import NO_VALUE, change_text, display_value, json_number
from services.indicators import (
    CITYWIDE_NAME,
    Figure,
    IndicatorReport,
    NoIndicators,
    area_names,
    disclosed_day_table,
    indicator_report,
    report_from_row,
)
from services.overview import MapLayer, map_layer
from services.privacy import disclose, jurisdiction
from services.rulebooks import current_rulebook
from services.series import daily_view
from settings import Settings
from store import Store
from store import queries as q
from store import queries_briefing as qb
from store import queries_capacity as qc
from store import queries_clusters as qcl
from store import queries_indicators as qi
from store import queries_warning as qw
from store.definitions import CITYWIDE

# The headline, in the order it is printed: the list (deaths are not a pheoc figure yet).
HEADLINE_KEYS = (cat.NEW_CASES_24H, cat.NEW_CASES_7D, cat.INCIDENCE_7D_PER_100K, ind.TEST_POSITIVITY_7D, ind.RT,
                 cat.ADMISSIONS_7D, ind.BED_OCCUPANCY, ind.ICU_OCCUPANCY)
TREND_DAYS = 60  # two months of history: the rise or fall of a wave and the weeks before it
HOT_SPOTS = 5  # areas listed by incidence: a briefing names a few places, the map shows the rest
ALERT_WINDOW = timedelta(hours=24)
# A change of a share by less than 2 points, or of R(t) by less than 0.1, is within a day's noise.
SHARE_STEP, RT_STEP = 0.02, 0.10


class NoBriefing(LookupError):
    """Nothing is stored for the day asked for (or nothing at all yet)."""


def latest_complete_day(store: Store, settings: Settings, now: datetime | None = None) -> date | None:
    """The latest day with stored indicators that has ended in the city's time zone (see the module doc)."""
    latest = qi.latest_indicator_day(store)
    if latest is None:
        return None
    today = (now or datetime.now(timezone.utc)).astimezone(ZoneInfo(settings.city.timezone)).date()
    if latest < today:
        return latest
    first, _ = qi.indicator_days(store)
    yesterday = today - timedelta(days=1)
    return yesterday if first is not None and first <= yesterday else None


def briefing_days(store: Store) -> tuple[date | None, date | None]:
    """The first and last day a briefing can be made for (the days with stored indicators)."""
    return qi.indicator_days(store)


def day_end(day: date, settings: Settings) -> datetime:
    """The end of ``day`` in the city's time zone (midnight that starts the next day)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZoneInfo(settings.city.timezone))


# ---- records -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """A figure against an earlier day's: the earlier value as printed, and the change in words."""
    previous: float | None
    previous_display: str
    delta: float | None  # relative change for counts and rates; difference for shares, ratios and R(t)
    text: str  # "" when either value is unknown or withheld
    status: str


@dataclass(frozen=True)
class Headline:
    figure: Figure
    change_day: Change
    change_week: Change


@dataclass(frozen=True)
class LevelStatus:
    rulebook_id: str
    rulebook_name: str
    rulebook_version: str
    level: str | None
    label: str | None
    colour: str | None
    basis: str
    stored: bool  # the indicators job's stored level (else assessed on the day's stored indicators)
    changes: tuple[dict, ...]  # areas whose level changed on the day: area, from_label, to_label, direction


@dataclass(frozen=True)
class CapacityStatus:
    bed_occupancy: Figure
    icu_occupancy: Figure
    days_to_beds: Figure
    days_to_beds_upper: Figure
    days_to_icu: Figure
    hospitals_reporting: Figure
    stale_reports: Figure
    threshold: float
    horizon_days: int
    outlook_stored: bool  # the early-warning job stored an outlook for the day
    projected: bool  # ... and it could project
    note: str
    first_to_fill: tuple[str, int] | None  # (hospital, days) of the first hospital to reach the threshold


@dataclass(frozen=True)
class HotSpot:
    area_id: str
    name: str
    incidence: Figure
    cases_7d: Figure
    growth: Figure


@dataclass(frozen=True)
class ClusterStatus:
    scan_day: date | None
    clusters: pd.DataFrame  # significant clusters of the scan (disclosed), with area_name and is_new
    zones: pd.DataFrame  # zones in force at the day's end (disclosed)
    tiers: tuple[str, ...]
    resolution: int


@dataclass(frozen=True)
class PrecinctChange:
    precinct_id: str
    name: str
    tier_before: str | None
    tier: str | None


@dataclass(frozen=True)
class PrecinctStatus:
    source: str  # where the tiers come from
    changes: tuple[PrecinctChange, ...]


@dataclass(frozen=True)
class Briefing:
    day: date
    complete: bool
    latest_complete_day: date | None
    latest_day: date
    generated_at: datetime
    city: str
    role: str
    min_count: int
    report: IndicatorReport
    headline: tuple[Headline, ...]
    level: LevelStatus | None
    capacity: CapacityStatus
    hot_spots: tuple[HotSpot, ...]
    map: MapLayer
    clusters: ClusterStatus | None
    precincts: PrecinctStatus | None
    alerts: pd.DataFrame | None  # raised_at, severity, kind, area_name, title (None: not for this principal)
    last_case_day: date | None
    sources: tuple[dict, ...]  # per ingest channel and kind: last record time
    trend: pd.DataFrame  # services.series.daily_view of the city, TREND_DAYS to the day
    rt: pd.DataFrame  # the city's stored R(t) over the same days (date, mean, q025, q975, ...)
    beds_band: pd.DataFrame | None  # the day's projected occupied beds (indexed by day), view_capacity only
    beds_capacity: float | None  # the beds the projection was made against
    forecast_caveats: tuple[str, ...]
    withheld: tuple[str, ...]
    narrative: tuple[str, ...] = field(default=())

    def figure(self, key: str) -> Figure:
        return self.report.figures[key]


# ---- changes -------------------------------------------------------------------------------------------
def change_of(figure: Figure, before: Figure | None, what: str) -> Change:
    """``figure`` against the same figure on an earlier day (``what`` names that day in the text)."""
    if before is None:
        return Change(None, NO_VALUE, None, "", "neutral")
    now, then = figure.value, before.value
    if now is None or then is None:
        return Change(then, before.display, None, "", "neutral")
    if figure.kind in (cat.COUNT, cat.TALLY, cat.RATE):
        text, status = change_text(now, then, what=what)
        return Change(then, before.display, (now - then) / then if then else None, text, status)
    difference = now - then
    if figure.kind == cat.FRACTION:
        text = f"{difference * 100:+.1f} pts vs {what}"
        step = SHARE_STEP
    else:
        text = f"{difference:+.2f} vs {what}"
        step = RT_STEP if figure.kind == cat.REPRODUCTION else SHARE_STEP
    status = "bad" if difference >= step else "ok" if difference <= -step else "neutral"
    return Change(then, before.display, difference, text, status)


def _report_on(store: Store, settings: Settings, principal: Principal, day: date,
               now: datetime | None) -> IndicatorReport | None:
    try:
        return indicator_report(store, settings, principal, CITYWIDE, day, now)
    except NoIndicators:
        return None


# ---- sections ------------------------------------------------------------------------------------------
def _level(store: Store, settings: Settings, day: date, names: dict[str, str]) -> LevelStatus | None:
    rulebook = current_rulebook(store, settings)
    stored = qw.area_levels(store)
    city = stored[(stored["area_id"] == CITYWIDE) & (pd.to_datetime(stored["as_of"]).dt.date == day)
                  & (stored["rulebook_id"] == rulebook.id)]
    if len(city):
        row = city.iloc[0]
        level_id = row["level"] if isinstance(row["level"], str) else None
        basis, from_store = str(row["basis"] or ""), True
    else:
        values = qi.indicator_table(store, day).get(CITYWIDE)
        if values is None:
            return None
        assessed = level_for(rulebook, values)
        level_id, basis, from_store = assessed.level, assessed.basis, False
    level = rulebook.level(level_id) if level_id else None
    changes = level_change_rows(store, names, load_rulebooks(settings), limit=500)
    today = changes[(pd.to_datetime(changes["as_of"]).dt.date == day) & changes["direction"].isin(("up", "down"))] \
        if len(changes) else changes
    listed = tuple({"area_id": r["area_id"], "area": r["area"], "from_label": r["from_label"],
                    "to_label": r["to_label"], "direction": r["direction"]} for r in today.to_dict("records"))
    return LevelStatus(rulebook.id, rulebook.name, rulebook.version, level_id, level.label if level else None,
                       level.colour if level else None, basis, from_store, listed)


def _capacity(store: Store, settings: Settings, principal: Principal, report: IndicatorReport,
              day: date) -> CapacityStatus:
    f = report.figures
    outlook = qi.capacity_outlook(store, day, scope="city") if qi.latest_outlook_day(store, day) == day \
        else pd.DataFrame()
    beds = outlook[outlook["resource"] == "beds"] if len(outlook) else outlook
    projected = bool(len(beds) and bool(beds.iloc[0]["projected"]))
    note = str(beds.iloc[0]["note"] or "") if len(beds) else ""
    first = None
    if principal.can("view_capacity") and len(beds):
        facilities = capacity_outlooks(store, day)
        facilities = facilities[(facilities["scope"] == "facility") & (facilities["resource"] == "beds")
                                & facilities["projected"].astype(bool) & facilities["days_median"].notna()]
        if len(facilities):
            soonest = facilities.loc[facilities["days_median"].astype(float).idxmin()]
            names = dict(zip(qc.facility_registry(store)["facility_id"], qc.facility_registry(store)["name"]))
            first = (names.get(soonest["scope_id"], str(soonest["scope_id"])), int(soonest["days_median"]))
    return CapacityStatus(f[ind.BED_OCCUPANCY], f[ind.ICU_OCCUPANCY], f[cat.DAYS_TO_BED_THRESHOLD],
                          f[cat.DAYS_TO_BED_THRESHOLD_UPPER], f[cat.DAYS_TO_ICU_THRESHOLD], f[cat.HOSPITALS_REPORTING],
                          f[cat.FACILITIES_STALE], settings.early_warning.capacity_threshold,
                          settings.early_warning.forecast_days, bool(len(beds)), projected, note, first)


def _hot_spots(store: Store, settings: Settings, principal: Principal, day: date, now: datetime | None,
               names: dict[str, str], latest: date) -> tuple[HotSpot, ...]:
    table = disclosed_day_table(store, settings, principal, day, now)
    areas = table[table["area_id"] != CITYWIDE].copy()
    areas["__rank"] = pd.to_numeric(areas[cat.INCIDENCE_7D_PER_100K], errors="coerce")
    areas = areas[areas["__rank"] > 0].sort_values(["__rank", "area_id"], ascending=[False, True]).head(HOT_SPOTS)
    out = []
    for _, row in areas.iterrows():
        r = report_from_row(row, day, latest, names.get(row["area_id"], row["area_id"]), settings)
        out.append(HotSpot(r.area_id, r.area_name, r.figures[cat.INCIDENCE_7D_PER_100K], r.figures[cat.NEW_CASES_7D],
                           r.figures[ind.WEEK_OVER_WEEK_GROWTH]))
    return tuple(out)


_community_cache: dict[str, list[AreaShape]] = {}
_community_lock = threading.Lock()


def _communities(store: Store) -> list[AreaShape]:
    key = f"{store.path}:{q.areas_version(store)}"
    with _community_lock:
        if key in _community_cache:
            return _community_cache[key]
    shapes = []
    for r in q.areas(store, ("community",)).itertuples(index=False):
        try:
            shapes.append(AreaShape(r.area_id, r.name, r.kind, r.population, geometry_from_geojson(r.geometry)))
        except ValueError:
            continue
    with _community_lock:
        _community_cache.clear()
        _community_cache[key] = shapes
    return shapes


def zones_on(store: Store, day: date) -> pd.DataFrame:
    """Zones in force at the end of ``day``: each zone's latest decision up to the day, unless it lifted it."""
    events = qb.zone_events_through(store, day)
    columns = ["zone_id", "cluster_id", "role", "tier", "cells", "reason", "rule_id", "rule_version", "since"]
    if events.empty:
        return pd.DataFrame(columns=columns)
    last = events.groupby("zone_id", sort=False).tail(1)
    entered = events[events["kind"] == "entered"].groupby("zone_id")["as_of"].min()
    zones = last[last["kind"] != "lifted"].copy()
    zones["since"] = [entered.get(z, a) for z, a in zip(zones["zone_id"], zones["as_of"])]
    return zones[columns].reset_index(drop=True)


def _clusters(store: Store, settings: Settings, principal: Principal, day: date) -> ClusterStatus:
    k = settings.privacy.min_count
    area = jurisdiction(store)
    runs = qb.cluster_run_through(store, day)
    scan_day = pd.Timestamp(runs.iloc[0]["as_of"]).date() if len(runs) else None
    clusters = pd.DataFrame()
    if len(runs):
        found = qcl.detected_clusters(store, runs.iloc[0]["run_id"], significant_only=True)
        if len(found):
            # New: no cell in common with the significant clusters of the scan before.
            before = qcl.significant_clusters_before(store, scan_day)
            seen = {c for cells in before["cells"] for c in cells} if len(before) else set()
            found = found.copy()
            found["is_new"] = [not (set(cells) & seen) for cells in found["cells"]]
            where = areas_of_cells(found["centre_cell"], _communities(store))
            names = area_names(store)
            found["area_name"] = [names.get(where.get(c) or "", None) for c in found["centre_cell"]]
            clusters = disclose(principal, found, CLUSTERS, min_count=k, jurisdiction=area)
    zones = disclose(principal, zones_on(store, day), ZONES, min_count=k, jurisdiction=area)
    return ClusterStatus(scan_day, clusters, zones, load_zone_rulebook(settings).zone_tiers,
                         settings.clusters.resolution)


def _precinct_tiers(store: Store, settings: Settings, principal: Principal, day: date,
                    tiers: tuple[str, ...]) -> PrecinctStatus:
    """Precincts whose tier (services.precincts' definition: the most restrictive tier of the zones in force
    that cover part of it) differs at the end of ``day`` from the end of the day before."""
    from services.precincts import precinct_index, zone_shares
    area = jurisdiction(store)
    rank = {t: i for i, t in enumerate(tiers)}

    def tier_by_precinct(on: date) -> dict[str, str]:
        zones = disclose(principal, zones_on(store, on), ZONES, min_count=settings.privacy.min_count,
                         jurisdiction=area)
        tier_of = dict(zip(zones["zone_id"], zones["tier"]))
        out: dict[str, str] = {}
        for r in zone_shares(store, zones).itertuples(index=False):
            tier = tier_of[r.zone_id]
            if r.precinct_id not in out or rank.get(tier, -1) > rank.get(out[r.precinct_id], -1):
                out[r.precinct_id] = tier
        return out
    before, after = tier_by_precinct(day - timedelta(days=1)), tier_by_precinct(day)
    index = precinct_index(store)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    return PrecinctStatus("services.precincts: the strictest tier of the zones in force covering part of the precinct",
                          tuple(PrecinctChange(p, index.name(p) or p, before.get(p), after.get(p)) for p in changed))


def _alerts(store: Store, settings: Settings, day: date, now: datetime) -> pd.DataFrame:
    end = min(day_end(day, settings), now)
    rows = qb.alerts_raised_between(store, end - ALERT_WINDOW, end)
    names = area_names(store)
    rows["area_name"] = [names.get(a) if isinstance(a, str) else None for a in rows["area_id"]]
    # Read in the city's time, as the mayor's day is.
    rows["raised_at"] = pd.to_datetime(rows["raised_at"], utc=True).dt.tz_convert(settings.city.timezone)
    # Alert texts are written by the jobs with small counts withheld; they are area-level rows.
    return rows[["alert_id", "raised_at", "severity", "kind", "area_id", "area_name", "title", "status"]]


def forecast_caveats(settings: Settings) -> tuple[str, ...]:
    """What the projections behind "days until the threshold" cannot know (stated wherever they are used)."""
    ew = settings.early_warning
    relax = (f"R(t) is assumed to drift back towards 1 over about {ew.forecast_r_relax_days:g} days"
             if ew.forecast_r_relax_days else "R(t) is assumed to stay at today's estimate")
    return (
        f"The projection starts from today's R(t); {relax}, and hospital shares, delays and lengths of stay "
        "are those measured over recent linked admissions (fixed defaults where there are too few).",
        "The projection cannot know about new measures, changes in testing or reporting delays, and its band "
        f"widens quickly beyond two weeks; it looks at most {ew.forecast_days} days ahead.",
    )


# ---- the briefing --------------------------------------------------------------------------------------
def daily_briefing(store: Store, settings: Settings, principal: Principal, day: date | None = None,
                   now: datetime | None = None) -> Briefing:
    """The briefing of ``day`` (default: the latest complete day) for ``principal``."""
    principal.require("view_briefing")
    now = now or datetime.now(timezone.utc)
    latest = qi.latest_indicator_day(store)
    complete_day = latest_complete_day(store, settings, now)
    day = day or complete_day or latest
    if day is None or latest is None:
        raise NoBriefing("no indicators are stored yet (the indicators job has not run)")
    report = _report_on(store, settings, principal, day, now)
    if report is None:
        raise NoBriefing(f"no indicators are stored for {day.isoformat()}")
    day_before = _report_on(store, settings, principal, day - timedelta(days=1), now)
    week_before = _report_on(store, settings, principal, day - timedelta(days=7), now)
    headline = tuple(Headline(report.figures[k],
                              change_of(report.figures[k], day_before.figures[k] if day_before else None, "day before"),
                              change_of(report.figures[k], week_before.figures[k] if week_before else None,
                                        "week before"))
                     for k in HEADLINE_KEYS)
    names = area_names(store)
    withheld = []
    sees_places = principal.can("view_clusters") and principal.sees_at_least("cells")
    clusters = _clusters(store, settings, principal, day) if sees_places else None
    precincts = _precinct_tiers(store, settings, principal, day, clusters.tiers) if clusters else None
    if clusters is None:
        withheld += ["clusters and zones (need view_clusters at cell level)", "precinct tiers (need view_clusters)"]
    alerts = _alerts(store, settings, day, now) if principal.can("view_alerts") else None
    if alerts is None:
        withheld.append("alerts of the last 24 h (need view_alerts)")
    if not principal.can("view_capacity"):
        withheld.append("the first hospital to fill (needs view_capacity)")
    start = max(day - timedelta(days=TREND_DAYS - 1), q.first_counted_case_day(store) or day)
    outlook = qi.capacity_outlook(store, day, scope="city") if qi.latest_outlook_day(store, day) == day \
        else pd.DataFrame()
    beds = outlook[outlook["resource"] == "beds"] if len(outlook) else outlook
    band, beds_capacity = None, None
    if principal.can("view_capacity") and len(beds) and bool(beds.iloc[0]["projected"]):
        band = qi.capacity_bands(store, day, "city", CITYWIDE, "beds").set_index("day")
        beds_capacity = float(beds.iloc[0]["capacity"]) if pd.notna(beds.iloc[0]["capacity"]) else None
    sources = tuple({"channel": r.channel, "kind": r.kind,
                     "last_record_at": None if pd.isna(r.last_record_at) else pd.Timestamp(r.last_record_at)}
                    for r in q.ingest_freshness(store).itertuples(index=False))
    briefing = Briefing(
        day=day, complete=complete_day is not None and day <= complete_day, latest_complete_day=complete_day,
        latest_day=latest, generated_at=now, city=settings.city.name, role=principal.role,
        min_count=settings.privacy.min_count, report=report, headline=headline,
        level=_level(store, settings, day, names), capacity=_capacity(store, settings, principal, report, day),
        hot_spots=_hot_spots(store, settings, principal, day, now, names, latest),
        map=map_layer(store, settings, principal, day), clusters=clusters, precincts=precincts, alerts=alerts,
        last_case_day=qb.last_case_report_day(store, day), sources=sources,
        trend=daily_view(store, settings, principal, CITYWIDE, start, day),
        rt=qi.rt_estimates(store, CITYWIDE, start, day).rename(columns={"day": "date"}), beds_band=band,
        beds_capacity=beds_capacity,
        forecast_caveats=forecast_caveats(settings), withheld=tuple(withheld))
    from services.narrative import sentences  # the narrative reads the finished briefing
    return _with_narrative(briefing, sentences(briefing))


def _with_narrative(briefing: Briefing, narrative: tuple[str, ...]) -> Briefing:
    from dataclasses import replace
    return replace(briefing, narrative=narrative)


# ---- JSON ----------------------------------------------------------------------------------------------
def _figure_json(f: Figure) -> dict:
    return {"key": f.key, "label": f.label, "unit": f.unit, "value": json_number(f.value), "display": f.display,
            "suppressed": f.suppressed}


def _change_json(c: Change) -> dict:
    return {"previous": json_number(c.previous), "previous_display": c.previous_display, "change": json_number(c.delta),
            "text": c.text}


def _when(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return pd.Timestamp(value).isoformat()
    return value.isoformat() if isinstance(value, date) else str(value)


def briefing_json(b: Briefing) -> dict:
    """The briefing as GET /api/v1/briefing and the outbox's JSON give it."""
    k = b.min_count
    sections: dict = {
        "level": None if b.level is None else {
            "rulebook": {"id": b.level.rulebook_id, "name": b.level.rulebook_name, "version": b.level.rulebook_version},
            "level": b.level.level, "label": b.level.label, "colour": b.level.colour, "basis": b.level.basis,
            "stored": b.level.stored, "changes": list(b.level.changes)},
        "capacity": {
            "bed_occupancy": _figure_json(b.capacity.bed_occupancy), "icu_occupancy": _figure_json(b.capacity.icu_occupancy),
            "days_to_bed_threshold": _figure_json(b.capacity.days_to_beds),
            "days_to_bed_threshold_upper": _figure_json(b.capacity.days_to_beds_upper),
            "days_to_icu_threshold": _figure_json(b.capacity.days_to_icu),
            "hospitals_reporting": _figure_json(b.capacity.hospitals_reporting),
            "stale_reports": _figure_json(b.capacity.stale_reports), "threshold": b.capacity.threshold,
            "horizon_days": b.capacity.horizon_days, "outlook_stored": b.capacity.outlook_stored,
            "projected": b.capacity.projected, "note": b.capacity.note,
            "first_to_fill": None if b.capacity.first_to_fill is None else {
                "facility": b.capacity.first_to_fill[0], "days": b.capacity.first_to_fill[1]}},
        "hot_spots": [{"area": {"id": h.area_id, "name": h.name}, "incidence_7d_per_100k": _figure_json(h.incidence),
                       "new_cases_7d": _figure_json(h.cases_7d), "week_over_week_growth": _figure_json(h.growth)}
                      for h in b.hot_spots],
        "forecast_caveats": list(b.forecast_caveats),
        "data": {"last_case_report_day": _when(b.last_case_day),
                 "sources": [{**s, "last_record_at": _when(s["last_record_at"])} for s in b.sources]},
    }
    if b.clusters is not None:
        sections["clusters"] = {"scan_day": _when(b.clusters.scan_day), "clusters": [
            {"id": r["cluster_id"], "rank": int(r["rank"]), "new": bool(r["is_new"]), "area": r.get("area_name"),
             "centre_cell": r["centre_cell"], "radius_m": json_number(r["radius_m"]), "cells": list(r["cells"]),
             "start_date": _when(pd.Timestamp(r["start_date"]).date()), "observed": json_number(r["observed"]),
             "observed_display": display_value(cat.COUNT, r["observed"], suppressed=bool(r.get("observed__suppressed")),
                                               min_count=k),
             "relative_risk": json_number(r["relative_risk"]), "p_value": json_number(r["p_value"])}
            for r in (b.clusters.clusters.to_dict("records") if len(b.clusters.clusters) else [])]}
        sections["zones"] = [{"id": r["zone_id"], "tier": r["tier"], "role": r["role"], "cells": list(r["cells"]),
                              "since": _when(pd.Timestamp(r["since"]).date()), "reason": r["reason"]}
                             for r in b.clusters.zones.to_dict("records")]
    if b.precincts is not None:
        sections["precinct_tiers"] = {"source": b.precincts.source, "changes": [
            {"precinct": {"id": c.precinct_id, "name": c.name}, "from": c.tier_before, "to": c.tier}
            for c in b.precincts.changes]}
    if b.alerts is not None:
        sections["alerts_24h"] = [{"id": int(r["alert_id"]), "raised_at": _when(r["raised_at"]),
                                   "severity": r["severity"], "kind": r["kind"], "area": r["area_name"],
                                   "title": r["title"], "status": r["status"]} for r in b.alerts.to_dict("records")]
    return {
        "date": b.day.isoformat(), "complete": b.complete,
        "latest_complete_day": _when(b.latest_complete_day), "latest_day": b.latest_day.isoformat(),
        "generated_at": b.generated_at.isoformat(), "city": b.city, "area": {"id": CITYWIDE, "name": CITYWIDE_NAME},
        "headline": [{**_figure_json(h.figure), "change_day": _change_json(h.change_day),
                      "change_week": _change_json(h.change_week)} for h in b.headline],
        "narrative": list(b.narrative), "sections": sections, "withheld": list(b.withheld),
    }
