"""Read model of /clusters and of GET /api/v1/clusters and /zones: cells of recent cases, the latest
scan's clusters, the zones in force and the history of one place, cut to the caller.

The scan, the zones and their decisions are the cluster job's (stored); the cells' window counts
and a place's daily cases are the same counted cases on the same grid as the job's inputs
(geo.grid). Everything here is cell-level: cells, cluster circles and zone outlines reach only
roles that may see cells, police only inside their precincts, and counts of 1..k-1 cases read
"<k" (services.privacy), with the rates and relative risks derived from them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from analytics.cells import MIN_RATE_POPULATION, rates_per_100k
from analytics.scan import METHOD_LABELS, METHODS, PERMUTATION
from auth.principal import Principal
from geo.cells import is_valid_cell
from geo.grid import PopulationGrid, cases_on_grid, population_grid, spread_tests_to_grid
from rulebooks import load_zone_rulebook
from services.privacy import Disclosure, disclose, jurisdiction, may_see_cell
from settings import Settings
from store import Store
from store import queries as q
from store import queries_clusters as qc
from store.definitions import as_of_day

# Map windows offered on the page: one week up to the scan's longest window and a bit beyond.
WINDOW_CHOICES = (7, 14, 21, 28)
# The history panel spans eight weeks: a cluster emerging over three weeks plus a 14-day review
# and the weeks before it for comparison.
HISTORY_DAYS = 56
CELLS = Disclosure("clusters.cells", grain="cell", counts=("cases",), complementary=("cases",),
                   derived=(("rate_per_100k", "cases"),))
CLUSTERS = Disclosure("clusters.clusters", grain="cell", cell_column="centre_cell", cell_list_columns=("cells",),
                      counts=("observed",), derived=(("relative_risk", "observed"),))
ZONES = Disclosure("clusters.zones", grain="cell", cell_column=None, cell_list_columns=("cells",))
# Gi* classes are a statement about a cell's neighbourhood; the cell's own count and rate are counts of
# people like any other on the map (withheld below k).
HOTSPOTS = Disclosure("clusters.hotspots", grain="cell", counts=("cases",), derived=(("rate_per_100k", "cases"),))
HISTORY = Disclosure("clusters.place_history", grain="cell", counts=("cases", "tested", "positive"))


def scan_day(store: Store) -> date | None:
    """The analysis day of the most recent stored scan."""
    day = qc.latest_run_day(store)
    return day.date() if isinstance(day, pd.Timestamp) else day


def view_day(store: Store, today: date, tz: str) -> date | None:
    """The day the page reports on: the latest scan's, else the latest data's."""
    return scan_day(store) or as_of_day(store, today, tz)


def grid_of(store: Store, resolution: int) -> PopulationGrid:
    """The cluster job's grid: its kept shares where it has run on these areas (jobs.clusters)."""
    version = q.areas_version(store)
    return population_grid(lambda: qc.population_areas(store), resolution, q.city_population(store),
                           f"{store.path}:{version}",
                           stored_shares=lambda: qc.stored_area_cell_shares(store, version, resolution))


def cases_by_cell_day(store: Store, start: date, end: date, resolution: int) -> tuple[pd.DataFrame, int]:
    return cases_on_grid(qc.case_counts_by_cell_day(store, start, end),
                         lambda: qc.case_points_by_day(store, start, end), resolution)


# ---- the page's read model ---------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterView:
    as_of: date | None  # the day of the latest scan (or of the latest data if no scan ran yet)
    run: dict | None  # the latest cluster_runs row
    window: tuple[date, date] | None
    cells: pd.DataFrame  # h3_cell, cases, population, rate_per_100k (window totals; disclosed)
    clusters: pd.DataFrame  # significant clusters of the latest run, with zone_id / zone_tier / zone_since
    candidates: int  # clusters the scan reported that did not reach significance
    zones: pd.DataFrame  # zones in force
    resolution: int
    min_count: int
    method: str = PERMUTATION  # the scan whose clusters ``clusters`` holds
    methods: tuple["ScanChoice", ...] = ()  # both scans, whether the run has each, which drives the zones
    hotspots: pd.DataFrame = field(default_factory=pd.DataFrame)  # the stored Gi* layer (disclosed)


@dataclass(frozen=True)
class ScanChoice:
    """One scan method as the page offers it."""
    method: str
    label: str
    available: bool  # the latest run computed it
    drives_zones: bool
    note: str  # why it is not available, or why the fallback drives the zones


def scan_choices(run: dict | None) -> tuple[ScanChoice, ...]:
    """Both methods, labelled; runs stored before the tests-adjusted scan were permutation scans only."""
    if not run:
        return tuple(ScanChoice(m, METHOD_LABELS[m], False, False, "the scan has not run yet") for m in METHODS)
    ran = str(run.get("methods_run") or PERMUTATION).split(",")
    driving = run.get("method") or PERMUTATION
    note = run.get("method_note") or ""
    return tuple(ScanChoice(m, METHOD_LABELS[m], m in ran, m == driving,
                            note if (m not in ran or m == driving) else "") for m in METHODS)


def _empty_cells() -> pd.DataFrame:
    return pd.DataFrame({"h3_cell": pd.Series(dtype=object), "cases": pd.Series(dtype=np.int64),
                         "population": pd.Series(dtype=np.float64), "rate_per_100k": pd.Series(dtype=np.float64)})


def _clusters_with_zones(found: pd.DataFrame, zones: pd.DataFrame) -> pd.DataFrame:
    clusters = found[found["significant"]].copy() if not found.empty else found
    if clusters.empty:
        return clusters
    cores = {z.cluster_id: z for z in zones.itertuples(index=False) if z.role == "core"}
    matched = [cores.get(c) for c in clusters["cluster_id"]]
    clusters["zone_id"] = [z.zone_id if z else None for z in matched]
    clusters["zone_tier"] = [z.tier if z else None for z in matched]
    clusters["zone_since"] = [z.since if z else None for z in matched]
    return clusters


def cluster_view(store: Store, settings: Settings, principal: Principal, today: date, window_days: int,
                 method: str | None = None) -> ClusterView:
    """What /clusters shows: cells in the window, the latest scan's clusters by ``method`` (default: the
    one that drives the zones; a method the run did not compute falls back to it), the stored Gi* layer
    of that scan's day and the zones in force."""
    resolution, k = settings.clusters.resolution, settings.privacy.min_count
    area = jurisdiction(store)
    run_frame = qc.latest_cluster_run(store)
    # Runs stored before a column existed hold NULL there: None, not NaN, so "or <default>" reads them.
    run = None if run_frame.empty else {k: (None if isinstance(v, float) and np.isnan(v) else v)
                                        for k, v in run_frame.iloc[0].to_dict().items()}
    as_of = scan_day(store) or as_of_day(store, today, settings.city.timezone)
    zones = disclose(principal, qc.zones_in_force(store), ZONES, min_count=k, jurisdiction=area)
    choices = scan_choices(run)
    chosen = next((c.method for c in choices if c.method == method and c.available),
                  next((c.method for c in choices if c.drives_zones), PERMUTATION))
    if as_of is None:
        return ClusterView(None, run, None, _empty_cells(), pd.DataFrame(), 0, zones, resolution, k, chosen,
                           choices)
    start, end = q.window(as_of, window_days)
    daily, _ = cases_by_cell_day(store, start, end, resolution)
    cells = daily.groupby("h3_cell", as_index=False)["cases"].sum()
    if cells.empty:
        cells = _empty_cells()
    else:
        grid = grid_of(store, resolution)
        counts = cells.set_index("h3_cell")["cases"]
        cells["population"] = grid.population.reindex(counts.index).to_numpy()
        cells["rate_per_100k"] = rates_per_100k(counts, grid.population, MIN_RATE_POPULATION).to_numpy()
    cells = disclose(principal, cells, CELLS, min_count=k, jurisdiction=area)
    clusters, candidates, hotspots = pd.DataFrame(), 0, pd.DataFrame()
    if run:
        found = qc.detected_clusters(store, run["run_id"], method=chosen)
        candidates = int((~found["significant"]).sum()) if not found.empty else 0
        clusters = _clusters_with_zones(found, qc.zones_in_force(store))
        if not clusters.empty:
            clusters = disclose(principal, clusters, CLUSTERS, min_count=k, jurisdiction=area)
        hotspots = disclose(principal, qc.hotspots_on(store, _as_date(run["as_of"])), HOTSPOTS, min_count=k,
                            jurisdiction=area)
    return ClusterView(as_of, run, (start, end), cells, clusters, candidates, zones, resolution, k, chosen,
                       choices, hotspots)


@dataclass(frozen=True)
class PlaceHistory:
    """Daily cases and tests in a cell or zone, and the zone decisions that concerned it."""
    kind: str  # "cell" or "zone"
    key: str
    title: str
    cells: tuple[str, ...]
    daily: pd.DataFrame  # day, cases, tested, positive (disclosed)
    tests_estimated: bool
    events: pd.DataFrame  # as_of, kind, zone_id, tier, previous_tier, reason, rule_id, rule_version
    zones: pd.DataFrame  # zones in force that hold the cell / the zone itself
    totals: dict = field(default_factory=dict)  # cases, tested, positive over the last window_days (disclosed)
    found: bool = True


def _not_found(kind: str, key: str) -> PlaceHistory:
    return PlaceHistory(kind, key, f"{kind.title()} {key}", (), pd.DataFrame(), False, pd.DataFrame(),
                        pd.DataFrame(), {}, False)


def place_history(store: Store, settings: Settings, principal: Principal, kind: str, key: str, as_of: date,
                  window_days: int, days: int = HISTORY_DAYS) -> PlaceHistory:
    """History of one cell (``kind='cell'``) or one zone (``kind='zone'``) over ``days`` days to ``as_of``.

    A place outside what the principal may see is "not found", exactly as a place that does not exist.
    """
    resolution, k = settings.clusters.resolution, settings.privacy.min_count
    area = jurisdiction(store)
    if kind == "zone":
        zone = disclose(principal, qc.zone(store, key), ZONES, min_count=k, jurisdiction=area)
        if zone.empty:
            return _not_found(kind, key)
        row = zone.iloc[0]
        cells = tuple(row["cells"])
        events = qc.zone_events_of(store, key)
        status = (f"lifted {_as_date(row['lifted_on'])}" if pd.notna(row["lifted_on"])
                  else f"{row['tier']} since {_as_date(row['since'])}")
        title = f"Zone {key} · {status} · {len(cells)} cells"
    elif kind == "cell":
        if not is_valid_cell(key):
            return _not_found(kind, key)
        if not may_see_cell(principal, key, area):
            return _not_found(kind, key)
        cells = (key,)
        zone = disclose(principal, qc.zones_holding_cell(store, key), ZONES, min_count=k, jurisdiction=area)
        events = qc.zone_events_touching_cell(store, key)
        where = ", ".join(f"{z.tier} zone {z.zone_id}" for z in zone.itertuples()) or "in no zone"
        title = f"Cell {key} · {where}"
    else:
        raise ValueError(f"kind must be 'cell' or 'zone', got {kind!r}")
    start, end = q.window(as_of, days)
    cases, _ = cases_by_cell_day(store, start, end, resolution)
    tests, estimated = spread_tests_to_grid(qc.test_counts_by_unit_day(store, start, end), grid_of(store, resolution))
    wanted = set(cells)
    day_index = pd.Index(pd.date_range(start, end, freq="D").date, name="day")
    case_days = cases[cases["h3_cell"].isin(wanted)].groupby("day")["cases"].sum().reindex(day_index, fill_value=0)
    test_days = (tests[tests["h3_cell"].isin(wanted)].groupby("day")[["tested", "positive"]].sum()
                 .reindex(day_index, fill_value=0.0))
    daily = pd.DataFrame({"day": day_index, "h3_cell": cells[0] if len(cells) == 1 else None,
                          "cases": case_days.to_numpy().astype(np.int64),
                          "tested": test_days["tested"].to_numpy(), "positive": test_days["positive"].to_numpy()})
    recent = daily[pd.to_datetime(daily["day"]) > pd.Timestamp(as_of) - pd.Timedelta(days=window_days)]
    totals = pd.DataFrame([{"cases": float(recent["cases"].sum()), "tested": float(recent["tested"].sum()),
                            "positive": float(recent["positive"].sum())}])
    # The place is already known to be in scope: its rows are its figures, cut by count only.
    by_count = Disclosure(HISTORY.resource, grain="cell", cell_column=None, counts=HISTORY.counts)
    daily = disclose(principal, daily, by_count, min_count=k)
    totals = disclose(principal, totals, by_count, min_count=k).iloc[0].to_dict()
    totals = {c: (None if isinstance(v, float) and np.isnan(v) else v) for c, v in totals.items()}
    return PlaceHistory(kind, key, title, cells, daily.drop(columns=["h3_cell"]), estimated, events, zone, totals)


def _as_date(value) -> date:
    return pd.Timestamp(value).date()


# ---- the API's lists ---------------------------------------------------------------------------
def _json_number(value):
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or pd.isna(value):
        return None
    v = float(value)
    return int(v) if v.is_integer() else v


def cluster_list(store: Store, settings: Settings, principal: Principal, today: date) -> dict:
    """The latest scan's significant clusters, JSON-ready, cut to the principal."""
    principal.require("view_clusters")
    view = cluster_view(store, settings, principal, today, WINDOW_CHOICES[1])
    run = view.run or {}
    out = []
    for r in (view.clusters.to_dict("records") if len(view.clusters) else []):
        out.append({
            "id": r["cluster_id"], "rank": int(r["rank"]), "centre_cell": r["centre_cell"],
            "centre": {"lat": _json_number(r["centre_lat"]), "lng": _json_number(r["centre_lng"])},
            "radius_m": _json_number(r["radius_m"]), "cells": list(r["cells"]),
            "start_date": _as_date(r["start_date"]).isoformat(), "end_date": _as_date(r["end_date"]).isoformat(),
            "observed": _json_number(r["observed"]), "expected": _json_number(r["expected"]),
            "relative_risk": _json_number(r["relative_risk"]),
            "suppressed": sorted(c for c in ("observed", "relative_risk") if r.get(c + "__suppressed")),
            "p_value": _json_number(r["p_value"]), "recurrence_interval_days": _json_number(r["recurrence_interval_days"]),
            "max_window_days": _json_number(r.get("max_window_days")),
            "zone": None if not r.get("zone_id") else {"id": r["zone_id"], "tier": r["zone_tier"],
                                                       "since": _as_date(r["zone_since"]).isoformat()}})
    return {"as_of": view.as_of.isoformat() if view.as_of else None,
            "method": METHOD_LABELS[view.method] if run else None,
            "run": None if not run else {"id": run["run_id"], "replications": int(run["replications"]),
                                         "max_window_days": int(run["max_window_days"]),
                                         "report_p_max": float(run["report_p_max"]),
                                         "method": view.method, "method_note": run.get("method_note") or "",
                                         "windows_days": [int(w) for w in str(run.get("windows_days") or
                                                                               run["max_window_days"]).split(",")],
                                         "lag_days": int(run.get("lag_days") or 0),
                                         "min_recurrence_interval_days": _json_number(
                                             run.get("min_recurrence_days"))},
            "clusters": out}


def zone_list(store: Store, settings: Settings, principal: Principal) -> dict:
    """Containment zones in force, JSON-ready, cut to the principal (police: cells in their precincts)."""
    principal.require("view_clusters")
    zones = disclose(principal, qc.zones_in_force(store), ZONES, min_count=settings.privacy.min_count,
                     jurisdiction=jurisdiction(store))
    rulebook = load_zone_rulebook(settings)
    return {"rulebook": {"id": rulebook.id, "version": rulebook.version}, "zones": [
        {"id": r["zone_id"], "cluster_id": r["cluster_id"], "role": r["role"], "tier": r["tier"],
         "cells": list(r["cells"]), "reason": r["reason"], "rule_id": r["rule_id"], "rule_version": r["rule_version"],
         "entered_on": _as_date(r["entered_on"]).isoformat(), "since": _as_date(r["since"]).isoformat(),
         "reviewed_on": None if pd.isna(r["reviewed_on"]) else _as_date(r["reviewed_on"]).isoformat()}
        for r in zones.to_dict("records")]}
