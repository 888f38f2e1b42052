"""Named queries of the early-warning job's reuse of its stored results (tables in store/schema_ew_reuse.py).

Reads give the job, for one as-of day, the input digest each stored per-area result was computed from,
and the results themselves for the areas whose digest still matches; writes store the digests in the
job's transaction, beside the results they belong to.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

from store.frames import replace_table_in
from store.queries_forecast import SKILL_COLUMNS
from store.store import Store

SERIES_ALARM_COLUMNS = ("series", "area_id", "input_digest", "open_since", "open_last")


def forecast_digests(store: Store, as_of: date) -> dict[str, str]:
    """{area_id: input digest} of the forecasts stored for ``as_of`` (areas stored without one left out)."""
    rows = store.read_rows("SELECT area_id, input_digest FROM ew_forecast_runs "
                           "WHERE as_of = ? AND input_digest IS NOT NULL", [as_of])
    return {area_id: digest for area_id, digest in rows}


def stored_forecasts(store: Store, as_of: date, area_ids: Sequence[str]
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, bands, skill scores) stored for ``as_of`` and the given areas: one query per table."""
    areas = list(area_ids)
    runs = store.read("""SELECT area_id, horizon_days, r_mean, r_std, admission_share, icu_share, note, method,
                                method_note, input_digest FROM ew_forecast_runs
                         WHERE as_of = ? AND list_contains(?, area_id)""", [as_of, areas])
    bands = store.read("""SELECT area_id, series, day, mean, median, q05, q95 FROM ew_forecast_bands
                          WHERE as_of = ? AND list_contains(?, area_id) ORDER BY area_id, series, day""",
                       [as_of, areas])
    skill_columns = ", ".join(c for c in SKILL_COLUMNS if c != "as_of")
    skills = store.read(f"""SELECT {skill_columns} FROM ew_forecast_skill
                            WHERE as_of = ? AND list_contains(?, area_id) ORDER BY area_id, method, horizon""",
                        [as_of, areas])
    return runs, bands, skills


def series_alarm_digests(store: Store) -> list[tuple]:
    """(series, area_id, input_digest, open_since, open_last) of the detectors' last run on every series,
    as Python values (dates or None)."""
    return store.read_rows(f"SELECT {', '.join(SERIES_ALARM_COLUMNS)} FROM ew_series_alarms")


def replace_series_alarms_in(con, frame: pd.DataFrame) -> None:
    """Make ``frame`` (SERIES_ALARM_COLUMNS) the digests of the detectors' last run, all series at once."""
    replace_table_in(con, "ew_series_alarms", frame, SERIES_ALARM_COLUMNS,
                     "series, area_id, input_digest, CAST(open_since AS DATE), CAST(open_last AS DATE)")


def active_alarm_rows(store: Store) -> list[tuple]:
    """(series, area_id, method, started_on, last_alarm_on, observed, upperbound) of every open episode,
    as Python values (dates, floats): what the job's detectors found open on its last run."""
    return store.read_rows("""SELECT series, area_id, method, started_on, last_alarm_on, observed, upperbound
                              FROM ew_alarms WHERE status = 'active'""")
