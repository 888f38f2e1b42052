"""The demo city's basemap context layers: roads, the lake and landmarks, as GeoJSON (map.context_layers).

Roads: the main roads join neighbouring community centres (the community Voronoi seeds) along the edges
of their Delaunay triangulation that are no longer than ROAD_MAX_M, so they run between neighbours and
never across the whole city; a lakeside drive circles the lake LAKESIDE_M off its shore. Each is clipped
to the city and kept off the water. Landmarks: the hospitals and the large sites that could become
field hospitals (the facilities, by name), and the city square at the densest neighbourhood. All from
the city's own seed: same seed, same map.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import shapely
from scipy.spatial import Delaunay

from demo.city import City, geometry_to_lnglat

ROAD_MAX_M = 3500.0   # longer Delaunay edges join places that are not neighbours
LAKESIDE_M = 250.0    # the lakeside drive, off the shore park
LANDMARK_KINDS = ("hospital", "temporary_hospital", "quarantine_centre", "potential_site")
CONTEXT_FILES = {"water": "city/water.geojson", "roads": "city/roads.geojson", "landmarks": "city/landmarks.geojson"}


def _feature(geom: shapely.Geometry, **props) -> dict:
    return {"type": "Feature", "properties": props,
            "geometry": json.loads(json.dumps(geometry_to_lnglat(geom).__geo_interface__))}


def roads(city: City) -> list[dict]:
    seeds = city.communities.seeds
    names = [a.name for a in city.communities.areas]
    land = city.boundary.difference(city.lake.buffer(30.0))
    out = []
    if len(seeds) >= 3:
        edges = set()
        for simplex in Delaunay(seeds).simplices:
            for i in range(3):
                a, b = sorted((int(simplex[i]), int(simplex[(i + 1) % 3])))
                edges.add((a, b))
        for a, b in sorted(edges):
            if np.hypot(*(seeds[a] - seeds[b])) > ROAD_MAX_M:
                continue
            line = shapely.LineString([seeds[a], seeds[b]]).intersection(land)
            if not line.is_empty and line.length > 50:
                out.append(_feature(line, name=f"Jalan {names[a]}–{names[b]}", kind="main road"))
    drive = city.lake.buffer(LAKESIDE_M).exterior.intersection(city.boundary)
    if not drive.is_empty:
        out.append(_feature(drive, name="Lebuh Tasik (lakeside drive)", kind="main road"))
    return out


def water(city: City) -> list[dict]:
    return [_feature(city.lake, name="Tasik (lake)", kind="lake")] if not city.lake.is_empty else []


def landmarks(city: City) -> list[dict]:
    out = [_feature(shapely.Point(f.x, f.y), name=f.name, kind=f.kind) for f in city.facilities
           if f.kind in LANDMARK_KINDS]
    cx, cy = city.grid.centres()
    densest = int(np.argmax(city.grid.smoothed.ravel()))
    out.append(_feature(shapely.Point(cx[densest], cy[densest]), name="Dataran (city square)", kind="square"))
    return out


def write_context_layers(city: City, out_dir: Path) -> dict[str, str]:
    """Write the three layers under ``out_dir``; returns layer id -> path relative to ``out_dir``."""
    for layer, build in (("water", water), ("roads", roads), ("landmarks", landmarks)):
        path = Path(out_dir) / CONTEXT_FILES[layer]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"type": "FeatureCollection", "features": build(city)}, separators=(",", ":")),
                        encoding="utf-8")
    return dict(CONTEXT_FILES)
