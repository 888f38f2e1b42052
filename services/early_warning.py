"""The early-warning page's read model: gauges, level, timeline with forecast, R(t), capacity outlook,
alarms and level changes of one area (or the city), all read from what the jobs stored.

Indicator values come from services.indicators (the same figures as the API), the level from the
stored levels of the indicators job, R(t) from ``rt_estimates``, forecasts from ``ew_forecast_*`` and
days-until-capacity from ``capacity_outlook``. Threshold marks and per-indicator colours on the
gauges are the active rulebook's bands looked up for the stored values (analytics.rulebooks.level_for,
the same function the job levelled with); nothing here estimates or forecasts.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from analytics import catalog as cat
from analytics import forecast_skill as fs
from analytics import indicators as ind
from analytics.rulebooks import LevelAssessment, Rulebook, ThresholdBand, level_for
from auth.principal import Principal
from rulebooks import load_rulebooks
from services.formatting import display_value
from services.indicators import CITYWIDE_NAME, Figure, NoIndicators, area_names, indicator_report
from services.privacy import Disclosure, disclose
from services.rulebooks import current_rulebook, rulebook_options
from services.series import daily_view
from settings import Settings
from store import Store
from store import queries_forecast as qf
from store import queries_indicators as qi
from store import queries_warning as qw
from store.definitions import CITYWIDE

TIMELINE_DAYS = 90
# Indicators shown as gauges besides the rulebook's own (in this order), uncoloured when not in it.
GAUGE_INDICATORS: tuple[str, ...] = (
    ind.CASES_PER_100K_7D_AVG, ind.TEST_POSITIVITY_7D, ind.ADMISSIONS_PER_100K_7D, ind.RT,
    ind.BED_OCCUPANCY, ind.ICU_OCCUPANCY, ind.WASTEWATER_PERCENT_CHANGE, ind.SENSOR_WEEK_RATIO,
)
NEUTRAL_GAUGE_COLOUR = "#3a444f"
# Daily series the alarm table names (the early-warning job's series keys).
SERIES_LABELS = {"cases": "New cases", "admissions": "Hospital admissions", "fever": "Fever-screening alerts",
                 "wastewater": "Wastewater SARS-CoV-2 RNA"}
COUNT_SERIES = ("cases", "admissions")
ALARMS = Disclosure("early_warning.alarms", grain="area", counts=("observed",))
# Backtest scores of an area's forecast: ratios and shares, no counts of people.
FORECAST_QUALITY = Disclosure("early_warning.forecast_quality", grain="area")
QUALITY_HORIZONS = (7, 14)


@dataclass(frozen=True)
class ForecastQuality:
    """How good the forecast of one series has been, from what the early-warning job stored."""
    area_id: str
    as_of: date | None
    method: str | None  # the method forecast with (analytics.forecast_skill), None: no forecast
    method_label: str
    reason: str  # why that method (or the naive forecast)
    skill: dict[int, float | None]  # horizon -> 1 - MAE / naive MAE of the job's method over the backtest
    coverage_90: dict[int, float | None]
    origins: int  # past forecasts scored
    text: str  # the one line pages and the briefing print


def quality_sentence(method: str, reason: str, skill: Mapping[int, float | None],
                     coverage: Mapping[int, float | None], origins: int) -> str:
    """The line itself: the method, a fallback to the naive forecast said as such, skill and coverage."""
    label = fs.METHOD_LABELS.get(method, method)
    head = f"Forecast: {label}"
    if method == fs.NAIVE and reason:
        head += f" ({reason.rsplit(':', 1)[0]})"
    if not origins or any(skill.get(h) is None or coverage.get(h) is None for h in QUALITY_HORIZONS):
        return f"{head}. Not yet scored: too few past forecasts of this series have an outcome to compare with."

    def pct(value: float) -> str:
        return "0%" if round(value * 100) == 0 else f"{value:+.0%}"
    return (f"{head}. Over the last {origins} weekly forecasts of this series its skill against carrying last "
            f"week's average forward was {pct(skill[7])} at 7 days and {pct(skill[14])} at 14 days; the 90 % band "
            f"held the outcome {coverage[7]:.0%} and {coverage[14]:.0%} of the time.")


def forecast_quality(store: Store, principal: Principal, area_id: str) -> ForecastQuality:
    """The one line on forecast quality for ``area_id``, read from the stored forecast and its backtest."""
    run = qw.latest_forecast_run(store, area_id)
    empty = ForecastQuality(area_id, None, None, "", "", {}, {}, 0, "")
    if run is None:
        return empty
    as_of = pd.Timestamp(run["as_of"]).date()
    method = run.get("method")
    if method is None or (isinstance(method, float) and math.isnan(method)):
        return ForecastQuality(area_id, as_of, None, "", "", {}, {}, 0, "No forecast, so no forecast quality.")
    scores = qf.forecast_skill(store, as_of, area_id).assign(area_id=area_id)
    scores = disclose(principal, scores, FORECAST_QUALITY, min_count=0)
    chosen = scores[scores["method"] == fs.CHOSEN].set_index("horizon")
    label = fs.METHOD_LABELS.get(method, method)
    skill = {h: _float(chosen["skill"].get(h)) for h in QUALITY_HORIZONS}
    coverage = {h: _float(chosen["coverage_90"].get(h)) for h in QUALITY_HORIZONS}
    origins = int(chosen["origins"].min()) if len(chosen) else 0
    reason = str(run.get("method_note") or "")
    text = quality_sentence(method, reason, skill, coverage, origins)
    return ForecastQuality(area_id, as_of, method, label, reason, skill, coverage, origins, text)


@dataclass(frozen=True)
class ThresholdMark:
    value: float
    level_label: str
    colour: str


@dataclass(frozen=True)
class IndicatorGauge:
    """One gauge: the value, the level and colour it has in the active rulebook, and the threshold marks."""
    indicator: str
    label: str
    unit: str
    value: float | None
    display: str  # as the API's indicators give it
    suppressed: bool
    level_label: str | None
    colour: str | None
    lowest_colour: str
    thresholds: tuple[ThresholdMark, ...]
    axis_min: float
    axis_max: float
    is_fraction: bool
    in_rulebook: bool




@dataclass(frozen=True)
class Outlook:
    """Days until the threshold for one resource (beds or ICU) of the city."""
    resource: str
    figure: Figure  # days_to_bed_threshold / days_to_icu_threshold, as the API gives it
    capacity: float | None
    days_median: int | None
    days_upper: int | None
    projected: bool
    note: str


@dataclass(frozen=True)
class CapacityView:
    beds: Outlook | None
    icu: Outlook | None
    trigger: bool
    horizon_days: int
    threshold: float


@dataclass(frozen=True)
class EarlyWarningView:
    as_of: date | None
    area_id: str
    area_name: str
    area_options: tuple[tuple[str, str], ...]
    rulebook: Rulebook
    rulebook_options: tuple[tuple[str, str], ...]
    level: dict | None  # the stored level of the area (ew_area_levels row)
    gauges: tuple[IndicatorGauge, ...]
    timeline: pd.DataFrame
    bands: pd.DataFrame
    rt: pd.DataFrame
    rt_note: str
    capacity: CapacityView | None
    alarms: pd.DataFrame
    level_changes: pd.DataFrame
    forecast_note: str
    min_count: int
    forecast_quality: ForecastQuality | None = None


def area_options(store: Store) -> tuple[tuple[str, str], ...]:
    """(area_id, name) for the area selector: the city first, then every populated area by name."""
    names = area_names(store)
    return ((CITYWIDE, CITYWIDE_NAME), *((a, n) for a, n in sorted(names.items(), key=lambda x: x[1])
                                          if a != CITYWIDE))


def _level(store: Store, area_id: str) -> dict | None:
    levels = qw.area_levels(store)
    match = levels[levels["area_id"] == area_id]
    return None if match.empty else match.iloc[0].to_dict()


def _outlook(store: Store, as_of: date, report, settings: Settings) -> CapacityView | None:
    rows = qi.capacity_outlook(store, as_of, scope="city")
    if rows.empty:
        return None
    made = {}
    for resource, key in (("beds", cat.DAYS_TO_BED_THRESHOLD), ("icu", cat.DAYS_TO_ICU_THRESHOLD)):
        row = rows[rows["resource"] == resource]
        if row.empty:
            made[resource] = None
            continue
        r = row.iloc[0]
        made[resource] = Outlook(resource, report.figures[key], _float(r["capacity"]), _int(r["days_median"]),
                                 _int(r["days_upper"]), bool(r["projected"]), str(r["note"] or ""))
    trigger = bool(rows["trigger"].any())
    return CapacityView(made["beds"], made["icu"], trigger, settings.early_warning.forecast_days,
                        settings.early_warning.capacity_threshold)


def _float(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _int(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def page_view(store: Store, settings: Settings, area_id: str, principal: Principal,
              now: datetime | None = None) -> EarlyWarningView:
    """Everything /early-warning shows for one area (or the city)."""
    options = area_options(store)
    names = dict(options)
    area_id = area_id if area_id in names else CITYWIDE
    rulebooks = load_rulebooks(settings)
    rulebook = current_rulebook(store, settings)
    k = settings.privacy.min_count
    empty = pd.DataFrame()
    try:
        report = indicator_report(store, settings, principal, area_id, now=now)
    except NoIndicators:
        return EarlyWarningView(None, area_id, names[area_id], options, rulebook, rulebook_options(settings), None,
                                (), empty, empty, empty, "no case data yet", None, empty, empty, "", k)
    as_of = report.day
    values = {key: f.value for key, f in report.figures.items()}
    gauges = build_gauges(rulebook, level_for(rulebook, values), report.figures)
    start = as_of - timedelta(days=TIMELINE_DAYS - 1)
    timeline = daily_view(store, settings, principal, area_id, start, as_of).rename(columns={"day": "date"})
    rt = qi.rt_estimates(store, area_id, start, as_of).rename(columns={"day": "date"})
    rt_note = "" if rt["mean"].notna().any() else (
        f"R(t) needs at least 11 local cases in a {settings.early_warning.rt_window}-day window")
    run = qw.latest_forecast_run(store, area_id)
    bands = qw.forecast_bands(store, run["as_of"], area_id) if run else pd.DataFrame(
        columns=["series", "day", "mean", "median", "q05", "q95"])
    outlook_day = qi.latest_outlook_day(store, as_of)
    census = []
    for resource, series in (("beds", "beds_occupied"), ("icu", "icu_occupied")):
        if outlook_day is not None:
            band = qi.capacity_bands(store, outlook_day, "city", CITYWIDE, resource)
            census.append(band.assign(series=series))
    bands = pd.concat([bands, *census], ignore_index=True) if census else bands
    return EarlyWarningView(
        as_of=as_of, area_id=area_id, area_name=names[area_id], area_options=options, rulebook=rulebook,
        rulebook_options=rulebook_options(settings), level=_level(store, area_id), gauges=gauges,
        timeline=timeline, bands=bands, rt=rt, rt_note=rt_note,
        capacity=_outlook(store, outlook_day, report, settings) if outlook_day else None,
        alarms=alarm_rows(store, settings, principal, names), level_changes=level_change_rows(store, names, rulebooks),
        forecast_note=(run or {}).get("note") or "", min_count=k,
        forecast_quality=forecast_quality(store, principal, area_id))


def build_gauges(rulebook: Rulebook, assessment: LevelAssessment | None, figures: Mapping[str, Figure]
                 ) -> tuple[IndicatorGauge, ...]:
    """The rulebook's indicators (coloured by their level, threshold marks of the band that applies), then
    the other key indicators uncoloured."""
    band = _band(rulebook, assessment)
    gauges = []
    names = [r.name for r in rulebook.indicators]
    for rule in rulebook.indicators:
        figure = figures[rule.name]
        marks = tuple(ThresholdMark(t.value, rulebook.level(t.level).label, rulebook.level(t.level).colour)
                      for t in (band.thresholds_for(rule.name) if band else ()))
        if marks:
            first_rank = rulebook.level_rank(band.thresholds_for(rule.name)[0].level)
            lowest = rulebook.levels[first_rank - 1].colour
        else:
            lowest = NEUTRAL_GAUGE_COLOUR
        level_id = assessment.indicator_level(rule.name) if assessment else None
        level = rulebook.level(level_id) if level_id else None
        gauges.append(_gauge(figure, rule.label, rule.unit, level.label if level else None,
                             level.colour if level else None, lowest, marks, True))
    for name in GAUGE_INDICATORS:
        if name in names:
            continue
        figure = figures[name]
        gauges.append(_gauge(figure, figure.label, figure.unit, None, None, NEUTRAL_GAUGE_COLOUR, (), False))
    return tuple(gauges)


def _band(rulebook: Rulebook, assessment: LevelAssessment | None) -> ThresholdBand | None:
    if rulebook.selector is None:
        return rulebook.bands[0]
    if assessment is None or assessment.band is None:
        return None
    return next((b for b in rulebook.bands if b.name == assessment.band), None)


def _gauge(figure: Figure, label, unit, level_label, colour, lowest, marks, in_rulebook) -> IndicatorGauge:
    name, value = figure.key, figure.value
    value = None if value is None or not math.isfinite(value) else float(value)
    fraction = figure.kind == cat.FRACTION
    top_mark = max((m.value for m in marks), default=0.0)
    axis_min = min(0.0, value or 0.0, -100.0 if name == ind.WASTEWATER_PERCENT_CHANGE else 0.0)
    default_top = {ind.RT: 2.0, ind.WEEK_OVER_WEEK_GROWTH: 2.0, ind.SENSOR_WEEK_RATIO: 2.0,
                   ind.WASTEWATER_PERCENT_CHANGE: 200.0}.get(name, 1.0 if fraction else 10.0)
    axis_max = max(top_mark * 1.4, (value or 0.0) * 1.15, default_top if not marks else 0.0)
    if fraction:
        axis_max = min(max(axis_max, top_mark * 1.25 if marks else 0.3), 1.0)
        if value is not None and value > axis_max:
            axis_max = value
    return IndicatorGauge(name, label, unit, value, figure.display, figure.suppressed, level_label, colour, lowest,
                          marks, axis_min, axis_max, fraction, in_rulebook)


def alarm_rows(store: Store, settings: Settings, principal: Principal, names: Mapping[str, str]) -> pd.DataFrame:
    """Open alarms, one row per series and area: methods, started (earliest), last alarm, observed vs bound."""
    alarms = qw.active_alarms(store)
    columns = ["series", "area", "area_id", "methods", "started_on", "last_alarm_on", "observed", "bound"]
    if alarms.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (series, area_id), group in alarms.groupby(["series", "area_id"], sort=False):
        last = group.sort_values("last_alarm_on").iloc[-1]
        rows.append({
            "series_key": series, "series": SERIES_LABELS.get(series, series), "area": names.get(area_id, area_id),
            "area_id": area_id,
            "methods": " · ".join(f"{m.method} since {pd.Timestamp(m.started_on):%d %b}"
                                  for m in group.sort_values("started_on").itertuples(index=False)),
            "started_on": pd.Timestamp(group["started_on"].min()).date(),
            "last_alarm_on": pd.Timestamp(group["last_alarm_on"].max()).date(),
            "observed": float(last["observed"]), "bound": float(last["upperbound"]),
        })
    frame = pd.DataFrame(rows)
    counts = frame[frame["series_key"].isin(COUNT_SERIES)]
    others = frame[~frame["series_key"].isin(COUNT_SERIES)]
    shown = disclose(principal, counts, ALARMS, min_count=settings.privacy.min_count)
    k = settings.privacy.min_count
    shown["observed"] = [display_value(cat.COUNT, v, suppressed=s, min_count=k)
                         for v, s in zip(shown["observed"], shown["observed__suppressed"])]
    others = others.assign(observed=[display_value(cat.RATIO, v) for v in others["observed"]])
    frame = pd.concat([shown.drop(columns=["observed__suppressed"]), others], ignore_index=True)
    frame["bound"] = [display_value(cat.RATIO, v) for v in frame["bound"]]
    frame = frame[columns]
    return frame.sort_values(["started_on", "series", "area"], ascending=[False, True, True]).reset_index(drop=True)


def level_change_rows(store: Store, names: Mapping[str, str], rulebooks: Mapping[str, Rulebook],
                      limit: int = 12) -> pd.DataFrame:
    """The latest level changes with level labels, the area's name and the rulebook id and version."""
    changes = qw.level_changes(store, limit=limit)
    if changes.empty:
        return changes

    def label(rulebook_id, level_id):
        rb = rulebooks.get(rulebook_id) if isinstance(rulebook_id, str) else None
        if not isinstance(level_id, str):
            return "–"
        try:
            return rb.level(level_id).label if rb else level_id
        except KeyError:
            return level_id

    changes = changes.copy()
    changes["area"] = [names.get(a, a) for a in changes["area_id"]]
    changes["from_label"] = [label(r, lv) for r, lv in zip(changes["from_rulebook_id"], changes["from_level"])]
    changes["to_label"] = [label(r, lv) for r, lv in zip(changes["rulebook_id"], changes["to_level"])]
    return changes
