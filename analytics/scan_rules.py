"""The cluster-scan rulebook: which scan runs, over which windows, with what lag and reporting bar.

A scan rulebook is configuration, like the zone rulebook (clusters.scan_rulebook names the file;
rulebooks/__init__.py loads it). The shipped one is NYC DOHMH's COVID-19 system as published by
Greene et al. (Emerg Infect Dis 2021;27(5):1500-4): a tests-adjusted Poisson scan, maximum
temporal windows of 7 and 21 days, a 3-day lag between the end of the study period and the
detection day for data accrual, and clusters reported from a recurrence interval of 100 days.
Parsing is pure; the message of every error starts with the key at fault.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analytics.scan import METHODS

_KEYS = frozenset({"id", "version", "title", "source", "method", "max_windows_days", "lag_days",
                   "min_recurrence_interval_days"})
MAX_WINDOW_DAYS = 90  # a "recent" cluster of more than a quarter is not an emerging one


class ScanRulebookError(ValueError):
    """A scan rulebook that cannot be used; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class ScanRulebook:
    id: str
    version: str
    title: str
    source: str
    method: str  # analytics.scan.TESTS_ADJUSTED or PERMUTATION: the scan whose clusters drive zones
    max_windows_days: tuple[int, ...]  # one analysis per maximum temporal window, shortest first
    lag_days: int  # the study period ends this many days before the analysis day
    min_recurrence_interval_days: float  # a cluster is reported (significant) from this recurrence interval

    @property
    def report_p_max(self) -> float:
        """The p-value bar equivalent to the recurrence-interval bar of a once-a-day analysis (RI = 1/p)."""
        return 1.0 / self.min_recurrence_interval_days

    @property
    def longest_window(self) -> int:
        return self.max_windows_days[-1]


def parse_scan_rulebook(mapping: Mapping[str, Any]) -> ScanRulebook:
    """Validate a mapping (e.g. from yaml.safe_load) into a :class:`ScanRulebook`."""
    if not isinstance(mapping, Mapping):
        raise ScanRulebookError("the file must hold a mapping")
    unknown = sorted(set(mapping) - _KEYS)
    if unknown:
        raise ScanRulebookError(f"{unknown[0]}: not a scan rulebook key (expected one of {sorted(_KEYS)})")
    missing = sorted(_KEYS - set(mapping))
    if missing:
        raise ScanRulebookError(f"{missing[0]}: required")
    text = {}
    for key in ("id", "version", "title", "source"):
        value = mapping[key]
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or not str(value).strip():
            raise ScanRulebookError(f"{key}: must be a non-empty text")
        text[key] = str(value).strip()
    method = mapping["method"]
    if method not in METHODS:
        raise ScanRulebookError(f"method: must be one of {list(METHODS)}, got {method!r}")
    windows = mapping["max_windows_days"]
    if (not isinstance(windows, list) or not windows
            or not all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_WINDOW_DAYS for w in windows)
            or len(set(windows)) != len(windows)):
        raise ScanRulebookError(f"max_windows_days: must be a list of distinct whole days in 1..{MAX_WINDOW_DAYS}")
    lag = mapping["lag_days"]
    if not isinstance(lag, int) or isinstance(lag, bool) or not 0 <= lag <= 14:
        raise ScanRulebookError("lag_days: must be a whole number of days in 0..14")
    interval = mapping["min_recurrence_interval_days"]
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= 1:
        raise ScanRulebookError("min_recurrence_interval_days: must be a number of days >= 1")
    return ScanRulebook(text["id"], text["version"], text["title"], text["source"], method,
                        tuple(sorted(windows)), lag, float(interval))
