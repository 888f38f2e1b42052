"""Rulebooks: the shipped YAML files parse, every published threshold lands where the source puts it,
invalid content names the bad key, and level changes are listed."""

import copy
import dataclasses
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from analytics.rulebooks import (
    AT_THRESHOLD_HIGHER,
    LevelAssessment,
    RulebookError,
    level_changes,
    level_for,
    parse_rulebook,
)

RULEBOOKS = Path(__file__).resolve().parents[1] / "rulebooks"
SHIPPED = ("harvard_ghi", "covid_act_now", "cdc_community_levels_2022", "custom")
# A step small against every threshold, to test just below and just above one.
EPSILON = 1e-9


def load_mapping(rulebook_id: str) -> dict:
    path = RULEBOOKS / f"{rulebook_id}.yaml"
    assert path.exists(), path
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load(rulebook_id: str):
    return parse_rulebook(load_mapping(rulebook_id))


@pytest.fixture(scope="module")
def rulebooks():
    return {rulebook_id: load(rulebook_id) for rulebook_id in SHIPPED}


def test_shipped_rulebooks_parse(rulebooks):
    for rulebook_id, rulebook in rulebooks.items():
        assert rulebook.id == rulebook_id
        assert rulebook.source and rulebook.version
        assert len({level.colour for level in rulebook.levels}) == len(rulebook.levels)


def test_rulebook_records_are_frozen(rulebooks):
    with pytest.raises(dataclasses.FrozenInstanceError):
        rulebooks["harvard_ghi"].version = "2"  # type: ignore[misc]


# --- Harvard Global Health Institute: green <1, yellow 1-9, orange 10-24, red >=25 (value >= threshold)


@pytest.mark.parametrize(
    ("cases", "level"),
    [(0.0, "green"), (0.999, "green"), (1.0, "yellow"), (9.99, "yellow"), (10.0, "orange"),
     (24.99, "orange"), (25.0, "red"), (500.0, "red")],
)
def test_harvard_ghi_boundaries(rulebooks, cases, level):
    assessment = level_for(rulebooks["harvard_ghi"], {"cases_per_100k_7d_avg": cases})
    assert assessment.level == level


# --- Covid Act Now: thresholds are upper limits of each level (value > threshold moves up)

CAN_INDICATOR_BOUNDARIES = {
    "cases_per_100k_7d_avg": [(1, "low"), (10, "medium"), (25, "high"), (75, "critical")],
    "test_positivity_7d": [(0.03, "low"), (0.10, "medium"), (0.20, "high")],
    "rt": [(0.9, "low"), (1.1, "medium"), (1.4, "high")],
    "icu_occupancy": [(0.70, "low"), (0.80, "medium"), (0.85, "high")],
}


@pytest.mark.parametrize("indicator", sorted(CAN_INDICATOR_BOUNDARIES))
def test_covid_act_now_indicator_boundaries(rulebooks, indicator):
    rulebook = rulebooks["covid_act_now"]
    ranks = [level.id for level in rulebook.levels]
    for threshold, level_at in CAN_INDICATOR_BOUNDARIES[indicator]:
        values = {"cases_per_100k_7d_avg": 50.0, indicator: threshold}
        assert level_for(rulebook, values).indicator_level(indicator) == level_at
        values[indicator] = threshold + 1e-6
        above = ranks[ranks.index(level_at) + 1]
        assert level_for(rulebook, values).indicator_level(indicator) == above


def test_covid_act_now_overall_level(rulebooks):
    rulebook = rulebooks["covid_act_now"]
    # Low case density decides alone, whatever Rt and positivity say.
    low = level_for(rulebook, {"cases_per_100k_7d_avg": 0.5, "rt": 2.0, "test_positivity_7d": 0.5})
    assert low.level == "low"
    assert low.indicator_level("rt") == "critical"
    # Otherwise the highest of cases, Rt and positivity ...
    mixed = {"cases_per_100k_7d_avg": 5.0, "rt": 1.2, "test_positivity_7d": 0.05}
    assert level_for(rulebook, mixed).level == "high"
    # ... and ICU capacity used is shown but does not raise it.
    with_icu = level_for(rulebook, {**mixed, "icu_occupancy": 0.95})
    assert with_icu.indicator_level("icu_occupancy") == "critical"
    assert with_icu.level == "high"
    assert level_for(rulebook, {"cases_per_100k_7d_avg": 80.0}).level == "extreme"
    # No case density, no overall level.
    unknown = level_for(rulebook, {"rt": 1.5, "test_positivity_7d": 0.3})
    assert unknown.level is None
    assert "cases_per_100k_7d_avg" in unknown.missing


# --- CDC Community Levels (Feb 2022): cases per 100k in 7 days select the threshold set


@pytest.mark.parametrize(
    ("admissions", "level"),
    [(0.0, "low"), (9.99, "low"), (10.0, "medium"), (19.99, "medium"), (20.0, "high")],
)
def test_cdc_admissions_below_200_cases(rulebooks, admissions, level):
    values = {"incidence_7d_per_100k": 199.99, "admissions_per_100k_7d": admissions, "covid_bed_share_7d": 0.0}
    assessment = level_for(rulebooks["cdc_community_levels_2022"], values)
    assert assessment.indicator_level("admissions_per_100k_7d") == level
    assert assessment.level == level


@pytest.mark.parametrize(
    ("share", "level"),
    [(0.0, "low"), (0.0999, "low"), (0.10, "medium"), (0.1499, "medium"), (0.15, "high")],
)
def test_cdc_beds_below_200_cases(rulebooks, share, level):
    values = {"incidence_7d_per_100k": 50.0, "admissions_per_100k_7d": 0.0, "covid_bed_share_7d": share}
    assessment = level_for(rulebooks["cdc_community_levels_2022"], values)
    assert assessment.indicator_level("covid_bed_share_7d") == level
    assert assessment.level == level


@pytest.mark.parametrize(
    ("admissions", "share", "level"),
    [(0.0, 0.0, "medium"), (9.99, 0.0999, "medium"), (10.0, 0.0, "high"), (0.0, 0.10, "high")],
)
def test_cdc_200_or_more_cases_has_no_low_level(rulebooks, admissions, share, level):
    values = {"incidence_7d_per_100k": 200.0, "admissions_per_100k_7d": admissions, "covid_bed_share_7d": share}
    assessment = level_for(rulebooks["cdc_community_levels_2022"], values)
    assert assessment.level == level
    assert assessment.band == "200 or more new cases per 100k in 7 days"


def test_cdc_level_is_the_higher_of_admissions_and_beds(rulebooks):
    rulebook = rulebooks["cdc_community_levels_2022"]
    values = {"incidence_7d_per_100k": 100.0, "admissions_per_100k_7d": 12.0, "covid_bed_share_7d": 0.16}
    assessment = level_for(rulebook, values)
    assert assessment.level == "high"
    assert assessment.band == "fewer than 200 new cases per 100k in 7 days"
    assert {(t.indicator, t.level) for t in assessment.crossed} == {
        ("admissions_per_100k_7d", "medium"),
        ("covid_bed_share_7d", "medium"),
        ("covid_bed_share_7d", "high"),
    }
    # The same hospital figures with 200+ cases: admissions 12 is already high.
    assert level_for(rulebook, {**values, "admissions_per_100k_7d": 12.0, "covid_bed_share_7d": 0.0,
                                "incidence_7d_per_100k": 250.0}).level == "high"
    assert level_for(rulebook, {**values, "covid_bed_share_7d": 0.0}).level == "medium"
    # One of the two missing: the other decides. The selector missing: no level.
    assert level_for(rulebook, {"incidence_7d_per_100k": 100.0, "covid_bed_share_7d": 0.12}).level == "medium"
    no_cases = level_for(rulebook, {"admissions_per_100k_7d": 30.0, "covid_bed_share_7d": 0.3})
    assert no_cases.level is None and no_cases.missing == ("incidence_7d_per_100k",)


@pytest.mark.parametrize("rulebook_id", SHIPPED)
def test_every_threshold_boundary_of_every_shipped_rulebook(rulebooks, rulebook_id):
    """Just below, at, and just above each threshold, read from the rulebook itself."""
    rulebook = rulebooks[rulebook_id]
    ids = [level.id for level in rulebook.levels]
    checked = 0
    for band in rulebook.bands:
        selector_value = {} if rulebook.selector is None else {
            rulebook.selector: band.at_least if band.at_least > float("-inf") else band.below - 1
        }
        for threshold in band.thresholds:
            level_up = threshold.level
            level_down = ids[ids.index(level_up) - 1]
            at_expected = level_up if rulebook.at_threshold == AT_THRESHOLD_HIGHER else level_down
            step = EPSILON * max(1.0, abs(threshold.value))
            for value, expected in (
                (threshold.value - step, level_down),
                (threshold.value, at_expected),
                (threshold.value + step, level_up),
            ):
                assessment = level_for(rulebook, {**selector_value, threshold.indicator: value})
                assert assessment.indicator_level(threshold.indicator) == expected, (threshold, value)
                checked += 1
    assert checked >= 3


def test_switching_rulebook_changes_the_level(rulebooks):
    values = {
        "cases_per_100k_7d_avg": 5.0,
        "incidence_7d_per_100k": 35.0,
        "test_positivity_7d": 0.12,
        "rt": 1.2,
        "admissions_per_100k_7d": 4.0,
        "covid_bed_share_7d": 0.05,
        "bed_occupancy": 0.7,
        "icu_occupancy": 0.6,
        "week_over_week_growth": 1.3,
    }
    levels = {rulebook_id: level_for(rulebook, values).level for rulebook_id, rulebook in rulebooks.items()}
    assert levels == {
        "harvard_ghi": "yellow",
        "covid_act_now": "high",
        "cdc_community_levels_2022": "low",
        "custom": "warning",
    }


# --- invalid content: the error names the key


def broken(rulebook_id: str, edit) -> dict:
    mapping = copy.deepcopy(load_mapping(rulebook_id))
    edit(mapping)
    return mapping


@pytest.mark.parametrize(
    ("rulebook_id", "edit", "message"),
    [
        (
            "harvard_ghi",
            lambda m: m.update(colour_scheme="viridis"),
            "unknown key 'colour_scheme' at top level",
        ),
        ("harvard_ghi", lambda m: m.pop("version"), "version: missing required key"),
        (
            "harvard_ghi",
            lambda m: m["levels"][1].update(color="#FFFFFF"),
            "unknown key 'color' in levels\\[1\\]",
        ),
        (
            "harvard_ghi",
            lambda m: m["levels"][2].update(colour="orange"),
            "levels\\[2\\].colour: expected '#RRGGBB'",
        ),
        ("harvard_ghi", lambda m: m["levels"].append(dict(m["levels"][0])), "levels\\[4\\].id: duplicate"),
        (
            "harvard_ghi",
            lambda m: m["indicators"]["cases_per_100k_7d_avg"]["thresholds"].update(purple=50),
            "indicators.cases_per_100k_7d_avg.thresholds.purple: unknown level",
        ),
        (
            "harvard_ghi",
            lambda m: m["indicators"]["cases_per_100k_7d_avg"]["thresholds"].update(orange=0.5),
            "indicators.cases_per_100k_7d_avg.thresholds.orange: thresholds must increase",
        ),
        (
            "harvard_ghi",
            lambda m: m["indicators"]["cases_per_100k_7d_avg"]["thresholds"].update(green=0),
            "thresholds.green: the lowest level has no threshold",
        ),
        (
            "harvard_ghi",
            lambda m: m["indicators"]["cases_per_100k_7d_avg"]["thresholds"].update(yellow="one"),
            "thresholds.yellow: expected a finite number",
        ),
        (
            "harvard_ghi",
            lambda m: m["indicators"]["cases_per_100k_7d_avg"]["thresholds"].pop("orange"),
            "thresholds.red: levels must be listed in order without gaps",
        ),
        ("harvard_ghi", lambda m: m.update(at_threshold="round"), "at_threshold: must be"),
        (
            "covid_act_now",
            lambda m: m["indicators"]["icu_occupancy"].update(in_overall="no"),
            "indicators.icu_occupancy.in_overall: must be true or false",
        ),
        (
            "covid_act_now",
            lambda m: m["overall"]["overrides"][0].update(overall="green"),
            "overall.overrides\\[0\\].overall: unknown level 'green'",
        ),
        ("covid_act_now", lambda m: m["overall"].update(method="mean"), "overall.method: only 'max'"),
        (
            "covid_act_now",
            lambda m: m["overall"].update(required=["deaths"]),
            "overall.required\\[0\\]: unknown indicator 'deaths'",
        ),
        (
            "cdc_community_levels_2022",
            lambda m: m["selector"]["bands"][1].update(at_least=250),
            "selector.bands\\[1\\].at_least: must equal the previous band's below",
        ),
        (
            "cdc_community_levels_2022",
            lambda m: m["selector"]["bands"][0]["thresholds"].pop("covid_bed_share_7d"),
            "selector.bands\\[0\\].thresholds: no thresholds for indicator",
        ),
        (
            "cdc_community_levels_2022",
            lambda m: m["indicators"]["admissions_per_100k_7d"].update(thresholds={"high": 1}),
            "indicators.admissions_per_100k_7d.thresholds: not allowed with a selector",
        ),
        (
            "cdc_community_levels_2022",
            lambda m: m["selector"]["bands"][0].update(lower=0),
            "unknown key 'lower' in selector.bands\\[0\\]",
        ),
    ],
)
def test_invalid_rulebook_errors_name_the_key(rulebook_id, edit, message):
    with pytest.raises(RulebookError, match=message):
        parse_rulebook(broken(rulebook_id, edit))


def test_a_rulebook_must_be_a_mapping():
    with pytest.raises(RulebookError, match="rulebook: expected a mapping"):
        parse_rulebook(["not", "a", "mapping"])  # type: ignore[arg-type]


# --- level changes


def history_of(rulebook, values_by_day):
    start = date(2022, 3, 1)
    return [
        (start + timedelta(days=offset), level_for(rulebook, values))
        for offset, values in enumerate(values_by_day)
    ]


def test_level_changes_lists_each_change_with_rulebook_and_version(rulebooks):
    rulebook = rulebooks["harvard_ghi"]
    series = [0.5, 0.6, 3.0, 3.0, None, 12.0, 30.0, 8.0]
    history = history_of(rulebook, [{"cases_per_100k_7d_avg": v} for v in series])
    changes = level_changes(history)
    assert [(c.date.isoformat(), c.from_level, c.to_level, c.direction) for c in changes] == [
        ("2022-03-03", "green", "yellow", "up"),
        # the missing day (2022-03-05) is a gap, not a change
        ("2022-03-06", "yellow", "orange", "up"),
        ("2022-03-07", "orange", "red", "up"),
        ("2022-03-08", "red", "yellow", "down"),
    ]
    assert {(c.rulebook_id, c.rulebook_version) for c in changes} == {("harvard_ghi", "2020-07-01")}


def test_switching_rulebook_restarts_the_comparison(rulebooks):
    values = {"cases_per_100k_7d_avg": 5.0, "rt": 1.5, "test_positivity_7d": 0.01}
    first = history_of(rulebooks["harvard_ghi"], [values, values])
    second = [
        (day + timedelta(days=2), level_for(rulebooks["covid_act_now"], values)) for day, _ in first
    ]
    assert level_changes(first + second) == []


def test_level_changes_needs_increasing_dates(rulebooks):
    assessment: LevelAssessment = level_for(rulebooks["harvard_ghi"], {"cases_per_100k_7d_avg": 1.0})
    with pytest.raises(ValueError, match="increasing date order"):
        level_changes([(date(2022, 1, 2), assessment), (date(2022, 1, 1), assessment)])
