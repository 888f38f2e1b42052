"""Forecasts that earn their place: candidate methods, a rolling-origin backtest on the series' own past,
the choice of the method that beat the naive forecast there, and a band calibrated on its own errors.

Candidates, each a point path for days 1..H after an origin (the last observed day):

* ``naive``: the last 7-day mean carried forward (the baseline every skill is measured against);
* ``renewal``: analytics.forecast's renewal equation in expectation from the current R(t) (Cori et al.
  2013), R relaxing towards 1 with time constant ``relax_days`` (forecast_r_relax_days). Where R(t) is
  not estimated (fewer than ``min_window_cases`` cases in its window) it is the naive path;
* ``trend``: a log-linear trend, least squares of log(1 + cases) on the day over the last
  ``trend_days`` days, started from the last 7-day mean (centred 3 days back) and damped with the same
  time constant (growth does not last: behaviour, immunity and control respond), its rate capped at
  ``MAX_TREND_RATE``;
* ``ensemble``: the equal-weight mean of the three paths on the log scale (their geometric mean, on
  1 + cases). Equal weights: Ray et al. 2023 found equal-weight ensembles hard to beat on the US COVID-19
  Forecast Hub. The log scale: forecast errors are multiplicative, and an arithmetic mean follows its
  largest member, so one path that explodes (a noisy R(t) or trend) would carry the ensemble with it.

Weekday pattern. Cases are reported unevenly over the week (fewer tests at weekends); the 7-day mean
absorbs that, the other candidates do not. Where the last ``weekday_weeks`` weeks show a significant
pattern (``weekday_factors``), renewal, trend and ensemble are fitted to the series divided by its factors
and their paths multiplied by the factors of the days ahead.

Choice. At an origin the method is chosen on the forecasts the job could have scored by then: for
each candidate the MAE at 7 and 14 days over the last ``selection_origins`` origins (every
``step_days``) whose outcome is known, relative to the naive MAE, averaged over the two horizons. A
candidate can replace the naive forecast only if its relative MAE is below 1 - ``min_gain``; the naive
forecast is kept (and said to be) where none is, or where fewer than ``min_scored_origins`` origins could
be scored. Among the candidates that can, the ensemble is preferred: renewal or trend alone is used only
where its relative MAE is lower than the ensemble's by ``ensemble_preference`` or more. The method used
at the previous origin (the incumbent) stays while it still beats the naive forecast and no other is
better by ``switch_margin`` or more. Why: a choice made on half a year of weekly errors follows noise as
much as merit, and every switch costs skill (a challenger that won by luck is then scored on new data);
a combination is the safer default (the "forecast combination puzzle": Smith & Wallis 2009, Oxf Bull
Econ Stat 71:331; Claeskens et al. 2016, Int J Forecast 32:754). The choices are replayed origin by
origin along the series, so the job and the backtest make the same ones.

Band. The errors of the chosen method on the log scale, e = log(1 + observed) - log(1 + forecast), at
each horizon (pooled over horizons within ``pool_horizons`` days) over the same origins give a root
mean square s_h; the band is the normal prediction interval (1 + f_h) exp(+- t_{n-1} s_h sqrt(1 + 1/n))
- 1 with n the origins scored, Student's t for an s estimated from few errors. Trajectories (the
job's samples, for admissions and beds) share one t draw across the horizons, since errors persist.
Without enough history (fewer than ``min_scored_origins`` errors) the spread is a prior, the naive
forecast's mean squared log error on the tuning series, ``PRIOR_LOG_VAR_INTERCEPT + PRIOR_LOG_VAR_PER_DAY
* h``, with normal quantiles: day-to-day noise plus a level that wanders further the further ahead.

Scores (Bracher et al. 2021, PLoS Comput Biol 17(2): e1008618): MAE of the median, the weighted
interval score over the 50 % and 90 % intervals and the median (WIS = (|y - m|/2 + sum_k a_k/2 IS_ak)
/ (K + 1/2)), and the coverage of the 50 % and 90 % intervals. Skill = 1 - MAE / MAE of naive.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from analytics.forecast import latest_rt, project_incidence

NAIVE, RENEWAL, TREND, ENSEMBLE = "naive", "renewal", "trend", "ensemble"
CANDIDATES: tuple[str, ...] = (NAIVE, RENEWAL, TREND, ENSEMBLE)
CHOSEN = "chosen"  # the job's method: the candidate chosen at each origin, with its calibrated band
METHOD_LABELS = {
    NAIVE: "last week's average carried forward",
    RENEWAL: "renewal equation from R(t), R relaxing to 1",
    TREND: "damped log-linear trend of the last two weeks",
    ENSEMBLE: "geometric mean of renewal, trend and last week's average",
}
SELECTION_HORIZONS: tuple[int, ...] = (7, 14)
INTERVALS: tuple[float, ...] = (0.5, 0.9)  # central intervals scored (coverage, WIS)
NAIVE_DAYS = 7
# A trend of more than 15 % a day (doubling in under 5 days) is noise in two weeks of small counts more
# often than growth: the cap keeps one noisy fortnight from projecting an explosion.
MAX_TREND_RATE = 0.15
# The band's spread before a series has its own errors: the naive forecast's mean squared error of
# log(1 + cases) h days ahead is 0.15 + 0.037 h on the tuning series of bench/forecast_backtest.py (demo
# city, W.P. Putrajaya, Selangor; each weighted equally, least squares over h = 1..28). Its square root
# runs from 0.43 at 1 day to 1.09 at 28 days.
PRIOR_LOG_VAR_INTERCEPT = 0.15
PRIOR_LOG_VAR_PER_DAY = 0.037


@dataclass(frozen=True, slots=True)
class SkillConfig:
    """The shipped method's settings; the defaults are what the early-warning job runs.

    Chosen on the tuning series of bench/forecast_backtest.py (the demo city, W.P. Putrajaya and Selangor)
    and reported on the others as out-of-sample.
    """
    step_days: int = 7
    # Half a year of weekly origins: 12 (a quarter) switched methods on noise and scored worse on the
    # tuning series, 52 followed regime changes too slowly.
    selection_origins: int = 26
    min_scored_origins: int = 4
    pool_horizons: int = 2
    # A candidate must beat the naive forecast by 5 % to replace it: a smaller edge is mostly luck and
    # switching on it cost the small tuning series (W.P. Putrajaya) skill at 14 days.
    min_gain: float = 0.05
    relax_days: float | None = 7.0
    window: int = 7  # R(t) window (early_warning.rt_window)
    min_window_cases: int = 11  # jobs.indicators.MIN_CASES_FOR_RT: below it R(t) is not estimated
    trend_days: int = 14
    # A challenger must beat the incumbent's relative MAE by 5 points to replace it. Without it the
    # tuning series switched 12-25 times in 110-140 weeks; with it 7-8 times, and scored as well or better
    # at 7 and 14 days on each of them.
    switch_margin: float = 0.05
    # Renewal or trend alone replaces the ensemble only when 10 points better: on the tuning states' case,
    # age-group, admission and death series (ten series, none out-of-sample) this preference raised the
    # median skill at 7 days from 0.016 to 0.032 and the lowest from -0.035 to -0.020.
    ensemble_preference: float = 0.10
    # The weekday reporting pattern (weekday_factors): eight weeks, used where significant at p < 0.001.
    # Scored from origins on every weekday over the tuning pool (the demo city and fourteen case, age-group,
    # admission and death series of W.P. Putrajaya and Selangor), it raised the median skill from 0.027 to
    # 0.038 at 7 days and from 0.015 to 0.026 at 14 days, the lowest from -0.028 to -0.017 and from -0.032
    # to -0.025; used without the test (every pattern, however weak) the lowest fell to -0.044 at 14 days.
    weekday_weeks: int = 8
    weekday_alpha: float = 0.001


@dataclass(frozen=True, slots=True)
class RollingForecasts:
    """Point paths of every candidate from each origin (origin = days observed, the path's day 1 is index o)."""
    origins: np.ndarray  # (k,)
    paths: dict[str, np.ndarray]  # method -> (k, H)
    renewal_available: np.ndarray  # (k,) bool: R(t) estimated at that origin
    r_mean: np.ndarray  # (k,) NaN where not estimated


@dataclass(frozen=True, slots=True)
class Choice:
    """The method to use at one origin, why, and the spread of its errors for the band."""
    method: str
    note: str
    scored_origins: int
    relative_mae: dict[str, float] = field(default_factory=dict)  # candidate -> MAE / naive MAE (7 and 14 d)
    log_rms: np.ndarray | None = None  # (H,) RMS log error per horizon; None: the prior spread
    errors_per_horizon: np.ndarray | None = None  # (H,) origins behind log_rms

    @property
    def calibrated(self) -> bool:
        """True when the band comes from the series' own errors (False: the prior spread)."""
        return self.log_rms is not None

    def offsets(self, levels: np.ndarray, horizon: int) -> np.ndarray:
        """(len(levels), horizon) log-scale offsets of the band's quantiles (levels: probabilities)."""
        u = np.asarray(levels, dtype=float).reshape(-1, 1)
        if self.log_rms is None:
            return stats.norm.ppf(u) * prior_log_rms(horizon)[None, :]
        df = np.maximum(self.errors_per_horizon - 1, 1)
        scale = self.log_rms * np.sqrt(1.0 + 1.0 / self.errors_per_horizon.astype(float))
        return stats.t.ppf(u, df[None, :]) * scale[None, :]


def prior_log_rms(horizon: int) -> np.ndarray:
    """(horizon,) the prior RMS log error for days 1..horizon ahead (PRIOR_LOG_VAR_*)."""
    return np.sqrt(PRIOR_LOG_VAR_INTERCEPT + PRIOR_LOG_VAR_PER_DAY * np.arange(1, horizon + 1))


# ------------------------------------------------------------------------------------- point paths
def point_paths(history: np.ndarray, si_distr: np.ndarray, horizon: int, r_mean: float | None,
                cfg: SkillConfig) -> dict[str, np.ndarray]:
    """Every candidate's path for days 1..horizon after ``history`` (``r_mean`` None: no R(t)).

    Where the series has a weekday reporting pattern (weekday_factors), renewal, trend and ensemble are
    fitted to the series with the pattern taken out and the pattern put back on their paths; the naive
    forecast stays the plain 7-day mean, the baseline every skill is measured against."""
    values = np.asarray(history, dtype=float)
    level = float(values[-NAIVE_DAYS:].mean()) if values.size else 0.0
    naive = np.full(horizon, level)
    factors = weekday_factors(values, cfg)
    adjusted = values / factors[np.arange(values.size) % 7]
    ahead = factors[np.arange(values.size, values.size + horizon) % 7]
    adjusted_level = float(adjusted[-NAIVE_DAYS:].mean()) if values.size else 0.0
    adjusted_naive = np.full(horizon, adjusted_level)
    if r_mean is not None and math.isfinite(r_mean):
        renewal = project_incidence(adjusted, si_distr, r_mean, 0.0, horizon, n_samples=1, noise="none",
                                    r_relax_days=cfg.relax_days)[0]
    else:
        renewal = adjusted_naive
    trend = _trend_path(adjusted, adjusted_level, horizon, cfg)
    ensemble = np.expm1((np.log1p(adjusted_naive) + np.log1p(renewal) + np.log1p(trend)) / 3.0)
    return {NAIVE: naive, RENEWAL: renewal * ahead, TREND: trend * ahead, ENSEMBLE: ensemble * ahead}


def weekday_factors(history: np.ndarray, cfg: SkillConfig) -> np.ndarray:
    """(7,) reporting factors by day position (index mod 7) with mean 1, from the last
    ``weekday_weeks`` weeks: exp of the mean deviation of log(1 + cases) from its centred 7-day mean on
    each position. All ones where the series is too short or the pattern is not significant: a one-way
    analysis of variance of those deviations by position at p < ``weekday_alpha``, so that noise in
    small counts is not projected forward as a pattern."""
    weeks = cfg.weekday_weeks
    span = weeks * 7 + 6  # the centred mean needs three days either side
    values = np.asarray(history, dtype=float)
    if weeks <= 0 or values.size < span:
        return np.ones(7)
    logs = np.log1p(values[-span:].clip(min=0.0))
    deviation = logs[3:-3] - np.convolve(logs, np.ones(7) / 7.0, mode="valid")
    position = np.arange(values.size - span + 3, values.size - 3) % 7
    means = np.bincount(position, weights=deviation, minlength=7) / weeks
    within = float(((deviation - means[position]) ** 2).sum()) / (deviation.size - 7)
    between = weeks * float(((means - deviation.mean()) ** 2).sum()) / 6.0
    if within <= 0.0 or stats.f.sf(between / within, 6, deviation.size - 7) >= cfg.weekday_alpha:
        return np.ones(7)
    factors = np.exp(means - means.mean())
    return factors / factors.mean()


def _trend_path(values: np.ndarray, level: float, horizon: int, cfg: SkillConfig) -> np.ndarray:
    recent = values[-cfg.trend_days:]
    if recent.size < 3 or level <= 0:
        return np.full(horizon, level)
    days = np.arange(recent.size, dtype=float)
    rate = float(np.polyfit(days, np.log1p(recent), 1)[0])
    rate = max(-MAX_TREND_RATE, min(MAX_TREND_RATE, rate))
    # The 7-day mean sits 3 days before the origin; days ahead are counted from there.
    ahead = np.arange(1, horizon + 1) + (NAIVE_DAYS - 1) / 2.0
    tau = cfg.relax_days
    growth = ahead if tau is None else tau * (1.0 - np.exp(-ahead / tau))
    return np.expm1(np.log1p(level) + rate * growth).clip(min=0.0)


def rolling_paths(values: np.ndarray, si_distr: np.ndarray, origins: Sequence[int], horizon: int,
                  cfg: SkillConfig, rt_mean: np.ndarray | None = None) -> RollingForecasts:
    """Candidate paths from each origin. ``rt_mean[d]`` is R(t) of the window ending day d (NaN: not
    estimated), e.g. the stored estimates; None estimates it from ``values`` as the indicators job does."""
    origin_list = np.asarray(list(origins), dtype=int)
    paths = {m: np.zeros((origin_list.size, horizon)) for m in CANDIDATES}
    available = np.zeros(origin_list.size, dtype=bool)
    r_values = np.full(origin_list.size, np.nan)
    for i, origin in enumerate(origin_list):
        past = values[:origin]
        r = _r_at(past, si_distr, cfg, rt_mean, origin)
        available[i] = r is not None
        r_values[i] = np.nan if r is None else r
        for method, path in point_paths(past, si_distr, horizon, r, cfg).items():
            paths[method][i] = path
    return RollingForecasts(origin_list, paths, available, r_values)


def _r_at(past: np.ndarray, si_distr: np.ndarray, cfg: SkillConfig, rt_mean: np.ndarray | None,
          origin: int) -> float | None:
    if rt_mean is not None:
        value = float(rt_mean[origin - 1])
        return value if math.isfinite(value) else None
    if past[-cfg.window:].sum() < cfg.min_window_cases:
        return None
    try:
        return latest_rt(past, si_distr, window=cfg.window)[0]
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------- choice
def choose(rolling: RollingForecasts, values: np.ndarray, origin: int, cfg: SkillConfig,
           method: str | None = None, incumbent: str | None = None) -> Choice:
    """The method (or the given ``method``, calibrated) at ``origin``, from forecasts scored before it;
    ``incumbent`` is the method used at the previous origin (None: none, as at the first)."""
    horizon = next(iter(rolling.paths.values())).shape[1]
    errors = {m: _scored_errors(rolling, values, origin, m, horizon, cfg) for m in CANDIDATES}
    scored = min((len(errors[NAIVE][h - 1][0]) for h in SELECTION_HORIZONS if h <= horizon), default=0)
    if method is None:
        if scored < cfg.min_scored_origins:
            return Choice(NAIVE, f"only {scored} past forecasts could be scored (needs {cfg.min_scored_origins}): "
                                 "the naive forecast", scored)
        relative = {m: _relative_mae(errors[m], errors[NAIVE], horizon) for m in CANDIDATES}
        # What a candidate is ranked by: its relative MAE, the ensemble's lowered by the preference.
        rank = {m: relative[m] - (cfg.ensemble_preference if m == ENSEMBLE else 0.0) for m in CANDIDATES}
        eligible = [m for m in CANDIDATES if m != NAIVE and relative[m] < 1.0 - cfg.min_gain]
        method = min(eligible, key=lambda m: (rank[m], m)) if eligible else NAIVE
        if incumbent in relative and incumbent not in (NAIVE, method) and relative[incumbent] < 1.0 \
                and rank[incumbent] - rank.get(method, 1.0) < cfg.switch_margin:
            method = incumbent
        if method == NAIVE:
            note = f"nothing beat the naive forecast over the last {scored} scored weeks: the naive forecast"
        else:
            note = (f"{method}: {1 - relative[method]:.0%} lower error than the naive forecast over the last "
                    f"{scored} scored weeks")
    else:
        relative, note = {}, ""
    log_rms, counts = _log_rms(errors[method], horizon, cfg)
    if (counts.min() if counts.size else 0) < cfg.min_scored_origins or scored < cfg.min_scored_origins:
        return Choice(method, note, scored, relative)
    return Choice(method, note, scored, relative, log_rms, counts)


def choices_along(rolling: RollingForecasts, values: np.ndarray, cfg: SkillConfig) -> list[Choice | None]:
    """The job's choice at every origin of ``rolling`` in turn, each knowing the one before it (None where
    the job does not project: R(t) not estimated; the incumbent then stays what it was)."""
    out: list[Choice | None] = []
    incumbent: str | None = None
    for i, origin in enumerate(rolling.origins):
        if not rolling.renewal_available[i]:
            out.append(None)
            continue
        choice = choose(rolling, values, int(origin), cfg, incumbent=incumbent)
        incumbent = choice.method
        out.append(choice)
    return out


def _scored_errors(rolling: RollingForecasts, values: np.ndarray, origin: int, method: str, horizon: int,
                   cfg: SkillConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per horizon h: (absolute errors, log errors) of the last selection_origins forecasts known by ``origin``."""
    out = []
    paths = rolling.paths[method]
    for h in range(1, horizon + 1):
        known = np.flatnonzero(rolling.origins + h <= origin)[-cfg.selection_origins:]
        if known.size == 0:
            out.append((np.zeros(0), np.zeros(0)))
            continue
        actual = values[rolling.origins[known] + h - 1]
        forecast = paths[known, h - 1]
        out.append((np.abs(forecast - actual), np.log1p(actual) - np.log1p(forecast)))
    return out


def _relative_mae(errors, naive, horizon: int) -> float:
    ratios = []
    for h in SELECTION_HORIZONS:
        if h > horizon:
            continue
        base = naive[h - 1][0].mean()
        ratios.append(errors[h - 1][0].mean() / base if base > 0 else 1.0)
    return float(np.mean(ratios)) if ratios else 1.0


def _log_rms(errors, horizon: int, cfg: SkillConfig) -> tuple[np.ndarray, np.ndarray]:
    """(H,) RMS of the log errors pooled over nearby horizons, and (H,) origins scored at each horizon."""
    rms = np.zeros(horizon)
    counts = np.zeros(horizon, dtype=int)
    for h in range(horizon):
        lo, hi = max(0, h - cfg.pool_horizons), min(horizon, h + cfg.pool_horizons + 1)
        pooled = np.concatenate([errors[j][1] for j in range(lo, hi)])
        counts[h] = errors[h][1].size
        rms[h] = math.sqrt(float(np.mean(pooled ** 2))) if pooled.size else math.nan
    return rms, counts


# ------------------------------------------------------------------------------------------- bands
def quantile_paths(point: np.ndarray, choice: Choice, levels: Sequence[float]) -> np.ndarray:
    """(len(levels), H) quantiles of the band around ``point`` (calibrated, or the prior spread)."""
    offsets = choice.offsets(np.asarray(levels, dtype=float), point.size)
    return np.expm1(np.log1p(point)[None, :] + offsets).clip(min=0.0)


def sample_paths(point: np.ndarray, choice: Choice, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_samples, H) trajectories whose day-wise quantiles are the band (one draw per path)."""
    # One probability per trajectory, turned into each horizon's quantile: comonotone across horizons.
    # Evenly spaced probabilities (in random order) rather than uniform draws: the trajectories' day-wise
    # quantiles are then the band's own, without the sampling noise of 500 draws in the median.
    u = (rng.permutation(n_samples) + 0.5) / n_samples
    return np.expm1(np.log1p(point)[None, :] + choice.offsets(u, point.size)).clip(min=0.0)


# ------------------------------------------------------------------------------------------- scores
def interval_levels() -> tuple[float, ...]:
    """Quantile levels of the scored intervals and the median: 0.05, 0.25, 0.5, 0.75, 0.95."""
    tails = sorted({round((1 - c) / 2, 6) for c in INTERVALS})
    return (*tails, 0.5, *sorted(1 - t for t in tails))


def wis(actual: np.ndarray, median: np.ndarray, intervals: dict[float, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Weighted interval score per forecast: intervals maps coverage c -> (lower, upper) arrays."""
    total = 0.5 * np.abs(actual - median)
    for coverage, (lower, upper) in intervals.items():
        alpha = 1.0 - coverage
        score = (upper - lower) + (2.0 / alpha) * ((lower - actual).clip(min=0) + (actual - upper).clip(min=0))
        total = total + alpha / 2.0 * score
    return total / (len(intervals) + 0.5)


def score_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per method and horizon: origins, mae, mae_naive, skill, wis, coverage_50, coverage_90.

    ``frame``: one row per method, origin and horizon with actual, naive, q05, q25, median, q75, q95.
    """
    rows = []
    for (method, horizon), g in frame.groupby(["method", "horizon"], sort=True):
        actual = g["actual"].to_numpy()
        median = g["median"].to_numpy()
        mae = float(np.abs(median - actual).mean())
        mae_naive = float(np.abs(g["naive"].to_numpy() - actual).mean())
        scores = wis(actual, median, {0.5: (g["q25"].to_numpy(), g["q75"].to_numpy()),
                                      0.9: (g["q05"].to_numpy(), g["q95"].to_numpy())})
        rows.append({
            "method": method, "horizon": int(horizon), "origins": int(len(g)), "mae": mae, "mae_naive": mae_naive,
            "skill": 1.0 - mae / mae_naive if mae_naive > 0 else math.nan, "wis": float(scores.mean()),
            "coverage_50": float(((g["q25"] <= g["actual"]) & (g["actual"] <= g["q75"])).mean()),
            "coverage_90": float(((g["q05"] <= g["actual"]) & (g["actual"] <= g["q95"])).mean()),
        })
    return pd.DataFrame(rows, columns=["method", "horizon", "origins", "mae", "mae_naive", "skill", "wis",
                                       "coverage_50", "coverage_90"])


# ----------------------------------------------------------------------------------- the backtest
@dataclass(frozen=True, slots=True)
class Evaluation:
    """``scores``: score_table of every candidate and of the chosen method; ``forecasts``: one row per
    method, origin and horizon; ``choices``: the method chosen at each evaluated origin."""
    scores: pd.DataFrame
    forecasts: pd.DataFrame
    choices: pd.DataFrame


def first_origin(si_distr: np.ndarray, cfg: SkillConfig) -> int:
    """The first origin with a full R(t) window plus the serial interval's reach behind it."""
    return len(np.asarray(si_distr)) - 1 + cfg.window + 1


def evaluate(values: np.ndarray, si_distr: np.ndarray, horizons: Sequence[int], cfg: SkillConfig,
             n_samples: int, seed: int, rt_mean: np.ndarray | None = None, start: int | None = None,
             rolling: RollingForecasts | None = None, choices: Sequence[Choice | None] | None = None
             ) -> Evaluation:
    """Rolling-origin backtest of every candidate and of the job's method on one daily series.

    Origins run every cfg.step_days from ``start`` (default: first_origin) while the longest horizon is
    observed; an origin where the job would not project (R(t) not estimated there) is not scored, as
    the job shows no forecast then. The chosen method's band comes from ``n_samples`` trajectories
    (``seed``), as the job draws them; the candidates' from the same calibration in closed form.
    """
    values = np.asarray(values, dtype=float)
    horizon_list = sorted({int(h) for h in horizons})
    longest = horizon_list[-1]
    begin = first_origin(si_distr, cfg) if start is None else int(start)
    grid = np.arange(begin, values.size + 1, cfg.step_days)
    if rolling is None or not np.array_equal(rolling.origins, grid) \
            or next(iter(rolling.paths.values())).shape[1] < longest:
        rolling, choices = rolling_paths(values, si_distr, grid, longest, cfg, rt_mean), None
    if choices is None:
        choices = choices_along(rolling, values, cfg)
    rng = np.random.default_rng(seed)
    levels = interval_levels()
    rows, used = [], []
    for i, origin in enumerate(grid):
        chosen = choices[i]
        if origin + longest > values.size or chosen is None:
            continue
        naive = rolling.paths[NAIVE][i]
        used.append({"origin": int(origin), "method": chosen.method, "note": chosen.note})
        samples = sample_paths(rolling.paths[chosen.method][i], chosen, n_samples, rng)
        qs = np.quantile(samples, levels, axis=0)
        bands = {CHOSEN: qs}
        for method in CANDIDATES:
            own = choose(rolling, values, int(origin), cfg, method=method)
            bands[method] = quantile_paths(rolling.paths[method][i], own, levels)
        for method, q in bands.items():
            for h in horizon_list:
                rows.append({"method": method, "origin": int(origin), "horizon": h,
                             "actual": values[origin + h - 1], "naive": naive[h - 1],
                             **{name: q[j, h - 1] for j, name in enumerate(("q05", "q25", "median", "q75", "q95"))}})
    forecasts = pd.DataFrame(rows, columns=["method", "origin", "horizon", "actual", "naive", "q05", "q25", "median",
                                            "q75", "q95"])
    return Evaluation(score_table(forecasts), forecasts, pd.DataFrame(used, columns=["origin", "method", "note"]))


def evaluate_every_weekday(values: np.ndarray, si_distr: np.ndarray, horizons: Sequence[int], cfg: SkillConfig,
                           n_samples: int, seed: int, rt_mean: np.ndarray | None = None) -> Evaluation:
    """evaluate() from origins on every day of the week, pooled: the seven weekly grids that start on
    first_origin + 0..6 (seed + offset for each grid's trajectories).

    Why: the job forecasts every day, each day choosing on the weekly grid that ends on it, so the method
    in use is all seven grids. One grid scores one weekday of targets (7 and 14 days ahead fall on the
    weekday of the last observed day); on the tuning pool the skill of one series differed between its
    seven grids by 0.11 at the median (0.10 at 14 days), more than the differences between methods."""
    values = np.asarray(values, dtype=float)
    begin = first_origin(si_distr, cfg)
    longest = max(int(h) for h in horizons)
    parts = [evaluate(values, si_distr, horizons, cfg, n_samples, seed + offset, rt_mean, start=begin + offset)
             for offset in range(cfg.step_days) if begin + offset + longest <= values.size]
    if not parts:
        return evaluate(values, si_distr, horizons, cfg, n_samples, seed, rt_mean, start=begin)
    forecasts = pd.concat([p.forecasts for p in parts], ignore_index=True)
    choices = pd.concat([p.choices for p in parts], ignore_index=True).sort_values("origin", ignore_index=True)
    return Evaluation(score_table(forecasts), forecasts, choices)


@dataclass(frozen=True, slots=True)
class Projection:
    """What the job forecasts from the last day: the method chosen, why, and the trajectories."""
    choice: Choice
    point: np.ndarray
    samples: np.ndarray
    evaluation: Evaluation


def project(values: np.ndarray, si_distr: np.ndarray, horizon: int, cfg: SkillConfig, n_samples: int, seed: int,
            r_now: float, rt_mean: np.ndarray | None = None, scored_horizons: Sequence[int] = SELECTION_HORIZONS
            ) -> Projection:
    """The job's forecast from the end of ``values`` with ``r_now`` (the stored R(t) of the day), and the
    backtest of the same method on the series' past (origins aligned so the last one is today)."""
    values = np.asarray(values, dtype=float)
    n = values.size
    begin = first_origin(si_distr, cfg)
    start = n - ((n - begin) // cfg.step_days) * cfg.step_days if n >= begin else n
    grid = np.arange(start, n + 1, cfg.step_days)
    rolling = rolling_paths(values, si_distr, grid, horizon, cfg, rt_mean)
    choices = choices_along(rolling, values, cfg)
    # Today is the last origin; the job projects only with today's R(t), so today's choice is made with
    # the incumbent of the last origin that had one.
    incumbent = next((c.method for c in reversed(choices[:-1]) if c is not None), None)
    choice = choices[-1] or choose(rolling, values, n, cfg, incumbent=incumbent)
    point = point_paths(values, si_distr, horizon, r_now, cfg)[choice.method]
    samples = sample_paths(point, choice, n_samples, np.random.default_rng(seed))
    evaluation = evaluate(values, si_distr, scored_horizons, cfg, n_samples, seed, rt_mean, start=start,
                          rolling=rolling, choices=choices)
    return Projection(choice, point, samples, evaluation)
