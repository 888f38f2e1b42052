"""Named queries of the per-precinct daily figures (table ``precinct_days`` in store/schema_addresses.py).

The indicators job writes them (jobs.precinct_figures, inside its one transaction); services.precincts
reads them. Located counted cases are read here for the job, through the ``counted_cases`` view.
"""
from __future__ import annotations

from datetime import date

import pandas as pd

from store.queries_indicators import _replace_days_in
from store.store import Store

PRECINCT_DAY_COLUMNS = ("day", "precinct_id", "population", "cases", "cases_7d", "cases_previous_7d", "cases_14d",
                        "cases_previous_14d", "rate_7d_per_100k", "rate_14d_per_100k")


def located_cases_by_day(store: Store, start: date, end: date) -> pd.DataFrame:
    """day, lat, lng, h3_cell of every counted case reported in [start, end] (lat/lng NULL when only a cell
    was reported). Positions only: the job counts them per precinct and keeps nothing else."""
    return store.read("""SELECT reported_date AS day, lat, lng, h3_cell FROM counted_cases
                         WHERE reported_date BETWEEN ? AND ? AND (lat IS NOT NULL OR h3_cell IS NOT NULL)""",
                      [start, end])


def replace_precinct_days_in(con, frame: pd.DataFrame, start: date, end: date) -> int:
    return _replace_days_in(con, "precinct_days", frame, PRECINCT_DAY_COLUMNS, start, end)


def latest_precinct_day(store: Store) -> date | None:
    return store.scalar("SELECT max(day) FROM precinct_days")


def precinct_days_on(store: Store, day: date) -> pd.DataFrame:
    """Every precinct's figures on one day."""
    return store.read("SELECT * FROM precinct_days WHERE day = ? ORDER BY precinct_id", [day])


def precinct_history_all(store: Store, start: date, end: date) -> pd.DataFrame:
    """day, precinct_id, cases, cases_7d, rate_7d_per_100k of every precinct over [start, end]."""
    return store.read("""SELECT day, precinct_id, cases, cases_7d, rate_7d_per_100k FROM precinct_days
                         WHERE day BETWEEN ? AND ? ORDER BY day, precinct_id""", [start, end])
