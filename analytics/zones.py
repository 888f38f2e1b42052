"""Tiered containment zones around case clusters, driven by a rulebook kept as data.

Method: New York State's Cluster Action Initiative / micro-cluster strategy (Executive
Order 202.68, 6 Oct 2020; metrics of 21 Oct 2020): a red core where the cluster is, an
orange warning ring around it and a yellow precautionary ring beyond that. An area
qualifies for a tier when its 7-day rolling test positivity has been above the tier's
threshold on each of the last 10 days and it has at least a given number of new daily
cases per 100,000 on a 7-day average (red also needs a minimum daily case count). The
thresholds depend on the population of the county (or city) around the area. A zone is
reviewed after 14 days and only then may be lifted or stepped down; escalation is
immediate. The figures live in rulebooks/*.yaml; this module only interprets them.

Everything here is pure: the caller reads the YAML, supplies the data and stores the
:class:`ZoneEvent` records returned by :func:`update_zone_history`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from geo.buffers import cells_to_grid_disk, grid_rings_for_width_m
from geo.cells import cell_resolution, is_valid_cell

PER_100K = 100_000.0

EVENT_KINDS: tuple[str, ...] = ("entered", "reviewed", "escalated", "lifted")
CORE_ROLE = "core"


# ----------------------------------------------------------------------------- rulebook


@dataclass(frozen=True, slots=True)
class MinDailyCases:
    """At least ``cases`` new cases a day (7-day average) in areas of ``min_area_population``+ residents."""

    min_area_population: int
    cases: float


@dataclass(frozen=True, slots=True)
class TierThreshold:
    """What an area must show to qualify for one zone tier."""

    tier: str
    positivity_above: float  # fraction (0.025 = 2.5 %); strictly above
    min_daily_cases_per_100k: float  # at least, 7-day average
    min_daily_cases: tuple[MinDailyCases, ...] = ()  # highest population band first


@dataclass(frozen=True, slots=True)
class PopulationTier:
    """Thresholds for areas inside jurisdictions of a given size."""

    id: str
    label: str
    min_county_population: int
    min_city_population: int | None
    thresholds: tuple[TierThreshold, ...]  # in zone_tiers order, lowest first

    def threshold_for(self, tier: str) -> TierThreshold:
        return next(t for t in self.thresholds if t.tier == tier)


@dataclass(frozen=True, slots=True)
class RingRule:
    """A buffer of ``tier`` around the zone core: ``k`` cell rings or ``width_m`` metres."""

    tier: str
    k: int | None
    width_m: float | None

    def rings_at(self, resolution: int) -> int:
        if self.k is not None:
            return self.k
        return grid_rings_for_width_m(self.width_m, resolution)


@dataclass(frozen=True, slots=True)
class ZoneRulebook:
    """A parsed, validated zone rulebook (see rulebooks/zones_nys_cai_2020.yaml)."""

    id: str
    version: str
    title: str
    source: str
    zone_tiers: tuple[str, ...]  # lowest restriction first
    window_days: int
    persistence_days: int
    review_days: int
    population_tiers: tuple[PopulationTier, ...]  # most populous first
    rings: tuple[tuple[str, tuple[RingRule, ...]], ...]  # (core tier, buffers innermost first)

    def rank(self, tier: str | None) -> int:
        """0 for no zone, then 1.. in increasing restriction."""
        return 0 if tier is None else self.zone_tiers.index(tier) + 1

    def rings_for(self, core_tier: str) -> tuple[RingRule, ...]:
        return dict(self.rings).get(core_tier, ())

    def population_tier(self, county_population: float | None, city_population: float | None = None) -> PopulationTier:
        """The first tier whose county or city minimum is met.

        Without any population the first (most populous) tier applies: its thresholds are
        the lowest, so an unknown jurisdiction is treated with the most caution.
        """
        if county_population is None and city_population is None:
            return self.population_tiers[0]
        for tier in self.population_tiers:
            if county_population is not None and county_population >= tier.min_county_population:
                return tier
            city_minimum = tier.min_city_population
            if city_population is not None and city_minimum is not None and city_population >= city_minimum:
                return tier
        return self.population_tiers[-1]


_RULEBOOK_KEYS = {
    "id", "version", "title", "source", "zone_tiers", "window_days", "persistence_days",
    "review_days", "tiers_by_population", "rings",
}
_POPULATION_TIER_KEYS = {"id", "label", "min_county_population", "min_city_population", "thresholds"}
_THRESHOLD_KEYS = {"positivity_above_percent", "min_daily_cases_per_100k", "min_daily_cases"}
_MIN_CASES_KEYS = {"min_area_population", "cases"}
_RING_KEYS = {"tier", "k", "width_m"}


class RulebookError(ValueError):
    """A rulebook mapping that cannot be used; the message names the offending key."""


def parse_zone_rulebook(mapping: Mapping[str, Any]) -> ZoneRulebook:
    """Validate a rulebook mapping (e.g. from yaml.safe_load) into a :class:`ZoneRulebook`."""
    _check_keys(mapping, _RULEBOOK_KEYS, "")
    zone_tiers = tuple(_require(mapping, "zone_tiers", list, ""))
    names_ok = all(isinstance(t, str) and t for t in zone_tiers)
    if len(zone_tiers) == 0 or len(set(zone_tiers)) != len(zone_tiers) or not names_ok:
        raise RulebookError("zone_tiers: must be a non-empty list of distinct names")
    window_days = _positive_int(mapping, "window_days", "")
    persistence_days = _positive_int(mapping, "persistence_days", "")
    review_days = _positive_int(mapping, "review_days", "")

    raw_tiers = _require(mapping, "tiers_by_population", list, "")
    if not raw_tiers:
        raise RulebookError("tiers_by_population: needs at least one tier")
    population_tiers = tuple(
        _parse_population_tier(raw, zone_tiers, f"tiers_by_population[{i}].") for i, raw in enumerate(raw_tiers)
    )
    minima = [t.min_county_population for t in population_tiers]
    if minima != sorted(minima, reverse=True):
        raise RulebookError("tiers_by_population: list the most populous tier first (min_county_population decreasing)")
    if minima[-1] != 0:
        raise RulebookError(
            f"tiers_by_population[{len(minima) - 1}].min_county_population: "
            "the last tier must start at 0 so every area has one"
        )
    if len({t.id for t in population_tiers}) != len(population_tiers):
        raise RulebookError("tiers_by_population: ids must be distinct")

    raw_rings = _require(mapping, "rings", dict, "")
    rings = []
    for core_tier, raw_list in raw_rings.items():
        if core_tier not in zone_tiers:
            raise RulebookError(f"rings.{core_tier}: not one of zone_tiers {list(zone_tiers)}")
        if not isinstance(raw_list, list):
            raise RulebookError(f"rings.{core_tier}: must be a list")
        rules = tuple(
            _parse_ring(raw, zone_tiers, core_tier, f"rings.{core_tier}[{i}].") for i, raw in enumerate(raw_list)
        )
        rings.append((core_tier, rules))

    return ZoneRulebook(
        id=_require(mapping, "id", str, ""),
        version=str(_require(mapping, "version", (str, int, float, dt.date), "")),
        title=_require(mapping, "title", str, ""),
        source=_require(mapping, "source", str, ""),
        zone_tiers=zone_tiers,
        window_days=window_days,
        persistence_days=persistence_days,
        review_days=review_days,
        population_tiers=population_tiers,
        rings=tuple(rings),
    )


def _parse_population_tier(raw: Any, zone_tiers: tuple[str, ...], path: str) -> PopulationTier:
    if not isinstance(raw, Mapping):
        raise RulebookError(f"{path.rstrip('.')}: must be a mapping")
    _check_keys(raw, _POPULATION_TIER_KEYS, path)
    city = raw.get("min_city_population")
    if city is not None and (not isinstance(city, int) or isinstance(city, bool) or city < 0):
        raise RulebookError(f"{path}min_city_population: must be an integer >= 0")
    raw_thresholds = _require(raw, "thresholds", dict, path)
    missing = [t for t in zone_tiers if t not in raw_thresholds]
    extra = [t for t in raw_thresholds if t not in zone_tiers]
    if missing or extra:
        raise RulebookError(
            f"{path}thresholds: needs exactly the zone_tiers {list(zone_tiers)} (missing {missing}, unknown {extra})"
        )
    thresholds = tuple(_parse_threshold(raw_thresholds[t], t, f"{path}thresholds.{t}.") for t in zone_tiers)
    for lower, higher in zip(thresholds, thresholds[1:]):
        if higher.positivity_above <= lower.positivity_above:
            raise RulebookError(
                f"{path}thresholds.{higher.tier}.positivity_above_percent: must be above {lower.tier}'s"
            )
    return PopulationTier(
        id=_require(raw, "id", str, path),
        label=str(raw.get("label", "")),
        min_county_population=_non_negative_int(raw, "min_county_population", path),
        min_city_population=city,
        thresholds=thresholds,
    )


def _parse_threshold(raw: Any, tier: str, path: str) -> TierThreshold:
    if not isinstance(raw, Mapping):
        raise RulebookError(f"{path.rstrip('.')}: must be a mapping")
    _check_keys(raw, _THRESHOLD_KEYS, path)
    percent = _number(raw, "positivity_above_percent", path)
    if not 0 <= percent < 100:
        raise RulebookError(f"{path}positivity_above_percent: must be in [0, 100), got {percent}")
    per_100k = _number(raw, "min_daily_cases_per_100k", path)
    if per_100k < 0:
        raise RulebookError(f"{path}min_daily_cases_per_100k: must be >= 0")
    bands = []
    for i, band in enumerate(raw.get("min_daily_cases", []) or []):
        band_path = f"{path}min_daily_cases[{i}]."
        if not isinstance(band, Mapping):
            raise RulebookError(f"{band_path.rstrip('.')}: must be a mapping")
        _check_keys(band, _MIN_CASES_KEYS, band_path)
        minimum_population = _non_negative_int(band, "min_area_population", band_path)
        bands.append(MinDailyCases(minimum_population, _number(band, "cases", band_path)))
    bands.sort(key=lambda b: b.min_area_population, reverse=True)
    if bands and bands[-1].min_area_population != 0:
        raise RulebookError(f"{path}min_daily_cases: one band must start at min_area_population 0")
    return TierThreshold(tier, percent / 100.0, per_100k, tuple(bands))


def _parse_ring(raw: Any, zone_tiers: tuple[str, ...], core_tier: str, path: str) -> RingRule:
    if not isinstance(raw, Mapping):
        raise RulebookError(f"{path.rstrip('.')}: must be a mapping")
    _check_keys(raw, _RING_KEYS, path)
    tier = _require(raw, "tier", str, path)
    if tier not in zone_tiers:
        raise RulebookError(f"{path}tier: {tier!r} is not one of zone_tiers {list(zone_tiers)}")
    if zone_tiers.index(tier) >= zone_tiers.index(core_tier):
        raise RulebookError(f"{path}tier: a buffer around {core_tier} must be a lower tier, got {tier}")
    has_k, has_width = raw.get("k") is not None, raw.get("width_m") is not None
    if has_k == has_width:
        raise RulebookError(f"{path}k/width_m: give exactly one of them")
    k = _positive_int(raw, "k", path) if has_k else None
    width = _number(raw, "width_m", path) if has_width else None
    if width is not None and width <= 0:
        raise RulebookError(f"{path}width_m: must be > 0")
    return RingRule(tier, k, width)


def _check_keys(mapping: Any, allowed: set[str], path: str) -> None:
    if not isinstance(mapping, Mapping):
        raise RulebookError(f"{path.rstrip('.') or 'rulebook'}: must be a mapping")
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        raise RulebookError(f"{path}{unknown[0]}: unknown key (allowed: {sorted(allowed)})")


def _require(mapping: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
    if key not in mapping or mapping[key] is None:
        raise RulebookError(f"{path}{key}: required")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RulebookError(f"{path}{key}: wrong type {type(value).__name__}")
    return value


def _number(mapping: Mapping[str, Any], key: str, path: str) -> float:
    value = _require(mapping, key, (int, float), path)
    if not math.isfinite(value):
        raise RulebookError(f"{path}{key}: must be finite")
    return float(value)


def _non_negative_int(mapping: Mapping[str, Any], key: str, path: str) -> int:
    value = _require(mapping, key, int, path)
    if value < 0:
        raise RulebookError(f"{path}{key}: must be >= 0, got {value}")
    return value


def _positive_int(mapping: Mapping[str, Any], key: str, path: str) -> int:
    value = _require(mapping, key, int, path)
    if value < 1:
        raise RulebookError(f"{path}{key}: must be >= 1, got {value}")
    return value


# ---------------------------------------------------------------------------- metrics


def area_daily_metrics(daily_counts: pd.DataFrame, population: float, window_days: int = 7) -> pd.DataFrame:
    """Rolling metrics the rules read, from daily counts of one area.

    ``daily_counts``: indexed by day, columns ``tests``, ``positives``, ``cases``; days
    absent are days with nothing reported (zero). Returns, per day:
    ``positivity_7d`` (positives / tests over the window, a fraction; NaN without tests),
    ``cases_7d_avg`` (mean new cases a day), ``cases_per_100k_7d`` and ``population``.
    The first ``window_days - 1`` days are NaN rather than partial windows.
    """
    if not population > 0:
        raise ValueError(f"population must be > 0, got {population!r}")
    missing = {"tests", "positives", "cases"} - set(daily_counts.columns)
    if missing:
        raise ValueError(f"daily_counts lacks columns {sorted(missing)}")
    days = pd.DatetimeIndex(pd.to_datetime(daily_counts.index)).normalize()
    counts = daily_counts[["tests", "positives", "cases"]].astype(np.float64).set_axis(days).groupby(level=0).sum()
    if len(counts):
        counts = counts.reindex(pd.date_range(counts.index.min(), counts.index.max(), freq="D"), fill_value=0.0)
    sums = counts.rolling(window_days, min_periods=window_days).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        positivity = np.where(sums["tests"] > 0, sums["positives"] / sums["tests"], np.nan)
    cases_avg = sums["cases"] / window_days
    return pd.DataFrame(
        {
            "positivity_7d": positivity,
            "cases_7d_avg": cases_avg,
            "cases_per_100k_7d": cases_avg / population * PER_100K,
            "population": float(population),
        },
        index=counts.index,
    )


# -------------------------------------------------------------------------- assessment


@dataclass(frozen=True, slots=True)
class AreaAssessment:
    """The highest zone tier an area qualifies for on ``as_of`` (None = no zone), and why."""

    tier: str | None
    reason: str
    population_tier: str
    as_of: dt.date
    rule_id: str
    rule_version: str


def assess_area(
    metrics_by_day: pd.DataFrame,
    rulebook: ZoneRulebook,
    as_of: dt.date | str | None = None,
    county_population: float | None = None,
    city_population: float | None = None,
) -> AreaAssessment:
    """Apply the rulebook to one area's daily metrics (see :func:`area_daily_metrics`).

    ``as_of`` defaults to the last day of the metrics. The population tier is picked from
    the county/city populations (None: the first, most cautious tier).
    """
    days = pd.DatetimeIndex(pd.to_datetime(metrics_by_day.index)).normalize()
    metrics = metrics_by_day.set_axis(days)
    if not metrics.index.is_unique:
        raise ValueError("metrics_by_day has repeated days")
    as_of_day = pd.Timestamp(as_of).normalize() if as_of is not None else metrics.index.max()
    population_tier = rulebook.population_tier(county_population, city_population)

    def result(tier: str | None, reason: str) -> AreaAssessment:
        return AreaAssessment(tier, reason, population_tier.id, as_of_day.date(), rulebook.id, rulebook.version)

    if as_of_day not in metrics.index:
        return result(None, f"no metrics for {as_of_day.date()}")
    streak_days = pd.date_range(end=as_of_day, periods=rulebook.persistence_days, freq="D")
    positivity_streak = metrics["positivity_7d"].reindex(streak_days).to_numpy(dtype=np.float64)
    today = metrics.loc[as_of_day]
    case_rate = float(today["cases_per_100k_7d"])
    cases_avg = float(today["cases_7d_avg"])
    area_population = float(today["population"])

    why_not: list[str] = []
    for tier in reversed(rulebook.zone_tiers):  # most restrictive first
        rule = population_tier.threshold_for(tier)
        # NaN (no tests, or a day missing) compares False: it breaks the streak.
        days_above = int(np.sum(positivity_streak > rule.positivity_above))
        if days_above < rulebook.persistence_days:
            why_not.append(
                f"{tier}: positivity above {rule.positivity_above:.1%} on {days_above}/{rulebook.persistence_days} days"
            )
            continue
        if not case_rate >= rule.min_daily_cases_per_100k:
            why_not.append(f"{tier}: {case_rate:.1f} daily cases per 100k < {rule.min_daily_cases_per_100k:g}")
            continue
        needed = _min_daily_cases(rule, area_population)
        if needed is not None and not cases_avg >= needed:
            why_not.append(
                f"{tier}: {cases_avg:.1f} daily cases < minimum {needed:g} for {area_population:,.0f} residents"
            )
            continue
        return result(
            tier,
            f"{tier} ({population_tier.id}): 7-day positivity above {rule.positivity_above:.1%} for "
            f"{rulebook.persistence_days} days (today {positivity_streak[-1]:.2%}) and "
            f"{case_rate:.1f} daily cases per 100k (>= {rule.min_daily_cases_per_100k:g})"
            + (f" and {cases_avg:.1f} daily cases (>= {needed:g})" if needed is not None else "")
            + (f"; not {'; not '.join(why_not)}" if why_not else ""),
        )
    return result(None, "no zone: " + "; ".join(why_not))


def _min_daily_cases(rule: TierThreshold, area_population: float) -> float | None:
    for band in rule.min_daily_cases:  # highest population band first
        if area_population >= band.min_area_population:
            return band.cases
    return None


# ------------------------------------------------------------------------------- zones


@dataclass(frozen=True, slots=True)
class Zone:
    """A zone in force or proposed: a core or one of its buffer rings.

    ``zone_id`` ("<cluster>:core", "<cluster>:ring1", ...) stays the same while the tier
    changes, so history can follow one zone. ``since`` is the day it entered its current
    tier; ``reviewed_on`` the last 14-day review (None before the first).
    """

    zone_id: str
    cluster_id: str
    role: str
    tier: str
    cells: tuple[str, ...]
    reason: str
    rule_id: str
    rule_version: str
    since: dt.date
    reviewed_on: dt.date | None = None


def zones_from_clusters(
    clusters: Mapping[str, Collection[str]],
    cell_metrics: pd.DataFrame,
    rulebook: ZoneRulebook,
    as_of: dt.date | str,
    cell_population: pd.Series,
    county_population: float | None = None,
    city_population: float | None = None,
) -> list[Zone]:
    """Assess each cluster and draw its zones on the H3 grid as of ``as_of``.

    ``clusters`` maps a cluster id to its H3 cells (one resolution). ``cell_metrics`` is
    long-format daily counts: ``date``, ``h3_cell``, ``tests``, ``positives``, ``cases``.
    ``cell_population`` gives residents per cell (e.g. from geo.population.areas_to_cell_population).
    A qualifying cluster becomes a core of its tier with the rulebook's buffer rings
    around it. Where zones overlap, a cell stays only in the most restrictive one (cores
    before rings on a tie, then the order of ``clusters``).
    """
    as_of_day = pd.Timestamp(as_of).normalize()
    missing = {"date", "h3_cell", "tests", "positives", "cases"} - set(cell_metrics.columns)
    if missing:
        raise ValueError(f"cell_metrics lacks columns {sorted(missing)}")
    history_start = as_of_day - pd.Timedelta(days=rulebook.window_days + rulebook.persistence_days - 2)
    dates = pd.to_datetime(cell_metrics["date"]).dt.normalize().to_numpy()
    in_history = (dates >= history_start.to_datetime64()) & (dates <= as_of_day.to_datetime64())
    recent = cell_metrics.loc[in_history].assign(date=dates[in_history])

    drafts: list[Zone] = []
    for cluster_id, cluster_cells in clusters.items():
        core_cells = tuple(sorted(set(cluster_cells)))
        if not core_cells:
            continue
        resolution = _common_resolution(core_cells, cluster_id)
        population = float(cell_population.reindex(list(core_cells)).fillna(0.0).sum())
        if population <= 0:
            raise ValueError(f"cluster {cluster_id!r}: no resident population in its cells")
        daily = (
            recent.loc[recent["h3_cell"].isin(core_cells)]
            .groupby("date")[["tests", "positives", "cases"]]
            .sum()
            .reindex(pd.date_range(history_start, as_of_day, freq="D"), fill_value=0)
        )
        metrics = area_daily_metrics(daily, population, rulebook.window_days)
        assessment = assess_area(metrics, rulebook, as_of_day, county_population, city_population)
        if assessment.tier is None:
            continue
        drafts.append(_zone(cluster_id, CORE_ROLE, assessment.tier, core_cells, assessment.reason, rulebook, as_of_day))
        inner: set[str] = set(core_cells)
        reach = 0
        for number, ring in enumerate(rulebook.rings_for(assessment.tier), start=1):
            reach += ring.rings_at(resolution)
            disk = cells_to_grid_disk(core_cells, reach)
            ring_cells = tuple(sorted(disk - inner))
            inner |= disk
            reason = f"{ring.tier} buffer {number} around the {assessment.tier} core of {cluster_id}"
            drafts.append(_zone(cluster_id, f"ring{number}", ring.tier, ring_cells, reason, rulebook, as_of_day))
    return _resolve_overlaps(drafts, rulebook)


def _zone(
    cluster_id: str, role: str, tier: str, cells: tuple[str, ...], reason: str, rulebook: ZoneRulebook, as_of: pd.Timestamp
) -> Zone:
    zone_id = f"{cluster_id}:{role}"
    return Zone(zone_id, cluster_id, role, tier, cells, reason, rulebook.id, rulebook.version, as_of.date())


def _common_resolution(cells: Sequence[str], cluster_id: str) -> int:
    resolutions = set()
    for cell in cells:
        if not is_valid_cell(cell):
            raise ValueError(f"cluster {cluster_id!r}: not a valid H3 cell {cell!r}")
        resolutions.add(cell_resolution(cell))
    if len(resolutions) != 1:
        raise ValueError(f"cluster {cluster_id!r}: cells mix resolutions {sorted(resolutions)}")
    return resolutions.pop()


def _resolve_overlaps(drafts: list[Zone], rulebook: ZoneRulebook) -> list[Zone]:
    """Give each cell to one zone only: highest tier, then a core, then the earlier draft."""
    order = sorted(range(len(drafts)), key=lambda i: (-rulebook.rank(drafts[i].tier), drafts[i].role != CORE_ROLE, i))
    taken: set[str] = set()
    kept: dict[int, Zone] = {}
    for i in order:
        cells = tuple(cell for cell in drafts[i].cells if cell not in taken)
        taken.update(cells)
        if cells:
            kept[i] = replace(drafts[i], cells=cells)
    return [kept[i] for i in sorted(kept)]


# ----------------------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class ZoneEvent:
    """A change to the zones in force, for the caller to store.

    kind: "entered" (new zone), "escalated" (higher tier, at once), "reviewed" (a due
    14-day review: kept, or stepped down when ``tier`` is below ``previous_tier``) or
    "lifted" (ended at a due review; ``tier`` is None).
    """

    kind: str
    zone_id: str
    cluster_id: str
    as_of: dt.date
    tier: str | None
    previous_tier: str | None
    cells: tuple[str, ...]
    reason: str
    rule_id: str
    rule_version: str


def update_zone_history(
    previous_zones: Iterable[Zone],
    new_assessment: Iterable[Zone],
    as_of: dt.date | str,
    rulebook: ZoneRulebook,
) -> list[ZoneEvent]:
    """Events that turn the zones in force into what today's assessment asks for.

    A zone goes up at once, but goes down or ends only at a review, which falls
    ``review_days`` after it entered its tier or was last reviewed. Between reviews a
    zone the data no longer supports simply stays (no event), and its cells change only
    when an event redraws them. Fold the events into the zones in force with
    :func:`apply_zone_events`.
    """
    as_of_date = pd.Timestamp(as_of).date()
    previous = {zone.zone_id: zone for zone in previous_zones}
    proposed = {zone.zone_id: zone for zone in new_assessment}
    events: list[ZoneEvent] = []

    def event(
        kind: str, zone: Zone, tier: str | None, previous_tier: str | None, cells: tuple[str, ...], reason: str
    ) -> ZoneEvent:
        return ZoneEvent(
            kind, zone.zone_id, zone.cluster_id, as_of_date, tier, previous_tier, cells, reason,
            rulebook.id, rulebook.version,
        )

    for zone_id, new in proposed.items():
        if zone_id not in previous:
            events.append(event("entered", new, new.tier, None, new.cells, new.reason))
        elif rulebook.rank(new.tier) > rulebook.rank(previous[zone_id].tier):
            events.append(event("escalated", new, new.tier, previous[zone_id].tier, new.cells, new.reason))

    for zone_id, old in previous.items():
        new = proposed.get(zone_id)
        if new is not None and rulebook.rank(new.tier) > rulebook.rank(old.tier):
            continue  # escalated above
        last_decision = old.reviewed_on or old.since
        days_since = (as_of_date - last_decision).days
        if days_since < rulebook.review_days:
            continue  # held until its review, whatever the data says today
        if new is None:
            events.append(event("lifted", old, None, old.tier, old.cells,
                                f"lifted at the {days_since}-day review: today's assessment no longer proposes it"))
        elif new.tier == old.tier:
            events.append(event("reviewed", old, old.tier, old.tier, new.cells,
                                f"kept {old.tier} at the {days_since}-day review: {new.reason}"))
        else:
            reason = f"stepped down from {old.tier} to {new.tier} at the {days_since}-day review: {new.reason}"
            events.append(event("reviewed", old, new.tier, old.tier, new.cells, reason))
    return events


def apply_zone_events(previous_zones: Iterable[Zone], events: Iterable[ZoneEvent]) -> list[Zone]:
    """The zones in force after ``events`` (the fold that matches :func:`update_zone_history`)."""
    zones = {zone.zone_id: zone for zone in previous_zones}
    for ev in events:
        if ev.kind not in EVENT_KINDS:
            raise ValueError(f"unknown zone event kind {ev.kind!r}")
        if ev.kind == "lifted":
            zones.pop(ev.zone_id, None)
            continue
        old = zones.get(ev.zone_id)
        role = ev.zone_id.rsplit(":", 1)[-1]
        if ev.kind in ("entered", "escalated") or old is None:
            zones[ev.zone_id] = Zone(ev.zone_id, ev.cluster_id, role, ev.tier, ev.cells, ev.reason,
                                     ev.rule_id, ev.rule_version, since=ev.as_of, reviewed_on=None)
        else:  # reviewed: kept (clock restarts from the review) or stepped down (new tier from today)
            since = old.since if ev.tier == old.tier else ev.as_of
            zones[ev.zone_id] = replace(old, tier=ev.tier, cells=ev.cells, reason=ev.reason,
                                        rule_id=ev.rule_id, rule_version=ev.rule_version,
                                        since=since, reviewed_on=ev.as_of)
    return list(zones.values())
