"""Case, test and population counts on the H3 grid, with parent/child roll-ups.

Method: H3 hierarchical hexagonal grid (Uber, h3geo.org; h3-py 4.x API). Counts are
exact tallies per cell for a closed day window. Population is spread from source
areas (e.g. ZIP/MODZCTA polygons with census denominators) to cells by areal
weighting: each cell receives population x (area of cell ∩ area) / (area of the area),
the classic areal-interpolation estimator (Goodchild & Lam 1980), which assumes people
are spread evenly within each source area.

Areas are measured on a Lambert cylindrical equal-area projection of the authalic sphere
(x = R·lng·cos φ0, y = R·sin(lat)/cos φ0). Why this choice rather than a UTM/local CRS:
an equal-area map preserves every area ratio exactly, so the shares do not depend on the
projection's centre and need no CRS database (pyproj) at run time; choosing φ0 at the
area's own latitude keeps the shapes nearly true, so edges that are straight in lng/lat
(GeoJSON) and H3 edges stay nearly straight. A conformal UTM would distort areas by up
to ~0.1 % across a zone. Shares are finally renormalised to sum to exactly one per
area so the total population is conserved whatever tiny slivers the H3 "overlap" cover
and the planar geometry disagree on.

Cell ids travel as lower-case hex strings (h3's default API) in and out of this
module; inside, they are uint64 so that parents can be taken with vectorised bit
arithmetic on the documented H3 index layout (resolution in bits 52-55, one 3-bit digit
per resolution below, unused digits set to 7).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from itertools import repeat

import h3
import h3.api.basic_int as h3_int
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

# Resolution 7 (~5.2 km² cells) is the coarsest still at neighbourhood scale; 10
# (~0.015 km², about a city block) is the finest that does not single out households.
MIN_RESOLUTION = 7
MAX_RESOLUTION = 10

PER_100K = 100_000.0
# Authalic (equal-area) radius of the WGS84 ellipsoid, metres.
AUTHALIC_EARTH_RADIUS_M = 6_371_007.2
# The H3 "overlap" cover and the planar intersections agree to ~1e-12 on real boundaries
# (NYC MODZCTA); a gap this large means broken geometry, not a rounding sliver.
MAX_UNCOVERED_SHARE = 1e-3

_H3_RES_SHIFT = np.uint64(52)
_H3_RES_MASK = np.uint64(0xF) << _H3_RES_SHIFT
_H3_DIGIT_BITS = 3
_H3_MAX_RES = 15

DateLike = str | dt.date | dt.datetime | pd.Timestamp


# --------------------------------------------------------------------------- resolution


def validate_resolution(resolution: int) -> int:
    """Return ``resolution`` if the map supports it (7-10), else raise ValueError."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
        raise ValueError(f"resolution must be an integer in {MIN_RESOLUTION}..{MAX_RESOLUTION}, got {resolution!r}")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution must be in {MIN_RESOLUTION}..{MAX_RESOLUTION}, got {resolution}")
    return int(resolution)


# ------------------------------------------------------------------ id conversions (edges)


def cells_to_ints(cells: Iterable[str]) -> np.ndarray:
    """Hex cell ids -> uint64 array; raises ValueError on any invalid id."""
    codes, uniques = pd.factorize(pd.Series(list(cells), dtype=object), use_na_sentinel=True)
    if np.any(codes < 0):
        raise ValueError("cell ids must not be missing")
    unique_ints = np.empty(len(uniques), dtype=np.uint64)
    for i, cell in enumerate(uniques):
        if not isinstance(cell, str) or not h3.is_valid_cell(cell):
            raise ValueError(f"not a valid H3 cell id: {cell!r}")
        unique_ints[i] = h3.str_to_int(cell)
    return unique_ints[codes]


def ints_to_cells(cells: np.ndarray) -> list[str]:
    """uint64 cell ids -> hex strings (call on unique ids: it loops in Python)."""
    return [h3.int_to_str(int(cell)) for cell in cells]


def latlngs_to_cell_ints(lat: np.ndarray, lng: np.ndarray, resolution: int) -> np.ndarray:
    """Points -> uint64 cells at ``resolution``.

    h3-py 4.5 has no array form of latlng_to_cell, so the C call is made once per
    *distinct* point (geocoded cases share addresses) through the integer API, which
    skips building hex strings.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lng = np.asarray(lng, dtype=np.float64)
    bad = ~(np.isfinite(lat) & np.isfinite(lng) & (np.abs(lat) <= 90.0) & (np.abs(lng) <= 180.0))
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{int(bad.sum())} row(s) have a missing or out-of-range lat/lng (first at position {first})")
    codes, unique_points = pd.factorize(lat + 1j * lng)
    unique_cells = np.fromiter(
        map(h3_int.latlng_to_cell, unique_points.real.tolist(), unique_points.imag.tolist(), repeat(resolution)),
        dtype=np.uint64,
        count=len(unique_points),
    )
    return unique_cells[codes]


def cell_int_resolutions(cells: np.ndarray) -> np.ndarray:
    """Resolution of each uint64 cell id."""
    return ((np.asarray(cells, dtype=np.uint64) & _H3_RES_MASK) >> _H3_RES_SHIFT).astype(np.int64)


def parent_cell_ints(cells: np.ndarray, resolution: int) -> np.ndarray:
    """Vectorised ``cell_to_parent`` on uint64 ids (every cell must be at ``resolution`` or finer)."""
    cells = np.asarray(cells, dtype=np.uint64)
    if cells.size and cell_int_resolutions(cells).min() < resolution:
        raise ValueError(f"cannot take a parent at resolution {resolution} of a coarser cell")
    unused_digits = np.uint64((1 << ((_H3_MAX_RES - resolution) * _H3_DIGIT_BITS)) - 1)
    with_res = (cells & ~_H3_RES_MASK) | (np.uint64(resolution) << _H3_RES_SHIFT)
    return with_res | unused_digits


# -------------------------------------------------------------------------- aggregation


def aggregate_cases_to_cells(
    cases: pd.DataFrame,
    start: DateLike,
    end: DateLike,
    resolution: int = 9,
    date_column: str = "reported_date",
) -> pd.DataFrame:
    """Cases per H3 cell reported in [start, end] (whole days, both ends included).

    ``cases`` has ``date_column`` and either ``lat``/``lng`` or ``h3_cell`` (a cell at
    ``resolution`` or finer); where both exist, ``h3_cell`` wins and ``lat``/``lng``
    fill rows without one. Returns DataFrame[cases] indexed by ``h3_cell``, sorted, cells
    without cases absent. Rows that cannot be placed raise ValueError (never dropped).
    """
    resolution = validate_resolution(resolution)
    in_window = _day_window_mask(cases, date_column, start, end)
    cells = _row_cell_ints(cases.loc[in_window], resolution)
    unique_cells, counts = np.unique(cells, return_counts=True)
    return pd.DataFrame(
        {"cases": counts.astype(np.int64)},
        index=pd.Index(ints_to_cells(unique_cells), name="h3_cell"),
    )


def aggregate_tests_to_cells(
    tests: pd.DataFrame,
    start: DateLike,
    end: DateLike,
    resolution: int = 9,
    date_column: str = "test_date",
    result_column: str = "positive",
) -> pd.DataFrame:
    """Tests, positives and positivity per H3 cell in [start, end] (whole days).

    ``result_column`` holds booleans (True = positive). Located like
    :func:`aggregate_cases_to_cells`. Returns DataFrame[tests, positives, positivity].
    """
    resolution = validate_resolution(resolution)
    in_window = _day_window_mask(tests, date_column, start, end)
    window = tests.loc[in_window]
    results = window[result_column]
    if results.isna().any():
        raise ValueError(f"{int(results.isna().sum())} test row(s) in the window have no {result_column!r}")
    cells = _row_cell_ints(window, resolution)
    unique_cells, codes = np.unique(cells, return_inverse=True)
    n_tests = np.bincount(codes, minlength=unique_cells.size).astype(np.int64)
    n_positive = np.bincount(codes, weights=results.to_numpy(dtype=bool), minlength=unique_cells.size).astype(np.int64)
    return pd.DataFrame(
        {"tests": n_tests, "positives": n_positive, "positivity": n_positive / n_tests},
        index=pd.Index(ints_to_cells(unique_cells), name="h3_cell"),
    )


def _day_window_mask(frame: pd.DataFrame, date_column: str, start: DateLike, end: DateLike) -> np.ndarray:
    if date_column not in frame.columns:
        raise ValueError(f"missing column {date_column!r}")
    start_day = pd.Timestamp(start).normalize()
    end_day = pd.Timestamp(end).normalize()
    if end_day < start_day:
        raise ValueError(f"end {end_day.date()} is before start {start_day.date()}")
    days = _to_days(frame[date_column])
    if days.dt.tz is not None:
        # Compare calendar days in the data's own zone.
        start_day = start_day.tz_localize(days.dt.tz) if start_day.tz is None else start_day.tz_convert(days.dt.tz)
        end_day = end_day.tz_localize(days.dt.tz) if end_day.tz is None else end_day.tz_convert(days.dt.tz)
    if days.isna().any():
        raise ValueError(f"{int(days.isna().sum())} row(s) have no {date_column!r}")
    return ((days >= start_day) & (days <= end_day)).to_numpy()


def _to_days(values: pd.Series) -> pd.Series:
    """Datetimes, dates or ISO-8601 strings -> midnight timestamps."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.normalize()
    return pd.to_datetime(values, format="ISO8601").dt.normalize()


def _row_cell_ints(frame: pd.DataFrame, resolution: int) -> np.ndarray:
    """uint64 cell at ``resolution`` for every row, from h3_cell or lat/lng."""
    cells = np.zeros(len(frame), dtype=np.uint64)
    located = np.zeros(len(frame), dtype=bool)
    if "h3_cell" in frame.columns:
        given = frame["h3_cell"].notna().to_numpy()
        if given.any():
            fine_cells = cells_to_ints(frame["h3_cell"].to_numpy()[given])
            if cell_int_resolutions(fine_cells).min() < resolution:
                raise ValueError(f"h3_cell values coarser than resolution {resolution} cannot be placed in one cell")
            cells[given] = parent_cell_ints(fine_cells, resolution)
            located = given
    missing = ~located
    if missing.any():
        if not {"lat", "lng"} <= set(frame.columns):
            raise ValueError(f"{int(missing.sum())} row(s) have no h3_cell and there are no lat/lng columns")
        cells[missing] = latlngs_to_cell_ints(
            frame["lat"].to_numpy(dtype=np.float64)[missing],
            frame["lng"].to_numpy(dtype=np.float64)[missing],
            resolution,
        )
    return cells


# ------------------------------------------------------------------------- population


def cell_population(areas: Iterable[tuple[BaseGeometry, float]], resolution: int) -> pd.Series:
    """Spread each area's population over the H3 cells it covers, by area share.

    ``areas``: (shapely Polygon/MultiPolygon in GeoJSON lng/lat order, population).
    A cell touched by several areas sums their contributions. Returns Series
    ``population`` indexed by ``h3_cell`` (sorted); the total equals the input total.
    """
    resolution = validate_resolution(resolution)
    boundaries: dict[str, np.ndarray] = {}
    cell_parts: list[list[str]] = []
    population_parts: list[np.ndarray] = []
    for position, (area, population) in enumerate(areas):
        if not np.isfinite(population) or population < 0:
            raise ValueError(f"area {position}: population must be a finite number >= 0, got {population!r}")
        area = _valid_polygonal(area, position)
        # Each part of a MultiPolygon is covered separately, so a cell can come back twice.
        cells = list(dict.fromkeys(
            h3.h3shape_to_cells_experimental(h3.geo_to_h3shape(area), resolution, contain="overlap")
        ))
        if not cells:
            raise ValueError(f"area {position}: no H3 cell overlaps it at resolution {resolution}")
        shares = _cell_shares_of_area(area, cells, boundaries, position)
        cell_parts.append(cells)
        population_parts.append(float(population) * shares)
    if not cell_parts:
        return pd.Series([], index=pd.Index([], name="h3_cell", dtype=object), name="population", dtype=np.float64)
    contributions = pd.Series(
        np.concatenate(population_parts),
        index=pd.Index(np.concatenate([np.asarray(c, dtype=object) for c in cell_parts]), name="h3_cell"),
    )
    result = contributions.groupby(level=0, sort=True).sum()
    result.name = "population"
    return result


def _valid_polygonal(area: BaseGeometry, position: int) -> BaseGeometry:
    """The area itself, or its repaired polygonal part if it is self-intersecting.

    Published boundary files do contain such rings (NYC MODZCTA 10032 does); GEOS
    cannot intersect them, and make_valid keeps the same covered ground.
    """
    if area.geom_type not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"area {position}: expected a Polygon or MultiPolygon, got {area.geom_type}")
    if not area.is_valid:
        area = shapely.make_valid(area)
        if area.geom_type == "GeometryCollection":
            polygons = [part for part in area.geoms if part.geom_type in ("Polygon", "MultiPolygon")]
            area = shapely.union_all(polygons)
    if area.is_empty or area.area == 0:
        raise ValueError(f"area {position}: polygon is empty")
    return area


def _cell_shares_of_area(
    area: BaseGeometry, cells: list[str], boundaries: dict[str, np.ndarray], position: int
) -> np.ndarray:
    """Share of ``area`` inside each cell, summing to exactly 1."""
    standard_parallel = np.radians(area.centroid.y)
    for cell in cells:
        if cell not in boundaries:
            # cell_to_boundary gives (lat, lng); shapely wants x = lng, y = lat.
            boundaries[cell] = np.asarray(h3.cell_to_boundary(cell), dtype=np.float64)[:, ::-1]
    rings = [boundaries[cell] for cell in cells]
    cell_polygons = shapely.polygons(rings)

    def to_equal_area(coords: np.ndarray) -> np.ndarray:
        return _cylindrical_equal_area(coords, standard_parallel)

    projected_area = shapely.transform(area, to_equal_area)
    projected_cells = shapely.transform(cell_polygons, to_equal_area)
    overlap = shapely.area(shapely.intersection(projected_cells, projected_area))
    total = projected_area.area
    covered = overlap.sum() / total
    if abs(covered - 1.0) > MAX_UNCOVERED_SHARE:
        raise ValueError(
            f"area {position}: its H3 cells cover {covered:.4%} of it instead of 100%; check the geometry"
        )
    return overlap / overlap.sum()


def _cylindrical_equal_area(lnglat_deg: np.ndarray, standard_parallel_rad: float) -> np.ndarray:
    """(lng, lat) degrees -> metres on Lambert's cylindrical equal-area map."""
    lng = np.radians(lnglat_deg[:, 0])
    lat = np.radians(lnglat_deg[:, 1])
    cos_sp = np.cos(standard_parallel_rad)
    return np.column_stack(
        (AUTHALIC_EARTH_RADIUS_M * lng * cos_sp, AUTHALIC_EARTH_RADIUS_M * np.sin(lat) / cos_sp)
    )


def rates_per_100k(counts: pd.Series, population: pd.Series, min_population: float = 0.0) -> pd.Series:
    """counts / population x 100,000 per cell; NaN where population is unknown or <= ``min_population``.

    ``min_population`` lets a caller blank cells whose denominator is too small for a
    stable rate (a cell holding 3 people turns one case into 33,333 per 100k).
    """
    denominators = population.reindex(counts.index).astype(np.float64)
    known = denominators > max(min_population, 0.0)
    rates = pd.Series(np.nan, index=counts.index, name="rate_per_100k", dtype=np.float64)
    rates[known] = counts[known].astype(np.float64) / denominators[known] * PER_100K
    return rates


# --------------------------------------------------------------------------- hierarchy


def rollup_to_parent(counts: pd.Series, resolution: int) -> pd.Series:
    """Sum values of finer cells into their parents at ``resolution`` (7-10)."""
    resolution = validate_resolution(resolution)
    cell_ints = cells_to_ints(counts.index)
    parents = parent_cell_ints(cell_ints, resolution)
    unique_parents, codes = np.unique(parents, return_inverse=True)
    summed = pd.Series(counts.to_numpy()).groupby(codes).sum()
    return pd.Series(
        summed.to_numpy(),
        index=pd.Index(ints_to_cells(unique_parents), name="h3_cell"),
        name=counts.name,
    )


def split_to_children(values: pd.Series, resolution: int, weights: pd.Series | None = None) -> pd.Series:
    """Share each parent's value among its children at ``resolution`` (7-10).

    With ``weights`` (per child cell, e.g. child population) a child gets
    value x weight / sum of its siblings' weights; children without a weight count as 0,
    and a parent whose children all weigh 0 falls back to an equal split (so the value is
    never lost). Without weights each child gets an equal share (a pentagon has fewer children).
    """
    resolution = validate_resolution(resolution)
    parent_ints = cells_to_ints(values.index)
    if parent_ints.size and cell_int_resolutions(parent_ints).max() >= resolution:
        raise ValueError(f"every cell must be coarser than resolution {resolution} to split into children")
    parent_ids: list[str] = []
    child_ids: list[str] = []
    for parent in values.index:
        children = h3.cell_to_children(parent, resolution)
        parent_ids.extend(repeat(parent, len(children)))
        child_ids.extend(children)
    parent_index = pd.Index(parent_ids, dtype=object)
    child_index = pd.Index(child_ids, dtype=object, name="h3_cell")
    if weights is None:
        child_weights = np.ones(len(child_ids))
    else:
        child_weights = weights.reindex(child_index).fillna(0.0).to_numpy(dtype=np.float64)
        if np.any(child_weights < 0):
            raise ValueError("weights must be >= 0")
    sibling_totals = pd.Series(child_weights).groupby(parent_index.to_numpy()).transform("sum").to_numpy()
    sibling_counts = pd.Series(child_weights).groupby(parent_index.to_numpy()).transform("size").to_numpy()
    weighted = sibling_totals > 0
    shares = np.where(weighted, child_weights / np.where(weighted, sibling_totals, 1.0), 1.0 / sibling_counts)
    parent_values = values.reindex(parent_index).to_numpy(dtype=np.float64)
    return pd.Series(parent_values * shares, index=child_index, name=values.name)
