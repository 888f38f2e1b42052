"""Read model of the micro-cluster map, and the cell-level inputs the cluster job shares with it.

Counts per H3 cell and day come from the store's named queries (store.queries_clusters) and are
moved onto the cluster grid with analytics.cells (parents by bit arithmetic, points by
latlng_to_cell). Residents per cell are spread from the community areas by area share
(analytics.cells.cell_population, areal weighting); test reports that name only an area are
spread over that area's cells the same way, which assumes tests, like people, are spread evenly
within the area — such figures are flagged as estimates wherever they are shown.

Both the job and the page go through these functions, so a number on the map, in the history
panel and in the job's zone decisions is computed the same way.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import yaml
from shapely.geometry import shape

from analytics.cells import (
    cell_int_resolutions,
    cell_population,
    cells_to_ints,
    ints_to_cells,
    latlngs_to_cell_ints,
    parent_cell_ints,
    rates_per_100k,
)
from analytics.zones import ZoneRulebook, parse_zone_rulebook
from store import Store
from store import queries as q
from store import queries_clusters as qc

# Map windows offered on the page: one week up to the scan's longest window and a bit beyond.
WINDOW_CHOICES = (7, 14, 21, 28)
# The history panel spans eight weeks: a cluster emerging over three weeks plus a 14-day review
# and the weeks before it for comparison.
HISTORY_DAYS = 56
# A cell holding fewer residents than this gets no rate: one case among 40 people would read as
# 2,500 per 100k and shout louder than a real outbreak elsewhere.
MIN_RATE_POPULATION = 50.0


# ---- rulebook ----------------------------------------------------------------------------------
_rulebooks: dict[tuple[str, float], ZoneRulebook] = {}
_rulebook_lock = threading.Lock()


def load_zone_rulebook(path: Path) -> ZoneRulebook:
    """Parse the zone rulebook file (cached until the file changes)."""
    key = (str(path), path.stat().st_mtime)
    with _rulebook_lock:
        if key not in _rulebooks:
            _rulebooks.clear()
            _rulebooks[key] = parse_zone_rulebook(yaml.safe_load(path.read_text(encoding="utf-8")))
        return _rulebooks[key]


# ---- the analysis day --------------------------------------------------------------------------
def analysis_day(store: Store, today: date) -> date | None:
    """The day the scan ends on: today, or the last day with cases when the data stops earlier (replays)."""
    last = q.latest_case_date(store)
    if last is None:
        return None
    return min(today, last)


def latest_scan_day(store: Store) -> date | None:
    """The analysis day of the most recent stored scan."""
    day = qc.latest_run_day(store)
    return day.date() if isinstance(day, pd.Timestamp) else day


# ---- cells -------------------------------------------------------------------------------------
def cells_at_resolution(cells: pd.Series, resolution: int) -> pd.Series:
    """Each cell id moved to ``resolution`` (its parent); None where the cell is coarser than that."""
    uniques = pd.unique(cells.dropna())
    if len(uniques) == 0:
        return pd.Series([None] * len(cells), index=cells.index, dtype=object)
    ints = cells_to_ints(uniques)
    fine_enough = cell_int_resolutions(ints) >= resolution
    moved = np.full(len(uniques), None, dtype=object)
    if fine_enough.any():
        moved[fine_enough] = ints_to_cells(parent_cell_ints(ints[fine_enough], resolution))
    return cells.map(dict(zip(uniques, moved)))


def cell_day_cases(store: Store, start: date, end: date, resolution: int) -> tuple[pd.DataFrame, int]:
    """(h3_cell, day, cases) on the grid of ``resolution`` for [start, end], and the count of unplaceable cases.

    Stored cells finer than or equal to the grid are rolled up; if some are coarser, cases are
    placed from their coordinates instead (cases with neither are returned as unplaced).
    """
    frame = qc.case_counts_by_cell_day(store, start, end)
    frame["h3_cell"] = cells_at_resolution(frame["h3_cell"], resolution)
    unplaced = 0
    if frame["h3_cell"].isna().any():
        points = qc.case_points_by_day(store, start, end)
        has_point = points["lat"].notna().to_numpy()
        cells = pd.Series([None] * len(points), dtype=object)
        if has_point.any():
            cells[has_point] = ints_to_cells(latlngs_to_cell_ints(
                points.loc[has_point, "lat"].to_numpy(), points.loc[has_point, "lng"].to_numpy(), resolution))
        from_cell = cells_at_resolution(points["h3_cell"], resolution)
        cells[~has_point] = from_cell[~has_point]
        points["h3_cell"] = cells.to_numpy()
        unplaced = int(points.loc[points["h3_cell"].isna(), "cases"].sum())
        frame = points[["h3_cell", "day", "cases"]]
    frame = frame.dropna(subset=["h3_cell"])
    out = frame.groupby(["h3_cell", "day"], as_index=False)["cases"].sum()
    out["day"] = pd.to_datetime(out["day"]).dt.date
    out["cases"] = out["cases"].astype(np.int64)
    return out, unplaced


@dataclass(frozen=True)
class PopulationGrid:
    """Residents per cell and each area's share of its cells, on one H3 grid."""
    resolution: int
    population: pd.Series  # residents per h3_cell (areal weighting)
    shares: pd.DataFrame  # area_id, h3_cell, share (sums to 1 per area)
    city_population: int
    version: str


_grids: dict[tuple[str, str, int], PopulationGrid] = {}
_grid_lock = threading.Lock()


def population_grid(store: Store, resolution: int) -> PopulationGrid:
    """Residents per cell from the community areas (cached until the areas change)."""
    version = qc.areas_version(store)
    key = (str(store.path), version, resolution)
    with _grid_lock:
        if key in _grids:
            return _grids[key]
    areas = qc.population_areas(store)
    parts, share_frames = [], []
    for area in areas.itertuples(index=False):
        geometry = shape(json.loads(area.geometry))
        people = float(area.population)
        # cell_population spreads a total by area share; spreading 1 gives the shares themselves,
        # which also serve areas whose population is 0 (their tests still need a place).
        shares = cell_population([(geometry, 1.0)], resolution)
        share_frames.append(pd.DataFrame({"area_id": area.area_id, "h3_cell": shares.index,
                                          "share": shares.to_numpy()}))
        parts.append(shares * people)
    population = (pd.concat(parts).groupby(level=0).sum() if parts
                  else pd.Series([], dtype=np.float64, index=pd.Index([], name="h3_cell")))
    population.name = "population"
    shares = (pd.concat(share_frames, ignore_index=True) if share_frames
              else pd.DataFrame({"area_id": [], "h3_cell": [], "share": []}))
    grid = PopulationGrid(resolution, population, shares, q.city_population(store), version)
    with _grid_lock:
        _grids.clear()  # one city per process: keep the newest
        _grids[key] = grid
    return grid


def cell_day_tests(store: Store, start: date, end: date, grid: PopulationGrid) -> tuple[pd.DataFrame, bool]:
    """(h3_cell, day, tested, positive) on the grid, and whether any figure was spread from an area.

    Reports per cell are rolled up to the grid; reports per area are spread over the area's
    cells by area share (fractional: an estimate, not a count).
    """
    reports = qc.test_counts_by_unit_day(store, start, end)
    cells = cells_at_resolution(reports["h3_cell"], grid.resolution)
    by_cell = reports.assign(h3_cell=cells).dropna(subset=["h3_cell"])[["h3_cell", "day", "tested", "positive"]]
    by_area = reports[cells.isna() & reports["area_id"].notna()].drop(columns="h3_cell")
    spread = by_area.merge(grid.shares, on="area_id", how="inner")
    estimated = not spread.empty
    if estimated:
        spread = spread.assign(tested=spread["tested"] * spread["share"],
                               positive=spread["positive"] * spread["share"])[["h3_cell", "day", "tested", "positive"]]
    frames = [f for f in (by_cell, spread) if not f.empty]
    if not frames:
        return pd.DataFrame({"h3_cell": pd.Series(dtype=object), "day": pd.Series(dtype=object),
                             "tested": pd.Series(dtype=np.float64), "positive": pd.Series(dtype=np.float64)}), False
    out = pd.concat(frames, ignore_index=True).astype({"tested": np.float64, "positive": np.float64})
    out = out.groupby(["h3_cell", "day"], as_index=False)[["tested", "positive"]].sum()
    out["day"] = pd.to_datetime(out["day"]).dt.date
    return out, estimated


def cell_centre_latlng(cells) -> np.ndarray:
    """(n x 2) lat, lng of each cell's centre."""
    return np.array([h3.cell_to_latlng(c) for c in cells], dtype=np.float64).reshape(-1, 2)


# ---- the page's read model ---------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterView:
    as_of: date | None  # the day of the latest scan (or of the latest data if no scan ran yet)
    run: dict | None  # the latest cluster_runs row
    window: tuple[date, date] | None
    cells: pd.DataFrame  # h3_cell, cases, population, rate_per_100k (window totals)
    clusters: pd.DataFrame  # significant clusters of the latest run, with zone_id / zone_tier / zone_since
    candidates: int  # clusters the scan reported that did not reach significance
    zones: pd.DataFrame  # zones in force
    resolution: int


def _empty_cells() -> pd.DataFrame:
    return pd.DataFrame({"h3_cell": pd.Series(dtype=object), "cases": pd.Series(dtype=np.int64),
                         "population": pd.Series(dtype=np.float64), "rate_per_100k": pd.Series(dtype=np.float64)})


def cluster_view(store: Store, today: date, resolution: int, window_days: int) -> ClusterView:
    """What /clusters shows: cells in the window, the latest scan's clusters and the zones in force."""
    run_frame = qc.latest_cluster_run(store)
    run = None if run_frame.empty else run_frame.iloc[0].to_dict()
    as_of = run["as_of"] if run else analysis_day(store, today)
    if isinstance(as_of, pd.Timestamp):
        as_of = as_of.date()
    zones = qc.zones_in_force(store)
    if as_of is None:
        return ClusterView(None, run, None, _empty_cells(), pd.DataFrame(), 0, zones, resolution)
    start, end = q.window(as_of, window_days)
    daily, _ = cell_day_cases(store, start, end, resolution)
    cells = daily.groupby("h3_cell", as_index=False)["cases"].sum()
    if cells.empty:
        cells = _empty_cells()
    else:
        grid = population_grid(store, resolution)
        counts = cells.set_index("h3_cell")["cases"]
        cells["population"] = grid.population.reindex(counts.index).to_numpy()
        cells["rate_per_100k"] = rates_per_100k(counts, grid.population, MIN_RATE_POPULATION).to_numpy()
    clusters = pd.DataFrame()
    candidates = 0
    if run:
        found = qc.detected_clusters(store, run["run_id"])
        candidates = int((~found["significant"]).sum()) if not found.empty else 0
        clusters = found[found["significant"]].copy() if not found.empty else found
        if not clusters.empty:
            cores = {z.cluster_id: z for z in zones.itertuples(index=False) if z.role == "core"}
            matched = [cores.get(c) for c in clusters["cluster_id"]]
            clusters["zone_id"] = [z.zone_id if z else None for z in matched]
            clusters["zone_tier"] = [z.tier if z else None for z in matched]
            clusters["zone_since"] = [z.since if z else None for z in matched]
    return ClusterView(as_of, run, (start, end), cells, clusters, candidates, zones, resolution)


@dataclass(frozen=True)
class PlaceHistory:
    """Daily cases and tests in a cell or zone, and the zone decisions that concerned it."""
    kind: str  # "cell" or "zone"
    key: str
    title: str
    cells: tuple[str, ...]
    daily: pd.DataFrame  # day, cases, tested, positive
    tests_estimated: bool
    events: pd.DataFrame  # as_of, kind, zone_id, tier, previous_tier, reason, rule_id, rule_version
    zones: pd.DataFrame  # zones in force that hold the cell / the zone itself
    found: bool = True


def place_history(store: Store, kind: str, key: str, as_of: date, resolution: int,
                  days: int = HISTORY_DAYS) -> PlaceHistory:
    """History of one cell (``kind='cell'``) or one zone (``kind='zone'``) over ``days`` days to ``as_of``."""
    if kind == "zone":
        zone = qc.zone(store, key)
        if zone.empty:
            return PlaceHistory(kind, key, f"Zone {key}", (), pd.DataFrame(), False, pd.DataFrame(), zone, False)
        row = zone.iloc[0]
        cells = tuple(row["cells"])
        events = qc.zone_events_of(store, key)
        status = (f"lifted {_as_date(row['lifted_on'])}" if pd.notna(row["lifted_on"])
                  else f"{row['tier']} since {_as_date(row['since'])}")
        title = f"Zone {key} · {status} · {len(cells)} cells"
    elif kind == "cell":
        if not h3.is_valid_cell(key):
            return PlaceHistory(kind, key, f"Cell {key}", (), pd.DataFrame(), False, pd.DataFrame(), pd.DataFrame(),
                                False)
        cells = (key,)
        zone = qc.zones_holding_cell(store, key)
        events = qc.zone_events_touching_cell(store, key)
        where = ", ".join(f"{z.tier} zone {z.zone_id}" for z in zone.itertuples()) or "in no zone"
        title = f"Cell {key} · {where}"
    else:
        raise ValueError(f"kind must be 'cell' or 'zone', got {kind!r}")
    start, end = q.window(as_of, days)
    grid = population_grid(store, resolution)
    cases, _ = cell_day_cases(store, start, end, resolution)
    tests, estimated = cell_day_tests(store, start, end, grid)
    wanted = set(cells)
    day_index = pd.Index(pd.date_range(start, end, freq="D").date, name="day")
    case_days = cases[cases["h3_cell"].isin(wanted)].groupby("day")["cases"].sum().reindex(day_index, fill_value=0)
    test_days = (tests[tests["h3_cell"].isin(wanted)].groupby("day")[["tested", "positive"]].sum()
                 .reindex(day_index, fill_value=0.0))
    daily = pd.DataFrame({"day": day_index, "cases": case_days.to_numpy().astype(np.int64),
                          "tested": test_days["tested"].to_numpy(), "positive": test_days["positive"].to_numpy()})
    return PlaceHistory(kind, key, title, cells, daily, estimated, events, zone)


def _as_date(value) -> date:
    return pd.Timestamp(value).date()
