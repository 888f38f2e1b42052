"""Short-term forecasts of cases, admissions and bed/ICU occupancy, and a backtest of them.

Cases follow the renewal equation (Fraser 2007; Cori et al. 2013, Am J Epidemiol 178:1505, eq. 1):

    E[I_t] = R * sum_{s>=1} I_{t-s} w_s

with w the serial-interval distribution. R is drawn once per simulated trajectory from the Gamma posterior
of the last estimation window of analytics.rt (shape = (mean/std)^2, scale = std^2/mean), so the band
carries the uncertainty of the current R(t); daily counts are Poisson or negative binomial around the
expectation, and each simulated day feeds the next (the projection is stochastic all the way through, as
in the R package ``projections``' model; the code here is written from the equations).

Hospital demand follows from cases by fixed shares and delays: admissions on day t are
``admission_share * cases(t - admission_lag_days)``, and the census (beds occupied) is the convolution of
admissions with the length-of-stay survival function. The census is counted once a day at the end of the
day, with admissions spread evenly through their day, so a patient admitted on day t is present at the
end of day t + d with probability S_d = integral_d^{d+1} P(LOS > x) dx; these weights sum to the mean
length of stay, so constant admissions A give a steady census A * mean LOS (Little's law). ICU is the same
with its own share of cases, delay and length of stay.

Capacity: New York State's cluster-action rule of December 2020 made a region a red zone ("New York on
PAUSE") when its hospital system was projected to reach 90 % of capacity within 21 days at the current
growth rate; ``days_until_capacity`` and ``capacity_trigger`` expose that test.

The backtest replays the early-warning job's forecast (analytics.forecast_skill: the method that beat
the naive forecast on the series' own past, with a band calibrated on its own errors) from many origins
along a historical daily series and scores it against what was then observed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from analytics.rt import checked_si_shape, estimate_rt

ArrayLike = npt.ArrayLike
Noise = Literal["poisson", "negative_binomial", "none"]

# New York State, Governor's briefing of 11 December 2020: a region enters the red zone when it is
# "21 days from 90 % hospital capacity" at its 7-day growth rate.
NY_RED_ZONE_DAYS = 21
NY_RED_ZONE_CAPACITY_FRACTION = 0.9

# The 90 % band reported everywhere: 5th and 95th percentiles of the simulated trajectories.
LOWER_QUANTILE, UPPER_QUANTILE = 0.05, 0.95
BAND_COLUMNS: tuple[str, ...] = ("mean", "median", "q05", "q95")

# Negative-binomial dispersion k (variance = mu + mu^2 / k). Daily reported counts are over-dispersed
# relative to Poisson (reporting batches, clusters); k = 10 gives a coefficient of variation of about
# 0.3 at large counts, a moderate choice that the backtest can be run to revisit.
DEFAULT_DISPERSION = 10.0
DEFAULT_SAMPLES = 1000
DEFAULT_HORIZON_DAYS = 28

# SARS-CoV-2 serial interval, mean 4.7 days and SD 2.9 days (Nishiura, Linton & Akhmetzhanov 2020,
# Int J Infect Dis 93:284-286), for callers without a local estimate.
COVID19_SERIAL_INTERVAL_MEAN_DAYS = 4.7
COVID19_SERIAL_INTERVAL_STD_DAYS = 2.9

# Length of stay is truncated where the Gamma survival has fallen below this: the census it drops is
# a negligible fraction of a patient-day per admission.
LOS_TAIL_PROBABILITY = 1e-5


@dataclass(frozen=True, slots=True)
class HospitalParameters:
    """How cases turn into admissions and occupied beds. Shares are of *cases*, delays in days."""

    admission_share: float
    admission_lag_days: int
    los_mean_days: float
    los_std_days: float
    icu_share: float
    icu_lag_days: int
    icu_los_mean_days: float
    icu_los_std_days: float

    def __post_init__(self) -> None:
        for name in ("admission_share", "icu_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a fraction of cases in [0, 1], got {value}")
        for name in ("admission_lag_days", "icu_lag_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a whole number of days >= 0, got {value!r}")
        for name in ("los_mean_days", "los_std_days", "icu_los_mean_days", "icu_los_std_days"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class Forecast:
    """Projected bands (columns mean, median, q05, q95), one row per day ahead."""

    origin: object  # last observed date (or position when the history had no dates)
    r_mean: float
    r_std: float
    cases: pd.DataFrame
    admissions: pd.DataFrame
    beds: pd.DataFrame
    icu: pd.DataFrame


@dataclass(frozen=True, slots=True)
class CapacityOutlook:
    """Days until occupancy reaches ``threshold * capacity``; None when not within the horizon."""

    capacity: float
    threshold: float
    beds_at_threshold: float
    days_median: int | None
    days_upper: int | None
    horizon_days: int


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """``metrics``: one row per horizon; ``forecasts``: one row per origin and horizon."""

    metrics: pd.DataFrame
    forecasts: pd.DataFrame


# ------------------------------------------------------------------------------------------ projection


def sample_r(r_mean: float, r_std: float, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Draws of R from Gamma(shape=(mean/std)^2, scale=std^2/mean); all equal to r_mean when r_std is 0."""
    if not (math.isfinite(r_mean) and r_mean >= 0):
        raise ValueError(f"r_mean must be finite and >= 0, got {r_mean}")
    if not (math.isfinite(r_std) and r_std >= 0):
        raise ValueError(f"r_std must be finite and >= 0, got {r_std}")
    if r_std == 0 or r_mean == 0:
        return np.full(n_samples, float(r_mean))
    shape = (r_mean / r_std) ** 2
    scale = r_std**2 / r_mean
    return rng.gamma(shape, scale, size=n_samples)


def project_incidence(
    history: ArrayLike,
    si_distr: ArrayLike,
    r_mean: float,
    r_std: float,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    n_samples: int = DEFAULT_SAMPLES,
    noise: Noise = "negative_binomial",
    dispersion: float = DEFAULT_DISPERSION,
    rng: np.random.Generator | int | None = None,
    r_relax_days: float | None = None,
) -> np.ndarray:
    """Simulated daily incidence for the ``horizon_days`` after ``history``, shape (n_samples, horizon).

    ``history`` is daily incidence up to the origin (earlier days beyond the serial interval's reach are
    ignored; a shorter history is padded with zeros in front). ``noise="none"`` returns the expected path
    given each sampled R, which is what "in expectation" means for the tests.

    ``r_relax_days`` lets each sampled R relax towards 1 as R_t = 1 + (R - 1) exp(-t / tau): epidemics
    rarely keep today's growth for weeks (behaviour, immunity and control measures respond), and a
    projection that holds R fixed overshoots badly at 2-4 weeks. None keeps R constant.
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    if noise not in ("poisson", "negative_binomial", "none"):
        raise ValueError(f"noise must be 'poisson', 'negative_binomial' or 'none', got {noise!r}")
    if noise == "negative_binomial" and not dispersion > 0:
        raise ValueError(f"dispersion must be positive, got {dispersion}")
    generator = np.random.default_rng(rng)
    weights = _normalised_si(si_distr)
    max_lag = weights.size - 1
    past = np.asarray(history, dtype=float)
    if past.ndim != 1 or not np.all(np.isfinite(past)) or np.any(past < 0):
        raise ValueError("history must be a 1-D sequence of finite, non-negative daily counts")
    tail = np.zeros(max_lag)
    kept = past[-max_lag:]
    tail[max_lag - kept.size :] = kept

    r_draws = sample_r(r_mean, r_std, n_samples, generator)
    trajectories = np.empty((n_samples, max_lag + horizon_days))
    trajectories[:, :max_lag] = tail
    # Column j of the window [day-max_lag, day) is max_lag - j days back, so it takes w[max_lag - j].
    lag_weights = weights[1:][::-1]
    if r_relax_days is not None and not r_relax_days > 0:
        raise ValueError(f"r_relax_days must be positive or None, got {r_relax_days}")
    for step in range(horizon_days):
        day = max_lag + step
        r_now = r_draws if r_relax_days is None else 1 + (r_draws - 1) * math.exp(-step / r_relax_days)
        expected = r_now * (trajectories[:, day - max_lag : day] @ lag_weights)
        trajectories[:, day] = _draw_counts(expected, noise, dispersion, generator)
    return trajectories[:, max_lag:]


def band(samples: np.ndarray, index: pd.Index | None = None) -> pd.DataFrame:
    """Mean, median and 5-95 % band per column (day) of a (n_samples, days) array."""
    values = np.asarray(samples, dtype=float)
    q05, median, q95 = np.quantile(values, [LOWER_QUANTILE, 0.5, UPPER_QUANTILE], axis=0)
    frame = pd.DataFrame(
        {"mean": values.mean(axis=0), "median": median, "q05": q05, "q95": q95},
        columns=list(BAND_COLUMNS),
    )
    if index is not None:
        frame.index = index
    return frame


# ---------------------------------------------------------------------------------- hospital demand


def los_survival(
    mean_days: float, std_days: float, max_days: int | None = None
) -> np.ndarray:
    """S_d = integral_d^{d+1} P(LOS > x) dx for d = 0, 1, ...: chance an admission is in a bed d days on.

    LOS is Gamma with the given mean and SD (SD = mean is the exponential). Using the closed form
    integral_0^x F(u) du = x F(x) - mean * F_{shape+1}(x) for the Gamma CDF F, the weights sum to the
    mean length of stay (less a tail of at most LOS_TAIL_PROBABILITY when ``max_days`` is None).
    """
    if not (mean_days > 0 and std_days > 0):
        raise ValueError("length-of-stay mean and std must be positive")
    shape = (mean_days / std_days) ** 2
    scale = std_days**2 / mean_days
    if max_days is None:
        max_days = int(math.ceil(stats.gamma.ppf(1.0 - LOS_TAIL_PROBABILITY, shape, scale=scale))) + 1
    if max_days < 1:
        raise ValueError(f"max_days must be at least 1, got {max_days}")
    edges = np.arange(max_days + 1, dtype=float)
    integral_cdf = edges * stats.gamma.cdf(edges, shape, scale=scale) - mean_days * stats.gamma.cdf(
        edges, shape + 1.0, scale=scale
    )
    survival = 1.0 - np.diff(integral_cdf)
    return np.clip(survival, 0.0, 1.0)


def occupancy_from_admissions(admissions: ArrayLike, survival: ArrayLike) -> np.ndarray:
    """Census on each day: sum_d admissions[t - d] * survival[d] along the last axis (1-D or 2-D input).

    Days before the first admission given count as none, so pass enough history (a few mean lengths of
    stay) for the census at the origin to be right.
    """
    flows = np.asarray(admissions, dtype=float)
    weights = np.asarray(survival, dtype=float)
    census = np.zeros_like(flows)
    n_days = flows.shape[-1]
    # A loop over length-of-stay days (tens), each step vectorised over samples and days.
    for delay in range(min(weights.size, n_days)):
        census[..., delay:] += weights[delay] * flows[..., : n_days - delay]
    return census


def delayed_share(counts: np.ndarray, share: float, lag_days: int) -> np.ndarray:
    """``share * counts`` moved ``lag_days`` later along the last axis (zeros enter at the start)."""
    shifted = np.zeros_like(counts, dtype=float)
    n_days = counts.shape[-1]
    if lag_days < n_days:
        shifted[..., lag_days:] = share * counts[..., : n_days - lag_days]
    return shifted


# ---------------------------------------------------------------------------------------- forecasting


def latest_rt(
    incidence: ArrayLike,
    si_distr: ArrayLike,
    window: int = 7,
    mean_prior: float = 5.0,
    std_prior: float = 5.0,
) -> tuple[float, float]:
    """Posterior mean and SD of R over the last ``window`` days (analytics.rt.estimate_rt, last row).

    Only the last window plus the serial interval's reach of history matters to that posterior, so only
    that tail is passed: the earlier days cannot change it.
    """
    values = np.asarray(incidence, dtype=float)
    reach = len(np.asarray(si_distr)) - 1 + window
    tail = values[-(reach + 1) :]
    table = estimate_rt(tail, si_distr, window=window, mean_prior=mean_prior, std_prior=std_prior)
    last = table.iloc[-1]
    if not (math.isfinite(last["mean"]) and math.isfinite(last["std"])):
        raise ValueError("R(t) of the last window is not estimable: the history is too short")
    return float(last["mean"]), float(last["std"])


def forecast(
    cases_history: pd.Series,
    si_distr: ArrayLike,
    hospital: HospitalParameters,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    n_samples: int = DEFAULT_SAMPLES,
    r_mean: float | None = None,
    r_std: float | None = None,
    window: int = 7,
    noise: Noise = "negative_binomial",
    dispersion: float = DEFAULT_DISPERSION,
    seed: int | np.random.Generator | None = 0,
    admissions_history: pd.Series | None = None,
    r_relax_days: float | None = None,
    icu_admissions_history: pd.Series | None = None,
    case_samples: np.ndarray | None = None,
) -> Forecast:
    """Project cases, admissions, beds and ICU occupancy ``horizon_days`` past the end of ``cases_history``.

    R is estimated from the history unless ``r_mean``/``r_std`` are given. Observed admissions (if given,
    aligned on the last ``len`` days of the history) replace the modelled ones for the past, so the census
    at the origin rests on what actually happened. Everything is returned as 5-95 % bands per day.
    ``case_samples`` (n_samples x horizon_days trajectories of daily cases, e.g. analytics.forecast_skill's
    calibrated ones) replaces the renewal projection; admissions and beds follow from them the same way.
    """
    history = pd.Series(cases_history, dtype=float)
    if history.isna().any():
        raise ValueError("cases_history has missing days; complete it (zeros for no cases) first")
    if (r_mean is None) != (r_std is None):
        raise ValueError("give both r_mean and r_std, or neither")
    if r_mean is None:
        r_mean, r_std = latest_rt(history.to_numpy(), si_distr, window=window)
    assert r_std is not None
    if case_samples is None:
        samples = project_incidence(
            history.to_numpy(), si_distr, r_mean, r_std, horizon_days, n_samples, noise, dispersion, seed,
            r_relax_days=r_relax_days,
        )
    else:
        samples = np.asarray(case_samples, dtype=float)
        if samples.ndim != 2 or samples.shape[1] != horizon_days:
            raise ValueError(f"case_samples must be (n_samples, {horizon_days}), got {samples.shape}")
        n_samples = samples.shape[0]
    n_past = len(history)
    cases_all = np.hstack([np.broadcast_to(history.to_numpy(), (n_samples, n_past)), samples])

    def census(share: float, lag: int, los_mean: float, los_std: float, observed: pd.Series | None):
        flows = delayed_share(cases_all, share, lag)
        if observed is not None:
            past = pd.Series(observed, dtype=float).to_numpy()[-n_past:]
            if np.isnan(past).any():
                raise ValueError("admission histories must not have missing days")
            flows[:, n_past - past.size : n_past] = past
        beds = occupancy_from_admissions(flows, los_survival(los_mean, los_std))
        return flows[:, n_past:], beds[:, n_past:]

    admissions, beds = census(
        hospital.admission_share,
        hospital.admission_lag_days,
        hospital.los_mean_days,
        hospital.los_std_days,
        admissions_history,
    )
    _, icu = census(
        hospital.icu_share,
        hospital.icu_lag_days,
        hospital.icu_los_mean_days,
        hospital.icu_los_std_days,
        icu_admissions_history,
    )
    index, origin = _forecast_index(history.index, horizon_days)
    return Forecast(
        origin=origin,
        r_mean=float(r_mean),
        r_std=float(r_std),
        cases=band(samples, index),
        admissions=band(admissions, index),
        beds=band(beds, index),
        icu=band(icu, index),
    )


# ------------------------------------------------------------------------------------------- capacity


def days_until_capacity(
    projected_occupancy_band: pd.DataFrame,
    capacity: float,
    threshold: float = NY_RED_ZONE_CAPACITY_FRACTION,
    current_occupancy: float | None = None,
) -> CapacityOutlook:
    """Days until the median, and the upper band (q95), reach ``threshold * capacity``.

    Row i of the band is day i + 1 ahead. Day 0 means the current occupancy is already there. None means
    not within the band's horizon, which is why a horizon of at least ``NY_RED_ZONE_DAYS`` is needed for
    ``capacity_trigger`` to be decidable.
    """
    if not (math.isfinite(capacity) and capacity > 0):
        raise ValueError(f"capacity must be positive, got {capacity}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a fraction in (0, 1], got {threshold}")
    for column in ("median", "q95"):
        if column not in projected_occupancy_band:
            raise ValueError(f"projected_occupancy_band has no column {column!r}")
    limit = threshold * capacity
    horizon = len(projected_occupancy_band)
    if current_occupancy is not None and current_occupancy >= limit:
        return CapacityOutlook(capacity, threshold, limit, 0, 0, horizon)
    return CapacityOutlook(
        capacity=float(capacity),
        threshold=float(threshold),
        beds_at_threshold=float(limit),
        days_median=_first_day_at_or_above(projected_occupancy_band["median"], limit),
        days_upper=_first_day_at_or_above(projected_occupancy_band["q95"], limit),
        horizon_days=horizon,
    )


def days_until_capacity_by_facility(
    bands: Mapping[str, pd.DataFrame],
    capacities: Mapping[str, float],
    threshold: float = NY_RED_ZONE_CAPACITY_FRACTION,
) -> dict[str, CapacityOutlook]:
    """``days_until_capacity`` for each facility (or area) key present in both mappings."""
    missing = sorted(set(bands) - set(capacities))
    if missing:
        raise ValueError(f"no capacity for {missing}")
    return {key: days_until_capacity(bands[key], capacities[key], threshold) for key in bands}


def capacity_trigger(days: int | None, within_days: int = NY_RED_ZONE_DAYS) -> bool:
    """True when capacity is reached within ``within_days`` (NY's December 2020 red-zone test: 21 days)."""
    return days is not None and days <= within_days


# -------------------------------------------------------------------------------------------- backtest


def backtest(
    series: pd.Series | ArrayLike,
    si_distr: ArrayLike,
    horizons: Sequence[int] = (7, 14),
    window: int = 7,
    step_days: int = 7,
    first_origin: int | None = None,
    n_samples: int = 500,
    seed: int = 0,
    r_relax_days: float | None = 7.0,
) -> BacktestResult:
    """Rolling-origin backtest of exactly what the early-warning job forecasts, on one daily series.

    From every ``step_days``-th origin (the number of days observed) the job's method is replayed on the
    data before it: the candidate that beat the naive forecast on the series' own earlier origins, with
    its band calibrated on its own earlier errors (analytics.forecast_skill; the defaults are the shipped
    configuration: 7-day R(t) window, R relaxing over 7 days, weekly origins). Origins where the job would
    not project (R(t) not estimated: too few cases) are not scored. Metrics per horizon: MAE of the
    median, MAPE (over days with a non-zero observation), sMAPE (2|F - A| / (|F| + |A|), over days where
    both are not zero), the weighted interval score, coverage of the 50 % and 90 % bands, and, for scale,
    the MAE of the naive forecast (the last 7-day mean carried forward) and the skill 1 - MAE / its MAE.
    """
    # The method lives in forecast_skill, which builds on the projection of this module.
    from analytics import forecast_skill as fs

    values = np.asarray(series, dtype=float)
    if values.ndim != 1 or np.isnan(values).any():
        raise ValueError("series must be a 1-D daily series without missing days")
    horizon_list = sorted({int(h) for h in horizons})
    if not horizon_list or horizon_list[0] < 1:
        raise ValueError(f"horizons must be positive whole days, got {horizons}")
    cfg = fs.SkillConfig(step_days=step_days, relax_days=r_relax_days, window=window)
    start = fs.first_origin(np.asarray(si_distr), cfg) if first_origin is None else int(first_origin)
    if start < window + 1:
        raise ValueError(f"first_origin must leave at least window + 1 = {window + 1} days of history")
    if start + horizon_list[-1] > values.size:
        raise ValueError("series too short for any origin with these horizons")
    evaluation = fs.evaluate(values, np.asarray(si_distr), horizon_list, cfg, n_samples, seed, start=start)
    chosen = evaluation.forecasts[evaluation.forecasts["method"] == fs.CHOSEN].drop(columns="method")
    chosen = chosen.merge(evaluation.choices.rename(columns={"method": "method_used"}), on="origin", how="left")
    if isinstance(series, pd.Series) and isinstance(series.index, pd.DatetimeIndex):
        chosen["origin_date"] = series.index[chosen["origin"] - 1]
    table = evaluation.scores[evaluation.scores["method"] == fs.CHOSEN].set_index("horizon")
    metrics = chosen.groupby("horizon").apply(_relative_errors, include_groups=False)
    metrics = metrics.join(table[["mae_naive", "skill", "wis", "coverage_50", "coverage_90"]])
    metrics.index.name = "horizon"
    metrics.insert(0, "horizon", metrics.index)
    return BacktestResult(metrics=metrics, forecasts=chosen.reset_index(drop=True))


def _relative_errors(group: pd.DataFrame) -> pd.Series:
    actual = group["actual"].to_numpy()
    median = group["median"].to_numpy()
    error = np.abs(median - actual)
    nonzero = actual > 0
    pair = (np.abs(median) + np.abs(actual)) > 0
    return pd.Series({
        "n_forecasts": float(len(group)),
        "mae": error.mean(),
        "mape": 100.0 * np.mean(error[nonzero] / actual[nonzero]) if nonzero.any() else np.nan,
        "smape": 100.0 * np.mean(2.0 * error[pair] / (np.abs(median) + np.abs(actual))[pair]) if pair.any()
        else np.nan,
    })


# ------------------------------------------------------------------------------------------- helpers


def _normalised_si(si_distr: ArrayLike) -> np.ndarray:
    weights = checked_si_shape(si_distr)
    if weights.sum() <= 0:
        raise ValueError("si_distr must be finite, non-negative and not all zero")
    # A truncated tail leaves the weights summing slightly below 1; the renewal equation needs a
    # distribution, otherwise R = 1 would project a slow decline.
    return weights / weights.sum()


def _draw_counts(
    expected: np.ndarray, noise: Noise, dispersion: float, rng: np.random.Generator
) -> np.ndarray:
    if noise == "none":
        return expected
    if noise == "poisson":
        return rng.poisson(expected).astype(float)
    # Negative binomial as a Gamma-Poisson mixture: mean `expected`, variance expected + expected^2 / k.
    return rng.poisson(rng.gamma(dispersion, expected / dispersion)).astype(float)


def _forecast_index(history_index: pd.Index, horizon_days: int) -> tuple[pd.Index, object]:
    if isinstance(history_index, pd.DatetimeIndex) and len(history_index) > 0:
        origin = history_index[-1]
        dates = pd.date_range(origin + pd.Timedelta(days=1), periods=horizon_days, freq="D", name="date")
        return dates, origin
    return pd.RangeIndex(1, horizon_days + 1, name="day_ahead"), len(history_index)


def _first_day_at_or_above(values: pd.Series, limit: float) -> int | None:
    reached = np.flatnonzero(values.to_numpy(dtype=float) >= limit)
    return int(reached[0]) + 1 if reached.size else None
