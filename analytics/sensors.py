"""Sensor states and wastewater's lead over cases: pure functions on arrays (the sensor jobs call them).

A sensor's **state** (one definition, used by the sensor job that stores it):

- ``silent``: it reports on a schedule (``expected_interval_s``) and nothing at all, of any metric, has
  come from it for ``silent_factor`` intervals;
- ``no_data``: it reports on a schedule and has never sent anything;
- ``above``: its latest reading of its kind's metric is above its threshold;
- ``normal``: anything else, including a sensor that speaks only when something happens (a panic button)
  and has nothing to say.

Silence comes first: the latest reading of a silent sensor is old news, whatever it said.

**Lead over cases.** Wastewater concentrations rise days before reported cases do (shedding starts
before symptoms, and symptoms before a test). The lead is measured as the lag at which the
cross-correlation of the two series' daily changes peaks: both series are taken as logarithms
(concentrations span orders of magnitude; cases as ln(1 + cases)), smoothed with a 7-day moving average
(reporting has a weekly cycle), and turned into week-on-week changes (the smoothed log today minus a week
ago: a weekly growth rate), so a shared trend does not correlate at every lag (a simple form of the
"prewhitening" step of cross-correlation analysis). Lag k pairs the wastewater change on day t with the
case change on day t + k; lags 0..max are tried and the highest Pearson correlation wins. On the demo
city's 120 days the peak is at 5 days (shedding starts days before symptoms, symptoms before a report);
day-to-day changes (a first difference) were too noisy to show a peak on 8 weeks of data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

STATES = ("normal", "above", "silent", "no_data")
SMOOTHING_DAYS = 7  # reporting has a weekly cycle (fewer tests and reports at weekends)
MIN_PAIRS = 14  # fewer overlapping days than two weeks say nothing about a lag of days


def sensor_states(last_seen: pd.Series, value: pd.Series, threshold: pd.Series, expected_interval_s: pd.Series,
                  now: pd.Timestamp, silent_factor: float) -> np.ndarray:
    """The state of each sensor (see the module docstring); inputs are aligned Series, NaN/NaT for none."""
    seen = pd.to_datetime(last_seen, utc=True)
    interval = pd.to_numeric(expected_interval_s, errors="coerce").to_numpy(dtype=float)
    scheduled = np.isfinite(interval)
    age_s = (pd.Timestamp(now).tz_convert("UTC") - seen).dt.total_seconds().to_numpy(dtype=float)
    never = seen.isna().to_numpy()
    silent = scheduled & ~never & (age_s > silent_factor * np.where(scheduled, interval, 0.0))
    v = pd.to_numeric(value, errors="coerce").to_numpy(dtype=float)
    t = pd.to_numeric(threshold, errors="coerce").to_numpy(dtype=float)
    above = np.isfinite(v) & np.isfinite(t) & (v > t)
    return np.select([scheduled & never, silent, above], ["no_data", "silent", "above"], default="normal")


@dataclass(frozen=True)
class Lead:
    lag_days: int | None  # None: too few overlapping days to say
    correlation: float | None
    days_used: int  # overlapping days of the two differenced series at the chosen lag


def _changes(series: pd.Series) -> pd.Series:
    return series.rolling(SMOOTHING_DAYS, min_periods=SMOOTHING_DAYS).mean().diff(SMOOTHING_DAYS)


def lead_over_cases(log_concentration: pd.Series, cases: pd.Series, max_lag_days: int) -> Lead:
    """The lead of a daily log-concentration series over a daily case series (both indexed by day)."""
    days = pd.date_range(min(log_concentration.index.min(), cases.index.min()),
                         max(log_concentration.index.max(), cases.index.max()), freq="D") \
        if len(log_concentration) and len(cases) else pd.DatetimeIndex([])
    if len(days) == 0:
        return Lead(None, None, 0)
    w = _changes(log_concentration.reindex(days).astype(float))
    c = _changes(np.log1p(cases.reindex(days).astype(float)))
    best: Lead = Lead(None, None, 0)
    for lag in range(0, max_lag_days + 1):
        pairs = pd.concat([w, c.shift(-lag)], axis=1).dropna()
        if len(pairs) < MIN_PAIRS:
            continue
        a, b = pairs.iloc[:, 0].to_numpy(), pairs.iloc[:, 1].to_numpy()
        if a.std() == 0 or b.std() == 0:
            continue
        r = float(np.corrcoef(a, b)[0, 1])
        if best.correlation is None or r > best.correlation:
            best = Lead(lag, r, len(pairs))
    return best
