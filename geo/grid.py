"""Counts, tests and residents on one H3 grid: the cell-level inputs the cluster job and the cluster
page share, so a number on the map, in a history panel and in a zone decision is computed one way.

Stored cells finer than the grid are rolled up to their parents (bit arithmetic on the H3 index);
cells coarser than it cannot be split, so those cases are placed from their coordinates instead.
Residents per cell are spread from the populated areas by area share (geo.population, areal
weighting); test reports that name only an area are spread over that area's cells the same way,
which assumes tests, like people, are spread evenly within the area: such figures are estimates,
and are flagged so wherever they are shown.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from shapely.geometry import shape

from geo.cell_ints import cell_int_resolutions, cells_to_ints, ints_to_cells, latlngs_to_cell_ints, parent_cell_ints
from geo.population import areas_to_cell_population


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


def as_dates(days: pd.Series) -> pd.Series:
    """Days (dates, timestamps or datetime64) as datetime.date objects, the grid's day type. Through
    numpy's day unit: a third of the time of pandas' ``.dt.date`` on a year of cells."""
    return pd.Series(pd.to_datetime(days).to_numpy().astype("datetime64[D]").astype(object), index=days.index,
                     name=days.name)


def cases_on_grid(by_cell_day: pd.DataFrame, points_by_day: Callable[[], pd.DataFrame], resolution: int
                  ) -> tuple[pd.DataFrame, int]:
    """(h3_cell, day, cases) on the grid, and the number of cases that could not be placed.

    ``by_cell_day``: h3_cell, day, cases at the stored cells. ``points_by_day`` is called only when
    some stored cell is coarser than the grid; it returns lat, lng, h3_cell, day, cases.
    """
    frame = by_cell_day.assign(h3_cell=cells_at_resolution(by_cell_day["h3_cell"], resolution))
    unplaced = 0
    if frame["h3_cell"].isna().any():
        points = points_by_day()
        has_point = points["lat"].notna().to_numpy()
        cells = pd.Series([None] * len(points), dtype=object)
        if has_point.any():
            cells[has_point] = ints_to_cells(latlngs_to_cell_ints(
                points.loc[has_point, "lat"].to_numpy(), points.loc[has_point, "lng"].to_numpy(), resolution))
        from_cell = cells_at_resolution(points["h3_cell"], resolution)
        cells[~has_point] = from_cell[~has_point]
        points = points.assign(h3_cell=cells.to_numpy())
        unplaced = int(points.loc[points["h3_cell"].isna(), "cases"].sum())
        frame = points[["h3_cell", "day", "cases"]]
    frame = frame.dropna(subset=["h3_cell"])
    out = frame.groupby(["h3_cell", "day"], as_index=False)["cases"].sum()
    out["day"] = as_dates(out["day"])
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


_grids: dict[tuple[str, int], PopulationGrid] = {}
_grid_lock = threading.Lock()


def population_grid(areas: Callable[[], pd.DataFrame], resolution: int, city_population: int,
                    version: str, *, stored_shares: Callable[[], pd.DataFrame] | None = None,
                    keep_shares: Callable[[pd.DataFrame], None] | None = None) -> PopulationGrid:
    """Residents per cell from the populated areas (area_id, population, geometry as GeoJSON text).

    Spreading polygons onto cells is the slow part, so the grid is kept until ``version`` (the
    areas' version in the store) changes; ``areas`` is called only to build it. ``stored_shares``
    gives the shares kept from an earlier spreading of these same areas (area_id, h3_cell, share, in
    area then cell order), used instead of spreading again when they cover every area;
    ``keep_shares`` is handed the shares after a spreading.
    """
    key = (version, resolution)
    with _grid_lock:
        if key in _grids:
            return _grids[key]
    frame = areas()
    kept = stored_shares() if stored_shares is not None else None
    if kept is not None and len(kept) and set(kept["area_id"]) == set(frame["area_id"]):
        shares = kept.reset_index(drop=True)
    else:
        # Spreading 1 gives each area's shares themselves, which also serve areas whose population is 0
        # (their tests still need a place).
        share_frames = []
        for area in frame.itertuples(index=False):
            spread = areas_to_cell_population([(shape(json.loads(area.geometry)), 1.0)], resolution)
            share_frames.append(pd.DataFrame({"area_id": area.area_id, "h3_cell": spread.index,
                                              "share": spread.to_numpy()}))
        shares = (pd.concat(share_frames, ignore_index=True) if share_frames
                  else pd.DataFrame({"area_id": [], "h3_cell": [], "share": []}))
        if keep_shares is not None and len(shares):
            keep_shares(shares)
    # Residents per cell: each area's population times its shares, summed per cell in one order (areas,
    # then cells), so a grid read back from kept shares is the spread one to the last bit.
    people = frame.set_index("area_id")["population"].astype(np.float64)
    weighted = shares["share"].to_numpy(dtype=np.float64) * people.reindex(shares["area_id"]).to_numpy()
    population = pd.Series(weighted, index=pd.Index(shares["h3_cell"].to_numpy(dtype=object), name="h3_cell")
                           ).groupby(level=0).sum()
    population.name = "population"
    grid = PopulationGrid(resolution, population, shares, city_population, version)
    with _grid_lock:
        _grids.clear()  # one city per process: keep the newest
        _grids[key] = grid
    return grid


def spread_tests_to_grid(reports: pd.DataFrame, grid: PopulationGrid) -> tuple[pd.DataFrame, bool]:
    """(h3_cell, day, tested, positive) on the grid, and whether any figure was spread from an area.

    ``reports``: day, h3_cell, area_id, tested, positive. Reports per cell are rolled up to the
    grid; reports per area are spread over the area's cells by area share (fractional: an estimate).
    """
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
    out["day"] = as_dates(out["day"])
    return out, estimated
