"""Case and test counts and rates per 100k on the H3 grid, with parent/child roll-ups.

Method: H3 hierarchical hexagonal grid (Uber, h3geo.org; h3-py 4.x API). Counts are
exact tallies per cell for a closed day window; rates are per 100,000 residents of the
cell. Population per cell comes from geo.population.areas_to_cell_population (areal
weighting of area populations); the grid itself (placing points and cells on it, parents
by bit arithmetic on uint64 ids, children) is geo's: geo.cell_ints and geo.cells.

Cell ids travel as lower-case hex strings in and out of this module; inside, they are
uint64 (geo.cell_ints) so that whole columns are placed and rolled up at once.
"""

from __future__ import annotations

import datetime as dt
from itertools import repeat

import numpy as np
import pandas as pd

from geo.cell_ints import (
    cell_int_resolutions,
    cells_to_ints,
    ints_to_cells,
    latlngs_to_cell_ints,
    parent_cell_ints,
)
from geo.cells import cell_to_children, validate_resolution

PER_100K = 100_000.0
# A cell holding fewer residents than this gets no rate: one case among 40 people would read as
# 2,500 per 100k and shout louder than a real outbreak elsewhere (the map and the Gi* layer alike).
MIN_RATE_POPULATION = 50.0

DateLike = str | dt.date | dt.datetime | pd.Timestamp


# -------------------------------------------------------------------------- aggregation


def aggregate_cases_to_cells(
    cases: pd.DataFrame,
    start: DateLike,
    end: DateLike,
    resolution: int = 9,
    date_column: str = "reported_date",
) -> pd.DataFrame:
    """Cases per H3 cell reported in [start, end] (whole days, both ends included).

    ``cases`` has ``date_column`` and either ``lat``/``lng`` or ``h3_cell`` (a cell at
    ``resolution`` or finer); where both exist, ``h3_cell`` wins and ``lat``/``lng``
    fill rows without one. Returns DataFrame[cases] indexed by ``h3_cell``, sorted, cells
    without cases absent. Rows that cannot be placed raise ValueError (never dropped).
    """
    resolution = validate_resolution(resolution)
    in_window = _day_window_mask(cases, date_column, start, end)
    cells = _row_cell_ints(cases.loc[in_window], resolution)
    unique_cells, counts = np.unique(cells, return_counts=True)
    return pd.DataFrame(
        {"cases": counts.astype(np.int64)},
        index=pd.Index(ints_to_cells(unique_cells), name="h3_cell"),
    )


def aggregate_tests_to_cells(
    tests: pd.DataFrame,
    start: DateLike,
    end: DateLike,
    resolution: int = 9,
    date_column: str = "test_date",
    result_column: str = "positive",
) -> pd.DataFrame:
    """Tests, positives and positivity per H3 cell in [start, end] (whole days).

    ``result_column`` holds booleans (True = positive). Located like
    :func:`aggregate_cases_to_cells`. Returns DataFrame[tests, positives, positivity].
    """
    resolution = validate_resolution(resolution)
    in_window = _day_window_mask(tests, date_column, start, end)
    window = tests.loc[in_window]
    results = window[result_column]
    if results.isna().any():
        raise ValueError(f"{int(results.isna().sum())} test row(s) in the window have no {result_column!r}")
    cells = _row_cell_ints(window, resolution)
    unique_cells, codes = np.unique(cells, return_inverse=True)
    n_tests = np.bincount(codes, minlength=unique_cells.size).astype(np.int64)
    n_positive = np.bincount(codes, weights=results.to_numpy(dtype=bool), minlength=unique_cells.size).astype(np.int64)
    return pd.DataFrame(
        {"tests": n_tests, "positives": n_positive, "positivity": n_positive / n_tests},
        index=pd.Index(ints_to_cells(unique_cells), name="h3_cell"),
    )


def _day_window_mask(frame: pd.DataFrame, date_column: str, start: DateLike, end: DateLike) -> np.ndarray:
    if date_column not in frame.columns:
        raise ValueError(f"missing column {date_column!r}")
    start_day = pd.Timestamp(start).normalize()
    end_day = pd.Timestamp(end).normalize()
    if end_day < start_day:
        raise ValueError(f"end {end_day.date()} is before start {start_day.date()}")
    days = _to_days(frame[date_column])
    if days.dt.tz is not None:
        # Compare calendar days in the data's own zone.
        start_day = start_day.tz_localize(days.dt.tz) if start_day.tz is None else start_day.tz_convert(days.dt.tz)
        end_day = end_day.tz_localize(days.dt.tz) if end_day.tz is None else end_day.tz_convert(days.dt.tz)
    if days.isna().any():
        raise ValueError(f"{int(days.isna().sum())} row(s) have no {date_column!r}")
    return ((days >= start_day) & (days <= end_day)).to_numpy()


def _to_days(values: pd.Series) -> pd.Series:
    """Datetimes, dates or ISO-8601 strings -> midnight timestamps."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.normalize()
    return pd.to_datetime(values, format="ISO8601").dt.normalize()


def _row_cell_ints(frame: pd.DataFrame, resolution: int) -> np.ndarray:
    """uint64 cell at ``resolution`` for every row, from h3_cell or lat/lng."""
    cells = np.zeros(len(frame), dtype=np.uint64)
    located = np.zeros(len(frame), dtype=bool)
    if "h3_cell" in frame.columns:
        given = frame["h3_cell"].notna().to_numpy()
        if given.any():
            fine_cells = cells_to_ints(frame["h3_cell"].to_numpy()[given])
            if cell_int_resolutions(fine_cells).min() < resolution:
                raise ValueError(f"h3_cell values coarser than resolution {resolution} cannot be placed in one cell")
            cells[given] = parent_cell_ints(fine_cells, resolution)
            located = given
    missing = ~located
    if missing.any():
        if not {"lat", "lng"} <= set(frame.columns):
            raise ValueError(f"{int(missing.sum())} row(s) have no h3_cell and there are no lat/lng columns")
        cells[missing] = latlngs_to_cell_ints(
            frame["lat"].to_numpy(dtype=np.float64)[missing],
            frame["lng"].to_numpy(dtype=np.float64)[missing],
            resolution,
        )
    return cells


# ------------------------------------------------------------------------------ rates


def rates_per_100k(counts: pd.Series, population: pd.Series, min_population: float = 0.0) -> pd.Series:
    """counts / population x 100,000 per cell; NaN where population is unknown or <= ``min_population``.

    ``min_population`` lets a caller blank cells whose denominator is too small for a
    stable rate (a cell holding 3 people turns one case into 33,333 per 100k).
    """
    denominators = population.reindex(counts.index).astype(np.float64)
    known = denominators > max(min_population, 0.0)
    rates = pd.Series(np.nan, index=counts.index, name="rate_per_100k", dtype=np.float64)
    rates[known] = counts[known].astype(np.float64) / denominators[known] * PER_100K
    return rates


# --------------------------------------------------------------------------- hierarchy


def rollup_to_parent(counts: pd.Series, resolution: int) -> pd.Series:
    """Sum values of finer cells into their parents at ``resolution`` (7-10)."""
    resolution = validate_resolution(resolution)
    cell_ints = cells_to_ints(counts.index)
    parents = parent_cell_ints(cell_ints, resolution)
    unique_parents, codes = np.unique(parents, return_inverse=True)
    summed = pd.Series(counts.to_numpy()).groupby(codes).sum()
    return pd.Series(
        summed.to_numpy(),
        index=pd.Index(ints_to_cells(unique_parents), name="h3_cell"),
        name=counts.name,
    )


def split_to_children(values: pd.Series, resolution: int, weights: pd.Series | None = None) -> pd.Series:
    """Share each parent's value among its children at ``resolution`` (7-10).

    With ``weights`` (per child cell, e.g. child population) a child gets
    value x weight / sum of its siblings' weights; children without a weight count as 0,
    and a parent whose children all weigh 0 falls back to an equal split (so the value is
    never lost). Without weights each child gets an equal share (a pentagon has fewer children).
    """
    resolution = validate_resolution(resolution)
    parent_ints = cells_to_ints(values.index)
    if parent_ints.size and cell_int_resolutions(parent_ints).max() >= resolution:
        raise ValueError(f"every cell must be coarser than resolution {resolution} to split into children")
    parent_ids: list[str] = []
    child_ids: list[str] = []
    for parent in values.index:
        children = cell_to_children(parent, resolution)
        parent_ids.extend(repeat(parent, len(children)))
        child_ids.extend(children)
    parent_index = pd.Index(parent_ids, dtype=object)
    child_index = pd.Index(child_ids, dtype=object, name="h3_cell")
    if weights is None:
        child_weights = np.ones(len(child_ids))
    else:
        child_weights = weights.reindex(child_index).fillna(0.0).to_numpy(dtype=np.float64)
        if np.any(child_weights < 0):
            raise ValueError("weights must be >= 0")
    sibling_totals = pd.Series(child_weights).groupby(parent_index.to_numpy()).transform("sum").to_numpy()
    sibling_counts = pd.Series(child_weights).groupby(parent_index.to_numpy()).transform("size").to_numpy()
    weighted = sibling_totals > 0
    shares = np.where(weighted, child_weights / np.where(weighted, sibling_totals, 1.0), 1.0 / sibling_counts)
    parent_values = values.reindex(parent_index).to_numpy(dtype=np.float64)
    return pd.Series(parent_values * shares, index=child_index, name=values.name)
