"""Police precincts: which precinct holds each point, and how much of a precinct a set of H3 cells covers.

Pure functions on shapely geometries (no store): the address check asks for one point, the indicators
job for every located case of four months at once, so the lookup is vectorised (one STRtree query for
all points). A point on the border of two precincts, or in a sliver where a published file's polygons
overlap (NYC's 2021 layer has two such pairs), belongs to the precinct that comes first by id, so the
answer never depends on the order of the file.

Published precinct files are not always valid polygons (NYC's 2021 layer: precincts 61 and 113, JFK);
such a precinct is repaired, keeping the ground it covers (geo.areas.repaired_polygonal), as area
ingest does.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import shapely

from geo.areas import AreaShape, geometry_from_geojson, repaired_polygonal
from geo.cells import cell_to_boundary_lnglat
from geo.projection import lnglats_to_equal_area_xy_m


def precincts_from_geojson(collection: Mapping | str, id_property: str = "area_id",
                           name_property: str | None = "name", label: str = "Precinct") -> list[AreaShape]:
    """Precincts of a GeoJSON FeatureCollection, each repaired if invalid (see the module docstring).

    ``id_property`` names the feature property that holds the precinct's id (NYC Open Data: "precinct"),
    ``name_property`` its name; without one the name is ``f"{label} {id}"``.
    """
    doc = json.loads(collection) if isinstance(collection, str) else collection
    shapes = []
    for i, feature in enumerate(doc.get("features") or []):
        props = feature.get("properties") or {}
        if props.get(id_property) is None:
            raise ValueError(f"feature {i} has no property {id_property!r}")
        precinct_id = str(props[id_property])
        name = props.get(name_property) if name_property else None
        geometry = repaired_polygonal(shapely.geometry.shape(feature["geometry"]))
        population = props.get("population")
        shapes.append(AreaShape(precinct_id, str(name) if name else f"{label} {precinct_id}", "precinct",
                                int(population) if isinstance(population, (int, float)) else None, geometry))
    return shapes


def precincts_from_rows(rows) -> list[AreaShape]:
    """Stored precinct rows (area_id, name, kind, population, geometry as GeoJSON text) as shapes. Ingest
    kept only valid polygons; one that no longer parses is left out (services.privacy leaves it out too:
    it holds nothing)."""
    shapes = []
    for r in rows.itertuples(index=False):
        try:
            geometry = geometry_from_geojson(r.geometry)
        except ValueError:
            continue
        population = None if pd.isna(r.population) else int(r.population)
        shapes.append(AreaShape(r.area_id, r.name, r.kind, population, geometry))
    return shapes


class PrecinctIndex:
    """Point-in-precinct for many points at once (one STRtree over the precinct polygons)."""

    def __init__(self, precincts: Sequence[AreaShape]):
        ordered = sorted(precincts, key=lambda a: _id_order(a.area_id))
        self.precincts = tuple(ordered)
        self._ids = np.array([a.area_id for a in ordered], dtype=object)
        self._names = {a.area_id: a.name for a in ordered}
        geoms = np.array([a.geometry for a in ordered], dtype=object)
        self._tree = shapely.STRtree(geoms) if len(ordered) else None

    def __len__(self) -> int:
        return len(self.precincts)

    def name(self, precinct_id: str) -> str | None:
        return self._names.get(precinct_id)

    def locate(self, lat: Sequence[float] | np.ndarray, lng: Sequence[float] | np.ndarray) -> np.ndarray:
        """The id of the precinct holding each point (None outside every precinct, or for NaN coordinates)."""
        lat = np.asarray(lat, dtype=float)
        lng = np.asarray(lng, dtype=float)
        out = np.full(len(lat), None, dtype=object)
        if self._tree is None or len(lat) == 0:
            return out
        ok = np.isfinite(lat) & np.isfinite(lng)
        where = np.flatnonzero(ok)
        points = shapely.points(lng[where], lat[where])
        point_idx, precinct_idx = self._tree.query(points, predicate="intersects")
        if len(point_idx):
            # Several precincts for one point (a border, an overlap): the first by id, i.e. the smallest index.
            order = np.lexsort((precinct_idx, point_idx))
            point_idx, precinct_idx = point_idx[order], precinct_idx[order]
            first = np.r_[True, point_idx[1:] != point_idx[:-1]]
            out[where[point_idx[first]]] = self._ids[precinct_idx[first]]
        return out

    def locate_one(self, lat: float, lng: float) -> str | None:
        return self.locate([lat], [lng])[0]


def _id_order(precinct_id: str) -> tuple:
    """Ids in natural order ("9" before "10"; "P02" before "P10")."""
    return (0, int(precinct_id), "") if precinct_id.isdigit() else (1, 0, precinct_id)


def cell_cover_shares(cells: Sequence[str], precincts: Sequence[AreaShape]) -> dict[str, float]:
    """precinct id -> share of its area (0..1) inside the union of ``cells``, measured in an equal-area
    projection (square degrees shrink towards the poles; a share must not)."""
    out = {p.area_id: 0.0 for p in precincts}
    if not cells or not precincts:
        return out
    union = shapely.union_all(shapely.polygons([cell_to_boundary_lnglat(c) for c in dict.fromkeys(cells)]))
    for precinct in precincts:
        if not precinct.geometry.intersects(union):
            continue
        parallel = math.radians(precinct.geometry.centroid.y)

        def to_equal_area(coords: np.ndarray, parallel=parallel) -> np.ndarray:
            return lnglats_to_equal_area_xy_m(coords, parallel)
        whole = shapely.transform(precinct.geometry, to_equal_area)
        covered = shapely.transform(precinct.geometry.intersection(union), to_equal_area)
        out[precinct.area_id] = float(min(1.0, covered.area / whole.area)) if whole.area > 0 else 0.0
    return out
