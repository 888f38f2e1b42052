"""Context layers of the offline basemap: roads, water and landmarks as GeoJSON, read into plain rings.

A command centre on a closed network has no tile server, and a map of bare area outlines is hard to
read: a few roads, the water and the landmarks people name (a hospital, a mosque, the stadium) are
enough to find a place. A context layer is a GeoJSON FeatureCollection (lng, lat, WGS 84); its
features are split into lines (LineString, MultiLineString), areas (Polygon, MultiPolygon: outer
rings) and points (Point, MultiPoint, with the feature's ``name`` property as its label). Other
geometry types are skipped and counted, never fatal: orientation is not worth refusing a start over.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

Coordinates = list[tuple[float, float]]  # (lng, lat)


class ContextLayerError(ValueError):
    """A context layer file that is not a readable GeoJSON FeatureCollection or geometry."""


@dataclass(frozen=True)
class ContextLayer:
    id: str
    label: str
    lines: list[Coordinates] = field(default_factory=list)
    areas: list[Coordinates] = field(default_factory=list)
    points: list[tuple[float, float, str]] = field(default_factory=list)  # (lng, lat, name)
    skipped: int = 0  # features of a geometry type the basemap does not draw

    @property
    def empty(self) -> bool:
        return not (self.lines or self.areas or self.points)


def _pairs(coords) -> Coordinates:
    return [(float(p[0]), float(p[1])) for p in coords]


def _features(document: dict) -> list[dict]:
    kind = document.get("type")
    if kind == "FeatureCollection":
        return [f for f in document.get("features") or [] if isinstance(f, dict)]
    if kind == "Feature":
        return [document]
    if isinstance(kind, str):
        return [{"type": "Feature", "properties": {}, "geometry": document}]
    raise ContextLayerError("not a GeoJSON document (no type)")


def context_layer_from_geojson(layer_id: str, label: str, document: dict) -> ContextLayer:
    lines: list[Coordinates] = []
    areas: list[Coordinates] = []
    points: list[tuple[float, float, str]] = []
    skipped = 0
    for feature in _features(document):
        geom = feature.get("geometry") or {}
        props = feature.get("properties") or {}
        name = str(props.get("name") or "")
        kind, coords = geom.get("type"), geom.get("coordinates")
        try:
            if kind == "LineString":
                lines.append(_pairs(coords))
            elif kind == "MultiLineString":
                lines.extend(_pairs(part) for part in coords)
            elif kind == "Polygon":
                areas.append(_pairs(coords[0]))
            elif kind == "MultiPolygon":
                areas.extend(_pairs(poly[0]) for poly in coords)
            elif kind == "Point":
                points.append((float(coords[0]), float(coords[1]), name))
            elif kind == "MultiPoint":
                points.extend((float(p[0]), float(p[1]), name) for p in coords)
            else:
                skipped += 1
        except (TypeError, ValueError, IndexError):
            skipped += 1  # a malformed feature: the rest of the layer still helps
    return ContextLayer(layer_id, label, lines, areas, points, skipped)


def read_context_layer(layer_id: str, label: str, path: Path) -> ContextLayer:
    """The layer in ``path``; ContextLayerError (with the reason) when it cannot be read as GeoJSON."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ContextLayerError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ContextLayerError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ContextLayerError(f"{path}: not a GeoJSON object")
    return context_layer_from_geojson(layer_id, label, document)
