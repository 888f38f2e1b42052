"""Named queries of the address gazetteer (table in store/schema_addresses.py) and of counted cases at a point.

The address check asks one question of the cases: how many counted cases reported since a day lie
within a few metres of a point. It gets a number back, never a row: no case id, date or detail
leaves this module for it.
"""
from __future__ import annotations

import math
from datetime import date

import pandas as pd

from store.store import Store

# Metres per degree of latitude (WGS84 mean, 111,320 m at the equator to 111,694 m at the poles: the
# smaller figure makes the search box a little larger, never smaller, than the circle it must hold).
METRES_PER_DEGREE_LAT = 111_320.0


def addresses_version(store: Store) -> str:
    """Changes whenever an address is added or erased (the key of the in-memory search index)."""
    return str(store.scalar("SELECT count(*) || '/' || coalesce(max(ingested_at)::VARCHAR, '') FROM addresses"))


def address_rows(store: Store) -> pd.DataFrame:
    """address_id, text, lat, lng, search_key of every address."""
    return store.read("SELECT address_id, text, lat, lng, search_key FROM addresses")


def counted_cases_near(store: Store, lat: float, lng: float, radius_m: float, reported_since: date,
                       reported_until: date) -> int:
    """How many counted cases reported in [reported_since, reported_until] lie within ``radius_m`` of the point.

    A box around the point narrows the rows (DuckDB skips row groups by their min/max), the distance
    on a local plane decides: at a few metres the plane is exact to well under a millimetre.
    """
    dlat = radius_m / METRES_PER_DEGREE_LAT
    dlng = radius_m / (METRES_PER_DEGREE_LAT * max(math.cos(math.radians(lat)), 1e-6))
    rows = store.read_rows(
        """SELECT lat, lng FROM counted_cases
           WHERE reported_date BETWEEN ? AND ? AND lat BETWEEN ? AND ? AND lng BETWEEN ? AND ?""",
        [reported_since, reported_until, lat - dlat, lat + dlat, lng - dlng, lng + dlng])
    scale = METRES_PER_DEGREE_LAT
    return sum(1 for a, b in rows
               if math.hypot((a - lat) * scale, (b - lng) * scale * math.cos(math.radians(lat))) <= radius_m)
