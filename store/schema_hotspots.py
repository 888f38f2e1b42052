"""DDL of the Gi* hot-spot layer of /clusters; applied by store.schema.apply_schema.

``cluster_hotspots``: one row per populated cell of the grid and analysis day, written by the
cluster job in the same transaction as the day's scan (jobs/clusters.py): the cell's counted
cases over the last ``window_days`` days, its residents and rate per 100,000, the Getis-Ord Gi*
z-score of that rate on the cell's ring-1 neighbourhood, the two-sided p-value, the
Benjamini-Hochberg q-value across all cells of the day, and the class it earns (hot/cold at
90/95/99 % confidence, or not significant). A rerun of the day replaces its rows.
"""
from __future__ import annotations

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS cluster_hotspots (
        as_of DATE NOT NULL, h3_cell VARCHAR NOT NULL, window_days INTEGER NOT NULL,
        cases INTEGER NOT NULL, population DOUBLE NOT NULL, rate_per_100k DOUBLE NOT NULL,
        z DOUBLE, p DOUBLE, q DOUBLE, confidence DOUBLE, spot VARCHAR NOT NULL,
        PRIMARY KEY (as_of, h3_cell))""",
)
