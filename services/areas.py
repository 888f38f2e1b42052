"""Read model of the areas (GET /api/v1/areas): the city's boundary, community areas and precincts.

Names, kinds, residents and a point inside each area: public facts about places, open to everyone.
"""
from __future__ import annotations

import pandas as pd

from store import Store
from store import queries as q


def area_list(store: Store) -> pd.DataFrame:
    """area_id, name, kind, population, centroid_lat, centroid_lng of every area."""
    return q.area_table(store)
