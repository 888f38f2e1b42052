"""Map layers read from the store: area outlines as lng/lat rings, cached until the areas change."""
from __future__ import annotations

import threading

from geo.areas import geometry_from_geojson
from store import Store
from store import queries as q

_cache: dict[tuple, list[dict]] = {}
_lock = threading.Lock()


def _rings(geom) -> list[list[tuple[float, float]]]:
    polygons = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
    return [list(p.exterior.coords) for p in polygons]


def area_outlines(store: Store, kinds: tuple[str, ...] = ("boundary", "community", "precinct")) -> list[dict]:
    """One dict per area: area_id, name, kind, population, rings [(lng, lat)...], label_lng/label_lat."""
    version = (kinds, store.scalar("SELECT count(*) || '/' || coalesce(max(ingested_at)::VARCHAR, '') FROM areas"),
               str(store.path))
    with _lock:
        if version in _cache:
            return _cache[version]
    out = []
    for r in q.areas(store, kinds).itertuples(index=False):
        geom = geometry_from_geojson(r.geometry)
        label = geom.representative_point()
        out.append({"area_id": r.area_id, "name": r.name, "kind": r.kind, "population": r.population,
                    "rings": _rings(geom), "label_lng": label.x, "label_lat": label.y})
    with _lock:
        _cache.clear()  # one city per process: keep only the newest version
        _cache[version] = out
    return out
