"""H3 cells as hex-string ids, one cell or a small collection at a time (h3 4.x).

Names say what converts to what (h3-py style), lat/lng order is in the name, and every
function that returns coordinates for drawing says ``lnglat`` (GeoJSON order). Array work
on many ids (parents, point placement) is in geo.cell_ints; neighbour graphs and buffers
are in geo.neighbours and geo.buffers.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import h3
import numpy as np
from shapely.geometry.base import BaseGeometry

# Resolution 7 (~5.2 km² cells) is the coarsest still at neighbourhood scale; 10
# (~0.015 km², about a city block) is the finest that does not single out households.
MIN_RESOLUTION = 7
MAX_RESOLUTION = 10


def validate_resolution(resolution: int) -> int:
    """Return ``resolution`` if the map supports it (7-10), else raise ValueError."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
        raise ValueError(f"resolution must be an integer in {MIN_RESOLUTION}..{MAX_RESOLUTION}, got {resolution!r}")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution must be in {MIN_RESOLUTION}..{MAX_RESOLUTION}, got {resolution}")
    return int(resolution)


def latlng_to_cell(lat: float, lng: float, resolution: int) -> str:
    return h3.latlng_to_cell(lat, lng, resolution)


def is_valid_cell(cell: object) -> bool:
    """True for a hex id of an H3 cell; False for anything else, never an exception."""
    try:
        return isinstance(cell, str) and h3.is_valid_cell(cell)
    except OverflowError:  # h3 4.5 raises instead of answering False for e.g. "-1"
        return False


def cell_resolution(cell: str) -> int:
    return h3.get_resolution(cell)


def cell_to_latlng(cell: str) -> tuple[float, float]:
    """Centre of the cell as (lat, lng)."""
    return h3.cell_to_latlng(cell)


def cells_to_latlngs(cells: Iterable[str]) -> np.ndarray:
    """(n x 2) lat, lng of each cell's centre (a 0 x 2 array for no cells)."""
    return np.array([h3.cell_to_latlng(c) for c in cells], dtype=np.float64).reshape(-1, 2)


def cell_to_children(cell: str, resolution: int) -> list[str]:
    """The cell's children at the finer ``resolution`` (a pentagon has fewer)."""
    return h3.cell_to_children(cell, resolution)


def average_cell_edge_m(resolution: int) -> float:
    """Average hexagon edge length at ``resolution``, metres (h3's published table)."""
    return h3.average_hexagon_edge_length(resolution, unit="m")


def cell_spacing_m(resolution: int) -> float:
    """Average distance between the centres of neighbouring cells, metres.

    Neighbouring cell centres are sqrt(3) edge lengths apart.
    """
    return math.sqrt(3.0) * average_cell_edge_m(resolution)


def cell_to_boundary_lnglat(cell: str) -> list[tuple[float, float]]:
    """Closed ring of (lng, lat) pairs, GeoJSON order."""
    return _closed_lnglat(h3.cell_to_boundary(cell))


def cells_to_outline_rings_lnglat(cells: Iterable[str]) -> list[list[tuple[float, float]]]:
    """Outer edges and holes of the area a set of cells covers, as closed (lng, lat) rings.

    Shared edges between the cells are dissolved: one ring per outer edge of each
    connected piece, then one per hole in it.
    """
    shape = h3.cells_to_h3shape(list(cells))
    polygons = shape.polys if hasattr(shape, "polys") else [shape]  # LatLngMultiPoly or LatLngPoly
    return [_closed_lnglat(ring) for poly in polygons for ring in (poly.outer, *poly.holes)]


def geometry_to_overlapping_cells(geometry: BaseGeometry, resolution: int) -> list[str]:
    """Every cell at ``resolution`` that overlaps a shapely (multi)polygon in lng/lat, each once.

    "Overlap" containment (not h3's default centre-in-polygon) so that the cells cover the
    whole polygon, as areal weighting needs; each part of a MultiPolygon is covered
    separately, so a cell can come back twice from h3 and is kept once, in h3's order.
    """
    return list(dict.fromkeys(
        h3.h3shape_to_cells_experimental(h3.geo_to_h3shape(geometry), resolution, contain="overlap")
    ))


def cells_to_geojson(cells: Iterable[str], properties: dict[str, dict] | None = None) -> dict:
    """A FeatureCollection with one hexagon polygon per cell."""
    properties = properties or {}
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": c, "properties": {"cell": c, **properties.get(c, {})},
         "geometry": {"type": "Polygon", "coordinates": [cell_to_boundary_lnglat(c)]}}
        for c in cells]}


def _closed_lnglat(latlngs) -> list[tuple[float, float]]:
    """h3's (lat, lng) vertices -> a closed ring of (lng, lat)."""
    ring = [(lng, lat) for lat, lng in latlngs]
    return ring + ring[:1]


def cells_to_outer_rings_latlng(cells: Iterable[str]) -> list[list[tuple[float, float]]]:
    """The outer edge of each connected piece of the area the cells cover, as closed (lat, lng) rings.

    For CAP 1.2 polygons, which are "lat,lon" and cannot express holes: a ring-shaped zone is
    announced by its outer edge (it then also covers what its hole holds, a stricter zone).
    """
    shape = h3.cells_to_h3shape(list(cells))
    polygons = shape.polys if hasattr(shape, "polys") else [shape]
    rings = []
    for poly in polygons:
        ring = [(float(lat), float(lng)) for lat, lng in poly.outer]
        rings.append(ring + ring[:1])
    return rings
