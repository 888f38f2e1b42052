"""The area a set of H3 cells covers, as few rings as a map can fill: one per connected piece, no holes.

A city map coloured by class draws every cell of a class; one hexagon ring per cell sends and draws
each shared edge twice and seven vertices per cell. Dissolving the class's cells into the outline of
each connected piece (h3's cells_to_h3shape) keeps only the outer edges: about half the vertices on a
1M-person city (bench/pages.py).

Plotly fills each ring of a trace on its own, and MapLibre (the tile canvas) turns a broken line into
one polygon per ring: neither knows a hole, so a hole's ring would be filled over the piece instead of
cutting it out. A piece with holes is therefore cut by a north-south line through each hole into parts
without any; each part's ring is filled on its own and together they cover exactly the piece.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

import h3
from shapely import constrained_delaunay_triangles, get_parts
from shapely.geometry import LineString, MultiLineString, Polygon
from shapely.ops import split

from bounded_cache import BoundedCache

# One entry per colour class and layer of the maps being looked at (a few pages, a few measures).
MAX_CACHED_SETS = 64

_fills: BoundedCache[list] = BoundedCache(MAX_CACHED_SETS)


def cells_to_fill_rings_lnglat(cells: Iterable[str]) -> list[list[tuple[float, float]]]:
    """Closed (lng, lat) rings, none with a hole, whose fills together cover exactly the cells' area.

    Cached per set of cells (the same classes come back on every refresh): the key is the set itself, so
    a hit gives a caller the outline of exactly the cells it passed in. Callers must not modify the rings.
    """
    unique = sorted(set(cells))
    if not unique:
        return []
    key = hashlib.blake2b("\n".join(unique).encode(), digest_size=20).digest()
    hit = _fills.get(key)
    if hit is not None:
        return hit
    shape = h3.cells_to_h3shape(unique)
    pieces = shape.polys if hasattr(shape, "polys") else [shape]  # LatLngMultiPoly or LatLngPoly
    rings: list[list[tuple[float, float]]] = []
    for piece in pieces:
        outer = _lnglat(piece.outer)
        if not piece.holes:
            rings.append(outer)
            continue
        rings.extend(_without_holes(Polygon(outer, [_lnglat(hole) for hole in piece.holes])))
    _fills.put(key, rings)
    return rings


def _without_holes(polygon: Polygon) -> list[list[tuple[float, float]]]:
    """The polygon cut by a north-south line through each hole: the parts' exterior rings."""
    south, north = polygon.bounds[1] - 1.0, polygon.bounds[3] + 1.0
    cuts = [hole_point.x for hole_point in (Polygon(h).representative_point() for h in polygon.interiors)]
    parts = get_parts(split(polygon, MultiLineString([LineString([(x, south), (x, north)]) for x in cuts])))
    if any(part.interiors for part in parts):
        # Each hole has its own line, so no part should keep one; should the cut ever miss, the exact
        # fallback is the polygon's triangles (more vertices, never a filled hole).
        parts = get_parts(constrained_delaunay_triangles(polygon))
    return [[(float(x), float(y)) for x, y in part.exterior.coords] for part in parts]


def _lnglat(latlngs) -> list[tuple[float, float]]:
    """h3's (lat, lng) vertices -> a closed ring of (lng, lat)."""
    ring = [(float(lng), float(lat)) for lat, lng in latlngs]
    return ring + ring[:1]
