"""Risk-level rulebooks as data: parse, validate, assess indicator values, and list level changes.

A rulebook (rulebooks/*.yaml, read by the caller) names ordered levels and, per indicator, the value at
which each level above the lowest begins. It is parsed into frozen dataclasses by ``parse_rulebook``, which
rejects unknown keys and names the offending key in every error, so that an analyst's typo in a YAML file
fails at start-up rather than silently dropping a threshold.

Vocabulary of a rulebook mapping (see rulebooks/custom.yaml for an annotated template):

* ``id``, ``name``, ``version``, ``source`` (citation), optional ``url``, ``notes``;
* ``levels``: ordered lowest to highest, each ``{id, label, colour}`` (colour ``#RRGGBB``);
* ``at_threshold``: ``higher_level`` (default: a value equal to a threshold is in the level the threshold
  opens, ``value >= t``) or ``lower_level`` (``value > t``, as Covid Act Now's code does: "each threshold is
  the upper limit for the risk level");
* ``indicators``: per indicator name (the column names of analytics.indicators, or ``rt``), a ``label``,
  optional ``unit``, ``in_overall`` (default true) and ``thresholds`` ``{level id: value}`` giving where each
  level starts. Levels listed must be consecutive in the level order; below the first threshold the value
  is in the level just before the first listed one (so ``{high: 10}`` means "below 10: the level before
  high"), which is how CDC's "NA" cells are written;
* ``selector`` (instead of per-indicator thresholds): an indicator whose value picks which threshold
  ``bands`` apply, each band ``{name, below?, at_least?, thresholds: {indicator: {level: value}}}``
  (CDC Community Levels: fewer than 200 new cases per 100k in 7 days, or 200 or more);
* ``overall``: how indicator levels combine: ``method: max`` (the highest level among indicators counted
  in the overall), ``required`` indicators without which there is no overall level, and ``overrides``
  ``[{indicator, level, overall}]``: when that indicator is at that level, the overall level is fixed
  (Covid Act Now: a low case density makes the overall level low).

Missing values (None or NaN) leave an indicator unassessed; the overall level is the highest over what
was assessed, or None when nothing (or a required indicator) was.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

AT_THRESHOLD_HIGHER = "higher_level"
AT_THRESHOLD_LOWER = "lower_level"
COMBINE_MAX = "max"
_HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")

_TOP_KEYS = frozenset(
    {"id", "name", "version", "source", "url", "notes", "levels", "at_threshold", "indicators",
     "selector", "overall"}
)
_LEVEL_KEYS = frozenset({"id", "label", "colour", "description"})
_INDICATOR_KEYS = frozenset({"label", "unit", "in_overall", "thresholds", "description"})
_SELECTOR_KEYS = frozenset({"indicator", "label", "bands"})
_BAND_KEYS = frozenset({"name", "below", "at_least", "thresholds"})
_OVERALL_KEYS = frozenset({"method", "required", "overrides"})
_OVERRIDE_KEYS = frozenset({"indicator", "level", "overall"})


class RulebookError(ValueError):
    """A rulebook mapping is invalid; the message starts with the path of the offending key."""


@dataclass(frozen=True, slots=True)
class Level:
    id: str
    label: str
    colour: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Threshold:
    """``indicator`` enters ``level`` at ``value`` (inclusive or not per the rulebook's at_threshold)."""

    indicator: str
    level: str
    value: float


@dataclass(frozen=True, slots=True)
class IndicatorRule:
    name: str
    label: str
    unit: str = ""
    in_overall: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class ThresholdBand:
    """Thresholds that apply while the selector value is in [at_least, below)."""

    name: str
    at_least: float
    below: float
    thresholds: tuple[Threshold, ...]

    def thresholds_for(self, indicator: str) -> tuple[Threshold, ...]:
        return tuple(t for t in self.thresholds if t.indicator == indicator)


@dataclass(frozen=True, slots=True)
class Override:
    indicator: str
    level: str
    overall: str


@dataclass(frozen=True, slots=True)
class Rulebook:
    id: str
    name: str
    version: str
    source: str
    levels: tuple[Level, ...]
    indicators: tuple[IndicatorRule, ...]
    bands: tuple[ThresholdBand, ...]
    selector: str | None = None
    at_threshold: str = AT_THRESHOLD_HIGHER
    combine: str = COMBINE_MAX
    required: tuple[str, ...] = ()
    overrides: tuple[Override, ...] = ()
    url: str = ""
    notes: str = ""

    def level_rank(self, level_id: str) -> int:
        for rank, level in enumerate(self.levels):
            if level.id == level_id:
                return rank
        raise KeyError(f"rulebook {self.id!r} has no level {level_id!r}")

    def level(self, level_id: str) -> Level:
        return self.levels[self.level_rank(level_id)]


@dataclass(frozen=True, slots=True)
class IndicatorLevel:
    """One indicator's value, the level it falls in (None if missing) and the thresholds it crossed."""

    indicator: str
    value: float | None
    level: str | None
    crossed: tuple[Threshold, ...] = ()
    in_overall: bool = True


@dataclass(frozen=True, slots=True)
class LevelAssessment:
    rulebook_id: str
    rulebook_version: str
    level: str | None
    level_rank: int | None
    colour: str | None
    indicators: tuple[IndicatorLevel, ...]
    band: str | None
    missing: tuple[str, ...]
    basis: str

    @property
    def crossed(self) -> tuple[Threshold, ...]:
        return tuple(t for indicator in self.indicators for t in indicator.crossed)

    def indicator_level(self, indicator: str) -> str | None:
        for item in self.indicators:
            if item.indicator == indicator:
                return item.level
        raise KeyError(f"indicator {indicator!r} is not in rulebook {self.rulebook_id!r}")


@dataclass(frozen=True, slots=True)
class LevelChange:
    date: date
    from_level: str
    to_level: str
    rulebook_id: str
    rulebook_version: str
    direction: str  # "up" (worse) or "down" (better)


# ---------------------------------------------------------------------------------------------- parsing


def parse_rulebook(mapping: Mapping[str, Any]) -> Rulebook:
    """Validate a rulebook mapping (e.g. from yaml.safe_load) into a frozen ``Rulebook``.

    Raises RulebookError whose message begins with the path of the bad key, e.g.
    ``indicators.rt.thresholds.high: ...`` or ``unknown key 'colour_scheme' at top level``.
    """
    _check_mapping(mapping, "rulebook")
    _check_keys(mapping, _TOP_KEYS, "top level", required=("id", "name", "version", "source", "levels"))
    rulebook_id = _identifier(mapping["id"], "id")
    name = _text(mapping["name"], "name")
    version = _text(mapping["version"], "version", allow_numbers=True)
    source = _text(mapping["source"], "source")
    url = _text(mapping.get("url", ""), "url", allow_empty=True)
    notes = _text(mapping.get("notes", ""), "notes", allow_empty=True)
    levels = _parse_levels(mapping["levels"])
    level_ids = [level.id for level in levels]
    at_threshold = mapping.get("at_threshold", AT_THRESHOLD_HIGHER)
    if at_threshold not in (AT_THRESHOLD_HIGHER, AT_THRESHOLD_LOWER):
        raise RulebookError(
            f"at_threshold: must be {AT_THRESHOLD_HIGHER!r} or {AT_THRESHOLD_LOWER!r}, got {at_threshold!r}"
        )

    if "indicators" not in mapping:
        raise RulebookError("indicators: missing required key")
    raw_indicators = mapping["indicators"]
    _check_mapping(raw_indicators, "indicators")
    if not raw_indicators:
        raise RulebookError("indicators: at least one indicator is needed")
    has_selector = "selector" in mapping
    indicators: list[IndicatorRule] = []
    inline_thresholds: list[Threshold] = []
    for indicator_name, spec in raw_indicators.items():
        path = f"indicators.{indicator_name}"
        _identifier(indicator_name, path)
        _check_mapping(spec, path)
        _check_keys(spec, _INDICATOR_KEYS, path, required=("label",))
        in_overall = spec.get("in_overall", True)
        if not isinstance(in_overall, bool):
            raise RulebookError(f"{path}.in_overall: must be true or false, got {in_overall!r}")
        indicators.append(
            IndicatorRule(
                name=indicator_name,
                label=_text(spec["label"], f"{path}.label"),
                unit=_text(spec.get("unit", ""), f"{path}.unit", allow_empty=True),
                in_overall=in_overall,
                description=_text(spec.get("description", ""), f"{path}.description", allow_empty=True),
            )
        )
        if has_selector:
            if "thresholds" in spec:
                raise RulebookError(
                    f"{path}.thresholds: not allowed with a selector; put thresholds in selector.bands"
                )
        else:
            if "thresholds" not in spec:
                raise RulebookError(f"{path}.thresholds: missing required key")
            inline_thresholds.extend(
                _parse_thresholds(spec["thresholds"], indicator_name, level_ids, f"{path}.thresholds")
            )
    indicator_names = [rule.name for rule in indicators]

    if has_selector:
        selector, bands = _parse_selector(mapping["selector"], indicator_names, level_ids)
    else:
        selector = None
        bands = (ThresholdBand("all values", -math.inf, math.inf, tuple(inline_thresholds)),)

    combine, required, overrides = _parse_overall(mapping.get("overall", {}), indicator_names, level_ids)
    if not any(rule.in_overall for rule in indicators):
        raise RulebookError("indicators: at least one indicator must have in_overall: true")
    return Rulebook(
        id=rulebook_id,
        name=name,
        version=version,
        source=source,
        levels=levels,
        indicators=tuple(indicators),
        bands=bands,
        selector=selector,
        at_threshold=at_threshold,
        combine=combine,
        required=required,
        overrides=overrides,
        url=url,
        notes=notes,
    )


def _parse_levels(raw: Any) -> tuple[Level, ...]:
    if not isinstance(raw, list) or len(raw) < 2:
        raise RulebookError("levels: must be a list of at least two levels, lowest first")
    levels: list[Level] = []
    for index, spec in enumerate(raw):
        path = f"levels[{index}]"
        _check_mapping(spec, path)
        _check_keys(spec, _LEVEL_KEYS, path, required=("id", "label", "colour"))
        colour = spec["colour"]
        if not (isinstance(colour, str) and _HEX_COLOUR.match(colour)):
            raise RulebookError(f"{path}.colour: expected '#RRGGBB', got {colour!r}")
        level = Level(
            id=_identifier(spec["id"], f"{path}.id"),
            label=_text(spec["label"], f"{path}.label"),
            colour=colour.upper(),
            description=_text(spec.get("description", ""), f"{path}.description", allow_empty=True),
        )
        if any(existing.id == level.id for existing in levels):
            raise RulebookError(f"{path}.id: duplicate level id {level.id!r}")
        levels.append(level)
    return tuple(levels)


def _parse_thresholds(
    raw: Any, indicator: str, level_ids: Sequence[str], path: str
) -> tuple[Threshold, ...]:
    _check_mapping(raw, path)
    if not raw:
        raise RulebookError(f"{path}: at least one threshold is needed")
    ranks: list[int] = []
    thresholds: list[Threshold] = []
    for level_id, value in raw.items():
        key_path = f"{path}.{level_id}"
        if level_id not in level_ids:
            raise RulebookError(f"{key_path}: unknown level {level_id!r} (levels: {list(level_ids)})")
        rank = level_ids.index(level_id)
        if rank == 0:
            raise RulebookError(
                f"{key_path}: the lowest level has no threshold (values below the first threshold are in it)"
            )
        number = _number(value, key_path)
        if ranks and rank != ranks[-1] + 1:
            raise RulebookError(
                f"{key_path}: levels must be listed in order without gaps; {level_id!r} does not follow "
                f"{level_ids[ranks[-1]]!r}"
            )
        if thresholds and not number > thresholds[-1].value:
            raise RulebookError(
                f"{key_path}: thresholds must increase with the level; {number} is not above "
                f"{thresholds[-1].value}"
            )
        ranks.append(rank)
        thresholds.append(Threshold(indicator, level_id, number))
    return tuple(thresholds)


def _parse_selector(
    raw: Any, indicator_names: Sequence[str], level_ids: Sequence[str]
) -> tuple[str, tuple[ThresholdBand, ...]]:
    _check_mapping(raw, "selector")
    _check_keys(raw, _SELECTOR_KEYS, "selector", required=("indicator", "bands"))
    selector = _identifier(raw["indicator"], "selector.indicator")
    if selector in indicator_names:
        raise RulebookError(
            "selector.indicator: the selector chooses thresholds and is not itself levelled; "
            "do not also list it under indicators"
        )
    raw_bands = raw["bands"]
    if not isinstance(raw_bands, list) or len(raw_bands) < 2:
        raise RulebookError("selector.bands: must be a list of at least two bands, lowest values first")
    bands: list[ThresholdBand] = []
    for index, spec in enumerate(raw_bands):
        path = f"selector.bands[{index}]"
        _check_mapping(spec, path)
        _check_keys(spec, _BAND_KEYS, path, required=("name", "thresholds"))
        first, last = index == 0, index == len(raw_bands) - 1
        if first and "at_least" in spec:
            raise RulebookError(f"{path}.at_least: the first band starts at the lowest value; remove it")
        if last and "below" in spec:
            raise RulebookError(f"{path}.below: the last band has no upper end; remove it")
        if not first and "at_least" not in spec:
            raise RulebookError(f"{path}.at_least: missing required key")
        if not last and "below" not in spec:
            raise RulebookError(f"{path}.below: missing required key")
        at_least = _number(spec["at_least"], f"{path}.at_least") if not first else -math.inf
        below = _number(spec["below"], f"{path}.below") if not last else math.inf
        if bands and at_least != bands[-1].below:
            raise RulebookError(
                f"{path}.at_least: must equal the previous band's below ({bands[-1].below}) so that "
                "bands neither overlap nor leave a gap"
            )
        if not below > at_least:
            raise RulebookError(f"{path}.below: must be above at_least ({at_least})")
        raw_thresholds = spec["thresholds"]
        _check_mapping(raw_thresholds, f"{path}.thresholds")
        thresholds: list[Threshold] = []
        for indicator, indicator_thresholds in raw_thresholds.items():
            indicator_path = f"{path}.thresholds.{indicator}"
            if indicator not in indicator_names:
                raise RulebookError(
                    f"{indicator_path}: unknown indicator "
                    f"(declare it under indicators: {list(indicator_names)})"
                )
            thresholds.extend(_parse_thresholds(indicator_thresholds, indicator, level_ids, indicator_path))
        unassessed = [name for name in indicator_names if name not in raw_thresholds]
        if unassessed:
            raise RulebookError(f"{path}.thresholds: no thresholds for indicator(s) {unassessed}")
        bands.append(
            ThresholdBand(_text(spec["name"], f"{path}.name"), at_least, below, tuple(thresholds))
        )
    return selector, tuple(bands)


def _parse_overall(
    raw: Any, indicator_names: Sequence[str], level_ids: Sequence[str]
) -> tuple[str, tuple[str, ...], tuple[Override, ...]]:
    _check_mapping(raw, "overall")
    _check_keys(raw, _OVERALL_KEYS, "overall")
    method = raw.get("method", COMBINE_MAX)
    if method != COMBINE_MAX:
        raise RulebookError(f"overall.method: only {COMBINE_MAX!r} is supported, got {method!r}")
    required_raw = raw.get("required", [])
    if not isinstance(required_raw, list):
        raise RulebookError("overall.required: must be a list of indicator names")
    for index, name in enumerate(required_raw):
        if name not in indicator_names:
            raise RulebookError(f"overall.required[{index}]: unknown indicator {name!r}")
    overrides_raw = raw.get("overrides", [])
    if not isinstance(overrides_raw, list):
        raise RulebookError("overall.overrides: must be a list")
    overrides: list[Override] = []
    for index, spec in enumerate(overrides_raw):
        path = f"overall.overrides[{index}]"
        _check_mapping(spec, path)
        _check_keys(spec, _OVERRIDE_KEYS, path, required=("indicator", "level", "overall"))
        if spec["indicator"] not in indicator_names:
            raise RulebookError(f"{path}.indicator: unknown indicator {spec['indicator']!r}")
        for key in ("level", "overall"):
            if spec[key] not in level_ids:
                raise RulebookError(f"{path}.{key}: unknown level {spec[key]!r} (levels: {list(level_ids)})")
        overrides.append(Override(spec["indicator"], spec["level"], spec["overall"]))
    return method, tuple(required_raw), tuple(overrides)


def _check_mapping(value: Any, path: str) -> None:
    if not isinstance(value, Mapping):
        raise RulebookError(f"{path}: expected a mapping, got {type(value).__name__}")


def _check_keys(
    mapping: Mapping[str, Any], allowed: frozenset[str], path: str, required: Sequence[str] = ()
) -> None:
    for key in mapping:
        if key not in allowed:
            where = "at top level" if path == "top level" else f"in {path}"
            raise RulebookError(f"unknown key {key!r} {where} (allowed: {sorted(allowed)})")
    for key in required:
        if key not in mapping:
            prefix = "" if path == "top level" else f"{path}."
            raise RulebookError(f"{prefix}{key}: missing required key")


def _text(value: Any, path: str, allow_empty: bool = False, allow_numbers: bool = False) -> str:
    if allow_numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        # YAML reads an unquoted version such as 2022.2 as a number; keep its text.
        value = str(value)
    if not isinstance(value, str):
        raise RulebookError(f"{path}: expected text, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise RulebookError(f"{path}: must not be empty")
    return value.strip()


def _identifier(value: Any, path: str) -> str:
    if not (isinstance(value, str) and _IDENTIFIER.match(value)):
        raise RulebookError(f"{path}: expected a lower_snake_case identifier, got {value!r}")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RulebookError(f"{path}: expected a finite number, got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------------- assessing


def level_for(rulebook: Rulebook, indicator_values: Mapping[str, float | None]) -> LevelAssessment:
    """Level of each indicator of ``rulebook`` and the overall level, for one area on one day.

    ``indicator_values`` maps indicator names (and the selector's) to values; None/NaN or absent means
    not measured. Extra keys are ignored so one dict of all indicators can be assessed by any rulebook.
    """
    missing = [
        name
        for name in ([rulebook.selector] if rulebook.selector else []) + [r.name for r in rulebook.indicators]
        if _value(indicator_values, name) is None
    ]
    band = _band_for(rulebook, indicator_values)
    if band is None:
        # Without the selector there is no way to tell which thresholds apply.
        unassessed = tuple(
            IndicatorLevel(r.name, _value(indicator_values, r.name), None, (), r.in_overall)
            for r in rulebook.indicators
        )
        return _assessment(rulebook, None, unassessed, None, missing, f"{_label(rulebook, rulebook.selector)} is missing")

    assessed = tuple(
        _indicator_level(rulebook, band, rule, _value(indicator_values, rule.name))
        for rule in rulebook.indicators
    )
    by_name = {item.indicator: item for item in assessed}
    absent_required = [name for name in rulebook.required if by_name[name].level is None]
    band_name = None if rulebook.selector is None else band.name
    if absent_required:
        return _assessment(
            rulebook, None, assessed, band_name, missing,
            f"{_names(rulebook, absent_required)} missing (required)"
        )
    for override in rulebook.overrides:
        if by_name[override.indicator].level == override.level:
            basis = (f"{_label(rulebook, override.indicator)} is {rulebook.level(override.level).label}, so the "
                     f"overall level is {rulebook.level(override.overall).label}")
            return _assessment(rulebook, override.overall, assessed, band_name, missing, basis)
    counted = [item for item in assessed if item.in_overall and item.level is not None]
    if not counted:
        return _assessment(rulebook, None, assessed, band_name, missing, "no indicator measured")
    top = max(counted, key=lambda item: rulebook.level_rank(item.level))  # type: ignore[arg-type]
    highest = [item.indicator for item in counted if item.level == top.level]
    decided = _names(rulebook, highest)
    basis = (f"{decided}: {rulebook.level(top.level).label}" if len(counted) == 1 else
             f"highest of {len(counted)} indicators: {rulebook.level(top.level).label} ({decided})")
    return _assessment(rulebook, top.level, assessed, band_name, missing, basis)


def assess_areas(rulebook: Rulebook, values_by_area: Mapping[str, Mapping[str, float | None]]
                 ) -> dict[str, LevelAssessment]:
    """``level_for`` of every area: the one way areas are levelled (by the job and by a rulebook switch)."""
    return {area_id: level_for(rulebook, values) for area_id, values in values_by_area.items()}


def _label(rulebook: Rulebook, name: str | None) -> str:
    """An indicator's label in the rulebook's own words (its name when the rulebook gives none)."""
    for rule in rulebook.indicators:
        if rule.name == name:
            return rule.label or name
    return str(name)


def _names(rulebook: Rulebook, names: Sequence[str]) -> str:
    """Indicator labels as a sentence fragment: "A", "A and B", "A, B and C"."""
    labels = [_label(rulebook, n) for n in names]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def level_changes(
    history: Iterable[tuple[date, LevelAssessment]],
) -> list[LevelChange]:
    """Changes of overall level along a date-ordered history of (date, assessment) pairs.

    Days without an overall level (None) are gaps, not changes: the level after a gap is compared with the
    last level before it. A switch of rulebook (id or version) restarts the comparison: levels of
    different rulebooks are not on one scale, and the switch itself is a configuration event the caller
    records separately. Raises ValueError if dates do not strictly increase.
    """
    changes: list[LevelChange] = []
    previous_date: date | None = None
    previous: LevelAssessment | None = None
    for day, assessment in history:
        if previous_date is not None and not day > previous_date:
            raise ValueError(f"history must be in increasing date order: {day} after {previous_date}")
        previous_date = day
        if assessment.level is None:
            continue
        same_rulebook = previous is not None and (
            previous.rulebook_id,
            previous.rulebook_version,
        ) == (assessment.rulebook_id, assessment.rulebook_version)
        if same_rulebook and previous is not None and previous.level != assessment.level:
            assert previous.level_rank is not None and assessment.level_rank is not None
            changes.append(
                LevelChange(
                    date=day,
                    from_level=previous.level,  # type: ignore[arg-type]
                    to_level=assessment.level,
                    rulebook_id=assessment.rulebook_id,
                    rulebook_version=assessment.rulebook_version,
                    direction="up" if assessment.level_rank > previous.level_rank else "down",
                )
            )
        previous = assessment
    return changes


def _value(values: Mapping[str, float | None], name: str) -> float | None:
    value = values.get(name)
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _band_for(rulebook: Rulebook, values: Mapping[str, float | None]) -> ThresholdBand | None:
    if rulebook.selector is None:
        return rulebook.bands[0]
    selector_value = _value(values, rulebook.selector)
    if selector_value is None:
        return None
    for band in rulebook.bands:
        if band.at_least <= selector_value < band.below:
            return band
    raise AssertionError("bands cover the whole real line")  # guaranteed by _parse_selector


def _indicator_level(
    rulebook: Rulebook, band: ThresholdBand, rule: IndicatorRule, value: float | None
) -> IndicatorLevel:
    if value is None:
        return IndicatorLevel(rule.name, None, None, (), rule.in_overall)
    thresholds = band.thresholds_for(rule.name)
    if rulebook.at_threshold == AT_THRESHOLD_HIGHER:
        crossed = tuple(t for t in thresholds if value >= t.value)
    else:
        crossed = tuple(t for t in thresholds if value > t.value)
    if crossed:
        level = crossed[-1].level
    else:
        # Below every threshold: the level just before the first listed one (see module docstring).
        level = rulebook.levels[rulebook.level_rank(thresholds[0].level) - 1].id
    return IndicatorLevel(rule.name, value, level, crossed, rule.in_overall)


def _assessment(
    rulebook: Rulebook,
    level: str | None,
    indicators: tuple[IndicatorLevel, ...],
    band: str | None,
    missing: Sequence[str],
    basis: str,
) -> LevelAssessment:
    return LevelAssessment(
        rulebook_id=rulebook.id,
        rulebook_version=rulebook.version,
        level=level,
        level_rank=None if level is None else rulebook.level_rank(level),
        colour=None if level is None else rulebook.level(level).colour,
        indicators=indicators,
        band=band,
        missing=tuple(missing),
        basis=basis,
    )
