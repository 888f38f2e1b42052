"""Is a count rising or falling? This period's count against the period before, tested as counts.

Two counts of the same length of time, a (now) and b (before): if the underlying rate did not change,
a given a + b is Binomial(a + b, 1/2) (the conditional test for two Poisson counts; Przyborowski &
Wilenski 1940). "rising" when a is larger than chance allows at the 5 % level (one-sided), "falling"
when smaller, "steady" otherwise. So 3 cases after 1 is steady (p = 0.31), 30 after 10 is rising:
a percentage alone would call both +200 %.
"""
from __future__ import annotations

import math

from scipy.stats import binomtest

# One-sided 5 %: the usual level for "more than chance", and what the EARS C-methods use for a signal.
TREND_ALPHA = 0.05
RISING, FALLING, STEADY = "rising", "falling", "steady"


def trend_of(now: float | None, before: float | None) -> str | None:
    """rising / falling / steady for two counts over equal periods; None when either is unknown."""
    if now is None or before is None or not (math.isfinite(now) and math.isfinite(before)):
        return None
    a, b = int(round(now)), int(round(before))
    if a < 0 or b < 0:
        return None
    n = a + b
    if n == 0:
        return STEADY
    if a > b and binomtest(a, n, 0.5, alternative="greater").pvalue < TREND_ALPHA:
        return RISING
    if a < b and binomtest(a, n, 0.5, alternative="less").pvalue < TREND_ALPHA:
        return FALLING
    return STEADY


def relative_change(now: float | None, before: float | None) -> float | None:
    """(now - before) / before, e.g. 0.25 for +25 %; None when before is 0 or either is unknown."""
    if now is None or before is None or not (math.isfinite(now) and math.isfinite(before)) or before == 0:
        return None
    return (now - before) / before
