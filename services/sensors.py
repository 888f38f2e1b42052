"""The sensors read model (/sensors): every sensor with its stored state, per-kind panels, a sensor's history.

Nothing here judges a state: the sensor job stores each sensor's state, latest reading and threshold
(``sensor_states``, jobs/sensor_alerts.py), and the lead job the wastewater leads (``sensor_leads``).
This module selects them and cuts them to the caller with the one privacy function:

- readings of kinds that do not count people's health (footfall counters, wastewater samplers,
  air-quality monitors, panic buttons' batteries) are not personal: public infrastructure measuring many
  people at once, shown to every role that may open /sensors (grain ``area``);
- readings of kinds that count people (``counts_people``: fever-screening kiosks) are cut like case counts
  of a place (grain ``cell``, the kiosk's H3 cell): a value from 1 to privacy.min_count - 1 is withheld
  below the ``points`` level, and a police user bound to precincts sees only the kiosks inside them;
- incident kinds (panic buttons) are cut at grain ``cell`` too: when a button was last pressed is as
  sensitive as the incident (services.incidents), so a bound police user sees only its precincts' buttons.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from auth.principal import Principal
from services.privacy import SUPPRESSED_SUFFIX, Disclosure, disclose, jurisdiction, may_see_cell
from settings import Settings, SensorKind
from store import Store
from store import queries_sensors as qs

SENSORS = Disclosure("sensors.readings", grain="area", cell_column=None)
PEOPLE_COUNTS = Disclosure("sensors.people_counts", grain="cell", counts=("value",))
HISTORY = Disclosure("sensors.history", grain="area", cell_column=None)
PEOPLE_HISTORY = Disclosure("sensors.people_history", grain="cell", counts=("value",))
# When a panic button was last pressed is as sensitive as the incident itself (services.incidents).
INCIDENT_PLACES = Disclosure("sensors.incident_places", grain="cell")
CITY_LEAD = "city"
ROW_COLUMNS = ["sensor_id", "kind", "label", "name", "lat", "lng", "h3_cell", "area_id", "area_name", "state",
               "value", "value__suppressed", "unit", "threshold", "ratio", "value_at", "last_seen", "since",
               "expected_interval_s", "battery_pct", "battery_low", "battery_at", "checked_at"]


class UnknownSensor(LookupError):
    """No such sensor, or one the caller may not see (answered alike)."""


@dataclass(frozen=True)
class KindPanel:
    kind: str
    label: str
    unit: str
    threshold_note: str  # how the threshold is set, in words
    counts: dict[str, int]  # state -> sensors
    rows: pd.DataFrame  # ROW_COLUMNS of this kind, most loaded first (ratio to threshold, else value)
    above: pd.DataFrame  # the rows above threshold now
    counts_people: bool
    incident: bool


@dataclass(frozen=True)
class SensorsView:
    checked_at: datetime | None  # when the sensor job last judged the states
    rows: pd.DataFrame  # ROW_COLUMNS, every sensor the caller may see
    panels: tuple[KindPanel, ...]
    leads: pd.DataFrame  # series, name, lag_days, correlation, days_used, window_days, as_of
    city_lead: dict | None  # the city's samplers together: lag_days, correlation, days_used, window_days


@dataclass(frozen=True)
class SensorHistory:
    sensor_id: str
    kind: str
    label: str
    name: str
    unit: str
    metric: str
    threshold: float | None
    readings: pd.DataFrame  # ts, metric, value, value__suppressed (the kind's metric), oldest first
    battery: pd.DataFrame  # ts, value (the health metric), oldest first
    days: int


def _kind(settings: Settings, kind: str) -> SensorKind | None:
    return settings.sensors.kinds.get(kind)


def _threshold_note(settings: Settings, name: str, kind: SensorKind) -> str:
    if kind.incident:
        return "every press is an incident until acknowledged"
    if kind.thresholds_file is not None:
        base = f"; {kind.threshold:g} {kind.unit} elsewhere" if kind.threshold is not None else ""
        return f"each place's own threshold (capacity){base}"
    if kind.threshold is not None:
        return f"above {kind.threshold:g} {kind.unit}"
    return "no threshold"


def _cut(principal: Principal, settings: Settings, store: Store, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of kinds that count people through PEOPLE_COUNTS, of incident kinds through INCIDENT_PLACES, the
    rest through SENSORS."""
    people = rows["kind"].map(lambda k: bool(_kind(settings, k) and _kind(settings, k).counts_people))
    incident = rows["kind"].map(lambda k: bool(_kind(settings, k) and _kind(settings, k).incident)) & ~people
    common = disclose(principal, rows[~people & ~incident], SENSORS, min_count=settings.privacy.min_count)
    places = disclose(principal, rows[incident], INCIDENT_PLACES, min_count=settings.privacy.min_count,
                      jurisdiction=jurisdiction(store))
    counted = disclose(principal, rows[people], PEOPLE_COUNTS, min_count=settings.privacy.min_count,
                       jurisdiction=jurisdiction(store))
    parts = [p for p in (common, places, counted) if len(p)]
    out = pd.concat(parts, ignore_index=True) if parts else common.iloc[0:0]
    if "value" + SUPPRESSED_SUFFIX not in out:
        out["value__suppressed"] = False
    out["value__suppressed"] = out["value__suppressed"].fillna(False).astype(bool)
    return out


def sensors_view(store: Store, settings: Settings, principal: Principal) -> SensorsView:
    """Everything /sensors shows, for this principal."""
    principal.require("view_sensors")
    table = qs.sensor_table(store)
    cfg = settings.sensors
    table["label"] = table["kind"].map(lambda k: cfg.kinds[k].label if k in cfg.kinds else k.replace("_", " "))
    table["unit"] = table["kind"].map(lambda k: cfg.kinds[k].unit if k in cfg.kinds else "")
    table["state"] = table["state"].fillna("no_data")
    shown = _cut(principal, settings, store, table)
    value = pd.to_numeric(shown["value"], errors="coerce")
    threshold = pd.to_numeric(shown["threshold"], errors="coerce")
    shown["ratio"] = np.where(threshold > 0, value / threshold, np.nan)
    battery = pd.to_numeric(shown["battery_pct"], errors="coerce")
    shown["battery_low"] = battery.notna() & (battery < cfg.battery_low_pct)
    shown = shown.reindex(columns=ROW_COLUMNS)
    checked = pd.to_datetime(shown["checked_at"], utc=True).max() if len(shown) else None
    panels = []
    for name, kind in cfg.kinds.items():
        mine = shown[shown["kind"] == name]
        if mine.empty:
            continue
        order = mine.assign(_load=mine["ratio"].fillna(pd.to_numeric(mine["value"], errors="coerce")))
        mine = order.sort_values("_load", ascending=False, na_position="last").drop(columns="_load")
        counts = {s: int((mine["state"] == s).sum()) for s in ("normal", "above", "silent", "no_data")}
        panels.append(KindPanel(name, kind.label, kind.unit, _threshold_note(settings, name, kind), counts,
                                mine.reset_index(drop=True), mine[mine["state"] == "above"].reset_index(drop=True),
                                kind.counts_people, kind.incident))
    leads = qs.leads(store)
    names = dict(zip(table["sensor_id"], table["name"]))
    leads["name"] = [("All samplers" if s == CITY_LEAD else names.get(s, s)) for s in leads["series"]]
    city = leads[leads["series"] == CITY_LEAD]
    city_lead = None
    if len(city):
        r = city.iloc[0]
        city_lead = {"lag_days": None if pd.isna(r["lag_days"]) else int(r["lag_days"]),
                     "correlation": None if pd.isna(r["correlation"]) else float(r["correlation"]),
                     "days_used": int(r["days_used"]), "window_days": int(r["window_days"]), "as_of": r["as_of"]}
    return SensorsView(None if checked is None or pd.isna(checked) else checked.to_pydatetime(),
                       shown.reset_index(drop=True), tuple(panels), leads[leads["series"] != CITY_LEAD]
                       .reset_index(drop=True), city_lead)


def sensor_history(store: Store, settings: Settings, principal: Principal, sensor_id: str,
                   days: int | None = None, now: datetime | None = None) -> SensorHistory:
    """One sensor's readings of the last ``days`` (sensors.history_days) days, cut to the caller."""
    principal.require("view_sensors")
    days = days or settings.sensors.history_days
    table = qs.sensor_table(store)
    found = table[table["sensor_id"] == sensor_id]
    if found.empty:
        raise UnknownSensor(sensor_id)
    meta = found.iloc[0]
    kind = _kind(settings, meta["kind"])
    people = bool(kind and kind.counts_people)
    if kind and (people or kind.incident) and not may_see_cell(principal, meta["h3_cell"], jurisdiction(store)):
        raise UnknownSensor(sensor_id)  # a kiosk outside what the caller may see does not exist for it
    now = now or datetime.now(timezone.utc)
    readings = qs.sensor_readings(store, sensor_id, now - timedelta(days=days))
    metric = kind.metric if kind else None
    own = readings[readings["metric"] == metric].assign(h3_cell=meta["h3_cell"])
    spec = PEOPLE_HISTORY if people else INCIDENT_PLACES if kind and kind.incident else HISTORY
    own = disclose(principal, own, spec, min_count=settings.privacy.min_count, jurisdiction=jurisdiction(store))
    if "value__suppressed" not in own:
        own["value__suppressed"] = False
    battery = readings[readings["metric"] == settings.sensors.health_metric][["ts", "value"]]
    threshold = pd.to_numeric(pd.Series([meta["threshold"]]), errors="coerce").iloc[0]
    return SensorHistory(sensor_id, meta["kind"], kind.label if kind else meta["kind"],
                         meta["name"] if isinstance(meta["name"], str) else sensor_id, kind.unit if kind else "",
                         metric or "", None if pd.isna(threshold) else float(threshold),
                         own[["ts", "metric", "value", "value__suppressed"]].reset_index(drop=True),
                         battery.reset_index(drop=True), days)


def sensor_choices(store: Store, settings: Settings, principal: Principal) -> list[dict]:
    """{label, value} of every sensor the principal may see, for choosing one whose history to show."""
    rows = sensors_view(store, settings, principal).rows
    return [{"label": f"{n if isinstance(n, str) else s} ({s}) · {k}", "value": s}
            for s, n, k in zip(rows["sensor_id"], rows["name"], rows["label"])]
