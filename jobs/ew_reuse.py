"""The early-warning job's stored per-area results, reused where their inputs have not changed.

jobs.memo keeps per-area results in the process; a restart forgot them and recomputed every area
(23 s at a million people for the first new case after a start). Every stored forecast and every
watched series' alarm state carries the digest of exactly the inputs it was computed from
(store/schema_ew_reuse.py); when a run's digest for an area equals the stored one, the stored result
is what computing it again would give, and is read instead. Only the job's own results of its own
last run are read, and they are written in the same transaction as their digests.

The city's forecast is never read back: it also carries the projected hospital census that the
capacity outlook starts from, which is not stored as such (the stored outlook is anchored on each
hospital's occupancy); it changes with every new case anywhere anyway.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from store import Store
from store import queries_ew_reuse as qr
from store import queries_forecast as qf
from store.queries_warning import AlarmEpisode, ForecastRun

BAND_COLUMNS = ["series", "day", "mean", "median", "q05", "q95"]
SKILL_COLUMNS = [c for c in qf.SKILL_COLUMNS if c not in ("as_of", "area_id")]  # as score_table gives them


@dataclass(frozen=True)
class SeriesAlarms:
    """What the detectors found on one series of one area: the episodes still open (one per detector at
    most) and the span (first, last alarm day) of the alarm days of all detectors together still open."""
    episodes: tuple[AlarmEpisode, ...]
    open_span: tuple[date, date] | None


@dataclass(frozen=True)
class StoredForecast:
    run: ForecastRun
    bands: pd.DataFrame  # BAND_COLUMNS
    skill: pd.DataFrame  # SKILL_COLUMNS (empty when no backtest was scored)


class StoredResults:
    """The digests of the job's stored results for one as-of day; the results read on demand."""

    def __init__(self, store: Store, as_of: date) -> None:
        self._store, self._as_of = store, as_of
        self._forecast_digests = qr.forecast_digests(store, as_of)
        self._series_digests = {
            (series, area_id): (digest, None if since is None else (since, last))
            for series, area_id, digest, since, last in qr.series_alarm_digests(store)}
        self._episodes: dict[tuple[str, str], list[AlarmEpisode]] | None = None

    def forecasts(self, keys: Mapping[str, str]) -> dict[str, StoredForecast]:
        """The stored forecast of every area in ``keys`` (area_id -> digest) whose stored digest is the same."""
        matched = [area_id for area_id, key in keys.items() if self._forecast_digests.get(area_id) == key]
        if not matched:
            return {}
        runs, bands, skills = qr.stored_forecasts(self._store, self._as_of, matched)
        bands_by_area = _split_by_area(bands, BAND_COLUMNS)
        skills_by_area = _split_by_area(skills, SKILL_COLUMNS)
        found: dict[str, StoredForecast] = {}
        for row in runs.itertuples(index=False):
            if row.input_digest != keys.get(row.area_id):
                continue
            run = ForecastRun(as_of=self._as_of, area_id=row.area_id, horizon_days=int(row.horizon_days),
                              r_mean=_float(row.r_mean), r_std=_float(row.r_std),
                              admission_share=_float(row.admission_share), icu_share=_float(row.icu_share),
                              note=_text(row.note) or "", method=_text(row.method),
                              method_note=_text(row.method_note) or "")
            found[row.area_id] = StoredForecast(
                run, bands_by_area.get(row.area_id, pd.DataFrame(columns=BAND_COLUMNS)),
                skills_by_area.get(row.area_id, pd.DataFrame(columns=SKILL_COLUMNS)))
        return found

    def series_alarms(self, series: str, area_id: str, key: str,
                      method_order: Iterable[str]) -> SeriesAlarms | None:
        """What the detectors found on the series last time, if they ran on the same inputs (digest ``key``)."""
        stored = self._series_digests.get((series, area_id))
        if stored is None or stored[0] != key:
            return None
        if self._episodes is None:
            self._episodes = {}
            for row in qr.active_alarm_rows(self._store):
                episode = AlarmEpisode(row[0], row[1], row[2], row[3], row[4], float(row[5]), float(row[6]))
                self._episodes.setdefault((episode.series, episode.area_id), []).append(episode)
        rank = {method: i for i, method in enumerate(method_order)}
        episodes = sorted(self._episodes.get((series, area_id), []), key=lambda e: rank.get(e.method, len(rank)))
        return SeriesAlarms(tuple(episodes), stored[1])


def _float(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value) \
        else float(value)


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _split_by_area(rows: pd.DataFrame, columns: list[str]) -> dict[str, pd.DataFrame]:
    """``rows`` (ordered by area_id) cut into one frame of ``columns`` per area, by position: a column
    selection per group cost half a second at a hundred areas."""
    if rows.empty:
        return {}
    values = rows[columns]
    areas = rows["area_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, areas[1:] != areas[:-1]])
    ends = np.r_[starts[1:], len(areas)]
    return {str(areas[a]): values.iloc[a:b].reset_index(drop=True) for a, b in zip(starts, ends)}
