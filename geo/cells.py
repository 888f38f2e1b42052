"""H3 helpers with names that say what converts to what (h3 4.x)."""
from __future__ import annotations

from collections.abc import Iterable

import h3


def latlng_to_cell(lat: float, lng: float, resolution: int) -> str:
    return h3.latlng_to_cell(lat, lng, resolution)


def is_valid_cell(cell: object) -> bool:
    return isinstance(cell, str) and h3.is_valid_cell(cell)


def cell_to_boundary_lnglat(cell: str) -> list[tuple[float, float]]:
    """Closed ring of (lng, lat) pairs, GeoJSON order."""
    ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
    return ring + ring[:1]


def cells_to_geojson(cells: Iterable[str], properties: dict[str, dict] | None = None) -> dict:
    """A FeatureCollection with one hexagon polygon per cell."""
    properties = properties or {}
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": c, "properties": {"cell": c, **properties.get(c, {})},
         "geometry": {"type": "Polygon", "coordinates": [cell_to_boundary_lnglat(c)]}}
        for c in cells]}
