"""Named queries of the daily briefing (services.briefing): what happened on one day, read from what the
jobs and ingest stored. Nothing here computes a figure; the indicators come from queries_indicators."""
from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from store.queries_alerts import ALERT_COLUMNS
from store.store import Store


def alerts_raised_between(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    """Alerts raised in [start, end), newest first (any state: an alert resolved since was still issued)."""
    return store.read(f"""SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE raised_at >= ? AND raised_at < ?
                          ORDER BY raised_at DESC, alert_id DESC""", [start, end])


def zone_events_through(store: Store, day: date) -> pd.DataFrame:
    """Every zone decision taken on or before ``day``, in the order taken (folded into the zones of a day)."""
    return store.read("SELECT * FROM zone_events WHERE as_of <= ? ORDER BY as_of, event_id", [day])


def last_case_report_day(store: Store, on_or_before: date) -> date | None:
    """The latest reported_date of a counted case on or before ``on_or_before``."""
    return store.scalar("SELECT max(reported_date) FROM counted_cases WHERE reported_date <= ?", [on_or_before])


def cluster_run_through(store: Store, day: date) -> pd.DataFrame:
    """The latest cluster scan on or before ``day`` (zero or one row)."""
    return store.read("SELECT * FROM cluster_runs WHERE as_of <= ? ORDER BY as_of DESC LIMIT 1", [day])


def indicator_by_day(store: Store, indicator: str, start: date, end: date) -> pd.DataFrame:
    """day, area_id, value of one stored indicator for every area (and the city) over [start, end]."""
    return store.read("""SELECT day, area_id, value FROM indicator_values WHERE indicator = ? AND day BETWEEN ? AND ?
                         ORDER BY day, area_id""", [indicator, start, end])
