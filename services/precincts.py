"""Precinct risk: the read model of /precincts and of GET /api/v1/precincts[/<id>], cut to the caller.

Per police precinct, on the day the indicators job last computed: counted cases over 7 and 14 days
with the periods before them (stored per precinct and day in ``precinct_days`` by jobs.precinct_figures),
the rates per 100,000, the change against the period before and its trend (analytics.trend), the
share of the precinct's area inside containment zones of each tier, the precinct's tier (the most
restrictive tier present in it), and the open alerts of the community areas it overlaps.

Everything goes through services.privacy.disclose: counts of 1..k-1 (and the rates, changes and
trends made from them) are withheld on the whole table of precincts, with complementary suppression
across precincts (they partition the city, whose total is shown on the overview); a police user bound
to precincts then gets its own precincts' rows only. Zone shares and alerts concern places, not people.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from analytics.trend import relative_change, trend_of
from auth.principal import Principal
from geo.precincts import PrecinctIndex, cell_cover_shares, precincts_from_rows
from rulebooks import load_zone_rulebook
from services.clusters import ZONES
from services.privacy import SUPPRESSED_SUFFIX, Disclosure, disclose, jurisdiction
from settings import Settings
from store import Store
from store import queries as q
from store import queries_alerts as qal
from store import queries_clusters as qc
from store import queries_precincts as qp

COUNTS = ("cases_7d", "cases_previous_7d", "cases_14d", "cases_previous_14d")
RISK = Disclosure(
    "precincts.risk", grain="area", cell_column=None, counts=COUNTS, complementary=COUNTS,
    derived=(("rate_7d_per_100k", "cases_7d"), ("rate_14d_per_100k", "cases_14d"),
             ("change_7d", "cases_7d"), ("change_7d", "cases_previous_7d"),
             ("change_14d", "cases_14d"), ("change_14d", "cases_previous_14d")),
    precinct_column="precinct_id")
HISTORY = Disclosure(
    "precincts.history", grain="area", cell_column=None, counts=("cases", "cases_7d"),
    complementary=("cases", "cases_7d"), group_by=("day",), derived=(("rate_7d_per_100k", "cases_7d"),),
    precinct_column="precinct_id")
# Eight weeks on the panel's trend chart: the 14-day comparison and the weeks before it.
HISTORY_DAYS = 56
# A community area counts as overlapping a precinct when at least this share of it lies inside: Voronoi
# layers drawn from different seeds touch along long borders, and a sliver is not "in the precinct".
MIN_OVERLAP_SHARE = 0.01


class UnknownPrecinct(LookupError):
    """No precinct with this id that the caller may see."""


@dataclass(frozen=True)
class PrecinctRisk:
    as_of: date | None  # the day the figures describe (None: the indicators job has not stored any yet)
    tiers: tuple[str, ...]  # zone tiers, lowest restriction first (the zone rulebook's order)
    rows: pd.DataFrame  # one row per precinct the caller may see (see precinct_risk)
    min_count: int
    scoped: bool  # True when the rows were cut to the caller's precincts


@dataclass(frozen=True)
class PrecinctDetail:
    precinct_id: str
    name: str
    row: dict  # the precinct's row of PrecinctRisk.rows
    history: pd.DataFrame  # day, cases, cases_7d, rate_7d_per_100k (+ flags), HISTORY_DAYS days
    zones: pd.DataFrame  # zone_id, cluster_id, role, tier, since, share (of the precinct's area)
    alerts: pd.DataFrame  # open alerts of the community areas the precinct overlaps
    tiers: tuple[str, ...]
    min_count: int


# ---- geometry, cached until the areas or the zones change -----------------------------------------------
_cache: dict[tuple, object] = {}
_cache_lock = threading.Lock()


def _cached(key: tuple, make):
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    value = make()
    with _cache_lock:
        if len(_cache) > 16:
            _cache.clear()
        _cache[key] = value
    return value


def precinct_index(store: Store) -> PrecinctIndex:
    """The stored precincts, for point-in-precinct look-ups."""
    return _cached(("index", str(store.path), q.areas_version(store)),
                   lambda: PrecinctIndex(precincts_from_rows(q.areas(store, ("precinct",)))))


def _community_overlaps(store: Store) -> dict[str, frozenset[str]]:
    """precinct id -> the community (and district) areas that overlap it."""
    def make():
        precincts = precinct_index(store).precincts
        communities = precincts_from_rows(q.areas(store, ("community", "district")))
        out = {}
        for p in precincts:
            out[p.area_id] = frozenset(
                c.area_id for c in communities
                if c.geometry.intersects(p.geometry)
                and c.geometry.intersection(p.geometry).area >= MIN_OVERLAP_SHARE * c.geometry.area)
        return out
    return _cached(("overlaps", str(store.path), q.areas_version(store)), make)


def zone_shares(store: Store, zones: pd.DataFrame) -> pd.DataFrame:
    """zone_id, precinct_id, share: the share of each precinct's area inside each zone in force (share > 0)."""
    signature = tuple(sorted((z.zone_id, z.tier, len(z.cells)) for z in zones.itertuples(index=False)))

    def make():
        precincts = precinct_index(store).precincts
        rows = []
        for z in zones.itertuples(index=False):
            for precinct_id, share in cell_cover_shares(list(z.cells), precincts).items():
                if share > 0:
                    rows.append({"zone_id": z.zone_id, "precinct_id": precinct_id, "share": share})
        return pd.DataFrame(rows, columns=["zone_id", "precinct_id", "share"])
    return _cached(("zones", str(store.path), q.areas_version(store), signature), make)


def _tier_shares(store: Store, zones: pd.DataFrame, tiers: tuple[str, ...], precinct_ids: list[str]
                 ) -> dict[str, dict[str, float]]:
    """precinct id -> {tier: share of its area}; where zones of two tiers overlap, the stricter one counts."""
    out = {p: {t: 0.0 for t in tiers} for p in precinct_ids}
    if zones.empty:
        return out
    precincts = precinct_index(store).precincts
    claimed: set[str] = set()
    for tier in reversed(tiers):  # strictest first: a cell in a red and an orange zone is red
        cells = [c for z in zones[zones["tier"] == tier].itertuples(index=False) for c in z.cells if c not in claimed]
        cells = list(dict.fromkeys(cells))
        claimed.update(cells)
        if cells:
            for precinct_id, share in cell_cover_shares(cells, precincts).items():
                if precinct_id in out:
                    out[precinct_id][tier] = share
    return out


def _tier_shares_cached(store: Store, zones: pd.DataFrame, tiers: tuple[str, ...], precinct_ids: list[str]):
    signature = tuple(sorted((z.zone_id, z.tier, len(z.cells)) for z in zones.itertuples(index=False)))
    return _cached(("tiers", str(store.path), q.areas_version(store), signature, tiers),
                   lambda: _tier_shares(store, zones, tiers, precinct_ids))


# ---- the read model ---------------------------------------------------------------------------------------
def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _raw_table(store: Store, day: date) -> pd.DataFrame:
    rows = qp.precinct_days_on(store, day)
    rows["change_7d"] = [relative_change(_number(a), _number(b))
                         for a, b in zip(rows["cases_7d"], rows["cases_previous_7d"])]
    rows["change_14d"] = [relative_change(_number(a), _number(b))
                          for a, b in zip(rows["cases_14d"], rows["cases_previous_14d"])]
    for column in ("change_7d", "change_14d"):
        rows[column] = pd.to_numeric(rows[column], errors="coerce").astype(float)
    return rows


def precinct_risk(store: Store, settings: Settings, principal: Principal) -> PrecinctRisk:
    """Every precinct's risk on the latest stored day, cut to the principal."""
    principal.require("view_precincts")
    rulebook = load_zone_rulebook(settings)
    tiers = tuple(rulebook.zone_tiers)
    k = settings.privacy.min_count
    index = precinct_index(store)
    day = qp.latest_precinct_day(store)
    day = day.date() if isinstance(day, pd.Timestamp) else day
    if day is None or len(index) == 0:
        return PrecinctRisk(day, tiers, pd.DataFrame(), k, bool(principal.precincts))
    rows = disclose(principal, _raw_table(store, day), RISK, min_count=k)
    rows["name"] = [index.name(p) or p for p in rows["precinct_id"]]
    for now, before, out in (("cases_7d", "cases_previous_7d", "trend_7d"),
                             ("cases_14d", "cases_previous_14d", "trend_14d")):
        rows[out] = [None if rows.at[i, now + SUPPRESSED_SUFFIX] or rows.at[i, before + SUPPRESSED_SUFFIX]
                     else trend_of(_number(rows.at[i, now]), _number(rows.at[i, before])) for i in rows.index]
    zones = qc.zones_in_force(store)
    shares = _tier_shares_cached(store, zones, tiers, [p.area_id for p in index.precincts])
    rows["zone_shares"] = [shares.get(p, {t: 0.0 for t in tiers}) for p in rows["precinct_id"]]
    # Ranked from the list, not from the column: pandas stores a column of strings and None as strings
    # with NaN for None, and NaN is not "no zone" to the rulebook.
    tier_of = [next((t for t in reversed(tiers) if s.get(t, 0.0) > 0), None) for s in rows["zone_shares"]]
    rows["tier"] = pd.Series(tier_of, index=rows.index, dtype=object)
    rows["tier_rank"] = [rulebook.rank(t) for t in tier_of]
    open_alerts = qal.alerts(store, state="open")
    overlaps = _community_overlaps(store)
    rows["active_alerts"] = [int(open_alerts["area_id"].isin(overlaps.get(p, frozenset()) | {p}).sum())
                             for p in rows["precinct_id"]]
    return PrecinctRisk(day, tiers, rows.reset_index(drop=True), k, bool(principal.precincts))


def precinct_detail(store: Store, settings: Settings, principal: Principal, precinct_id: str) -> PrecinctDetail:
    """One precinct's row, its daily cases over HISTORY_DAYS, the zones inside it and its open alerts.

    A precinct the caller may not see (a police user bound elsewhere) is UnknownPrecinct, exactly like one
    that does not exist.
    """
    risk = precinct_risk(store, settings, principal)
    match = risk.rows[risk.rows["precinct_id"] == precinct_id] if len(risk.rows) else risk.rows
    if match.empty or risk.as_of is None:
        raise UnknownPrecinct(f"no precinct {precinct_id!r}")
    row = match.iloc[0].to_dict()
    k = settings.privacy.min_count
    start = risk.as_of - timedelta(days=HISTORY_DAYS - 1)
    # Withheld on the table of every precinct per day (complementary within each day), then this one's rows.
    everyone = qp.precinct_history_all(store, start, risk.as_of)
    history = disclose(principal, everyone, HISTORY, min_count=k)
    history = history[history["precinct_id"] == precinct_id].drop(columns=["precinct_id"]).reset_index(drop=True)
    zones = disclose(principal, qc.zones_in_force(store), ZONES, min_count=k, jurisdiction=jurisdiction(store))
    inside = zone_shares(store, qc.zones_in_force(store))
    inside = inside[inside["precinct_id"] == precinct_id][["zone_id", "share"]]
    zones = zones.merge(inside, on="zone_id", how="inner")
    zones = zones[["zone_id", "cluster_id", "role", "tier", "since", "share"]].assign(
        rank=[-load_zone_rulebook(settings).rank(t) for t in zones["tier"]]).sort_values(
        ["rank", "share"], ascending=[True, False]).drop(columns=["rank"]).reset_index(drop=True)
    communities = _community_overlaps(store).get(precinct_id, frozenset()) | {precinct_id}
    alerts = qal.alerts(store, state="open")
    alerts = alerts[alerts["area_id"].isin(communities)].reset_index(drop=True)
    return PrecinctDetail(precinct_id, str(row["name"]), row, history, zones, alerts, risk.tiers, k)


def share_text(share: float | None) -> str:
    """A zone share as printed: "0 %" only for none at all, "<1 %" for a sliver."""
    if share is None or not np.isfinite(share) or share <= 0:
        return "0 %"
    return "<1 %" if share < 0.005 else f"{share:.0%}".replace("%", " %")
