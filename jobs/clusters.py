"""The daily micro-cluster job: scan recent cases for space-time clusters, turn them into zones, store both.

Following NYC DOHMH's daily prospective SaTScan runs (Kulldorff et al. 2005; Greene et al. 2021)
and New York State's Cluster Action Initiative (October 2020):

1. cases (and people tested) per H3 cell and day over the study period (``clusters.study_days``
   ending ``lag_days`` before the analysis day, for data accrual) -> analytics.scan.prospective_scans,
   one analysis per maximum temporal window of the scan rulebook (``clusters.scan_rulebook``; NYC
   DOHMH's: 7 and 21 days, 3-day lag, reported from a recurrence interval of 100 days). The
   rulebook's method (the tests-adjusted Poisson scan) drives the zones where tests are reported per
   cell; elsewhere the case-only permutation scan does, and the run says why. Both scans are stored
   where both can run, so /clusters can show either, labelled;
2. each reported cluster keeps the id of the cluster or zone it overlaps from before, so a
   zone can be followed from day to day while its cluster drifts a cell or two;
3. significant clusters (p <= ``report_p_max``) and the cores of zones still in force are
   assessed with the zone rulebook (7-day positivity, daily cases per 100k) ->
   analytics.zones.zones_from_clusters; update_zone_history decides entered / escalated /
   reviewed / lifted against the zones in force (folded from the stored history);
4. the Gi* hot-spot layer: each populated cell's case rate over the last ``HOTSPOT_WINDOW_DAYS``
   days, Getis-Ord Gi* on ring-1 neighbours, Benjamini-Hochberg across cells, hot/cold at 90/95/99 %;
5. the run, its clusters, the Gi* cells, the day's zone events and the folded zones table are
   written in one transaction; a core zone newly in one of the two highest tiers (orange, red)
   raises one alert.

Idempotent per day: the inputs are fingerprinted, a rerun on unchanged inputs writes nothing,
and a rerun on changed inputs (late reports) replaces that day's results.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd

from analytics.cells import MIN_RATE_POPULATION, rates_per_100k
from analytics.hotspots import getis_ord, hot_and_cold_spots
from analytics.scan import DEFAULT_MAX_CLUSTERS, PERMUTATION, TESTS_ADJUSTED, ScanResult, SpaceTimeCluster, prospective_scans
from analytics.scan_rules import ScanRulebook
from analytics.zones import (
    CORE_ROLE,
    Zone,
    ZoneEvent,
    ZoneRulebook,
    apply_zone_events,
    update_zone_history,
    zones_from_clusters,
)
from geo.areas import AreaShape, PointLocator, geometry_from_geojson
from geo.cells import cell_resolution, cell_to_latlng, cells_to_latlngs
from geo.grid import PopulationGrid, cases_on_grid, cells_at_resolution, population_grid, spread_tests_to_grid
from geo.neighbours import NeighbourGraph, cells_to_neighbour_graph
from rulebooks import load_scan_rulebook, load_zone_rulebook
from settings import Settings
from store import Store
from store import queries as q
from store import queries_clusters as qc
from store.definitions import as_of_day

ALERT_KIND = "cluster_zone"
# The most restrictive tier is an emergency for the whole command centre, the next one a warning;
# lower tiers (yellow: precautionary) are shown on the map but raise no alert.
ALERT_SEVERITY_BY_TIER_FROM_TOP = ("critical", "warning")
FINGERPRINT_VERSION = "3"  # bump when the job's computation changes, so stored days are recomputed
# The tests-adjusted scan needs the people tested per cell: it runs when at least this share of the
# study period's tests was reported with a cell (the rest, reported per area, is spread by area share
# and is then a small estimate); below it the denominators would be mostly areal guesses.
MIN_CELL_TEST_SHARE = 0.95
# The Gi* layer reads the last two weeks, the map's default window: recent enough to act on, long
# enough for small cells to hold a few cases.
HOTSPOT_WINDOW_DAYS = 14


@dataclass(frozen=True, slots=True)
class DayInputs:
    """Everything one day's analysis reads from the store."""
    as_of: date
    study_start: date
    study_end: date  # as_of less the scan rulebook's lag
    cases: pd.DataFrame  # h3_cell, day, cases from study_start to as_of
    unplaced_cases: int
    tests: pd.DataFrame  # h3_cell, day, tested, positive over the zone-metric window
    scan_tests: pd.DataFrame  # h3_cell, day, tested, positive over the study period (the scan's denominators)
    cell_test_share: float | None  # share of the study period's tests reported with a cell; None: no tests
    grid: PopulationGrid
    previous_events: tuple[ZoneEvent, ...]  # zone history before as_of, in order
    known_clusters: tuple[tuple[str, frozenset[str]], ...]  # ids to carry over: zones in force, yesterday's clusters


def run(store: Store, settings: Settings, today: date) -> dict:
    """Scan, zone and store one day; return a summary for /healthz."""
    started = time.monotonic()
    cfg = settings.clusters
    rulebook = load_zone_rulebook(settings)
    scan_rules = load_scan_rulebook(settings)
    as_of = as_of_day(store, today, settings.city.timezone)
    if as_of is None:
        return {"status": "no cases"}
    later = qc.latest_zone_event_day(store)
    if later is not None and later > as_of:
        # Zone history is a fold over days in order; deciding an earlier day now would rewrite it.
        return {"status": "skipped", "as_of": as_of.isoformat(), "reason": f"zones already decided for {later}"}
    inputs = read_inputs(store, settings, rulebook, as_of)
    fingerprint = input_fingerprint(settings, rulebook, inputs)
    stored = qc.cluster_run_on(store, as_of)
    if not stored.empty and stored.at[0, "input_fingerprint"] == fingerprint:
        row = stored.iloc[0]
        return {"status": "unchanged", "as_of": as_of.isoformat(), "clusters": int(row["clusters"]),
                "significant": int(row["significant"]), "zones_in_force": len(qc.zones_in_force(store))}

    scan_started = time.monotonic()
    scans = run_scans(inputs, settings, scan_rules)
    scan_s = time.monotonic() - scan_started

    run_id = as_of.isoformat()
    clusters = all_cluster_rows(scans, run_id, as_of, inputs, scan_rules)
    primary = clusters[clusters["method"] == scans.method] if len(clusters) else clusters
    previous = apply_zone_events([], inputs.previous_events)
    proposed = propose_zones(primary, previous, inputs, rulebook, as_of, cfg.resolution)
    events = update_zone_history(previous, proposed, as_of, rulebook)
    all_events = (*inputs.previous_events, *events)
    hotspots = hotspot_rows(inputs, as_of)
    now = datetime.now(timezone.utc)
    longest = scans.results[scans.method][scans.windows[-1]]
    run_row = {
        "run_id": run_id, "as_of": as_of, "computed_at": now, "input_fingerprint": fingerprint,
        "study_start": inputs.study_start, "study_end": inputs.study_end, "resolution": cfg.resolution,
        "max_radius_m": cfg.max_radius_m, "max_share": cfg.max_share, "max_window_days": scans.windows[-1],
        "replications": longest.replications, "seed": cfg.seed, "min_cases": cfg.min_cases,
        "report_p_max": scan_rules.report_p_max, "total_cases": longest.total_cases, "locations": scans.locations,
        "clusters": len(primary), "significant": int(primary["significant"].sum()) if len(primary) else 0,
        "critical_llr_05": _finite_or_none(longest.critical_llr_05),
        "critical_llr_01": _finite_or_none(longest.critical_llr_01),
        "scan_s": round(scan_s, 3), "rule_id": rulebook.id, "rule_version": rulebook.version,
        "method": scans.method, "method_note": scans.note, "methods_run": ",".join(scans.results),
        "windows_days": ",".join(str(w) for w in scans.windows), "lag_days": scan_rules.lag_days,
        "min_recurrence_days": scan_rules.min_recurrence_interval_days, "scan_rule_id": scan_rules.id,
        "scan_rule_version": scan_rules.version, "hotspot_window_days": HOTSPOT_WINDOW_DAYS,
    }
    alerts = alert_rows(events, rulebook, now, inputs.grid, store)
    new_alerts = qc.save_cluster_day(store, run_row, clusters, event_rows(events, run_id, now),
                                     zone_table(all_events), alerts, hotspots).result()
    in_force = apply_zone_events(previous, events)
    return {
        "status": "computed", "as_of": as_of.isoformat(), "cases": longest.total_cases,
        "unplaced_cases": inputs.unplaced_cases, "cells": scans.locations, "method": scans.method,
        "methods": list(scans.results), "clusters": run_row["clusters"],
        "significant": run_row["significant"], "zones_in_force": len(in_force), "events": len(events),
        "hotspots": int((hotspots["spot"] != "not significant").sum()) if len(hotspots) else 0,
        "alerts": int(new_alerts), "scan_s": round(scan_s, 2), "total_s": round(time.monotonic() - started, 2),
    }


# ---- inputs ------------------------------------------------------------------------------------
def read_inputs(store: Store, settings: Settings, rulebook: ZoneRulebook, as_of: date) -> DayInputs:
    cfg = settings.clusters
    study_end = as_of - timedelta(days=load_scan_rulebook(settings).lag_days)
    study_start = study_end - timedelta(days=cfg.study_days - 1)
    # Counted cases on the grid, as the cluster page counts them (geo.grid), up to the analysis day
    # (the zone metrics read the days of the lag too).
    cases, unplaced = cases_on_grid(qc.case_counts_by_cell_day(store, study_start, as_of),
                                    lambda: qc.case_points_by_day(store, study_start, as_of), cfg.resolution)
    areas_version = q.areas_version(store)
    grid = population_grid(lambda: qc.population_areas(store), cfg.resolution, q.city_population(store),
                           f"{store.path}:{areas_version}",
                           stored_shares=lambda: qc.stored_area_cell_shares(store, areas_version, cfg.resolution),
                           keep_shares=lambda shares: qc.keep_area_cell_shares(store, areas_version, cfg.resolution,
                                                                                shares))
    # The rulebook reads 7-day positivity on each of the last 10 days: 16 days of reports.
    metric_start = as_of - timedelta(days=rulebook.window_days + rulebook.persistence_days - 2)
    tests, _ = spread_tests_to_grid(qc.test_counts_by_unit_day(store, metric_start, as_of), grid)
    scan_reports = qc.test_counts_by_unit_day(store, study_start, study_end)
    scan_tests, _ = spread_tests_to_grid(scan_reports, grid)
    all_tested = float(scan_reports["tested"].sum())
    on_cells = cells_at_resolution(scan_reports["h3_cell"], cfg.resolution).notna().to_numpy()
    cell_share = float(scan_reports["tested"].to_numpy()[on_cells].sum()) / all_tested if all_tested > 0 else None
    previous_events = tuple(events_from_rows(qc.zone_events_before(store, as_of)))
    known: dict[str, set[str]] = {}
    for zone in apply_zone_events([], previous_events):
        if zone.role == CORE_ROLE:
            known.setdefault(zone.cluster_id, set()).update(zone.cells)
    for row in qc.significant_clusters_before(store, as_of).itertuples(index=False):
        known.setdefault(row.cluster_id, set()).update(row.cells)
    return DayInputs(as_of, study_start, study_end, cases, unplaced, tests, scan_tests, cell_share, grid,
                     previous_events, tuple((k, frozenset(v)) for k, v in known.items()))


def input_fingerprint(settings: Settings, rulebook: ZoneRulebook, inputs: DayInputs) -> str:
    """A hash of every input of the day: the same inputs give the same results, so nothing is rewritten."""
    digest = hashlib.sha256()
    scan_settings = settings.clusters.model_dump_json(exclude={"run_every_s"})  # how often is not what
    scan_rules = load_scan_rulebook(settings)
    digest.update(f"v{FINGERPRINT_VERSION}|{scan_settings}|{rulebook.id}|{rulebook.version}|"
                  f"{scan_rules}|{inputs.as_of}|{inputs.grid.city_population}|{inputs.unplaced_cases}".encode())
    # The grid by its content, not its cache key: that names the database file, and a copied or moved
    # database (a restore, a bench) holds the same inputs.
    digest.update(pd.util.hash_pandas_object(inputs.grid.population.round(6), index=True).to_numpy().tobytes())
    for frame in (inputs.cases, inputs.tests, inputs.scan_tests):
        digest.update(_frame_digest(frame))
    digest.update(json.dumps([(e.as_of.isoformat(), e.kind, e.zone_id, e.tier) for e in inputs.previous_events])
                  .encode())
    return digest.hexdigest()


def _frame_digest(frame: pd.DataFrame) -> bytes:
    """Row hashes of a (h3_cell, day, ...) frame, the same for the same figures however they were read.

    Tests spread from areas onto cells are float sums whose last bits follow the order the database
    returned the rows in (not fixed), so floats are hashed rounded to 1e-6; days as datetime64, not
    as text (turning a year of cells into strings took seconds at city scale).
    """
    ordered = frame.sort_values(["h3_cell", "day"]).reset_index(drop=True)
    floats = ordered.select_dtypes("float").columns
    ordered[floats] = ordered[floats].round(6)
    ordered["day"] = pd.to_datetime(ordered["day"])
    return pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes()


def case_matrix(cases: pd.DataFrame, start: date, end: date) -> tuple[list[str], np.ndarray]:
    """(cell ids, cells x days count matrix) over [start, end]; only cells with cases are locations."""
    n_days = (end - start).days + 1
    if cases.empty:
        return [], np.zeros((0, n_days), dtype=np.int64)
    cell_codes, cells = pd.factorize(cases["h3_cell"], sort=True)
    day_codes = (pd.to_datetime(cases["day"]) - pd.Timestamp(start)).dt.days.to_numpy()
    counts = np.zeros((len(cells), n_days), dtype=np.int64)
    np.add.at(counts, (cell_codes, day_codes), cases["cases"].to_numpy(dtype=np.int64))
    return list(cells), counts


# ---- clusters ----------------------------------------------------------------------------------
def carry_over_ids(new_cells: Iterable[frozenset[str]], known: Iterable[tuple[str, frozenset[str]]],
                   fresh_ids: Iterable[str]) -> list[str]:
    """An id per new cluster: the known id it overlaps most (each used once, in rank order), else a fresh one."""
    unused = dict(known)
    fresh = iter(fresh_ids)
    ids = []
    for cells in new_cells:
        overlaps = {cid: len(cells & old) for cid, old in unused.items()}
        best = max(overlaps, key=lambda cid: (overlaps[cid], cid), default=None)
        if best is not None and overlaps[best] > 0:
            ids.append(best)
            del unused[best]
        else:
            ids.append(next(fresh))
    return ids


@dataclass(frozen=True, slots=True)
class DayScans:
    """The day's analyses: method -> maximum window -> result; ``method`` drives the zones."""
    method: str
    note: str  # why the zone-driving method is not the rulebook's, else ""
    windows: tuple[int, ...]
    results: dict[str, dict[int, ScanResult]]  # the zone-driving method first
    locations: int


def run_scans(inputs: DayInputs, settings: Settings, rules: ScanRulebook) -> DayScans:
    """Every analysis of the day: the rulebook's windows, with both methods where tests allow."""
    cfg = settings.clusters
    scanned = inputs.cases[pd.to_datetime(inputs.cases["day"]) <= pd.Timestamp(inputs.study_end)]
    location_ids, counts = case_matrix(scanned, inputs.study_start, inputs.study_end)
    n_days = counts.shape[1]
    windows = tuple(w for w in rules.max_windows_days if w <= n_days) or (n_days,)
    share = inputs.cell_test_share
    tests_per_cell = share is not None and share >= MIN_CELL_TEST_SHARE
    if tests_per_cell:
        order = [TESTS_ADJUSTED, PERMUTATION] if rules.method == TESTS_ADJUSTED else [PERMUTATION, TESTS_ADJUSTED]
        note = ""
    else:
        order = [PERMUTATION]
        reported = "no tests reported" if share is None else f"{share:.0%} of the study period's tests reported per cell"
        note = (f"tests-adjusted scan not run ({reported}; it needs {MIN_CELL_TEST_SHARE:.0%}): case-only "
                "permutation scan instead" if rules.method == TESTS_ADJUSTED else "")
    results: dict[str, dict[int, ScanResult]] = {}
    if not location_ids:
        for method in order:
            results[method] = {w: ScanResult((), 0, cfg.replications, float("nan"), float("nan")) for w in windows}
        return DayScans(order[0], note, windows, results, 0)
    lat_lng = cells_to_latlngs(location_ids)
    tested = tested_matrix(inputs.scan_tests, location_ids, inputs.study_start, n_days) if tests_per_cell else None
    for method in order:
        results[method] = prospective_scans(
            location_ids, counts, tests=tested if method == TESTS_ADJUSTED else None, lat_lng_deg=lat_lng,
            max_radius_m=cfg.max_radius_m, max_case_share=cfg.max_share, windows=windows,
            replications=cfg.replications, min_cases=cfg.min_cases, seed=cfg.seed,
            stop_after_exceedances=cfg.stop_after_exceedances)
    return DayScans(order[0], note, windows, results, len(location_ids))


def tested_matrix(tests: pd.DataFrame, location_ids: list[str], start: date, n_days: int) -> np.ndarray:
    """(locations x days) people tested, aligned with case_matrix (cells without reports: 0)."""
    matrix = np.zeros((len(location_ids), n_days))
    if tests.empty:
        return matrix
    row = pd.Index(location_ids).get_indexer(tests["h3_cell"])
    day = (pd.to_datetime(tests["day"]) - pd.Timestamp(start)).dt.days.to_numpy()
    keep = (row >= 0) & (day >= 0) & (day < n_days)
    np.add.at(matrix, (row[keep], day[keep]), tests["tested"].to_numpy(dtype=np.float64)[keep])
    return matrix


def merged_analyses(by_window: dict[int, ScanResult], limit: int = DEFAULT_MAX_CLUSTERS
                    ) -> list[tuple[SpaceTimeCluster, int]]:
    """One method's clusters over all its analyses: strongest first (lowest p, then highest LLR), each
    place once (a cluster overlapping a stronger one from another window is the same cluster)."""
    found = sorted(((c, w) for w, result in by_window.items() for c in result.clusters),
                   key=lambda pair: (pair[0].p_value, -pair[0].llr, pair[1]))
    kept: list[tuple[SpaceTimeCluster, int]] = []
    taken: set = set()
    for cluster, window in found:
        if taken.isdisjoint(cluster.location_ids):
            kept.append((cluster, window))
            taken.update(cluster.location_ids)
    return kept[:limit]


def all_cluster_rows(scans: DayScans, run_id: str, as_of: date, inputs: DayInputs, rules: ScanRulebook
                     ) -> pd.DataFrame:
    """detected_clusters rows of every method, the zone-driving method first; ranks run over the whole run."""
    frames = []
    rank = 0
    for method, by_window in scans.results.items():
        found = merged_analyses(by_window)
        frames.append(cluster_rows(found, run_id, as_of, inputs.study_start, rules.min_recurrence_interval_days,
                                   inputs.known_clusters, method, first_rank=rank + 1))
        rank += len(found)
    frames = [f for f in frames if not f.empty]
    return (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=list(qc.CLUSTER_COLUMNS)))


def cluster_rows(found: list[tuple[SpaceTimeCluster, int]], run_id: str, as_of: date, study_start: date,
                 min_recurrence_days: float, known: tuple[tuple[str, frozenset[str]], ...], method: str,
                 first_rank: int = 1) -> pd.DataFrame:
    """One row per reported cluster (detected_clusters columns), with carried-over ids."""
    ranks = range(first_rank, first_rank + len(found))
    ids = carry_over_ids((frozenset(c.location_ids) for c, _ in found), known,
                         (f"C{as_of:%Y%m%d}-{rank}" for rank in ranks))
    rows = []
    for rank, (cluster, window), cluster_id in zip(ranks, found, ids):
        lat, lng = cell_to_latlng(cluster.centre_location_id)
        rows.append({
            "run_id": run_id, "rank": rank, "cluster_id": cluster_id, "as_of": as_of,
            "centre_cell": cluster.centre_location_id, "centre_lat": lat, "centre_lng": lng,
            "radius_m": cluster.radius_m, "cells": list(cluster.location_ids), "n_cells": len(cluster.location_ids),
            "start_date": study_start + timedelta(days=cluster.start_day),
            "end_date": study_start + timedelta(days=cluster.end_day),
            "observed": cluster.observed, "expected": cluster.expected,
            "relative_risk": _finite_or_none(cluster.relative_risk), "llr": cluster.llr,
            "p_value": cluster.p_value, "recurrence_interval_days": cluster.recurrence_interval_days,
            # 1/p >= RI bar, compared as p <= 1/bar so that p = 0.01 meets a 100-day bar exactly.
            "significant": cluster.p_value <= 1.0 / min_recurrence_days + 1e-12,
            "method": method, "max_window_days": window,
        })
    return pd.DataFrame(rows, columns=list(qc.CLUSTER_COLUMNS))


# ---- Gi* hot spots -----------------------------------------------------------------------------
_graphs: dict[tuple[str, int], NeighbourGraph] = {}


def hotspot_rows(inputs: DayInputs, as_of: date) -> pd.DataFrame:
    """cluster_hotspots rows: Gi* of each populated cell's recent case rate, FDR-controlled classes."""
    population = inputs.grid.population
    cells = pd.Index(sorted(population[population > MIN_RATE_POPULATION].index), name="h3_cell")
    if len(cells) < 3:  # Gi* needs at least three units
        return pd.DataFrame(columns=list(qc.HOTSPOT_COLUMNS))
    key = (inputs.grid.version, len(cells))
    if key not in _graphs:
        _graphs.clear()  # one grid per process: keep the newest
        _graphs[key] = cells_to_neighbour_graph(cells, k=1)
    graph = _graphs[key]
    start = pd.Timestamp(as_of - timedelta(days=HOTSPOT_WINDOW_DAYS - 1))
    recent = inputs.cases[pd.to_datetime(inputs.cases["day"]) >= start]
    counts = recent.groupby("h3_cell")["cases"].sum().reindex(graph.ids, fill_value=0)
    rates = rates_per_100k(counts, population, MIN_RATE_POPULATION)
    spots = hot_and_cold_spots(getis_ord(rates, graph, star=True))
    return pd.DataFrame({
        "as_of": as_of, "h3_cell": graph.ids, "window_days": HOTSPOT_WINDOW_DAYS,
        "cases": counts.to_numpy(dtype=np.int64), "population": population.reindex(graph.ids).to_numpy(),
        "rate_per_100k": rates.to_numpy(), "z": spots["z"].to_numpy(), "p": spots["p"].to_numpy(),
        "q": spots["q"].to_numpy(), "confidence": spots["confidence"].to_numpy(), "spot": spots["spot"].to_numpy(),
    }, columns=list(qc.HOTSPOT_COLUMNS))


# ---- zones -------------------------------------------------------------------------------------
def propose_zones(clusters: pd.DataFrame, in_force: list[Zone], inputs: DayInputs, rulebook: ZoneRulebook,
                  as_of: date, resolution: int) -> list[Zone]:
    """Today's zone assessment: significant clusters, and the cores of zones in force (re-assessed)."""
    candidates: dict[str, tuple[str, ...]] = {}
    for row in clusters[clusters["significant"]].itertuples(index=False) if len(clusters) else ():
        candidates[row.cluster_id] = tuple(row.cells)
    for zone in in_force:
        if zone.role == CORE_ROLE and zone.cluster_id not in candidates:
            if all(cell_resolution(c) == resolution for c in zone.cells):  # the grid may have been reconfigured
                candidates[zone.cluster_id] = zone.cells
    population = inputs.grid.population
    # Zones are for people: a cluster in cells where nobody lives (a park, a lake) has no rate to assess.
    candidates = {cid: cells for cid, cells in candidates.items()
                  if population.reindex(list(cells)).fillna(0).sum() > 0}
    if not candidates:
        return []
    wanted = {c for cells in candidates.values() for c in cells}
    metric_start = as_of - timedelta(days=rulebook.window_days + rulebook.persistence_days - 2)
    cases = inputs.cases[(inputs.cases["h3_cell"].isin(wanted)) & (inputs.cases["day"] >= metric_start)]
    tests = inputs.tests[inputs.tests["h3_cell"].isin(wanted)]
    metrics = cases.merge(tests, on=["h3_cell", "day"], how="outer").fillna(
        {"cases": 0, "tested": 0.0, "positive": 0.0})
    metrics = metrics.rename(columns={"day": "date", "tested": "tests", "positive": "positives"})
    return zones_from_clusters(candidates, metrics[["date", "h3_cell", "tests", "positives", "cases"]],
                               rulebook, as_of, population, city_population=inputs.grid.city_population or None)


def events_from_rows(rows: pd.DataFrame) -> list[ZoneEvent]:
    return [ZoneEvent(r.kind, r.zone_id, r.cluster_id, _day(r.as_of), _none(r.tier), _none(r.previous_tier),
                      tuple(r.cells), r.reason or "", r.rule_id, r.rule_version)
            for r in rows.itertuples(index=False)]


def event_rows(events: list[ZoneEvent], run_id: str, now: datetime) -> pd.DataFrame:
    return pd.DataFrame([{
        "as_of": e.as_of, "kind": e.kind, "zone_id": e.zone_id, "cluster_id": e.cluster_id,
        "role": e.zone_id.rsplit(":", 1)[-1], "tier": e.tier, "previous_tier": e.previous_tier,
        "cells": list(e.cells), "reason": e.reason, "rule_id": e.rule_id, "rule_version": e.rule_version,
        "run_id": run_id, "recorded_at": now} for e in events], columns=list(qc.EVENT_COLUMNS))


def zone_table(events: Iterable[ZoneEvent]) -> pd.DataFrame:
    """One row per zone ever entered: its current (or last) state, when it entered and when it was lifted."""
    rows: dict[str, dict] = {}
    in_force: dict[str, Zone] = {}
    for event in events:
        was_in_force = event.zone_id in in_force
        in_force = {z.zone_id: z for z in apply_zone_events(in_force.values(), [event])}
        if event.kind == "lifted":
            if event.zone_id in rows:
                rows[event.zone_id].update(lifted_on=event.as_of, updated_on=event.as_of)
            continue
        zone = in_force[event.zone_id]
        entered_on = rows[event.zone_id]["entered_on"] if was_in_force else event.as_of
        rows[event.zone_id] = {
            "zone_id": zone.zone_id, "cluster_id": zone.cluster_id, "role": zone.role, "tier": zone.tier,
            "cells": list(zone.cells), "reason": zone.reason, "rule_id": zone.rule_id,
            "rule_version": zone.rule_version, "entered_on": entered_on, "since": zone.since,
            "reviewed_on": zone.reviewed_on, "lifted_on": None, "updated_on": event.as_of}
    return pd.DataFrame(list(rows.values()), columns=list(qc.ZONE_COLUMNS))


# ---- alerts ------------------------------------------------------------------------------------
def alert_rows(events: list[ZoneEvent], rulebook: ZoneRulebook, now: datetime, grid: PopulationGrid,
               store: Store) -> pd.DataFrame:
    """One alert per core zone entering (or escalating into) one of the two highest tiers."""
    top = list(reversed(rulebook.zone_tiers))
    severity = dict(zip(top, ALERT_SEVERITY_BY_TIER_FROM_TOP))
    rows = []
    locator = None
    for e in events:
        if e.kind not in ("entered", "escalated") or e.tier not in severity:
            continue
        if e.zone_id.rsplit(":", 1)[-1] != CORE_ROLE:
            continue  # its rings are part of the same action: one alert per cluster, not per ring
        if locator is None:
            locator = _community_locator(store)
        lat, lng = cells_to_latlngs(e.cells).mean(axis=0)
        area_id = locator.locate_one(float(lat), float(lng))
        residents = float(grid.population.reindex(list(e.cells)).fillna(0).sum())
        verb = "entered" if e.kind == "entered" else f"escalated from {e.previous_tier} to"
        article = "an" if e.tier[:1].lower() in "aeiou" else "a"
        rows.append({
            "raised_at": now, "severity": severity[e.tier], "kind": ALERT_KIND, "area_id": area_id,
            "title": f"Cluster {e.cluster_id} {verb} {article} {e.tier} zone",
            "detail": f"{len(e.cells)} H3 cells, about {residents:,.0f} residents, as of {e.as_of}. {e.reason}. "
                      f"Rule {e.rule_id} version {e.rule_version}.",
            "rule_id": e.rule_id, "rule_version": e.rule_version,
            "dedupe_key": f"{ALERT_KIND}:{e.zone_id}:{e.tier}:{e.as_of.isoformat()}"})
    return pd.DataFrame(rows, columns=list(qc.ALERT_COLUMNS))


def _community_locator(store: Store) -> PointLocator:
    shapes = []
    for r in q.areas(store, ("community", "district")).itertuples(index=False):
        try:
            shapes.append(AreaShape(r.area_id, r.name, r.kind, r.population, geometry_from_geojson(r.geometry)))
        except ValueError:
            continue  # an area that cannot be parsed names no alert; the alert is raised all the same
    return PointLocator(shapes)


# ---- small helpers -----------------------------------------------------------------------------
def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _none(x):
    return None if x is None or (isinstance(x, float) and np.isnan(x)) or x is pd.NA else x


def _day(x) -> date:
    return x.date() if isinstance(x, (pd.Timestamp, datetime)) else x
