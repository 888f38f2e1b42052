"""Time-varying reproduction number R(t) by the method of Cori et al. (2013).

Cori A, Ferguson NM, Fraser C, Cauchemez S. "A new framework and software to estimate time-varying
reproduction numbers during epidemics." Am J Epidemiol 2013;178(9):1505-1512, and its Web Appendix.

Model (Cori 2013, eqs. 1-2 and Web Appendix 1): local incidence on day t is Poisson with mean R * Lambda_t,
where the total infectiousness Lambda_t = sum_{s>=1} I_{t-s} w_s is the past incidence (local *and*
imported cases both transmit) weighted by the serial-interval distribution w. With a Gamma(a, b) prior
(shape a, scale b) on R, held constant over a window [t_start, t_end], the posterior is Gamma with

    shape = a + sum_{t in window} I_local(t)
    scale = 1 / (1/b + sum_{t in window} Lambda_t)

The conventions follow R package EpiEstim's ``estimate_R`` so that results agree with it to the printed
precision of its own test snapshots:

* all cases of day 1 are imported (nothing is known about who infected them), so day 1 only seeds Lambda;
* default windows are t_start = 2 .. T-window+1, t_end = t_start + window - 1 (1-based days, inclusive);
* a window ending on or before the mean serial interval has no estimate (NA): too little of the
  infectiousness of earlier cases has been observed by then;
* the parametric serial interval is the discretised, shifted-by-one Gamma of Cori 2013 Web Appendix 11,
  computed on days 0..T-1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

ArrayLike = npt.ArrayLike

# Quantiles reported for each window, with the column name each one gets (EpiEstim reports the same seven).
POSTERIOR_QUANTILES: tuple[tuple[str, float], ...] = (
    ("q025", 0.025),
    ("q05", 0.05),
    ("q25", 0.25),
    ("median", 0.5),
    ("q75", 0.75),
    ("q95", 0.95),
    ("q975", 0.975),
)
RT_COLUMNS: tuple[str, ...] = ("t_start", "t_end", "mean", "std") + tuple(
    name for name, _ in POSTERIOR_QUANTILES
)

# EpiEstim's default prior on R: Gamma with mean 5 and standard deviation 5 (shape 1, scale 5), deliberately
# vague and high so that an epidemic is not declared under control (R < 1) on the strength of the prior.
DEFAULT_PRIOR_MEAN = 5.0
DEFAULT_PRIOR_STD = 5.0
DEFAULT_WINDOW_DAYS = 7

# A serial-interval distribution must sum to 1; rounding to a few decimals in published tables (e.g. the
# Flu2009 SI printed to 3 decimals) or truncation of a long tail leaves a small gap, which EpiEstim
# accepts up to this tolerance.
SI_SUM_TOLERANCE = 0.01


def discretised_gamma_si(mean: float, std: float, max_k: int) -> np.ndarray:
    """Discretised shifted Gamma serial interval w_0..w_max_k (Cori 2013, Web Appendix 11).

    The continuous serial interval is 1 + Gamma with mean ``mean - 1`` and standard deviation ``std``
    (the shift of one day keeps w_0 = 0: a case cannot infect someone with onset on the same day).
    Discretising it with a linear (triangular) kernel around each integer k gives the closed form

        w_k = k F(k) + (k-2) F(k-2) - 2(k-1) F(k-1)
              + a b [2 G(k-1) - G(k-2) - G(k)]

    where F is the Gamma(shape a, scale b) CDF, G the Gamma(shape a+1, scale b) CDF, both zero for negative
    arguments, and a = ((mean-1)/std)^2, b = std^2/(mean-1). Tiny negative round-off is clipped to zero.
    The vector is not renormalised, so for a short ``max_k`` it sums to less than 1 (as in EpiEstim).
    """
    if not mean > 1:
        raise ValueError(f"mean serial interval must exceed 1 day (the shift), got {mean}")
    if not std > 0:
        raise ValueError(f"serial interval std must be positive, got {std}")
    if max_k < 0:
        raise ValueError(f"max_k must be >= 0, got {max_k}")
    shape = ((mean - 1.0) / std) ** 2
    scale = std**2 / (mean - 1.0)
    k = np.arange(max_k + 1, dtype=float)

    def cdf(x: np.ndarray, gamma_shape: float) -> np.ndarray:
        return stats.gamma.cdf(np.maximum(x, 0.0), gamma_shape, scale=scale)

    weights = (
        k * cdf(k, shape)
        + (k - 2) * cdf(k - 2, shape)
        - 2 * (k - 1) * cdf(k - 1, shape)
        + shape * scale * (2 * cdf(k - 1, shape + 1) - cdf(k - 2, shape + 1) - cdf(k, shape + 1))
    )
    return np.maximum(weights, 0.0)


def overall_infectivity(total_incidence: ArrayLike, si_distr: ArrayLike) -> np.ndarray:
    """Lambda_t = sum_{s=1}^{t-1} I_{t-s} w_s for every day t (index 0 is day 1, whose Lambda is 0).

    ``total_incidence`` is local plus imported cases: everyone infectious contributes, wherever they
    caught the infection.
    """
    incidence = np.asarray(total_incidence, dtype=float)
    weights = np.asarray(si_distr, dtype=float)[: len(incidence)]
    # A full convolution truncated to the series length is exactly the causal sum over past days;
    # w_0 = 0 keeps a day's own cases out of its infectivity.
    return np.convolve(incidence, weights)[: len(incidence)]


def estimate_rt(
    incidence: ArrayLike,
    si_distr: ArrayLike,
    window: int = DEFAULT_WINDOW_DAYS,
    mean_prior: float = DEFAULT_PRIOR_MEAN,
    std_prior: float = DEFAULT_PRIOR_STD,
    imported: ArrayLike | None = None,
) -> pd.DataFrame:
    """Posterior of R over every sliding window of ``window`` days, one row per window.

    ``incidence`` is daily case counts (all cases when ``imported`` is None, otherwise the local cases);
    ``imported`` the daily imported cases, same length. ``si_distr`` is the serial-interval distribution
    w_0, w_1, ... with w_0 = 0. Returns columns t_start, t_end (1-based days, inclusive), mean, std and
    the posterior quantiles q025 .. q975 (NaN for windows ending on or before the mean serial interval).
    """
    local, imported_cases = _local_and_imported(incidence, imported)
    weights = _validated_si(si_distr)
    n_days = len(local)
    if window < 1:
        raise ValueError(f"window must be at least 1 day, got {window}")
    if n_days < window + 1:
        raise ValueError(f"need at least window + 1 = {window + 1} days of incidence, got {n_days}")
    if not (mean_prior > 0 and std_prior > 0):
        raise ValueError("prior mean and std must be positive")

    t_start = np.arange(2, n_days - window + 2)
    t_end = t_start + window - 1
    return _posterior_table(local, imported_cases, weights, t_start, t_end, mean_prior, std_prior)


def estimate_rt_parametric(
    incidence: ArrayLike,
    mean_si: float,
    std_si: float,
    window: int = DEFAULT_WINDOW_DAYS,
    mean_prior: float = DEFAULT_PRIOR_MEAN,
    std_prior: float = DEFAULT_PRIOR_STD,
    imported: ArrayLike | None = None,
) -> pd.DataFrame:
    """``estimate_rt`` with a discretised shifted Gamma serial interval of the given mean and std (days)."""
    n_days = len(np.asarray(incidence))
    # Days 0..T-1 cover every lag that can occur within a series of T days.
    si_distr = discretised_gamma_si(mean_si, std_si, max(n_days - 1, 1))
    return estimate_rt(incidence, si_distr, window, mean_prior, std_prior, imported)


def _local_and_imported(
    incidence: ArrayLike, imported: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray]:
    """Split counts into local and imported, moving day 1's local cases to imported (EpiEstim's rule)."""
    local = _as_counts(incidence, "incidence")
    if imported is None:
        imported_cases = np.zeros_like(local)
    else:
        imported_cases = _as_counts(imported, "imported")
        if imported_cases.shape != local.shape:
            raise ValueError(
                f"imported has {imported_cases.size} days but incidence has {local.size}"
            )
    local = local.copy()
    imported_cases = imported_cases.copy()
    # The infectors of the first day's cases are unobserved, so they cannot count as local transmission.
    imported_cases[0] += local[0]
    local[0] = 0.0
    return local, imported_cases


def _as_counts(values: ArrayLike, name: str) -> np.ndarray:
    counts = np.asarray(values, dtype=float)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of daily counts")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    return counts


def checked_si_shape(si_distr: ArrayLike) -> np.ndarray:
    """A serial-interval distribution over days 0, 1, 2, ... as an array; ValueError if it cannot be one.

    Checks everything but the total, which callers treat differently (EpiEstim requires 1; a
    projection may take a truncated tail and renormalise).
    """
    weights = np.asarray(si_distr, dtype=float)
    if weights.ndim != 1 or weights.size < 2:
        raise ValueError("si_distr must be a 1-D distribution over days 0, 1, 2, ...")
    if weights[0] != 0:
        raise ValueError("si_distr[0] must be 0: a case cannot infect someone with onset on the same day")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("si_distr must be finite and non-negative")
    return weights


def _validated_si(si_distr: ArrayLike) -> np.ndarray:
    weights = checked_si_shape(si_distr)
    if abs(weights.sum() - 1.0) > SI_SUM_TOLERANCE:
        raise ValueError(f"si_distr must sum to 1, sums to {weights.sum():.6f}")
    return weights


def _posterior_table(
    local: np.ndarray,
    imported_cases: np.ndarray,
    weights: np.ndarray,
    t_start: Sequence[int] | np.ndarray,
    t_end: Sequence[int] | np.ndarray,
    mean_prior: float,
    std_prior: float,
) -> pd.DataFrame:
    t_start = np.asarray(t_start, dtype=int)
    t_end = np.asarray(t_end, dtype=int)
    infectivity = overall_infectivity(local + imported_cases, weights)

    # Window sums from cumulative sums: with 1-based inclusive [s, e], sum = cum[e] - cum[s-1].
    cum_local = np.concatenate(([0.0], np.cumsum(local)))
    cum_infectivity = np.concatenate(([0.0], np.cumsum(infectivity)))
    local_in_window = cum_local[t_end] - cum_local[t_start - 1]
    infectivity_in_window = cum_infectivity[t_end] - cum_infectivity[t_start - 1]

    prior_shape = (mean_prior / std_prior) ** 2
    prior_scale = std_prior**2 / mean_prior
    shape = prior_shape + local_in_window
    scale = 1.0 / (1.0 / prior_scale + infectivity_in_window)

    mean_si = float(np.sum(np.arange(weights.size) * weights))
    estimable = t_end > mean_si
    shape = np.where(estimable, shape, np.nan)
    scale = np.where(estimable, scale, np.nan)

    table: dict[str, np.ndarray] = {
        "t_start": t_start,
        "t_end": t_end,
        "mean": shape * scale,
        "std": np.sqrt(shape) * scale,
    }
    for name, probability in POSTERIOR_QUANTILES:
        table[name] = stats.gamma.ppf(probability, shape, scale=scale)
    return pd.DataFrame(table, columns=list(RT_COLUMNS))
