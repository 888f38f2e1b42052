"""Aberration (outbreak) detection on count series: CDC EARS C1/C2/C3 and the NSSP-ESSENCE EWMA.

EARS C1, C2, C3 (Hutwagner L et al., "The Bioterrorism Preparedness and Response Early Aberration Reporting
System (EARS)", J Urban Health 2003;80(2 Suppl 1):i89-96; Fricker RD et al., Stat Med 2008;27:3407-29)
exactly as R package ``surveillance::earsC`` computes them, with B the baseline length (default 7),
z = qnorm(1 - alpha) and sd the sample standard deviation (n - 1) floored at ``min_sigma``:

* C1: reference y_{t-B} .. y_{t-1};            upperbound_t = mean + z * sd
* C2: reference y_{t-B-2} .. y_{t-3} (a 2-period guard band keeps the start of an outbreak out of its own
  baseline);                                    upperbound_t = mean + z * sd
* C3: with the C2 reference and C2 statistic c_s = (y_s - mean_s) / sd_s,
  upperbound_t = max(0, y_t + sd_t * (z - max(0, c_{t-2} - 1) - max(0, c_{t-1} - 1))).
  This is surveillance's form: y_t cancels, so the alarm depends only on the two previous C2 statistics
  (the textbook C3 adds the current day's excess too). Kept as is so that results match the package.

An alarm is raised when the observation exceeds the upper bound. Default alpha follows the package:
0.001 for C1 and C2, 0.025 for C3.

EWMA as run by NSSP-ESSENCE (Burkom HS, "Development, adaptation, and assessment of alerting algorithms for
biosurveillance", Johns Hopkins APL Tech Digest 2003;24(4):335-42; parameters and sigma adjustments as
documented in CDC's Rnssp ``alert_ewma``): smoothed value S_t = w y_t + (1 - w) S_{t-1}, S_1 = y_1, tested
against the mean and sd of a B-day baseline ending g + 1 days before t. For independent counts of
variance sigma^2, the Lucas & Saccucci (Technometrics 1990;32:1-12) steady-state EWMA variance is
sigma^2 w / (2 - w); because the baseline mean is itself estimated, ESSENCE uses the variance of the
difference S_t - mean_baseline:

    Var = sigma^2 * [ w/(2-w) + 1/B - 2 (1-w)^(g+1) (1 - (1-w)^B) / B ]

(the last term is the covariance: the baseline days carry total EWMA weight (1-w)^(g+1) (1 - (1-w)^B)).
ESSENCE then adds a small-count constant and floors the result (see ``_essence_sigma``). The statistic
(S_t - mean_baseline) / sigma_S is referred to Student's t with B - 1 degrees of freedom; p < 0.01 is
ESSENCE's alert ("red"), 0.01 <= p < 0.05 its warning ("yellow").
Not reproduced: ESSENCE's second, fast EWMA (w = 0.9) whose smaller p-value it reports, its capping of
the smoothed value after an alert, and its baseline that grows from 11 days while data are short.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal, stats

EarsMethod = Literal["C1", "C2", "C3"]

# surveillance::earsC defaults: C1 and C2 are tuned for few false alarms on their own; C3 accumulates
# evidence over three periods and so uses a laxer per-period level.
EARS_DEFAULT_ALPHA: dict[str, float] = {"C1": 0.001, "C2": 0.001, "C3": 0.025}
EARS_DEFAULT_BASELINE = 7
# C2 and C3 skip the two periods just before t so that a growing outbreak does not raise its own baseline.
EARS_GUARD_BAND = 2
# In C3 only a C2 statistic above one standard deviation counts as excess evidence.
C3_EXCESS_THRESHOLD = 1.0

# NSSP-ESSENCE EWMA defaults (Rnssp alert_ewma): smoothing 0.4 for gradual events, 28-day baseline,
# 2-day guard band, alert at p < 0.01.
ESSENCE_SMOOTHING = 0.4
ESSENCE_BASELINE_DAYS = 28
ESSENCE_GUARD_DAYS = 2
ESSENCE_ALERT_P = 0.01
# The small-count constant and floor of ESSENCE's sigma are scaled by the critical value of its
# warning level (p = 0.05).
ESSENCE_WARNING_P = 0.05


def ears(
    series: npt.ArrayLike | pd.Series,
    method: EarsMethod = "C1",
    alpha: float | None = None,
    baseline: int = EARS_DEFAULT_BASELINE,
    min_sigma: float = 0.0,
) -> pd.DataFrame:
    """EARS upper bound and alarm for every point of ``series`` (surveillance::earsC semantics).

    Returns a DataFrame aligned with the series (same index when a pandas Series is given) with columns
    ``upperbound`` (NaN until the baseline is available, or where the C3 statistic is 0/0) and ``alarm``
    (observed > upperbound; False where the upper bound is NaN).
    """
    if method not in EARS_DEFAULT_ALPHA:
        raise ValueError(f"method must be one of {sorted(EARS_DEFAULT_ALPHA)}, got {method!r}")
    if baseline < 2:
        raise ValueError(f"baseline must be at least 2 periods to have a standard deviation, got {baseline}")
    if min_sigma < 0:
        raise ValueError(f"min_sigma must be >= 0, got {min_sigma}")
    alpha = EARS_DEFAULT_ALPHA[method] if alpha is None else alpha
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    observed, index = _values_and_index(series)
    z = stats.norm.isf(alpha)

    lag = 1 if method == "C1" else EARS_GUARD_BAND + 1
    mean, sigma = _reference_mean_sigma(observed, baseline, lag, min_sigma)
    if method in ("C1", "C2"):
        upperbound = mean + z * sigma
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            c2_statistic = (observed - mean) / sigma
        excess = np.maximum(0.0, c2_statistic - C3_EXCESS_THRESHOLD)
        previous_two_excess = _shift(excess, 1) + _shift(excess, 2)
        with np.errstate(invalid="ignore"):
            upperbound = np.maximum(0.0, observed + sigma * (z - previous_two_excess))

    with np.errstate(invalid="ignore"):
        alarm = observed > upperbound
    return pd.DataFrame({"upperbound": upperbound, "alarm": alarm}, index=index)


def ewma(
    series: npt.ArrayLike | pd.Series,
    smoothing: float = ESSENCE_SMOOTHING,
    baseline: int = ESSENCE_BASELINE_DAYS,
    guard: int = ESSENCE_GUARD_DAYS,
    threshold_p: float = ESSENCE_ALERT_P,
) -> pd.DataFrame:
    """NSSP-ESSENCE style EWMA detector for every point of ``series`` (see the module docstring).

    Returns a DataFrame aligned with the series with columns ``smoothed`` (S_t), ``expected`` (baseline
    mean), ``sigma`` (the standard error used for S_t), ``statistic``, ``p_value``, ``upperbound`` and
    ``alarm``. ``upperbound`` is on the scale of the observations: the count y_t above which S_t crosses
    the alert limit, so ``alarm`` (p_value < threshold_p) is the same as observed > upperbound.
    Values are NaN (alarm False) until baseline + guard earlier points exist.
    """
    if not 0 < smoothing <= 1:
        raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
    if baseline < 2:
        raise ValueError(f"baseline must be at least 2 points, got {baseline}")
    if guard < 0:
        raise ValueError(f"guard must be >= 0, got {guard}")
    if not 0 < threshold_p < 1:
        raise ValueError(f"threshold_p must be in (0, 1), got {threshold_p}")
    observed, index = _values_and_index(series)
    if not np.all(np.isfinite(observed)):
        raise ValueError("ewma needs a complete series: fill or drop missing values first")

    keep = 1.0 - smoothing
    # S_t = w y_t + (1 - w) S_{t-1} is a first-order IIR filter; initial state (1 - w) y_1 gives S_1 = y_1.
    smoothed = signal.lfilter([smoothing], [1.0, -keep], observed, zi=[keep * observed[0]])[0]
    expected, baseline_sd = _reference_mean_sigma(observed, baseline, guard + 1, min_sigma=0.0)

    degrees_of_freedom = baseline - 1
    sigma = _essence_sigma(baseline_sd, smoothing, baseline, guard, degrees_of_freedom)
    statistic = (smoothed - expected) / sigma
    p_value = stats.t.sf(statistic, degrees_of_freedom)

    critical = stats.t.isf(threshold_p, degrees_of_freedom)
    smoothed_limit = expected + critical * sigma
    previous_smoothed = _shift(smoothed, 1)
    # Solve w y + (1 - w) S_{t-1} = limit for y, so the bound can be drawn against the raw counts.
    upperbound = (smoothed_limit - keep * previous_smoothed) / smoothing
    with np.errstate(invalid="ignore"):
        alarm = statistic > critical
    return pd.DataFrame(
        {
            "smoothed": smoothed,
            "expected": expected,
            "sigma": sigma,
            "statistic": statistic,
            "p_value": p_value,
            "upperbound": upperbound,
            "alarm": alarm,
        },
        index=index,
    )


def _essence_sigma(
    baseline_sd: np.ndarray, smoothing: float, baseline: int, guard: int, degrees_of_freedom: int
) -> np.ndarray:
    """Standard error of S_t - baseline mean, with ESSENCE's small-count constant and floor.

    The constant and the floor keep a near-constant or all-zero baseline (common for small areas) from
    making a single extra case look infinitely unusual; both are ESSENCE's empirical formulas, scaled by
    w / t_{0.95, B-1}.
    """
    keep = 1.0 - smoothing
    variance_factor = (
        smoothing / (2.0 - smoothing)
        + 1.0 / baseline
        - 2.0 * keep ** (guard + 1) * (1.0 - keep**baseline) / baseline
    )
    warning_critical = stats.t.isf(ESSENCE_WARNING_P, degrees_of_freedom)
    scale = smoothing / warning_critical
    floor = scale * (1.0 + 0.5 * keep**2)
    small_count_constant = (
        0.1289 - (0.2414 - 0.1826 * keep**4) * math.log(10.0 * ESSENCE_WARNING_P)
    ) * scale
    return np.maximum(baseline_sd * math.sqrt(variance_factor) + small_count_constant, floor)


def _reference_mean_sigma(
    observed: np.ndarray, length: int, lag: int, min_sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and max(sample sd, min_sigma) of y_{t-lag-length+1} .. y_{t-lag} for each t (NaN if missing)."""
    n = observed.size
    mean = np.full(n, np.nan)
    sigma = np.full(n, np.nan)
    first = lag + length - 1  # first 0-based t whose whole reference window lies inside the series
    if n > first:
        windows = sliding_window_view(observed, length)[: n - first]
        mean[first:] = windows.mean(axis=1)
        # np.maximum propagates NaN, so a window with a missing value stays without a bound.
        sigma[first:] = np.maximum(windows.std(axis=1, ddof=1), min_sigma)
    return mean, sigma


def _shift(values: np.ndarray, periods: int) -> np.ndarray:
    """values moved ``periods`` places later, NaN-filled at the start (pandas' shift on arrays)."""
    shifted = np.full(values.size, np.nan)
    if periods < values.size:
        shifted[periods:] = values[: values.size - periods]
    return shifted


def _values_and_index(series: npt.ArrayLike | pd.Series) -> tuple[np.ndarray, pd.Index]:
    if isinstance(series, pd.Series):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        index = series.index
    else:
        values = np.asarray(series, dtype=float)
        index = pd.RangeIndex(values.size)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("series must be a non-empty 1-D sequence")
    return values, index
