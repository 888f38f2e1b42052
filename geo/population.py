"""Area populations spread onto the H3 grid by areal weighting.

Population is spread from source areas (e.g. ZIP/MODZCTA polygons with census
denominators) to cells by areal weighting: each cell receives population x (area of
cell ∩ area) / (area of the area), the classic areal-interpolation estimator (Goodchild &
Lam 1980), which assumes people are spread evenly within each source area.

Areas are measured on a Lambert cylindrical equal-area projection of the authalic sphere
(geo.projection.lnglats_to_equal_area_xy_m, which says why that projection), with the
standard parallel at each area's own latitude. Shares are finally renormalised to sum
to exactly one per area so the total population is conserved whatever tiny slivers the
H3 "overlap" cover and the planar geometry disagree on.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo.cells import cell_to_boundary_lnglat, geometry_to_overlapping_cells, validate_resolution
from geo.projection import lnglats_to_equal_area_xy_m

# The H3 "overlap" cover and the planar intersections agree to ~1e-12 on real boundaries
# (NYC MODZCTA); a gap this large means broken geometry, not a rounding sliver.
MAX_UNCOVERED_SHARE = 1e-3


def areas_to_cell_population(areas: Iterable[tuple[BaseGeometry, float]], resolution: int) -> pd.Series:
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
        cells = geometry_to_overlapping_cells(area, resolution)
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
            boundaries[cell] = np.asarray(cell_to_boundary_lnglat(cell), dtype=np.float64)
    rings = [boundaries[cell] for cell in cells]
    cell_polygons = shapely.polygons(rings)

    def to_equal_area(coords: np.ndarray) -> np.ndarray:
        return lnglats_to_equal_area_xy_m(coords, standard_parallel)

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
