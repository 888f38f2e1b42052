"""Panic-button incidents on the wall: the presses no one has acknowledged yet, and acknowledging one.

An incident is an alert of an incident kind (``sensors.kinds.<kind>.incident``, the demo's panic_button)
raised by the sensor job for each press (jobs/sensor_alerts.py). It is shown on every page's incident
banner until a person acknowledges it; acknowledging is the alert inbox's own acknowledgement
(services.alert_inbox.act_on_alert: permission acknowledge_alerts, an ``alert_acknowledged`` audit
record in the same transaction), so the wall and /alerts never disagree about an incident.

Privacy: where a panic button is, and when it was pressed, can point at one person in distress. The
place (the button's name and position) is cut at grain ``cell``: roles below the ``cells`` level see no
incident at all, and a police user bound to precincts sees only incidents inside them. The alert's own
title names the community area only (jobs/sensor_alerts.incident_texts), as every alert does.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from auth.principal import Principal
from services.alert_inbox import act_on_alert
from services.privacy import Disclosure, disclose, jurisdiction
from settings import Settings
from store import Store
from store import queries_sensors as qs
from store.queries_warnings import AlertStateError

INCIDENTS = Disclosure("incidents.places", grain="cell")
COLUMNS = ["alert_id", "kind", "label", "raised_at", "pressed_at", "sensor_id", "name", "area_id", "area_name",
           "lat", "lng", "h3_cell", "title"]


class UnknownIncident(LookupError):
    """No open incident with that id that the caller may see (answered alike)."""


@dataclass(frozen=True)
class Incidents:
    rows: pd.DataFrame  # COLUMNS, newest press first
    may_acknowledge: bool


def incident_kinds(settings: Settings) -> tuple[str, ...]:
    return tuple(name for name, k in settings.sensors.kinds.items() if k.incident)


def open_incidents(store: Store, settings: Settings, principal: Principal) -> Incidents:
    """The incidents not yet acknowledged that this principal may see."""
    principal.require("view_alerts")
    rows = qs.open_incidents(store, incident_kinds(settings))
    rows["label"] = rows["kind"].map(lambda k: settings.sensors.kinds[k].label if k in settings.sensors.kinds else k)
    shown = disclose(principal, rows, INCIDENTS, min_count=settings.privacy.min_count,
                     jurisdiction=jurisdiction(store))
    return Incidents(shown.reindex(columns=COLUMNS).reset_index(drop=True), principal.can("acknowledge_alerts"))


def acknowledge_incident(store: Store, settings: Settings, principal: Principal, alert_id: int,
                         note: str | None = None) -> dict:
    """Acknowledge one open incident the principal can see (the inbox's acknowledgement, audited)."""
    principal.require("acknowledge_alerts")
    visible = open_incidents(store, settings, principal).rows
    if int(alert_id) not in set(int(a) for a in visible["alert_id"]):
        raise UnknownIncident(alert_id)
    try:
        return act_on_alert(store, principal, int(alert_id), "acknowledge", note or "acknowledged on the wall")
    except AlertStateError:
        raise UnknownIncident(alert_id) from None  # someone else acknowledged it a moment ago
