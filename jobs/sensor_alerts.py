"""The sensor job: every sensor's state, threshold crossings and silent sensors as alerts, and panic-button
presses as incidents. Runs every ``sensors.run_every_s`` seconds on its own thread (jobs.scheduler, lane
"live"), so a press reaches the wall within seconds whatever the other jobs are doing.

Each run, in one writer transaction:

1. **States** (analytics.sensors.sensor_states): each sensor's latest reading of its kind's metric
   against its threshold (``sensors.kinds.<kind>.threshold``, or its own line in ``thresholds_file``),
   and whether it has been silent for ``sensors.silent_factor`` expected intervals. Stored in
   ``sensor_states`` with ``since``, when the current state began.
2. **Alerts** of kind ``sensor_threshold`` (a sensor above its threshold) and ``sensor_silent`` (a
   silent sensor), one per sensor and episode, raised when the state begins and resolved by this job
   when it ends (store.queries_warning.sync_alerts: the episode's key carries the local day it began).
   A kind that counts people (fever kiosks) names its threshold in the alert, never the reading.
3. **Incidents**: every reading of an incident kind (a panic-button press) not yet raised and not older
   than ``sensors.incident_lookback_h`` becomes an active alert of that kind (critical) with an
   ``incident_raised`` audit record. It stays active until a person acknowledges it
   (services.alert_inbox.act_on_alert, audited as ``alert_acknowledged``).

Only the readings of the last RECENT_WINDOW are scanned each run; a sensor heard from only before that keeps
what the previous run stored (or is looked up in full once, when nothing was stored).
"""
from __future__ import annotations

import csv
import math
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analytics.sensors import sensor_states
from settings import ConfigError, Settings
from store import Store
from store import queries_sensors as qs
from store.queries_access import submit_audited
from store.queries_warning import AlertSpec, sync_alerts

THRESHOLD_KIND = "sensor_threshold"
SILENT_KIND = "sensor_silent"
# Two days: far longer than any scheduled kind's silence (3 h x 2), so a scan of recent readings sees every
# sensor that is speaking; older ones carry over from the stored states.
RECENT_WINDOW = timedelta(days=2)
METHOD_VERSION = "sensor-states-1"
# States (and the threshold and silence alerts) are judged at most this often; presses every run. A wall
# refreshes every wall.refresh_s (10 s): states judged more often would never be seen, and judging them
# costs a scan of two days of readings.
STATES_EVERY_S = 10.0
_last_judged: dict[str, float] = {}

_thresholds_lock = threading.Lock()
_thresholds_cache: dict[tuple, dict[str, float]] = {}


def _read_thresholds(path: Path, key: str) -> dict[str, float]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"sensor_id", "threshold"} <= set(reader.fieldnames):
                raise ConfigError(f"config '{key}': {path} needs a header with sensor_id,threshold")
            out: dict[str, float] = {}
            for line, row in enumerate(reader, start=2):
                try:
                    value = float(row["threshold"])
                except (TypeError, ValueError):
                    raise ConfigError(f"config '{key}': {path} line {line}: threshold is not a number") from None
                if not math.isfinite(value):
                    raise ConfigError(f"config '{key}': {path} line {line}: threshold is not a finite number")
                out[str(row["sensor_id"]).strip()] = value
            return out
    except OSError as exc:
        raise ConfigError(f"config '{key}': file {path}: {exc.strerror}") from None


def sensor_thresholds(settings: Settings) -> dict[str, dict[str, float]]:
    """kind -> {sensor_id: threshold} from each kind's thresholds_file (re-read when the file changes)."""
    out: dict[str, dict[str, float]] = {}
    for name, kind in settings.sensors.kinds.items():
        if kind.thresholds_file is None:
            continue
        path = settings.path(kind.thresholds_file)
        key = f"sensors.kinds.{name}.thresholds_file"
        try:
            stamp = path.stat().st_mtime_ns
        except OSError as exc:
            raise ConfigError(f"config '{key}': file {path}: {exc.strerror}") from None
        with _thresholds_lock:
            found = _thresholds_cache.get((str(path), stamp))
        if found is None:
            found = _read_thresholds(path, key)
            with _thresholds_lock:
                _thresholds_cache[(str(path), stamp)] = found
        if kind.counts_people:
            small = [s for s, v in found.items() if v < settings.privacy.min_count]
            if small:
                raise ConfigError(f"config '{key}': thresholds below privacy.min_count for {', '.join(small[:5])}")
        out[name] = found
    return out


def check_config(settings: Settings) -> None:
    """Fail at start, naming the key, when a thresholds file is missing or malformed."""
    sensor_thresholds(settings)


# ---- states ------------------------------------------------------------------------------------------
def judge_states(store: Store, settings: Settings, now: datetime) -> pd.DataFrame:
    """Every sensor's state now (qs.STATE_COLUMNS); nothing is written."""
    cfg = settings.sensors
    kind_metrics = {name: k.metric for name, k in cfg.kinds.items()}
    previous = qs.stored_states(store).set_index("sensor_id")
    latest = qs.latest_readings(store, kind_metrics, cfg.health_metric, now - RECENT_WINDOW)
    quiet = latest["last_seen"].isna()
    carried = quiet & latest["sensor_id"].isin(previous.index)
    for column in ("last_seen", "value", "value_at", "battery_pct", "battery_at"):
        if carried.any():
            latest.loc[carried, column] = previous.loc[latest.loc[carried, "sensor_id"], column].to_numpy()
    unknown = latest.loc[quiet & ~carried, "sensor_id"].tolist()
    if unknown:  # nothing recent and nothing stored: look further back, once
        full = qs.latest_readings(store, kind_metrics, cfg.health_metric, None, unknown).set_index("sensor_id")
        rows = latest["sensor_id"].isin(unknown)
        for column in ("last_seen", "value", "value_at", "battery_pct", "battery_at"):
            latest.loc[rows, column] = full.loc[latest.loc[rows, "sensor_id"], column].to_numpy()

    per_sensor = sensor_thresholds(settings)
    kinds = latest["kind"]
    latest["metric"] = kinds.map(lambda k: cfg.kinds[k].metric if k in cfg.kinds else None)
    latest["threshold"] = [per_sensor.get(k, {}).get(s, cfg.kinds[k].threshold) if k in cfg.kinds else None
                           for k, s in zip(kinds, latest["sensor_id"])]
    latest["expected_interval_s"] = kinds.map(
        lambda k: cfg.kinds[k].expected_interval_s if k in cfg.kinds else None).astype("Int64")
    latest["threshold"] = pd.to_numeric(latest["threshold"], errors="coerce")
    # A sensor of a kind not configured is shown, never judged: it has no metric, so it is "normal".
    latest["state"] = sensor_states(latest["last_seen"], latest["value"], latest["threshold"],
                                    latest["expected_interval_s"].astype(float), pd.Timestamp(now), cfg.silent_factor)
    before = previous["state"].reindex(latest["sensor_id"]).to_numpy()
    before_since = previous["since"].reindex(latest["sensor_id"]).to_numpy()
    same = before == latest["state"].to_numpy()
    latest["since"] = np.where(same, before_since, pd.Timestamp(now))
    # A silent sensor has been silent since its last reading; the state does not begin when we noticed.
    silent = latest["state"] == "silent"
    latest.loc[silent, "since"] = latest.loc[silent, "last_seen"]
    latest["since"] = pd.to_datetime(latest["since"], utc=True)
    latest["checked_at"] = pd.Timestamp(now)
    for column in ("last_seen", "value_at", "battery_at"):
        latest[column] = pd.to_datetime(latest[column], utc=True)
    for column in ("value", "battery_pct"):
        latest[column] = pd.to_numeric(latest[column], errors="coerce")
    return latest[list(qs.STATE_COLUMNS)]


def _local(ts, tz: ZoneInfo) -> str:
    return pd.Timestamp(ts).tz_convert(tz).strftime("%d %b %H:%M")


def _number(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"


def _interval_text(seconds: int) -> str:
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds // 60} min"


def alert_specs(states: pd.DataFrame, sensors: pd.DataFrame, settings: Settings) -> tuple[list[AlertSpec],
                                                                                           list[AlertSpec]]:
    """(threshold alerts, silent alerts) that should be open for these states."""
    tz = ZoneInfo(settings.city.timezone)
    # Plain dicts, not a per-row .loc: a city-wide outage makes thousands of silent sensors at once.
    names, area_ids, area_names = (dict(zip(sensors["sensor_id"], sensors[c])) for c in ("name", "area_id",
                                                                                          "area_name"))
    above, silent = [], []
    for r in states[states["state"].isin(("above", "silent"))].itertuples(index=False):
        kind = settings.sensors.kinds.get(r.kind)
        if kind is None:
            continue
        name = names.get(r.sensor_id)
        name = name if isinstance(name, str) else r.sensor_id
        area_id = area_ids.get(r.sensor_id)
        area_id = area_id if isinstance(area_id, str) else None
        area = area_names.get(r.sensor_id)
        area = area if isinstance(area, str) else "the city"
        since: date = pd.Timestamp(r.since).tz_convert(tz).date()
        if r.state == "above":
            if kind.counts_people:  # the threshold, never the count
                detail = f"{name} ({r.sensor_id}): at or above {_number(r.threshold)} {kind.unit} since " \
                         f"{_local(r.since, tz)}"
            else:
                detail = f"{name} ({r.sensor_id}): {_number(r.value)} {kind.unit} at {_local(r.value_at, tz)}, " \
                         f"above {_number(r.threshold)} {kind.unit}"
            above.append(AlertSpec(f"{THRESHOLD_KIND}:{r.sensor_id}", since, kind.severity, THRESHOLD_KIND, area_id,
                                   f"{kind.label} above threshold in {area}", detail,
                                   f"sensors.kinds.{r.kind}.threshold", _number(r.threshold)))
        else:
            detail = f"{name} ({r.sensor_id}): nothing since {_local(r.last_seen, tz)}, expected every " \
                     f"{_interval_text(int(kind.expected_interval_s))}"
            silent.append(AlertSpec(f"{SILENT_KIND}:{r.sensor_id}", since, "warning", SILENT_KIND, area_id,
                                    f"{kind.label} silent in {area}", detail, "sensors.silent_factor",
                                    str(settings.sensors.silent_factor)))
    return above, silent


def incident_texts(presses: pd.DataFrame, sensors: pd.DataFrame, settings: Settings
                   ) -> tuple[list[str], list[str], list[str]]:
    """Titles, details and severities of the incident alerts for these presses. The title names the area
    only: every role that reads alerts sees it; the place itself is on the wall for those who may see it."""
    tz = ZoneInfo(settings.city.timezone)
    names = dict(zip(sensors["sensor_id"], sensors["area_name"]))
    titles, details, severities = [], [], []
    for p in presses.itertuples(index=False):
        kind = settings.sensors.kinds[p.kind]
        area = names.get(p.sensor_id)
        titles.append(f"{kind.label} pressed in {area if isinstance(area, str) else 'the city'}")
        details.append(f"{p.name if isinstance(p.name, str) else p.sensor_id} ({p.sensor_id}) at "
                       f"{_local(p.ts, tz)}: acknowledge when someone is on the way")
        severities.append(kind.severity)
    return titles, details, severities


def run(store: Store, settings: Settings, today: date | None = None, now: datetime | None = None) -> dict:
    """One run (see the module docstring); ``now`` is for tests (a given now always judges the states)."""
    clock = time.monotonic()
    judge = now is not None or clock - _last_judged.get(str(store.path), -math.inf) >= STATES_EVERY_S
    now = now or datetime.now(timezone.utc)
    cfg = settings.sensors
    incident_metrics = {name: k.metric for name, k in cfg.kinds.items() if k.incident}
    presses = qs.unraised_presses(store, incident_metrics, now - timedelta(hours=cfg.incident_lookback_h))
    if not judge and presses.empty:
        return {"status": "unchanged"}
    sensors = qs.sensor_table(store)[["sensor_id", "name", "area_id", "area_name"]]
    states = judge_states(store, settings, now) if judge else None
    above, silent = alert_specs(states, sensors, settings) if judge else ([], [])
    titles, details, severities = incident_texts(presses, sensors, settings)

    def job(con) -> dict:
        out = {"incidents_raised": len(qs.raise_incidents_in(con, presses, titles, details, severities, now))}
        if states is not None:
            qs.replace_states_in(con, states)
            crossings = sync_alerts(con, THRESHOLD_KIND, above, now)
            silences = sync_alerts(con, SILENT_KIND, silent, now)
            out.update(threshold_raised=crossings["raised"], threshold_resolved=crossings["resolved"],
                       silent_raised=silences["raised"], silent_resolved=silences["resolved"])
        return out
    # The audited submit only when an incident is raised: it writes the audit anchor after the commit.
    submit = submit_audited if len(presses) else (lambda s, j: s.submit(j))
    summary = submit(store, job).result(timeout=60)
    if states is None:
        return {"status": "computed", "method_version": METHOD_VERSION, **summary}
    _last_judged[str(store.path)] = clock
    counts = states["state"].value_counts()
    return {"status": "computed", "method_version": METHOD_VERSION,
            **{f"sensors_{s}": int(counts.get(s, 0)) for s in ("normal", "above", "silent", "no_data")}, **summary}
