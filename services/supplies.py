"""Supplies on hand: each facility's latest report per item at a moment, with days on hand and a status.

The capacity page's supply table and the ``supplies_low`` / ``supplies_critical`` figures of
services.indicators are both this function at the same moment (now, or the end of a past day).
Supplies are not people: nothing here is withheld.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from analytics.capacity import days_on_hand
from settings import Settings
from store import Store
from store import queries_indicators as qi


def supply_rows(store: Store, settings: Settings, at: datetime) -> pd.DataFrame:
    """Latest report of every (facility, item) at ``at`` with days_on_hand, report_age_h, stale and status
    (bad below capacity.supplies_critical_days, warn below supplies_warn_days, ok, or neutral without use)."""
    cfg = settings.capacity
    rows = qi.supplies_at(store, at)
    rows["days_on_hand"] = days_on_hand(rows["stock"], rows["daily_use"]) if len(rows) else []
    reported = pd.to_datetime(rows["reported_at"], utc=True)
    rows["report_age_h"] = ((pd.Timestamp(at).tz_convert("UTC") - reported).dt.total_seconds() / 3600).astype(float)
    rows["stale"] = rows["report_age_h"] > cfg.stale_after_hours
    doh = rows["days_on_hand"].astype(float)
    rows["status"] = np.where(doh < cfg.supplies_critical_days, "bad", np.where(
        doh < cfg.supplies_warn_days, "warn", np.where(doh.isna(), "neutral", "ok")))
    return rows.sort_values(["days_on_hand", "name", "item"], na_position="last").reset_index(drop=True)


def supply_counts(rows: pd.DataFrame) -> tuple[int, int]:
    """(items below the warning level, items below the critical level)."""
    return int(rows["status"].isin(("warn", "bad")).sum()), int((rows["status"] == "bad").sum())
