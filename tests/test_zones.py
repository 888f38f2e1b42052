"""Zone rules of the NYS Cluster Action Initiative rulebook: boundaries, rings and history."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
import yaml

from analytics.zones import (
    RulebookError,
    Zone,
    ZoneRulebook,
    apply_zone_events,
    area_daily_metrics,
    assess_area,
    parse_zone_rulebook,
    update_zone_history,
    zones_from_clusters,
)

RULEBOOK_PATH = Path(__file__).resolve().parents[1] / "rulebooks" / "zones_nys_cai_2020.yaml"
AS_OF = pd.Timestamp("2020-10-20")
DAY0 = dt.date(2020, 10, 20)


@pytest.fixture(scope="module")
def raw_rulebook() -> dict:
    assert RULEBOOK_PATH.exists(), f"rulebook missing: {RULEBOOK_PATH}"
    return yaml.safe_load(RULEBOOK_PATH.read_text())


@pytest.fixture(scope="module")
def rulebook(raw_rulebook: dict) -> ZoneRulebook:
    return parse_zone_rulebook(raw_rulebook)


def _metrics(positivity: list[float], daily_cases: float = 10.0, population: float = 50_000.0) -> pd.DataFrame:
    """Daily metrics ending on AS_OF: ``positivity`` oldest first, today's case average."""
    days = pd.date_range(end=AS_OF, periods=len(positivity), freq="D")
    return pd.DataFrame(
        {
            "positivity_7d": positivity,
            "cases_7d_avg": daily_cases,
            "cases_per_100k_7d": daily_cases / population * 100_000,
            "population": population,
        },
        index=days,
    )


# ----------------------------------------------------------------------------- rulebook


def test_the_nys_rulebook_parses_into_frozen_records(rulebook: ZoneRulebook) -> None:
    assert (rulebook.id, rulebook.version) == ("nys-cai-2020", "2020-10-21")
    assert rulebook.zone_tiers == ("yellow", "orange", "red")
    assert (rulebook.window_days, rulebook.persistence_days, rulebook.review_days) == (7, 10, 14)
    tier1 = rulebook.population_tiers[0]
    assert tier1.id == "tier-1" and tier1.min_county_population == 900_000 and tier1.min_city_population == 90_000
    assert [t.positivity_above for t in tier1.thresholds] == pytest.approx([0.025, 0.03, 0.04])
    assert all(t.min_daily_cases_per_100k == 10 for t in tier1.thresholds)
    red = tier1.threshold_for("red")
    assert [(band.min_area_population, band.cases) for band in red.min_daily_cases] == [(10_000, 5), (0, 3)]
    assert [t.id for t in rulebook.population_tiers] == ["tier-1", "tier-2", "tier-3", "tier-4"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rulebook.review_days = 7  # type: ignore[misc]


def test_population_tier_is_chosen_by_county_or_city(rulebook: ZoneRulebook) -> None:
    assert rulebook.population_tier(2_600_000).id == "tier-1"  # Kings County (Brooklyn)
    assert rulebook.population_tier(900_000).id == "tier-1"
    assert rulebook.population_tier(899_999).id == "tier-2"
    assert rulebook.population_tier(325_000, city_population=95_000).id == "tier-1"  # e.g. Yonkers in Westchester
    assert rulebook.population_tier(150_000).id == "tier-2"
    assert rulebook.population_tier(50_000).id == "tier-3"
    assert rulebook.population_tier(42_883).id == "tier-4"  # Orleans County
    assert rulebook.population_tier(None).id == "tier-1"  # unknown: the most cautious thresholds


def _broken(raw: dict, edit) -> dict:
    mapping = copy.deepcopy(raw)
    edit(mapping)
    return mapping


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda m: m.update(reveiw_days=14), "reveiw_days"),
        (lambda m: m.pop("review_days"), "review_days"),
        (lambda m: m.update(review_days=0), "review_days"),
        (lambda m: m.update(persistence_days="ten"), "persistence_days"),
        (lambda m: m.update(zone_tiers=["yellow", "yellow"]), "zone_tiers"),
        (lambda m: m["tiers_by_population"][0]["thresholds"].pop("red"), "tiers_by_population[0].thresholds"),
        (lambda m: m["tiers_by_population"][0]["thresholds"]["yellow"].update(positivity_above=2.5),
         "tiers_by_population[0].thresholds.yellow.positivity_above"),
        (lambda m: m["tiers_by_population"][1]["thresholds"]["orange"].update(positivity_above_percent=2.0),
         "tiers_by_population[1].thresholds.orange.positivity_above_percent"),
        (lambda m: m["tiers_by_population"][0]["thresholds"]["red"]["min_daily_cases"].pop(),
         "tiers_by_population[0].thresholds.red.min_daily_cases"),
        (lambda m: m["tiers_by_population"][3].update(min_county_population=10), "tiers_by_population[3].min_county_population"),
        (lambda m: m["tiers_by_population"].reverse(), "tiers_by_population"),
        (lambda m: m["rings"]["red"][0].update(k=2), "rings.red[0].k/width_m"),
        (lambda m: m["rings"]["orange"][0].update(tier="red"), "rings.orange[0].tier"),
        (lambda m: m["rings"].update(purple=[]), "rings.purple"),
    ],
)
def test_rulebook_errors_name_the_key(raw_rulebook: dict, edit, key: str) -> None:
    with pytest.raises(RulebookError) as error:
        parse_zone_rulebook(_broken(raw_rulebook, edit))
    assert str(error.value).startswith(key)


# ------------------------------------------------------------------------------ metrics


def test_daily_metrics_use_rolling_sums_and_fill_silent_days_with_zero() -> None:
    days = pd.date_range("2020-10-01", periods=10, freq="D")
    counts = pd.DataFrame({"tests": [100] * 10, "positives": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "cases": [7] * 10}, index=days)
    counts = counts.drop(index=days[8])  # nothing reported on day 9

    metrics = area_daily_metrics(counts, population=70_000)

    assert len(metrics) == 10
    assert metrics["positivity_7d"].iloc[:6].isna().all()
    assert metrics["positivity_7d"].iloc[6] == pytest.approx(28 / 700)
    assert metrics["positivity_7d"].iloc[9] == pytest.approx((4 + 5 + 6 + 7 + 8 + 0 + 10) / 600)
    assert metrics["cases_7d_avg"].iloc[9] == pytest.approx(6.0)
    assert metrics["cases_per_100k_7d"].iloc[9] == pytest.approx(6.0 / 70_000 * 100_000)
    with pytest.raises(ValueError, match="population"):
        area_daily_metrics(counts, population=0)


# --------------------------------------------------------------- assessment boundaries


@pytest.mark.parametrize(
    ("positivity", "expected"),
    [
        (0.0249, None),
        (0.0250, None),  # "above 2.5 %": equal is not enough
        (0.0251, "yellow"),
        (0.0300, "yellow"),
        (0.0301, "orange"),
        (0.0400, "orange"),
        (0.0401, "red"),
    ],
)
def test_positivity_boundaries_in_tier_1(rulebook: ZoneRulebook, positivity: float, expected: str | None) -> None:
    assessment = assess_area(_metrics([positivity] * 10), rulebook)
    assert assessment.tier == expected
    assert assessment.population_tier == "tier-1"
    assert (assessment.rule_id, assessment.rule_version) == ("nys-cai-2020", "2020-10-21")
    assert assessment.as_of == DAY0


def test_positivity_must_hold_on_ten_consecutive_days(rulebook: ZoneRulebook) -> None:
    assert assess_area(_metrics([0.02] + [0.03] * 9), rulebook).tier is None  # 9 days
    assert assess_area(_metrics([0.02] + [0.03] * 10), rulebook).tier == "yellow"  # 10 days
    dip = [0.03] * 5 + [0.02] + [0.03] * 4
    assert assess_area(_metrics(dip), rulebook).tier is None
    # 10 days above orange but the last 3 only above yellow: yellow.
    assert assess_area(_metrics([0.035] * 7 + [0.028] * 3), rulebook).tier == "yellow"
    gap = _metrics([0.03] * 10).drop(index=AS_OF - pd.Timedelta(days=4))
    assert assess_area(gap, rulebook).tier is None  # a missing day breaks the streak
    no_tests = _metrics([0.03] * 10)
    no_tests.iloc[3, 0] = np.nan
    assert assess_area(no_tests, rulebook).tier is None


def test_case_rate_must_reach_ten_per_100k(rulebook: ZoneRulebook) -> None:
    population = 100_000.0
    assert assess_area(_metrics([0.03] * 10, daily_cases=9.99, population=population), rulebook).tier is None
    assessment = assess_area(_metrics([0.03] * 10, daily_cases=10.0, population=population), rulebook)
    assert assessment.tier == "yellow"
    assert "10.0 daily cases per 100k" in assessment.reason


def test_red_needs_a_minimum_daily_case_count_by_area_population(rulebook: ZoneRulebook) -> None:
    red_positivity = [0.05] * 10
    # 10,000+ residents: at least 5 cases a day (7-day average).
    assert assess_area(_metrics(red_positivity, daily_cases=5.0, population=10_000), rulebook).tier == "red"
    below = assess_area(_metrics(red_positivity, daily_cases=4.9, population=10_000), rulebook)
    assert below.tier == "orange"
    assert "minimum 5" in below.reason
    # Fewer than 10,000 residents: at least 3 a day.
    assert assess_area(_metrics(red_positivity, daily_cases=3.0, population=9_999), rulebook).tier == "red"
    assert assess_area(_metrics(red_positivity, daily_cases=2.9, population=9_999), rulebook).tier == "orange"


def test_smaller_jurisdictions_use_their_own_thresholds(rulebook: ZoneRulebook) -> None:
    metrics = _metrics([0.035] * 10, daily_cases=12.0, population=100_000)
    assert assess_area(metrics, rulebook).tier == "orange"  # tier 1: above 3 %
    tier2 = assess_area(metrics, rulebook, county_population=300_000)
    assert (tier2.tier, tier2.population_tier) == ("yellow", "tier-2")  # above 3 %, 12 per 100k
    tier2_low_rate = assess_area(_metrics([0.035] * 10, daily_cases=11.9, population=100_000), rulebook, county_population=300_000)
    assert tier2_low_rate.tier is None
    assert assess_area(metrics, rulebook, county_population=42_883).tier is None  # tier 4 needs above 4 %


def test_assessment_on_a_day_without_metrics_is_no_zone(rulebook: ZoneRulebook) -> None:
    assessment = assess_area(_metrics([0.05] * 10), rulebook, as_of="2020-11-01")
    assert assessment.tier is None and "no metrics" in assessment.reason
    earlier = assess_area(_metrics([0.05] * 12), rulebook, as_of=AS_OF - pd.Timedelta(days=1))
    assert earlier.tier == "red" and earlier.as_of == DAY0 - dt.timedelta(days=1)


# -------------------------------------------------------------------------------- zones


CENTRE = h3.latlng_to_cell(40.6782, -73.9442, 9)  # Crown Heights, Brooklyn


def _cell_metrics(cells: list[str], tests: int, positives: int | list[int], cases_per_cell: float, days: int = 20) -> pd.DataFrame:
    """Long daily counts per cell ending on AS_OF; ``positives`` per cell a day (a list: oldest first)."""
    dates = pd.date_range(end=AS_OF, periods=days, freq="D")
    per_day = positives if isinstance(positives, list) else [positives] * days
    rows = [
        {"date": day, "h3_cell": cell, "tests": tests, "positives": day_positives, "cases": cases_per_cell}
        for day, day_positives in zip(dates, per_day, strict=True)
        for cell in cells
    ]
    return pd.DataFrame(rows)


def test_a_red_cluster_gets_orange_and_yellow_rings(rulebook: ZoneRulebook) -> None:
    core = sorted(h3.grid_disk(CENTRE, 1))  # 7 cells
    population = pd.Series(10_000.0, index=core)  # 70,000 residents
    # 5 % positivity, 2 cases a cell a day = 14 a day = 20 per 100k.
    metrics = _cell_metrics(core, tests=100, positives=5, cases_per_cell=2)

    zones = zones_from_clusters({"crown-heights": core}, metrics, rulebook, AS_OF, cell_population=population)

    by_role = {zone.role: zone for zone in zones}
    assert set(by_role) == {"core", "ring1", "ring2"}
    assert by_role["core"].tier == "red" and by_role["core"].cells == tuple(core)
    # At res 9 the 400 m orange band is 2 cell rings and the 800 m yellow band 3 more.
    assert by_role["ring1"].tier == "orange"
    assert set(by_role["ring1"].cells) == set(h3.grid_disk(CENTRE, 3)) - set(h3.grid_disk(CENTRE, 1))
    assert by_role["ring2"].tier == "yellow"
    assert set(by_role["ring2"].cells) == set(h3.grid_disk(CENTRE, 6)) - set(h3.grid_disk(CENTRE, 3))
    for zone in zones:
        assert zone.zone_id == f"crown-heights:{zone.role}"
        assert (zone.rule_id, zone.rule_version, zone.since) == ("nys-cai-2020", "2020-10-21", DAY0)
    assert "red" in by_role["core"].reason and "5.00%" in by_role["core"].reason


def test_zones_do_not_overlap_and_the_higher_tier_wins(rulebook: ZoneRulebook) -> None:
    red_core = sorted(h3.grid_disk(CENTRE, 1))
    neighbour_centre = h3.grid_ring(CENTRE, 3)[0]
    yellow_core = sorted(h3.grid_disk(neighbour_centre, 1))  # across the red cluster's rings
    quiet_core = sorted(h3.grid_disk(h3.grid_ring(CENTRE, 20)[0], 1))
    population = pd.Series(10_000.0, index=red_core + yellow_core + quiet_core)
    metrics = pd.concat(
        [
            _cell_metrics(red_core, tests=100, positives=5, cases_per_cell=2),
            _cell_metrics(yellow_core, tests=100, positives=3, cases_per_cell=2),  # 3 %: not above 3 %, so yellow
            _cell_metrics(quiet_core, tests=100, positives=1, cases_per_cell=2),  # 1 %: nothing
        ]
    )
    clusters = {"a": red_core, "b": yellow_core, "c": quiet_core}

    zones = zones_from_clusters(clusters, metrics, rulebook, AS_OF, cell_population=population)

    assert {zone.cluster_id for zone in zones} <= {"a", "b"}
    all_cells = [cell for zone in zones for cell in zone.cells]
    assert len(all_cells) == len(set(all_cells))  # each cell in one zone only
    tier_of = {cell: zone.tier for zone in zones for cell in zone.cells}
    assert tier_of[neighbour_centre] == "orange"  # b's yellow core cell in a's orange ring
    b_core = next(zone for zone in zones if zone.zone_id == "b:core")
    assert b_core.tier == "yellow"
    # Where b's core meets a's yellow ring the tiers tie and the core keeps the cell.
    assert set(b_core.cells) == {cell for cell in yellow_core if h3.grid_distance(cell, CENTRE) > 3}
    assert not set(quiet_core) & set(tier_of)


def test_a_cluster_short_of_the_thresholds_gets_no_zone(rulebook: ZoneRulebook) -> None:
    core = sorted(h3.grid_disk(CENTRE, 1))
    population = pd.Series(10_000.0, index=core)
    # 30 % positive on the last 9 days only: the 7-day positivity is above 4 % on 9 days.
    nine_days = _cell_metrics(core, tests=100, positives=[0] * 11 + [30] * 9, cases_per_cell=2)
    assert zones_from_clusters({"x": core}, nine_days, rulebook, AS_OF, cell_population=population) == []
    ten_days = _cell_metrics(core, tests=100, positives=[0] * 10 + [30] * 10, cases_per_cell=2)
    zones = zones_from_clusters({"x": core}, ten_days, rulebook, AS_OF, cell_population=population)
    assert [zone.tier for zone in zones] == ["red", "orange", "yellow"]
    too_few_cases = _cell_metrics(core, tests=100, positives=5, cases_per_cell=0.9)  # 6.3 a day = 9 per 100k
    assert zones_from_clusters({"x": core}, too_few_cases, rulebook, AS_OF, cell_population=population) == []


def test_zones_from_clusters_rejects_bad_clusters(rulebook: ZoneRulebook) -> None:
    core = sorted(h3.grid_disk(CENTRE, 1))
    metrics = _cell_metrics(core, tests=100, positives=5, cases_per_cell=2)
    mixed = [*core, h3.cell_to_parent(CENTRE, 8)]
    with pytest.raises(ValueError, match="mix resolutions"):
        zones_from_clusters({"x": mixed}, metrics, rulebook, AS_OF, cell_population=pd.Series(1.0, index=mixed))
    with pytest.raises(ValueError, match="population"):
        zones_from_clusters({"x": core}, metrics, rulebook, AS_OF, cell_population=pd.Series(dtype=float))
    with pytest.raises(ValueError, match="lacks columns"):
        zones_from_clusters({"x": core}, metrics.drop(columns="tests"), rulebook, AS_OF, cell_population=pd.Series(1.0, index=core))


# ------------------------------------------------------------------------------ history


def _zone(tier: str, role: str = "core", since: dt.date = DAY0, cells: tuple[str, ...] = (CENTRE,)) -> Zone:
    return Zone(f"a:{role}", "a", role, tier, cells, f"{tier} test", "nys-cai-2020", "2020-10-21", since)


def _day(offset: int) -> dt.date:
    return DAY0 + dt.timedelta(days=offset)


def test_new_zones_are_entered(rulebook: ZoneRulebook) -> None:
    events = update_zone_history([], [_zone("red"), _zone("orange", "ring1")], DAY0, rulebook)
    assert [(e.kind, e.zone_id, e.tier, e.previous_tier) for e in events] == [
        ("entered", "a:core", "red", None),
        ("entered", "a:ring1", "orange", None),
    ]
    assert all(e.as_of == DAY0 and e.rule_id == "nys-cai-2020" for e in events)


def test_escalation_is_immediate(rulebook: ZoneRulebook) -> None:
    events = update_zone_history([_zone("orange")], [_zone("red", since=_day(3))], _day(3), rulebook)
    assert [(e.kind, e.tier, e.previous_tier) for e in events] == [("escalated", "red", "orange")]
    (zone,) = apply_zone_events([_zone("orange")], events)
    assert (zone.tier, zone.since) == ("red", _day(3))


@pytest.mark.parametrize("proposed", [[], [_zone("yellow")]], ids=["data gone", "lower tier"])
def test_no_lifting_or_stepping_down_before_fourteen_days(rulebook: ZoneRulebook, proposed: list[Zone]) -> None:
    for offset in (1, 7, 13):
        assert update_zone_history([_zone("red")], proposed, _day(offset), rulebook) == []


def test_lifted_at_the_fourteen_day_review(rulebook: ZoneRulebook) -> None:
    events = update_zone_history([_zone("red")], [], _day(14), rulebook)
    assert [(e.kind, e.tier, e.previous_tier) for e in events] == [("lifted", None, "red")]
    assert "14-day review" in events[0].reason
    assert apply_zone_events([_zone("red")], events) == []


def test_stepped_down_at_the_review_then_held_for_another_fourteen_days(rulebook: ZoneRulebook) -> None:
    events = update_zone_history([_zone("red")], [_zone("orange", since=_day(14))], _day(14), rulebook)
    assert [(e.kind, e.tier, e.previous_tier) for e in events] == [("reviewed", "orange", "red")]
    assert "stepped down" in events[0].reason
    (zone,) = apply_zone_events([_zone("red")], events)
    assert (zone.tier, zone.since, zone.reviewed_on) == ("orange", _day(14), _day(14))

    assert update_zone_history([zone], [], _day(27), rulebook) == []
    lifted = update_zone_history([zone], [], _day(28), rulebook)
    assert [(e.kind, e.previous_tier) for e in lifted] == [("lifted", "orange")]


def test_kept_at_the_review_restarts_the_clock(rulebook: ZoneRulebook) -> None:
    wider = (CENTRE, *h3.grid_ring(CENTRE, 1))
    events = update_zone_history([_zone("red")], [_zone("red", since=_day(14), cells=wider)], _day(14), rulebook)
    assert [(e.kind, e.tier, e.previous_tier) for e in events] == [("reviewed", "red", "red")]
    (zone,) = apply_zone_events([_zone("red")], events)
    assert (zone.since, zone.reviewed_on, zone.cells) == (DAY0, _day(14), wider)

    assert update_zone_history([zone], [_zone("red")], _day(20), rulebook) == []  # not due: no event
    assert update_zone_history([zone], [], _day(27), rulebook) == []
    assert [e.kind for e in update_zone_history([zone], [], _day(28), rulebook)] == ["lifted"]


def test_a_full_episode_folds_into_the_zones_in_force(rulebook: ZoneRulebook) -> None:
    in_force: list[Zone] = []
    timeline = [
        (0, [_zone("orange"), _zone("yellow", "ring1")], ["entered", "entered"]),
        (5, [_zone("red"), _zone("orange", "ring1")], ["escalated", "escalated"]),
        (10, [], []),
        (19, [_zone("orange"), _zone("yellow", "ring1")], ["reviewed", "reviewed"]),
        (25, [], []),
        (33, [], ["lifted", "lifted"]),
    ]
    for offset, proposed, kinds in timeline:
        events = update_zone_history(in_force, proposed, _day(offset), rulebook)
        assert sorted(e.kind for e in events) == sorted(kinds), f"day {offset}"
        in_force = apply_zone_events(in_force, events)
        if offset == 19:
            assert {z.zone_id: z.tier for z in in_force} == {"a:core": "orange", "a:ring1": "yellow"}
    assert in_force == []
