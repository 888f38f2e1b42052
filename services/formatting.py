"""How a figure is written, once: the text a tile prints is the text the API's ``display`` gives."""
from __future__ import annotations

import math

import pandas as pd

from analytics import catalog as cat

NO_VALUE = "–"


def _finite(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def display_value(kind: str, value, *, suppressed: bool = False, min_count: int = 5) -> str:
    """The figure as printed: "<k" when withheld, "–" when unknown, else by kind of figure."""
    if suppressed:
        return f"<{min_count}"
    v = _finite(value)
    if v is None:
        return NO_VALUE
    if kind in (cat.COUNT, cat.TALLY):
        return f"{v:,.0f}"
    if kind == cat.FRACTION:
        return f"{v:.0%}" if abs(v) >= 0.1 else f"{v:.1%}"
    if kind == cat.PERCENT:
        return f"{v:+.0f}%"
    if kind == cat.DAYS:
        return f"{v:,.0f} d"
    if kind in (cat.RATIO, cat.REPRODUCTION):
        return f"{v:.2f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.1f}"


def change_text(now, before, *, what: str = "week before") -> tuple[str, str]:
    """Text for a change of a count against an earlier one, and a status (more cases is worse)."""
    n, b = _finite(now), _finite(before)
    if n is None or b is None:
        return "", "neutral"
    if b == 0:
        return ("new" if n else "no change"), ("warn" if n else "neutral")
    pct = (n - b) / b * 100
    status = "bad" if pct >= 10 else "ok" if pct <= -10 else "neutral"
    return f"{pct:+.0f}% vs {what}", status


def json_number(value) -> float | int | None:
    """A figure as a JSON number: an int where it is whole, null for unknown or NaN (never a stand-in 0).

    The API and the briefing's JSON both write numbers this way, so one figure prints alike in each.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v):
        return None
    return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v
