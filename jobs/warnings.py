"""The warnings job: propose a CAP warning when a zone is declared, escalated or lifted, or an area's level
changes, and issue at once those whose rule says ``approval: automatic`` (warnings.zone_declared,
.zone_lifted, .level_change). Everything else waits on /alerts for a person with issue_warnings.

Runs after the cluster and early-warning jobs (jobs/scheduler.py) over the decisions of the latest
day they stored: zone events (one warning per cluster: the core and its rings are the areas of one
message) and level changes that went up or down on data. Each proposal has a ``source_key`` naming
the decision, so a rerun proposes nothing twice. A zone's declaration starts a series; its
escalation proposes an Update and its lifting a Cancel of the latest issued message of that series.
A drill database proposes with status Exercise (and cap.to_xml would refuse anything else).
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timezone

import pandas as pd

from delivery.warnings import WarningStateError, issue_warning, new_identifier
from geo.areas import geometry_from_geojson, outer_rings_latlng
from geo.cells import cells_to_outer_rings_latlng
from rulebooks import load_zone_rulebook
from settings import Settings, WarningRule
from store import Store
from store import queries as q
from store import queries_clusters as qc
from store import queries_warning as qew
from store import queries_warnings as qw
from store.queries_warnings import WarningDraft

log = logging.getLogger(__name__)
SYSTEM = "system"
ZONE_EVENT = "Containment zone"
LEVEL_EVENT = "Community risk level"
# CAP severity of a zone by its tier counted from the most restrictive: the top tier is Severe
# ("significant threat to life or property", CAP 1.2 §3.2.2), the next Moderate, lower tiers Minor.
SEVERITY_FROM_TOP = ("Severe", "Moderate")
ALL_AREA_KINDS = ("boundary", "community", "precinct", "district")


def _severity(tier: str | None, tiers: tuple[str, ...]) -> str:
    if tier not in tiers:
        return "Minor"
    from_top = len(tiers) - 1 - tiers.index(tier)
    return SEVERITY_FROM_TOP[from_top] if from_top < len(SEVERITY_FROM_TOP) else "Minor"


def _zone_areas(zones: pd.DataFrame, area_name: str) -> list[dict]:
    areas = []
    for z in zones.sort_values("role").itertuples(index=False):
        label = "core" if z.role == "core" else z.role.replace("ring", "buffer ring ")
        areas.append({"description": f"{z.tier.capitalize()} zone ({label}) of cluster {z.cluster_id} near {area_name}",
                      "polygons": cells_to_outer_rings_latlng(list(z.cells))})
    return areas


def zone_drafts(store: Store, settings: Settings, status: str) -> list[WarningDraft]:
    """Proposals for the latest day's zone decisions, one per cluster."""
    day = qc.latest_zone_event_day(store)
    if day is None:
        return []
    events = qc.zone_events_on(store, day)
    rulebook = load_zone_rulebook(settings)
    names = dict(q.areas(store, ALL_AREA_KINDS).loc[:, ["area_id", "name"]].itertuples(index=False))
    drafts = []
    for cluster_id, group in events.groupby("cluster_id", sort=True):
        core = group[group["role"] == "core"]
        if core.empty or core.iloc[0]["kind"] == "reviewed":
            continue
        event = core.iloc[0]
        kind = event["kind"]
        alert_area = store.scalar("SELECT area_id FROM alerts WHERE dedupe_key LIKE ? ORDER BY alert_id DESC LIMIT 1",
                                  [f"cluster_zone:{cluster_id}:core:%"])
        area_name = names.get(alert_area, settings.city.name)
        source_key = f"zone:{cluster_id}:{day.isoformat()}:{kind}"
        series = store.submit(lambda con, c=cluster_id: qw.series_head_in(
            con, qw.series_of_source_in(con, f"zone:{c}:") or "")).result(30)
        zones = qc.zone(store, event["zone_id"])
        cluster_zones = store.read("SELECT * FROM zones WHERE cluster_id = ?", [cluster_id])
        tier = event["tier"] or (zones.iloc[0]["tier"] if len(zones) else None)
        if kind == "lifted":
            if series is None:
                continue  # nothing was issued for this zone: there is nothing to cancel
            drafts.append(WarningDraft(
                identifier=new_identifier(settings), series_id=series["series_id"], msg_type="Cancel",
                references_id=int(series["warning_id"]), status=status, rule="zone_lifted", source_key=source_key,
                proposed_by=SYSTEM, event=ZONE_EVENT, urgency="Past", severity="Minor", certainty="Observed",
                headline=f"Containment zone lifted near {area_name} (cluster {cluster_id})",
                description=f"The containment zone of cluster {cluster_id} was lifted on {day:%d %b %Y}. "
                            f"{event['reason'] or ''}".strip(),
                instruction="The restrictions of this zone no longer apply.",
                areas=series["areas"]))
            continue
        msg_type = "Update" if series is not None else "Alert"
        verb = "declared" if kind == "entered" else f"escalated to {tier}"
        drafts.append(WarningDraft(
            identifier=new_identifier(settings), series_id=series["series_id"] if series else "",
            msg_type=msg_type, references_id=int(series["warning_id"]) if series else None, status=status,
            rule="zone_declared", source_key=source_key, proposed_by=SYSTEM, event=ZONE_EVENT,
            urgency="Immediate", severity=_severity(tier, rulebook.zone_tiers), certainty="Observed",
            headline=f"{str(tier).capitalize()} containment zone {verb} near {area_name}",
            description=f"Cluster {cluster_id}: {event['reason']}. Rule {event['rule_id']} version "
                        f"{event['rule_version']}, decided {day:%d %b %Y}.",
            instruction=f"People living or working in the {tier} zone: follow the public-health measures of a "
                        f"{tier} zone, get tested at once if you have symptoms, and check the command centre's "
                        "updates.",
            areas=qw.areas_json(_zone_areas(cluster_zones, area_name))))
    return drafts


def level_drafts(store: Store, settings: Settings, status: str) -> list[WarningDraft]:
    """Proposals for the latest day's level changes that went up or down on data."""
    changes = qew.level_changes(store, limit=500)
    if changes.empty:
        return []
    day = changes["as_of"].max()
    changes = changes[(changes["as_of"] == day) & changes["direction"].isin(["up", "down"])
                      & (changes["cause"] == "data")]
    if changes.empty:
        return []
    areas = q.areas(store, ALL_AREA_KINDS).set_index("area_id")
    boundary = areas[areas["kind"] == "boundary"]
    drafts = []
    for c in changes.itertuples(index=False):
        area_id = c.area_id
        row = areas.loc[area_id] if area_id in areas.index else (boundary.iloc[0] if len(boundary) else None)
        name = settings.city.name if area_id not in areas.index else str(row["name"])
        polygons = []
        if row is not None:
            try:
                polygons = outer_rings_latlng(geometry_from_geojson(row["geometry"]))
            except ValueError:
                polygons = []  # an area that cannot be parsed is named without an outline
        series = store.submit(lambda con, a=area_id: qw.series_head_in(
            con, qw.series_of_source_in(con, f"level:{a}:") or "")).result(30)
        up = c.direction == "up"
        drafts.append(WarningDraft(
            identifier=new_identifier(settings), series_id=series["series_id"] if series else "",
            msg_type="Update" if series else "Alert", references_id=int(series["warning_id"]) if series else None,
            status=status, rule="level_change", source_key=f"level:{area_id}:{c.change_id}", proposed_by=SYSTEM,
            event=LEVEL_EVENT, urgency="Expected", severity="Moderate" if up else "Minor", certainty="Likely",
            headline=f"{name}: risk level {'raised' if up else 'lowered'} from {c.from_level} to {c.to_level}",
            description=f"Under rulebook {c.rulebook_id} version {c.rulebook_version} on {c.as_of:%d %b %Y}: "
                        f"{c.basis}.",
            instruction=None, areas=qw.areas_json([{"description": name, "polygons": polygons}])))
    return drafts


def propose(store: Store, settings: Settings, now: datetime | None = None) -> list[tuple[int, str]]:
    """Store the proposals not yet made; returns (warning_id, rule) of each new one."""
    now = now or datetime.now(timezone.utc)
    status = "Exercise" if qw.is_exercise(store) else "Actual"
    rules: dict[str, WarningRule] = {"zone_declared": settings.warnings.zone_declared,
                                     "zone_lifted": settings.warnings.zone_lifted,
                                     "level_change": settings.warnings.level_change}
    drafts = [d for d in zone_drafts(store, settings, status) + level_drafts(store, settings, status)
              if rules[d.rule].propose]

    def write(con) -> list[tuple[int, str]]:
        made = []
        for d in drafts:
            if d.series_id == "":
                d = WarningDraft(**{**{f: getattr(d, f) for f in d.__slots__}, "series_id": d.identifier})
            warning_id = qw.insert_warning_in(con, d, now)
            if warning_id is not None:
                made.append((warning_id, d.rule))
        return made
    return store.submit(write).result(timeout=30)


def run(store: Store, settings: Settings, today: date) -> dict:
    made = propose(store, settings)
    issued = 0
    for warning_id, rule in made:
        if getattr(settings.warnings, rule).approval == "automatic":
            try:
                issue_warning(store, settings, warning_id, actor=SYSTEM, role=SYSTEM, note=f"rule {rule}: automatic")
                issued += 1
            except WarningStateError as exc:
                log.warning("warning %s not issued automatically: %s", warning_id, exc)
    return {"status": "computed", "proposed": len(made), "issued": issued}
