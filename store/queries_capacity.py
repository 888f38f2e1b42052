"""Named queries of the capacity page: the facility registry with each one's latest report, area
centroids, and the replay marker. The day's figures (facility_days, supplies, the outlook) are in
store/queries_indicators.py."""
from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pandas as pd

from store.store import Store


def facility_registry(store: Store) -> pd.DataFrame:
    """Every registered facility: facility_id, name, kind, owner, lat, lng, area_id, area_name, beds, icu_beds."""
    return store.read(
        """SELECT f.facility_id, f.name, f.kind, f.owner, f.lat, f.lng, f.area_id, a.name AS area_name,
                  f.beds, f.icu_beds
           FROM facilities f LEFT JOIN areas a ON a.area_id = f.area_id ORDER BY f.facility_id""")


def populated_area_centroids(store: Store) -> pd.DataFrame:
    """area_id, name, centroid_lat, centroid_lng of the populated areas."""
    return store.read("SELECT area_id, name, centroid_lat, centroid_lng FROM populated_areas ORDER BY area_id")


def latest_report_time(store: Store) -> datetime | None:
    """The newest capacity report time in the store (None without reports)."""
    return store.scalar("SELECT max(reported_at) FROM capacity_reports")


def replay_source(store: Store) -> dict[str, Any] | None:
    """The most recently loaded replay source of this database, or None for a live database."""
    rows = store.read("SELECT * FROM replay_sources ORDER BY loaded_at DESC LIMIT 1")
    return None if rows.empty else rows.iloc[0].to_dict()


def save_replay_source(store: Store, *, source_id: str, publisher: str, region: str, data_from: date | None,
                       data_to: date | None, loaded_at: datetime, placeholder_boundary: bool,
                       detail: dict[str, Any]) -> None:
    """Record (or update) that this database holds a replay of ``source_id``."""
    store.write(
        """INSERT INTO replay_sources VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (source_id) DO UPDATE SET publisher = excluded.publisher, region = excluded.region,
             data_from = excluded.data_from, data_to = excluded.data_to, loaded_at = excluded.loaded_at,
             placeholder_boundary = excluded.placeholder_boundary, detail = excluded.detail""",
        [source_id, publisher, region, data_from, data_to, loaded_at, placeholder_boundary,
         json.dumps(detail, default=str, sort_keys=True)])


def boundary_areas(store: Store) -> pd.DataFrame:
    """area_id, name, geometry (GeoJSON text) of the city boundary areas."""
    return store.read("SELECT area_id, name, geometry FROM areas WHERE kind = 'boundary' ORDER BY area_id")
