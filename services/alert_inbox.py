"""The alert inbox: every alert the jobs raised, one row per series and area, and acting on them.

Grouping (defined here, once): an alert's *series* is its dedupe key without the day that dates
its episode (``ew:aberration:cases:C12:2026-11-21`` -> ``ew:aberration:cases:C12``) and, for zone
alerts, without the tier too (``cluster_zone:<zone>:red:<day>`` -> ``cluster_zone:<zone>``), so an
escalating zone or a signal that fires again after a quiet spell stays on one row. A row shows
the series' latest alert (its episode: state, severity, text, who acknowledged it), how many
alerts the series raised and when it first did. What an episode is stays the jobs' definition
(docs/figures.md: "aberration alarm episodes and their alerts").

States: active (open) -> acknowledged (by whom, when, note) -> resolved; the jobs resolve an alert
when its condition ends, a person with acknowledge_alerts may resolve one earlier. Every change is
written with its audit record in one transaction (``alert_acknowledged``, ``alert_resolved``).
Alert texts carry area-level figures only (the jobs withhold small counts), so every role with
view_alerts sees the same rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from auth.principal import Principal
from services.alerts import STATES, BadAlertFilter
from services.indicators import area_names
from store import Store
from store import queries_alerts as qal
from store import queries_warnings as qw
from store.queries_access import append_audit_in, submit_audited
from store.queries_warnings import AlertStateError

SEVERITIES = ("info", "warning", "critical")  # the alerts table's, least to most
MAX_NOTE = 500
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ZONE_KIND = "cluster_zone"
ROW_COLUMNS = ["series", "alert_id", "kind", "severity", "area_id", "area_name", "title", "detail", "state",
               "raised_at", "first_raised_at", "episodes", "acknowledged_by", "acknowledged_at", "ack_note",
               "resolved_at", "resolved_by", "rule_id", "rule_version"]

__all__ = ["AlertStateError", "BadAlertFilter", "Inbox", "act_on_alert", "alert_inbox", "series_of"]


def series_of(kind: str, dedupe_key: str | None, alert_id: int) -> str:
    """The series an alert belongs to (see the module docstring)."""
    if not isinstance(dedupe_key, str) or not dedupe_key:
        return f"alert:{alert_id}"
    parts = dedupe_key.split(":")
    if len(parts) > 1 and _DAY.match(parts[-1]):
        parts = parts[:-1]
    if kind == ZONE_KIND and len(parts) > 2:
        parts = parts[:-1]  # the tier: an escalation continues the zone's series
    return ":".join(parts)


@dataclass(frozen=True)
class Inbox:
    rows: pd.DataFrame  # ROW_COLUMNS, open series first, most severe first, newest first
    total: int  # series matching the filters (rows may be cut to the limit)
    kinds: tuple[str, ...]  # every kind present, for the filter


def _actions_by_alert(store: Store, alert_ids: list[int]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for r in qw.alert_actions(store, alert_ids).to_dict("records"):
        entry = out.setdefault(int(r["alert_id"]), {})
        entry[r["action"]] = r  # the latest of each action wins (rows come oldest first)
    return out


def alert_inbox(store: Store, principal: Principal, *, state: str = "open", kind: str | None = None,
                area_id: str | None = None, severity: str | None = None, limit: int = 200, offset: int = 0) -> Inbox:
    """The inbox's rows ``offset`` to ``offset + limit`` (``total`` counts them all)."""
    principal.require("view_alerts")
    if state not in STATES:
        raise BadAlertFilter("state", f"state must be one of {', '.join(STATES)}")
    if severity is not None and severity not in SEVERITIES:
        raise BadAlertFilter("severity", f"severity must be one of {', '.join(SEVERITIES)}")
    every = qal.alerts(store, state="all", kind=kind, area_id=area_id)
    names = area_names(store)
    every["area_name"] = [names.get(a) if isinstance(a, str) else None for a in every["area_id"]]
    keys = store.read("SELECT alert_id, dedupe_key FROM alerts")
    dedupe = dict(zip(keys["alert_id"].astype(int), keys["dedupe_key"]))
    kinds = tuple(sorted(set(store.read("SELECT DISTINCT kind FROM alerts")["kind"])))
    if every.empty:
        return Inbox(pd.DataFrame(columns=ROW_COLUMNS), 0, kinds)
    every["series"] = [series_of(k, dedupe.get(int(a)), int(a)) for k, a in zip(every["kind"], every["alert_id"])]
    every = every.sort_values(["raised_at", "alert_id"])
    groups = every.groupby("series", sort=False)
    latest = groups.tail(1).set_index("series")
    first = groups["raised_at"].min()
    count = groups.size()
    actions = _actions_by_alert(store, [int(a) for a in latest["alert_id"]])
    rows = []
    first, count = first.to_dict(), count.to_dict()
    # Records, not iterrows: a Series built per row was most of the inbox's time at a city's hundreds of series.
    for series, r in zip(latest.index, latest.to_dict("records")):
        acted = actions.get(int(r["alert_id"]), {})
        ack, res = acted.get("acknowledge"), acted.get("resolve")
        rows.append({
            "series": series, "alert_id": int(r["alert_id"]), "kind": r["kind"], "severity": r["severity"],
            "area_id": r["area_id"] if isinstance(r["area_id"], str) else None, "area_name": r["area_name"],
            "title": r["title"], "detail": r["detail"], "state": r["status"], "raised_at": r["raised_at"],
            "first_raised_at": first[series], "episodes": int(count[series]),
            "acknowledged_by": ack["actor"] if ack else None, "acknowledged_at": ack["acted_at"] if ack else None,
            "ack_note": ack["note"] if ack else None, "resolved_at": r["resolved_at"],
            # Resolved by a person, or by its job when the condition ended (no action recorded).
            "resolved_by": (res["actor"] if res else "its job") if r["status"] == "resolved" else None,
            "rule_id": r["rule_id"], "rule_version": r["rule_version"]})
    table = pd.DataFrame(rows, columns=ROW_COLUMNS)
    if state == "open":
        table = table[table["state"] != "resolved"]
    elif state != "all":
        table = table[table["state"] == state]
    if severity is not None:
        table = table[table["severity"] == severity]
    table = table.assign(_open=table["state"] != "resolved",
                         _rank=table["severity"].map({s: i for i, s in enumerate(SEVERITIES)}).fillna(-1))
    table = table.sort_values(["_open", "_rank", "raised_at"], ascending=[False, False, False])
    table = table.drop(columns=["_open", "_rank"]).reset_index(drop=True)
    table = table.astype(object).where(table.notna(), None)  # missing is None (JSON null), never NaN
    start = max(0, int(offset))
    return Inbox(table.iloc[start:start + max(1, min(limit, 1000))].reset_index(drop=True), len(table), kinds)


def act_on_alert(store: Store, principal: Principal, alert_id: int, action: str, note: str | None = None,
                 now: datetime | None = None) -> dict:
    """Acknowledge (action "acknowledge") or resolve ("resolve") one alert, audited in the same transaction."""
    principal.require("acknowledge_alerts")
    if action not in ("acknowledge", "resolve"):
        raise AlertStateError(f"unknown action {action!r} (acknowledge or resolve)")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise AlertStateError(f"the note is longer than {MAX_NOTE} characters")
    now = now or datetime.now(timezone.utc)
    audit_action = "alert_acknowledged" if action == "acknowledge" else "alert_resolved"

    def job(con) -> dict:
        change = qw.act_on_alert_in(con, int(alert_id), action, principal.user, principal.role, note, now)
        append_audit_in(con, principal.user, audit_action, f"alert:{int(alert_id)}",
                        {"role": principal.role, "via": principal.via, "kind": change["kind"],
                         "area": change["area_id"], "from": change["from"], "to": change["to"], "note": note}, now)
        return {"alert_id": int(alert_id), **change}
    return submit_audited(store, job).result(timeout=30)
