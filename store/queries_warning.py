"""Named queries and write jobs of the early-warning feature (tables in store/schema_warning.py).

Reads take the Store and typed parameters and return DataFrames or dicts. Writes are functions of a
DuckDB connection, run by ``Store.submit`` in the writer thread, so that a whole run of the job
(levels, alarms, alerts, forecasts, capacity outlook) commits in one transaction. The job's inputs
(daily series, indicators, R(t)) are in store/queries_indicators.py.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from store.store import Store

ALERT_OPEN_STATES = ("active", "acknowledged")


# ---- records crossing into the writer ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AreaLevel:
    """One area's overall level under one rulebook (level None: the rulebook could not assess it)."""
    area_id: str
    rulebook_id: str
    rulebook_version: str
    level: str | None
    level_rank: int | None
    colour: str | None
    basis: str


@dataclass(frozen=True, slots=True)
class AlarmEpisode:
    """A run of alarm days of one detector on one series and area, still open on the as-of day."""
    series: str
    area_id: str
    method: str
    started_on: date
    last_alarm_on: date
    observed: float
    upperbound: float


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """An alert that should be open. ``dedupe_prefix`` names the condition; ``since`` dates this episode.

    While an open alert with the prefix exists it is kept as it is (its key dates the first day); otherwise
    one is raised with key ``f"{dedupe_prefix}:{since}"``, so a rerun never raises it twice.
    """
    dedupe_prefix: str
    since: date
    severity: str
    kind: str
    area_id: str | None
    title: str
    detail: str
    rule_id: str
    rule_version: str


@dataclass(frozen=True, slots=True)
class ForecastRun:
    as_of: date
    area_id: str
    horizon_days: int
    r_mean: float | None
    r_std: float | None
    admission_share: float | None
    icu_share: float | None
    note: str = ""
    method: str | None = None  # analytics.forecast_skill: the method forecast with (None: no projection)
    method_note: str = ""  # why that method (or why the naive forecast)


# ---- stored results: reads -----------------------------------------------------------------------
def latest_rulebook_choice(store: Store) -> dict | None:
    """The operator's latest rulebook choice (choice_id, chosen_at, chosen_by, rulebook_id, rulebook_version)."""
    frame = store.read(
        """SELECT choice_id, chosen_at, chosen_by, rulebook_id, rulebook_version
           FROM ew_rulebook_choices ORDER BY choice_id DESC LIMIT 1""")
    return None if frame.empty else frame.iloc[0].to_dict()


def rulebook_choices(store: Store, limit: int = 20) -> pd.DataFrame:
    return store.read(
        """SELECT choice_id, chosen_at, chosen_by, rulebook_id, rulebook_version, previous_rulebook_id,
                  previous_rulebook_version FROM ew_rulebook_choices ORDER BY choice_id DESC LIMIT ?""", [limit])


def area_levels(store: Store) -> pd.DataFrame:
    """The current level of every area: area_id, as_of, rulebook_id, rulebook_version, level, colour, basis."""
    return store.read(
        """SELECT area_id, as_of, rulebook_id, rulebook_version, level, level_rank, colour, basis, assessed_at
           FROM ew_area_levels ORDER BY area_id""")


def level_changes(store: Store, area_id: str | None = None, limit: int = 50) -> pd.DataFrame:
    """The latest level changes (of one area, or all), newest first, with the rulebook that caused each."""
    where, params = ("WHERE area_id = ?", [area_id]) if area_id else ("", [])
    return store.read(
        f"""SELECT change_id, area_id, as_of, recorded_at, from_level, from_rulebook_id, from_rulebook_version,
                   to_level, rulebook_id, rulebook_version, direction, cause, choice_id, basis
            FROM ew_level_changes {where} ORDER BY change_id DESC LIMIT ?""", [*params, limit])


def active_alarms(store: Store) -> pd.DataFrame:
    """Open aberration episodes: series, area_id, method, started_on, last_alarm_on, observed, upperbound."""
    return store.read(
        """SELECT series, area_id, method, started_on, last_alarm_on, observed, upperbound
           FROM ew_alarms WHERE status = 'active' ORDER BY started_on, series, area_id, method""")


def alerts_of_kind(store: Store, kind: str) -> pd.DataFrame:
    return store.read(
        """SELECT alert_id, raised_at, severity, area_id, title, detail, status, rule_id, rule_version, dedupe_key,
                  resolved_at FROM alerts WHERE kind = ? ORDER BY alert_id""", [kind])


def latest_forecast_run(store: Store, area_id: str) -> dict | None:
    frame = store.read(
        "SELECT * FROM ew_forecast_runs WHERE area_id = ? ORDER BY as_of DESC LIMIT 1", [area_id])
    return None if frame.empty else frame.iloc[0].to_dict()


def forecast_bands(store: Store, as_of: date, area_id: str) -> pd.DataFrame:
    """series, day, mean, median, q05, q95 of the run of ``as_of`` for the area."""
    return store.read(
        """SELECT series, day, mean, median, q05, q95 FROM ew_forecast_bands
           WHERE as_of = ? AND area_id = ? ORDER BY series, day""", [as_of, area_id])


# ---- writes (run inside Store.submit) ------------------------------------------------------------
def insert_rulebook_choice(con, chosen_at: datetime, chosen_by: str, rulebook_id: str, rulebook_version: str,
                           previous: tuple[str, str] | None) -> int:
    row = con.execute(
        """INSERT INTO ew_rulebook_choices (chosen_at, chosen_by, rulebook_id, rulebook_version,
                                            previous_rulebook_id, previous_rulebook_version)
           VALUES (?, ?, ?, ?, ?, ?) RETURNING choice_id""",
        [chosen_at, chosen_by, rulebook_id, rulebook_version,
         previous[0] if previous else None, previous[1] if previous else None]).fetchone()
    return int(row[0])


def store_levels(con, as_of: date, levels: Sequence[AreaLevel], assessed_at: datetime,
                 choice_id: int | None = None) -> int:
    """Make ``levels`` the current ones and record every change against the stored level; return changes.

    A change is recorded when the rulebook (id or version) differs from the stored level's (cause
    ``rulebook_switch``, direction ``switch``: levels of different rulebooks are not on one scale) or, under
    the same rulebook, when the level differs (cause ``data``: up/down, ``initial`` from nothing,
    ``unassessed`` when the data no longer allow a level). Rerunning with the same levels records nothing.
    """
    current = {r[0]: r[1:] for r in con.execute(
        "SELECT area_id, rulebook_id, rulebook_version, level, level_rank FROM ew_area_levels").fetchall()}
    changes = 0
    for new in levels:
        old = current.get(new.area_id)
        change = _change_of(old, new)
        if change is not None:
            direction, cause = change
            con.execute(
                """INSERT INTO ew_level_changes (area_id, as_of, recorded_at, from_level, from_rulebook_id,
                       from_rulebook_version, to_level, rulebook_id, rulebook_version, direction, cause,
                       choice_id, basis) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [new.area_id, as_of, assessed_at, old[2] if old else None, old[0] if old else None,
                 old[1] if old else None, new.level, new.rulebook_id, new.rulebook_version, direction, cause,
                 choice_id if cause == "rulebook_switch" else None, new.basis])
            changes += 1
        con.execute(
            """INSERT OR REPLACE INTO ew_area_levels (area_id, as_of, rulebook_id, rulebook_version, level,
                   level_rank, colour, basis, assessed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [new.area_id, as_of, new.rulebook_id, new.rulebook_version, new.level, new.level_rank, new.colour,
             new.basis, assessed_at])
    return changes


def _change_of(old: tuple | None, new: AreaLevel) -> tuple[str, str] | None:
    if old is None:
        return ("initial", "data") if new.level is not None else None
    old_rulebook, old_version, old_level, old_rank = old
    if (old_rulebook, old_version) != (new.rulebook_id, new.rulebook_version):
        return "switch", "rulebook_switch"
    if old_level == new.level:
        return None
    if new.level is None:
        return "unassessed", "data"
    if old_level is None:
        return "initial", "data"
    return ("up" if new.level_rank > old_rank else "down"), "data"


def sync_alarms(con, as_of: date, episodes: Sequence[AlarmEpisode], updated_at: datetime) -> dict[str, int]:
    """Upsert the open episodes; mark stored open episodes that are no longer open as resolved on ``as_of``."""
    opened = updated = 0
    keep: set[tuple] = set()
    for ep in episodes:
        key = (ep.series, ep.area_id, ep.method, ep.started_on)
        keep.add(key)
        existing = con.execute(
            """SELECT alarm_id, last_alarm_on, status FROM ew_alarms
               WHERE series = ? AND area_id = ? AND method = ? AND started_on = ?""", list(key)).fetchone()
        if existing is None:
            con.execute(
                """INSERT INTO ew_alarms (series, area_id, method, started_on, last_alarm_on, observed, upperbound,
                       status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?)""",
                [*key, ep.last_alarm_on, ep.observed, ep.upperbound, updated_at])
            opened += 1
        elif existing[1] != ep.last_alarm_on or existing[2] != "active":
            con.execute(
                """UPDATE ew_alarms SET last_alarm_on = ?, observed = ?, upperbound = ?, status = 'active',
                       resolved_on = NULL, updated_at = ? WHERE alarm_id = ?""",
                [ep.last_alarm_on, ep.observed, ep.upperbound, updated_at, existing[0]])
            updated += 1
    resolved = 0
    for alarm_id, *key in con.execute(
            "SELECT alarm_id, series, area_id, method, started_on FROM ew_alarms WHERE status = 'active'").fetchall():
        if tuple(key) not in keep:
            con.execute("UPDATE ew_alarms SET status = 'resolved', resolved_on = ?, updated_at = ? WHERE alarm_id = ?",
                        [as_of, updated_at, alarm_id])
            resolved += 1
    return {"opened": opened, "updated": updated, "resolved": resolved}


def sync_alerts(con, kind: str, wanted: Sequence[AlertSpec], now: datetime) -> dict[str, int]:
    """Raise the wanted alerts of ``kind`` not yet open, resolve open ones of ``kind`` no longer wanted.

    Alerts someone acknowledged are resolved too when their condition has gone; an alert already resolved
    under the same key is not raised again (ON CONFLICT DO NOTHING on dedupe_key). One INSERT and one
    UPDATE whatever the number of alerts: a whole city's sensors falling silent at once (a network
    outage: thousands of alerts) is written in well under a second, not one statement per alert.
    """
    states = ", ".join(f"'{s}'" for s in ALERT_OPEN_STATES)
    open_rows = con.execute(
        f"SELECT alert_id, dedupe_key FROM alerts WHERE kind = ? AND status IN ({states})", [kind]).fetchall()
    # An open alert matches a wanted one when its key is the wanted prefix, a colon and its first day;
    # the day (an ISO date or time) holds colons too, so index every colon-ended prefix of each key.
    open_by_prefix: dict[str, list[int]] = {}
    for alert_id, key in open_rows:
        for at in (i for i, ch in enumerate(key or "") if ch == ":"):
            open_by_prefix.setdefault(key[:at], []).append(alert_id)
    kept: set[int] = set()
    to_raise = []
    for spec in wanted:
        match = open_by_prefix.get(spec.dedupe_prefix)
        if match:
            kept.update(match)
        else:
            to_raise.append(spec)
    raised = 0
    if to_raise:
        frame = pd.DataFrame({
            "n": range(len(to_raise)), "severity": [a.severity for a in to_raise], "kind": [a.kind for a in to_raise],
            "area_id": pd.Series([a.area_id for a in to_raise], dtype=object),
            "title": [a.title for a in to_raise], "detail": [a.detail for a in to_raise],
            "rule_id": [a.rule_id for a in to_raise], "rule_version": [a.rule_version for a in to_raise],
            "dedupe_key": [f"{a.dedupe_prefix}:{a.since.isoformat()}" for a in to_raise]})
        frame = frame.drop_duplicates("dedupe_key")  # the loop this replaced raised a repeated key once
        con.register("alerts_to_raise", frame)
        try:
            raised = len(con.execute(
                """INSERT INTO alerts (raised_at, severity, kind, area_id, title, detail, status, rule_id,
                       rule_version, dedupe_key)
                   SELECT ?::TIMESTAMPTZ, severity, kind, area_id, title, detail, 'active', rule_id, rule_version,
                          dedupe_key FROM alerts_to_raise ORDER BY n
                   ON CONFLICT (dedupe_key) DO NOTHING RETURNING alert_id""", [now]).fetchall())
        finally:
            con.unregister("alerts_to_raise")
    gone = [alert_id for alert_id, _key in open_rows if alert_id not in kept]
    if gone:
        con.execute("UPDATE alerts SET status = 'resolved', resolved_at = ? WHERE list_contains(?, alert_id)",
                    [now, gone])
    return {"raised": raised, "resolved": len(gone)}


def replace_forecasts(con, as_of: date, forecasts: Sequence[tuple[ForecastRun, pd.DataFrame]],
                      computed_at: datetime, digests: Mapping[str, str] | None = None) -> None:
    """Store every area's forecast for ``as_of`` (bands: series, day, mean, median, q05, q95), replacing the
    day's earlier ones: one DELETE and one INSERT per table, not one per area (a 100-area city).
    ``digests``: per area the digest of the forecast's inputs (store/schema_ew_reuse.py)."""
    digests = digests or {}
    runs = pd.DataFrame([{"as_of": as_of, "area_id": r.area_id, "computed_at": computed_at,
                          "horizon_days": r.horizon_days, "r_mean": r.r_mean, "r_std": r.r_std,
                          "admission_share": r.admission_share, "icu_share": r.icu_share, "note": r.note,
                          "method": r.method, "method_note": r.method_note,
                          "input_digest": digests.get(r.area_id)} for r, _ in forecasts],
                        columns=["as_of", "area_id", "computed_at", "horizon_days", "r_mean", "r_std",
                                 "admission_share", "icu_share", "note", "method", "method_note", "input_digest"])
    columns = ["series", "day", "mean", "median", "q05", "q95"]
    with_bands = [(r.area_id, b) for r, b in forecasts if not b.empty]
    areas = list(runs["area_id"])
    con.execute("DELETE FROM ew_forecast_runs WHERE as_of = ? AND list_contains(?, area_id)", [as_of, areas])
    con.execute("DELETE FROM ew_forecast_bands WHERE as_of = ? AND list_contains(?, area_id)", [as_of, areas])
    con.register("ew_runs_in", runs.astype({"r_mean": float, "r_std": float, "admission_share": float,
                                            "icu_share": float, "method": object, "input_digest": object}))
    try:
        con.execute("""INSERT INTO ew_forecast_runs (as_of, area_id, computed_at, horizon_days, r_mean, r_std,
                           admission_share, icu_share, note, method, method_note, input_digest)
                       SELECT CAST(as_of AS DATE), area_id, computed_at, horizon_days, r_mean, r_std,
                              admission_share, icu_share, note, method, method_note, input_digest FROM ew_runs_in""")
    finally:
        con.unregister("ew_runs_in")
    if not with_bands:
        return
    # One concat and one column for the areas, not an assign per area (a hundred areas).
    bands = pd.concat([b[columns] for _, b in with_bands], ignore_index=True)
    bands["area_id"] = np.repeat(np.array([a for a, _ in with_bands], dtype=object), [len(b) for _, b in with_bands])
    con.register("ew_bands_in", bands)
    try:
        con.execute("""INSERT INTO ew_forecast_bands SELECT ?, area_id, series, CAST(day AS DATE), mean, median,
                              q05, q95 FROM ew_bands_in""", [as_of])
    finally:
        con.unregister("ew_bands_in")
