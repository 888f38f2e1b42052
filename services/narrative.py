"""The briefing's narrative: a few plain sentences written by rules from the briefing's own figures.

Every number in a sentence is a figure of the briefing (services.briefing) printed as the page prints
it (``Figure.display``) or a change the briefing holds (``Change.delta``); nothing is estimated here.
Where a figure is missing, withheld or stale the sentence says so instead of guessing, and a sentence
that uses the capacity projection carries the projection's known weakness with it.
"""
from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from analytics import catalog as cat
from analytics import indicators as ind

if TYPE_CHECKING:
    from services.briefing import Briefing, Change

# Week-on-week changes within ±5 % are called steady: a few cases either way on a few hundred.
STEADY = 0.05
# R(t) between 0.95 and 1.05 is "about one": its 95 % interval is wider than that on a city's counts.
RT_ABOUT_ONE = 0.05
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def day_text(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def count_words(n: int, singular: str, plural: str | None = None) -> str:
    word = NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else f"{n:,}"
    return f"{word} {singular if n == 1 else (plural or singular + 's')}"


def names_text(names: list[str]) -> str:
    names = [n for n in names if n]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _percent(delta: float) -> str:
    return f"{abs(delta) * 100:.0f} %"


def _change(b: "Briefing", key: str, which: str = "change_week") -> "Change":
    return next(getattr(h, which) for h in b.headline if h.figure.key == key)


def _data_state(b: "Briefing") -> list[str]:
    out = []
    if not b.complete:
        out.append(f"{day_text(b.day)} is still in progress: cases reported later in the day are not in these "
                   "figures yet.")
    if b.last_case_day is None:
        out.append("No case reports are stored, so the case figures are missing.")
    elif b.last_case_day < b.day:
        out.append(f"No case reports have arrived since {day_text(b.last_case_day)}: the case figures for "
                   f"{day_text(b.day)} are stale and likely too low.")
    return out


def _new_clusters(b: "Briefing") -> list[str]:
    if b.clusters is None or b.clusters.scan_day != b.day or not len(b.clusters.clusters):
        return []
    rows = b.clusters.clusters
    return [str(a) if isinstance(a, str) else "an unnamed area" for a in rows.loc[rows["is_new"], "area_name"]]


def _cases(b: "Briefing") -> list[str]:
    week = b.figure(cat.NEW_CASES_7D)
    when = f"the 7 days to {day_text(b.day)}"
    if week.suppressed:
        return [f"Fewer than {b.min_count} new cases were reported in {when}; the exact number is withheld "
                "to protect privacy."]
    if week.value is None:
        return [f"No case figures are stored for {when}."]
    change = _change(b, cat.NEW_CASES_7D)
    new = _new_clusters(b)
    clusters = f"{count_words(len(new), 'new micro-cluster')} in {names_text(sorted(set(new)))}" if new else ""
    if change.delta is None:
        before = "none the week before" if change.previous == 0 else "no comparable figure for the week before"
        text = f"{week.display} new cases were reported in {when}, after {before}"
        return [text + (f"; the scan found {clusters}." if clusters else ".")]
    if change.delta >= STEADY:
        text = f"New cases rose {_percent(change.delta)} week on week, to {week.display} in {when}"
        text += f", with {clusters}." if clusters else "."
    elif change.delta <= -STEADY:
        text = f"New cases fell {_percent(change.delta)} week on week, to {week.display} in {when}"
        text += f", although the scan found {clusters}." if clusters else "."
    else:
        text = f"New cases held steady week on week ({week.display} in {when})"
        text += f"; the scan found {clusters}." if clusters else "."
    return [text]


def _rt(b: "Briefing") -> list[str]:
    rt = b.figure(ind.RT)
    if rt.value is None:
        return [f"R(t) could not be estimated for {day_text(b.day)}: it needs at least 11 local cases in its "
                "7-day window."]
    if abs(rt.value - 1) < RT_ABOUT_ONE:
        return [f"R(t) is {rt.display}: each case passes the infection on to about one other person, so "
                "case numbers are roughly holding."]
    more = rt.value > 1
    return [f"R(t) is {rt.display}: on average each case infects {'more' if more else 'fewer'} than one other "
            f"person, so cases are likely to keep {'rising' if more else 'falling'}."]


def _reaches(days, threshold: float, what: str) -> str | None:
    """"reaches 90 % in about 16 days", "is not projected to reach ...", or None without a projection."""
    share = f"{threshold:.0%}"
    if days.value is not None:
        return (f"{what} reach {share} now" if days.value == 0 else
                f"{what} reach {share} in about {days.value:,.0f} days")
    if days.display.startswith(">"):
        return f"{what} are not projected to reach {share} within {days.display.lstrip('> ').replace(' d', ' days')}"
    return None


def _capacity(b: "Briefing") -> list[str]:
    c = b.capacity
    reporting = c.hospitals_reporting.value
    if not reporting:
        return [f"No hospital capacity reports were counted for {day_text(b.day)}, so bed and ICU occupancy and "
                "the days until the threshold are unknown."]
    out = []
    occupancy = []
    if c.bed_occupancy.value is not None:
        occupancy.append(f"bed occupancy is {c.bed_occupancy.display}")
    if c.icu_occupancy.value is not None:
        occupancy.append(f"ICU occupancy {c.icu_occupancy.display}")
    if c.days_to_icu.display.startswith(">") and c.days_to_beds.display.startswith(">"):
        horizon = c.days_to_beds.display.lstrip("> ").replace(" d", " days")
        projections = [f"neither ward nor ICU beds are projected to reach {c.threshold:.0%} within {horizon}"]
    else:
        projections = [p for p in (_reaches(c.days_to_icu, c.threshold, "ICU beds"),
                                   _reaches(c.days_to_beds, c.threshold, "hospital beds")) if p]
    if occupancy:
        text = "Hospital " + " and ".join(occupancy)
        if projections:
            text += "; at the current R(t), " + " and ".join(projections)
            if c.days_to_beds_upper.value is not None and c.days_to_beds.value is not None \
                    and c.days_to_beds_upper.value < c.days_to_beds.value:
                text += f" (1 in 20 chance for beds within {c.days_to_beds_upper.value:,.0f} days)"
        out.append(text + ".")
    else:
        out.append("Hospital occupancy is not known for the day (occupied or staffed beds missing from the reports).")
    if projections and b.forecast_caveats:
        out.append(b.forecast_caveats[-1].split(";")[0] + ".")
    elif occupancy and not c.outlook_stored:
        out.append(f"No projection of the days until the threshold is stored for {day_text(b.day)}: the "
                   "early-warning job projects from the day it runs on.")
    elif occupancy and not projections:
        out.append("No projection of the days until the threshold could be made"
                   + (f" ({c.note.rstrip('.')})." if c.note else "."))
    stale = c.stale_reports.value
    if stale:
        out.append(f"{count_words(int(stale), 'bed-holding facility', 'bed-holding facilities').capitalize()} sent "
                   "no current capacity report, so occupancy covers only those that did.")
    return out


def _hot_spots(b: "Briefing") -> list[str]:
    spots = [h for h in b.hot_spots if h.incidence.value is not None][:2]
    if not spots:
        return []
    parts = [f"{h.name} ({h.incidence.display} per 100k in 7 days)" for h in spots]
    return [f"Incidence is highest in {names_text(parts)}."]


def _level(b: "Briefing") -> list[str]:
    lv = b.level
    if lv is None:
        return []
    if lv.label is None:
        return [f"The city's level by the {lv.rulebook_name} rulebook could not be assessed ({lv.basis.rstrip('.')})."]
    text = f"The city is at level “{lv.label}” by the {lv.rulebook_name} rulebook"
    up = [c["area"] for c in lv.changes if c["direction"] == "up" and c["area_id"] != "citywide"]
    down = [c["area"] for c in lv.changes if c["direction"] == "down" and c["area_id"] != "citywide"]
    moves = []
    if up:
        moves.append(f"{count_words(len(up), 'area')} moved up ({names_text(up)})")
    if down:
        moves.append(f"{count_words(len(down), 'area')} moved down ({names_text(down)})")
    return [text + ("; " + " and ".join(moves) + " that day." if moves else ".")]


def _alerts(b: "Briefing") -> list[str]:
    if b.alerts is None:
        return []
    n = len(b.alerts)
    if n == 0:
        return ["No alerts were raised in the 24 hours to the end of the day."]
    critical = int((b.alerts["severity"] == "critical").sum())
    verb = "was" if n == 1 else "were"
    return [f"{count_words(n, 'alert').capitalize()} {verb} raised in the 24 hours to the end of the day"
            + (f" ({critical} critical)." if critical else ".")]


def sentences(b: "Briefing") -> tuple[str, ...]:
    """The narrative of a briefing, in reading order."""
    out = [*_data_state(b), *_cases(b), *_hot_spots(b), *_rt(b), *_capacity(b), *_level(b), *_alerts(b)]
    return tuple(s[0].upper() + s[1:] for s in out if s)
