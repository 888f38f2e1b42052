"""Named queries of the sensors, their readings and the sensor figures (sensor_states, sensor_leads),
and the sensor jobs' writes (inside Store.submit).

Panic-button incidents are alerts of their kind (``alerts.kind`` = the sensor kind, e.g. panic_button)
whose ``dedupe_key`` is ``<kind>:<sensor_id>:<seq>``: one alert per press, never raised twice.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import pandas as pd

from store.frames import replace_table_in
from store.queries_access import append_audit_in
from store.store import Store

STATE_COLUMNS = ("sensor_id", "kind", "state", "metric", "value", "value_at", "threshold", "last_seen",
                 "expected_interval_s", "battery_pct", "battery_at", "since", "checked_at")


def _kind_metrics_sql(kind_metrics: Mapping[str, str]) -> tuple[str, list]:
    """A VALUES list of (kind, metric) and its parameters (a kind with no configured metric matches nothing)."""
    if not kind_metrics:
        return "SELECT NULL::VARCHAR AS kind, NULL::VARCHAR AS metric WHERE FALSE", []
    rows = ", ".join("(?, ?)" for _ in kind_metrics)
    return f"SELECT * FROM (VALUES {rows}) m(kind, metric)", [v for kv in kind_metrics.items() for v in kv]


def latest_readings(store: Store, kind_metrics: Mapping[str, str], health_metric: str, since: datetime | None,
                    sensor_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Every registered sensor with: last_seen (its newest reading of any metric), value and value_at (its
    newest reading of its kind's metric), battery_pct and battery_at (of ``health_metric``); only readings
    at or after ``since`` are looked at (None: all). ``sensor_ids`` limits the sensors."""
    metrics_sql, params = _kind_metrics_sql(kind_metrics)
    where_r = "AND r.ts >= ?" if since is not None else ""
    where_s = f"WHERE s.sensor_id IN ({', '.join('?' * len(sensor_ids))})" if sensor_ids is not None else ""
    if sensor_ids is not None and not sensor_ids:
        where_s = "WHERE FALSE"
    params = [*params, health_metric, health_metric, *([since] if since is not None else []),
              *(sensor_ids or [])]
    return store.read(
        f"""WITH m AS ({metrics_sql})
            SELECT s.sensor_id, s.kind, max(r.ts) AS last_seen,
                   arg_max(r.value, r.ts) FILTER (WHERE r.metric = m.metric) AS value,
                   max(r.ts) FILTER (WHERE r.metric = m.metric) AS value_at,
                   arg_max(r.value, r.ts) FILTER (WHERE r.metric = ?) AS battery_pct,
                   max(r.ts) FILTER (WHERE r.metric = ?) AS battery_at
            FROM sensors s LEFT JOIN m ON m.kind = s.kind
            LEFT JOIN readings r ON r.sensor_id = s.sensor_id {where_r}
            {where_s}
            GROUP BY s.sensor_id, s.kind ORDER BY s.sensor_id""", params)


def stored_states(store: Store) -> pd.DataFrame:
    return store.read(f"SELECT {', '.join(STATE_COLUMNS)} FROM sensor_states ORDER BY sensor_id")


def unraised_presses(store: Store, kind_metrics: Mapping[str, str], since: datetime) -> pd.DataFrame:
    """sensor_id, seq, ts, kind, name, area_id of incident readings (value > 0) at or after ``since`` that
    have no alert yet."""
    metrics_sql, params = _kind_metrics_sql(kind_metrics)
    return store.read(
        f"""WITH m AS ({metrics_sql})
            SELECT r.sensor_id, r.seq, r.ts, s.kind, s.name, s.area_id
            FROM readings r JOIN sensors s USING (sensor_id) JOIN m ON m.kind = s.kind AND m.metric = r.metric
            WHERE r.value > 0 AND r.ts >= ?
              AND NOT EXISTS (SELECT 1 FROM alerts a
                              WHERE a.dedupe_key = s.kind || ':' || r.sensor_id || ':' || CAST(r.seq AS VARCHAR))
            ORDER BY r.ts, r.sensor_id""", [*params, since])


def sensor_table(store: Store) -> pd.DataFrame:
    """Every sensor with its place, area name and stored state (state columns NULL before the first run)."""
    return store.read(
        """SELECT s.sensor_id, s.kind, s.name, s.lat, s.lng, s.h3_cell, s.area_id, a.name AS area_name,
                  st.state, st.metric, st.value, st.value_at, st.threshold, st.last_seen, st.expected_interval_s,
                  st.battery_pct, st.battery_at, st.since, st.checked_at
           FROM sensors s LEFT JOIN sensor_states st USING (sensor_id) LEFT JOIN areas a ON a.area_id = s.area_id
           ORDER BY s.kind, s.sensor_id""")


def sensor_readings(store: Store, sensor_id: str, since: datetime) -> pd.DataFrame:
    """ts, metric, value, unit of one sensor's readings since ``since``, oldest first."""
    return store.read(
        """SELECT ts, metric, value, unit FROM readings WHERE sensor_id = ? AND ts >= ? ORDER BY ts, seq""",
        [sensor_id, since])


def open_incidents(store: Store, kinds: Sequence[str]) -> pd.DataFrame:
    """Incident alerts not yet acknowledged (status active), newest press first, with the press and its place:
    alert_id, kind, raised_at, title, sensor_id, seq, pressed_at, name, lat, lng, h3_cell, area_id, area_name."""
    if not kinds:
        kinds = ("",)
    marks = ", ".join("?" for _ in kinds)
    return store.read(
        f"""WITH inc AS (SELECT alert_id, kind, raised_at, title, split_part(dedupe_key, ':', 2) AS sensor_id,
                                TRY_CAST(split_part(dedupe_key, ':', 3) AS BIGINT) AS seq
                         FROM alerts WHERE kind IN ({marks}) AND status = 'active')
            SELECT inc.alert_id, inc.kind, inc.raised_at, inc.title, inc.sensor_id, inc.seq, r.ts AS pressed_at,
                   s.name, s.lat, s.lng, s.h3_cell, s.area_id, a.name AS area_name
            FROM inc JOIN sensors s ON s.sensor_id = inc.sensor_id
            LEFT JOIN readings r ON r.sensor_id = inc.sensor_id AND r.seq = inc.seq
            LEFT JOIN areas a ON a.area_id = s.area_id
            ORDER BY pressed_at DESC NULLS LAST, inc.alert_id DESC""", list(kinds))


def leads(store: Store) -> pd.DataFrame:
    return store.read("""SELECT series, as_of, lag_days, correlation, days_used, window_days, computed_at
                         FROM sensor_leads ORDER BY series""")


def job_computed_at(store: Store, job: str):
    """When a job last stored its results (job_runs), or None."""
    return store.scalar("SELECT max(computed_at) FROM job_runs WHERE job = ?", [job])


def citywide_daily_cases(store: Store, start, end) -> pd.DataFrame:
    """day, cases of the city as the indicators job stored them (daily_series, area 'citywide')."""
    return store.read("""SELECT day, cases FROM daily_series WHERE area_id = 'citywide' AND day BETWEEN ? AND ?
                         ORDER BY day""", [start, end])


# ---- the jobs' writes -----------------------------------------------------------------------------------
def replace_states_in(con, states: pd.DataFrame) -> None:
    replace_table_in(con, "sensor_states", states, STATE_COLUMNS)


def raise_incidents_in(con, presses: pd.DataFrame, titles: Sequence[str], details: Sequence[str],
                       severities: Sequence[str], now: datetime) -> list[int]:
    """One alert per press (ON CONFLICT DO NOTHING on its key) and an ``incident_raised`` audit record per
    alert raised, in the caller's transaction; returns the new alert ids."""
    raised = []
    for press, title, detail, severity in zip(presses.itertuples(index=False), titles, details, severities):
        key = f"{press.kind}:{press.sensor_id}:{int(press.seq)}"
        row = con.execute(
            """INSERT INTO alerts (raised_at, severity, kind, area_id, title, detail, status, rule_id, rule_version,
                   dedupe_key) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, '1', ?)
               ON CONFLICT (dedupe_key) DO NOTHING RETURNING alert_id""",
            [now, severity, press.kind, press.area_id if isinstance(press.area_id, str) else None, title, detail,
             f"sensors.kinds.{press.kind}.incident", key]).fetchone()
        if row is None:
            continue
        raised.append(int(row[0]))
        append_audit_in(con, "system", "incident_raised", f"alert:{int(row[0])}",
                        {"kind": press.kind, "sensor": press.sensor_id, "seq": int(press.seq),
                         "pressed_at": pd.Timestamp(press.ts).isoformat(), "area": press.area_id}, now)
    return raised


LEAD_COLUMNS = ("series", "as_of", "lag_days", "correlation", "days_used", "window_days", "computed_at",
                "method_version")


def replace_leads_in(con, rows: pd.DataFrame) -> None:
    replace_table_in(con, "sensor_leads", rows, LEAD_COLUMNS)
