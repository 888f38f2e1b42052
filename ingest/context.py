"""Builds the ValidationContext from what the store knows (boundary, areas, registered ids)."""
from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import shapely

from geo.areas import AreaShape, PointLocator, geometry_from_geojson
from ingest.records import ValidationContext
from settings import Settings
from store import Store
from store.store import utc_now


class ContextProvider:
    """Caches the registries between batches; call invalidate() after areas/sensors/facilities change."""

    def __init__(self, store: Store, settings: Settings):
        self._store = store
        self._settings = settings
        self._lock = threading.Lock()
        self._cached: ValidationContext | None = None

    @property
    def settings(self) -> Settings:
        """The settings the contexts are built from (the file ingestor reads its limits here too)."""
        return self._settings

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def get(self) -> ValidationContext:
        """The context with ``now`` set to the current time (registries may be cached)."""
        with self._lock:
            if self._cached is None:
                self._cached = self._load()
            base = self._cached
        return dataclasses.replace(base, now=utc_now())

    def _load(self) -> ValidationContext:
        areas = self._store.read("SELECT area_id, name, kind, population, geometry FROM areas")
        shapes = [AreaShape(r.area_id, r.name, r.kind, r.population, geometry_from_geojson(r.geometry))
                  for r in areas.itertuples(index=False)]
        boundaries = [a.geometry for a in shapes if a.kind == "boundary"]
        boundary = shapely.union_all(boundaries) if boundaries else None
        if boundary is not None:
            shapely.prepare(boundary)
        communities = [a for a in shapes if a.kind in ("community", "district")]
        return ValidationContext(
            now=utc_now(),
            h3_resolution=self._settings.map.h3_resolution,
            boundary=boundary,
            community_locator=PointLocator(communities) if communities else None,
            sensor_ids=frozenset(self._store.read("SELECT sensor_id FROM sensors")["sensor_id"]),
            facility_ids=frozenset(self._store.read("SELECT facility_id FROM facilities")["facility_id"]),
            area_ids=frozenset(areas["area_id"]),
            max_future_skew=timedelta(seconds=self._settings.ingest.max_future_skew_s),
            earliest_date=self._settings.ingest.earliest_date,
        )
