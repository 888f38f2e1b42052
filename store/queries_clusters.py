"""Named queries of the clusters feature: the scan's inputs, its stored results and the zone history.

Reads take the Store and typed parameters and return DataFrames; the one write,
:func:`save_cluster_day`, replaces a day's results in a single writer transaction so a day is
never half stored. The SQL of the clusters feature lives here and nowhere else.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from datetime import date

import pandas as pd

from store.frames import insert_frame_in
from store.store import Store

# ---- scan inputs -------------------------------------------------------------------------------
def case_counts_by_cell_day(store: Store, start: date, end: date) -> pd.DataFrame:
    """h3_cell, day, cases: counted cases with a stored cell reported in [start, end], per cell and day."""
    return store.read(
        """SELECT h3_cell, reported_date AS day, count(*)::BIGINT AS cases FROM counted_cases
           WHERE reported_date BETWEEN ? AND ? AND h3_cell IS NOT NULL
           GROUP BY ALL ORDER BY day, h3_cell""", [start, end])


def case_points_by_day(store: Store, start: date, end: date) -> pd.DataFrame:
    """lat, lng, h3_cell, day, cases: counted cases per stored point and day (for grids finer than the
    stored cells)."""
    return store.read(
        """SELECT lat, lng, h3_cell, reported_date AS day, count(*)::BIGINT AS cases FROM counted_cases
           WHERE reported_date BETWEEN ? AND ? AND (h3_cell IS NOT NULL OR lat IS NOT NULL)
           GROUP BY ALL ORDER BY day""", [start, end])


def test_counts_by_unit_day(store: Store, start: date, end: date) -> pd.DataFrame:
    """day, h3_cell, area_id, tested, positive: test reports in [start, end] (per cell or per area)."""
    return store.read(
        """SELECT test_date AS day, h3_cell, area_id, sum(tested)::BIGINT AS tested,
                  sum(positive)::BIGINT AS positive
           FROM tests WHERE test_date BETWEEN ? AND ? GROUP BY ALL ORDER BY day""", [start, end])


def population_areas(store: Store) -> pd.DataFrame:
    """area_id, name, kind, population, geometry of the areas that carry the city's population."""
    return store.read("""SELECT area_id, name, kind, population, geometry FROM populated_areas
                         WHERE population IS NOT NULL ORDER BY area_id""")


def stored_area_cell_shares(store: Store, areas_version: str, resolution: int) -> pd.DataFrame:
    """area_id, h3_cell, share as the cluster job kept them for these areas (empty if it has not)."""
    return store.read("""SELECT area_id, h3_cell, share FROM area_cell_shares
                         WHERE areas_version = ? AND resolution = ? ORDER BY area_id, h3_cell""",
                      [areas_version, resolution])


def keep_area_cell_shares(store: Store, areas_version: str, resolution: int, shares: pd.DataFrame) -> None:
    """Make ``shares`` (area_id, h3_cell, share) the kept shares of this grid resolution."""
    rows = shares.assign(areas_version=areas_version, resolution=resolution)

    def write(con) -> None:
        con.execute("DELETE FROM area_cell_shares WHERE resolution = ?", [resolution])
        insert_frame_in(con, "area_cell_shares", rows, SHARE_COLUMNS)
    store.submit(write).result()


SHARE_COLUMNS = ("areas_version", "resolution", "area_id", "h3_cell", "share")


# ---- runs and clusters -------------------------------------------------------------------------
RUN_COLUMNS = ("run_id", "as_of", "computed_at", "input_fingerprint", "study_start", "study_end", "resolution",
               "max_radius_m", "max_share", "max_window_days", "replications", "seed", "min_cases",
               "report_p_max", "total_cases", "locations", "clusters", "significant", "critical_llr_05",
               "critical_llr_01", "scan_s", "rule_id", "rule_version", "method", "method_note", "methods_run",
               "windows_days", "lag_days", "min_recurrence_days", "scan_rule_id", "scan_rule_version",
               "hotspot_window_days")
CLUSTER_COLUMNS = ("run_id", "rank", "cluster_id", "as_of", "centre_cell", "centre_lat", "centre_lng", "radius_m",
                   "cells", "n_cells", "start_date", "end_date", "observed", "expected", "relative_risk", "llr",
                   "p_value", "recurrence_interval_days", "significant", "method", "max_window_days")
HOTSPOT_COLUMNS = ("as_of", "h3_cell", "window_days", "cases", "population", "rate_per_100k", "z", "p", "q",
                   "confidence", "spot")
EVENT_COLUMNS = ("as_of", "kind", "zone_id", "cluster_id", "role", "tier", "previous_tier", "cells", "reason",
                 "rule_id", "rule_version", "run_id", "recorded_at")
ZONE_COLUMNS = ("zone_id", "cluster_id", "role", "tier", "cells", "reason", "rule_id", "rule_version",
                "entered_on", "since", "reviewed_on", "lifted_on", "updated_on")
ALERT_COLUMNS = ("raised_at", "severity", "kind", "area_id", "title", "detail", "rule_id", "rule_version",
                 "dedupe_key")


def cluster_run_on(store: Store, as_of: date) -> pd.DataFrame:
    """The run stored for ``as_of`` (zero or one row)."""
    return store.read("SELECT * FROM cluster_runs WHERE as_of = ?", [as_of])


def latest_cluster_run(store: Store) -> pd.DataFrame:
    """The most recent run (zero or one row)."""
    return store.read("SELECT * FROM cluster_runs ORDER BY as_of DESC LIMIT 1")


def latest_run_day(store: Store) -> date | None:
    return store.scalar("SELECT max(as_of) FROM cluster_runs")


def detected_clusters(store: Store, run_id: str, significant_only: bool = False,
                      method: str | None = None) -> pd.DataFrame:
    """Clusters a run reported by ``method`` (default: the run's zone-driving method), most likely first."""
    where = " AND significant" if significant_only else ""
    if method is None:
        return store.read(
            f"""SELECT * FROM detected_clusters WHERE run_id = ?{where}
                AND method = (SELECT method FROM cluster_runs WHERE run_id = ?) ORDER BY rank""", [run_id, run_id])
    return store.read(f"SELECT * FROM detected_clusters WHERE run_id = ? AND method = ?{where} ORDER BY rank",
                      [run_id, method])


def significant_clusters_before(store: Store, as_of: date) -> pd.DataFrame:
    """cluster_id, cells of the significant clusters (zone-driving method) of the last run before ``as_of``."""
    return store.read(
        """SELECT d.cluster_id, d.cells FROM detected_clusters d JOIN cluster_runs r USING (run_id)
           WHERE d.significant AND d.method = r.method
             AND r.as_of = (SELECT max(as_of) FROM cluster_runs WHERE as_of < ?)
           ORDER BY d.rank""", [as_of])


def hotspots_on(store: Store, as_of: date) -> pd.DataFrame:
    """The Gi* layer stored for ``as_of``: one row per populated cell (HOTSPOT_COLUMNS)."""
    return store.read("SELECT * FROM cluster_hotspots WHERE as_of = ? ORDER BY h3_cell", [as_of])


# ---- zones -------------------------------------------------------------------------------------
def zone_events_before(store: Store, as_of: date) -> pd.DataFrame:
    """Every zone decision taken before ``as_of``, in the order it was taken (to fold into zones)."""
    return store.read("SELECT * FROM zone_events WHERE as_of < ? ORDER BY as_of, event_id", [as_of])


def latest_zone_event_day(store: Store) -> date | None:
    return store.scalar("SELECT max(as_of) FROM zone_events")


def zone_events_on(store: Store, as_of: date) -> pd.DataFrame:
    return store.read("SELECT * FROM zone_events WHERE as_of = ? ORDER BY event_id", [as_of])


def zones_in_force(store: Store) -> pd.DataFrame:
    """Zones not lifted: zone_id, cluster_id, role, tier, cells, reason, rule, since, reviewed_on..."""
    return store.read("SELECT * FROM zones WHERE lifted_on IS NULL ORDER BY cluster_id, role")


def zone(store: Store, zone_id: str) -> pd.DataFrame:
    """One zone (in force or lifted), zero or one row."""
    return store.read("SELECT * FROM zones WHERE zone_id = ?", [zone_id])


def zone_events_of(store: Store, zone_id: str) -> pd.DataFrame:
    """as_of, kind, tier, previous_tier, reason, rule_id, rule_version of one zone, oldest first."""
    return store.read(
        """SELECT as_of, kind, zone_id, tier, previous_tier, reason, rule_id, rule_version
           FROM zone_events WHERE zone_id = ? ORDER BY as_of, event_id""", [zone_id])


def zone_events_touching_cell(store: Store, cell: str) -> pd.DataFrame:
    """Decisions about any zone that held ``cell`` when the decision was taken, oldest first."""
    return store.read(
        """SELECT as_of, kind, zone_id, tier, previous_tier, reason, rule_id, rule_version
           FROM zone_events WHERE list_contains(cells, ?) ORDER BY as_of, event_id""", [cell])


def zones_holding_cell(store: Store, cell: str) -> pd.DataFrame:
    """Zones in force whose cells include ``cell``."""
    return store.read("SELECT * FROM zones WHERE lifted_on IS NULL AND list_contains(cells, ?)", [cell])


def zone_alerts(store: Store) -> pd.DataFrame:
    """Alerts this feature raised (kind 'cluster_zone'), newest first."""
    return store.read("SELECT * FROM alerts WHERE kind = 'cluster_zone' ORDER BY alert_id DESC")


# ---- the one write -----------------------------------------------------------------------------
def save_cluster_day(store: Store, run: dict, clusters: pd.DataFrame, events: pd.DataFrame,
                     zones: pd.DataFrame, alerts: pd.DataFrame, hotspots: pd.DataFrame | None = None
                     ) -> "Future[int]":
    """Replace the results of ``run['as_of']`` in one transaction; returns how many alerts were new.

    The day's run, clusters, Gi* cells and zone events are deleted and written again (a rerun of the same
    day replaces, never adds); ``zones`` is the full folded table and replaces it; alerts are
    inserted once per ``dedupe_key`` and never touched again (an operator may have acted on them).
    """
    def job(con) -> int:
        as_of = run["as_of"]
        _run(con, "DELETE FROM detected_clusters WHERE as_of = ?", [as_of])
        _run(con, "DELETE FROM cluster_runs WHERE as_of = ?", [as_of])
        _run(con, "DELETE FROM zone_events WHERE as_of = ?", [as_of])
        _run(con, "DELETE FROM cluster_hotspots WHERE as_of = ?", [as_of])
        _insert(con, "cluster_hotspots", hotspots, HOTSPOT_COLUMNS)
        _insert(con, "cluster_runs", pd.DataFrame([run], columns=list(RUN_COLUMNS)), RUN_COLUMNS)
        _insert(con, "detected_clusters", clusters, CLUSTER_COLUMNS)
        _insert(con, "zone_events", events, EVENT_COLUMNS)
        _run(con, "DELETE FROM zones")
        _insert(con, "zones", zones, ZONE_COLUMNS)
        before = _run(con, "SELECT count(*) FROM alerts")[0][0]
        _insert(con, "alerts", alerts, ALERT_COLUMNS, on_conflict="ON CONFLICT (dedupe_key) DO NOTHING")
        return _run(con, "SELECT count(*) FROM alerts")[0][0] - before
    return store.submit(job)


def _insert(con, table: str, frame: pd.DataFrame, columns: Sequence[str], on_conflict: str = "") -> None:
    if frame is None or frame.empty:
        return
    cols = ", ".join(f'"{c}"' for c in columns)
    staged = frame[list(columns)]
    con.register("clusters_in", staged)
    try:
        # Cast through the table's own types: pandas hands over object columns (lists, dates).
        types = dict(_run(con, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
                          [table]))
        casts = ", ".join(f'CAST("{c}" AS {types[c]})' for c in columns)
        _run(con, f"INSERT INTO {table} ({cols}) SELECT {casts} FROM clusters_in {on_conflict}")
    finally:
        con.unregister("clusters_in")


def _run(con, sql: str, params: Sequence | None = None) -> list[tuple]:
    """Execute and drain the result: DuckDB refuses other work on a connection with a result pending."""
    return con.execute(sql, params or []).fetchall()
