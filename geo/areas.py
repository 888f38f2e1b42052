"""Area polygons (GeoJSON in, shapely out) and point-in-area lookups."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import shape


@dataclass(frozen=True, slots=True)
class AreaShape:
    area_id: str
    name: str
    kind: str
    population: int | None
    geometry: shapely.Geometry


def geometry_from_geojson(geometry: dict | str, *, repair: bool = False) -> shapely.Geometry:
    """Parse a GeoJSON geometry (dict or text); raise ValueError if it is not a valid (multi)polygon.

    With ``repair`` an invalid polygon is repaired (see ``repaired_polygonal``) instead of refused:
    ingest does that, so what is stored is always valid and readers parse it strictly.
    """
    if isinstance(geometry, str):
        geometry = json.loads(geometry)
    geom = shape(geometry)
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"expected a Polygon or MultiPolygon, got {geom.geom_type}")
    if geom.is_empty:
        raise ValueError("polygon is empty")
    if not geom.is_valid:
        if not repair:
            raise ValueError("polygon is self-intersecting or has degenerate rings")
        geom = repaired_polygonal(geom)
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ValueError("coordinates outside lng -180..180 / lat -90..90 (GeoJSON is lng,lat)")
    return geom


def repaired_polygonal(geometry: shapely.Geometry) -> shapely.Geometry:
    """The geometry itself if valid, else its repaired polygonal part, covering the same ground.

    Published boundary files are not always valid: NYC's 2021 precinct layer has rings of fewer than
    four distinct points in precincts 61 and 113 (JFK airport) and a self-touching ring in 61.
    Refusing such an area would leave the ground it covers in no area at all; shapely.make_valid
    keeps it (the line and point debris make_valid can leave beside the polygons is dropped).
    """
    if geometry.is_valid:
        return geometry
    fixed = shapely.make_valid(geometry)
    if fixed.geom_type == "GeometryCollection":
        fixed = shapely.union_all([g for g in fixed.geoms if g.geom_type in ("Polygon", "MultiPolygon")])
    if fixed.is_empty or fixed.geom_type not in ("Polygon", "MultiPolygon"):
        raise ValueError("the geometry holds no polygon once repaired")
    return fixed


def geometry_to_geojson(geom: shapely.Geometry) -> dict:
    return shapely.geometry.mapping(geom)


class PointLocator:
    """Finds which of a set of polygons contains each point (vectorised, STRtree-backed)."""

    def __init__(self, areas: Sequence[AreaShape]):
        self._ids = np.array([a.area_id for a in areas], dtype=object)
        self._geoms = np.array([a.geometry for a in areas], dtype=object)
        self._tree = shapely.STRtree(self._geoms) if len(areas) else None

    def locate(self, lat: Sequence[float], lng: Sequence[float]) -> np.ndarray:
        """Area id for every point (None where no area contains it)."""
        out = np.full(len(lat), None, dtype=object)
        if self._tree is None or len(lat) == 0:
            return out
        points = shapely.points(np.asarray(lng, dtype=float), np.asarray(lat, dtype=float))
        point_idx, area_idx = self._tree.query(points, predicate="intersects")
        out[point_idx] = self._ids[area_idx]  # a point on a shared border goes to one of its areas
        return out

    def locate_one(self, lat: float, lng: float) -> str | None:
        return self.locate([lat], [lng])[0]


def contains_lat_lng(geom: shapely.Geometry | None, lat: float, lng: float) -> bool:
    return geom is None or bool(shapely.intersects_xy(geom, lng, lat))


def outer_rings_latlng(geom: shapely.Geometry) -> list[list[tuple[float, float]]]:
    """The exterior ring of each polygon of a (multi)polygon as closed (lat, lng) rings (CAP's order;
    shapely and GeoJSON hold lng, lat). Holes are left out: CAP polygons cannot express them."""
    polygons = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
    return [[(float(lat), float(lng)) for lng, lat in p.exterior.coords] for p in polygons]
