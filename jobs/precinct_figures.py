"""Per-precinct daily figures, computed by the indicators job in its own run and transaction.

Cases carry the community area they fall in (ingest locates them), not their precinct: precincts
overlap communities, and a city may load or change its precinct layer later. So each run locates
every counted case of the window in the precinct polygons (geo.precincts, one vectorised query; a
case reported only as an H3 cell counts at the cell's centre, the rule services.privacy uses for
precinct scope) and stores, per precinct and day: the day's cases, the 7- and 14-day sums ending
that day and the sums of the 7 and 14 days before them, and the 7- and 14-day rates per 100,000
residents (the precinct's population as its layer gives it; no rate without one).
"""
from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from analytics.cells import PER_100K
from geo.cells import cell_to_latlng, is_valid_cell
from geo.precincts import PrecinctIndex, precincts_from_rows
from store import Store
from store import queries as q
from store import queries_precincts as qp

WEEK, FORTNIGHT = 7, 14
# Days read before the first stored day: a 14-day sum and the 14 days before it.
LEAD_DAYS = 2 * FORTNIGHT - 1


def precinct_days(store: Store, start: date, end: date) -> pd.DataFrame:
    """precinct_days rows (qp.PRECINCT_DAY_COLUMNS) for every precinct and every day in [start, end]."""
    shapes = precincts_from_rows(q.areas(store, ("precinct",)))
    columns = list(qp.PRECINCT_DAY_COLUMNS)
    if not shapes:
        return pd.DataFrame(columns=columns)
    index = PrecinctIndex(shapes)
    read_from = start - timedelta(days=LEAD_DAYS)
    cases = qp.located_cases_by_day(store, read_from, end)
    lat = pd.to_numeric(cases["lat"], errors="coerce").to_numpy(dtype=float)
    lng = pd.to_numeric(cases["lng"], errors="coerce").to_numpy(dtype=float)
    cell_only = ~np.isfinite(lat) & cases["h3_cell"].notna().to_numpy()
    for i in np.flatnonzero(cell_only):
        cell = cases["h3_cell"].iat[i]
        if is_valid_cell(cell):
            lat[i], lng[i] = cell_to_latlng(cell)
    located = pd.DataFrame({"day": pd.to_datetime(cases["day"]), "precinct_id": index.locate(lat, lng)})
    located = located.dropna(subset=["precinct_id"])
    calendar = pd.date_range(read_from, end, freq="D")
    ids = [p.area_id for p in index.precincts]
    daily = (located.groupby(["day", "precinct_id"]).size().unstack("precinct_id")
             .reindex(index=calendar, columns=ids).fillna(0.0))
    sums = {n: daily.rolling(n, min_periods=n).sum() for n in (WEEK, FORTNIGHT)}
    population = {p.area_id: p.population for p in index.precincts}
    frames = []
    for precinct_id in ids:
        pop = population[precinct_id]
        frame = pd.DataFrame({
            "day": calendar, "precinct_id": precinct_id, "population": pop,
            "cases": daily[precinct_id].to_numpy(),
            "cases_7d": sums[WEEK][precinct_id].to_numpy(),
            "cases_previous_7d": sums[WEEK][precinct_id].shift(WEEK).to_numpy(),
            "cases_14d": sums[FORTNIGHT][precinct_id].to_numpy(),
            "cases_previous_14d": sums[FORTNIGHT][precinct_id].shift(FORTNIGHT).to_numpy()})
        rate = PER_100K / pop if pop else np.nan
        frame["rate_7d_per_100k"] = frame["cases_7d"] * rate
        frame["rate_14d_per_100k"] = frame["cases_14d"] * rate
        frames.append(frame[frame["day"] >= pd.Timestamp(start)])
    rows = pd.concat(frames, ignore_index=True)
    rows["day"] = rows["day"].dt.date
    return rows[columns]
