"""Forecast methods chosen by their own past (analytics/forecast_skill.py): scores by hand, the choice and its
fallback, the calibrated band, ``analytics.forecast.backtest`` as the backtest of exactly what the job runs,
and what the early-warning job stores and the read model says (services.early_warning.forecast_quality).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import forecast_skill as fs
from analytics.forecast import backtest
from analytics.rt import discretised_gamma_si

SI = discretised_gamma_si(4.7, 2.9, 30)


# --- scores by hand ---------------------------------------------------------------------------------
def test_weighted_interval_score_by_hand() -> None:
    # y = 10, median 8, 50 % interval (6, 9), 90 % interval (4, 12).
    # IS_0.5 = (9 - 6) + 2/0.5 * (10 - 9) = 7; IS_0.1 = 12 - 4 = 8 (covered).
    # WIS = (0.5 * |10 - 8| + 0.5/2 * 7 + 0.1/2 * 8) / (2 + 0.5) = (1 + 1.75 + 0.4) / 2.5 = 1.26.
    score = fs.wis(np.array([10.0]), np.array([8.0]), {0.5: (np.array([6.0]), np.array([9.0])),
                                                        0.9: (np.array([4.0]), np.array([12.0]))})
    assert score[0] == pytest.approx(1.26)


def test_score_table_by_hand() -> None:
    frame = pd.DataFrame({
        "method": ["m", "m"], "horizon": [7, 7], "actual": [10.0, 20.0], "naive": [12.0, 12.0],
        "q05": [4.0, 5.0], "q25": [6.0, 15.0], "median": [8.0, 18.0], "q75": [9.0, 25.0], "q95": [12.0, 30.0]})
    row = fs.score_table(frame).iloc[0]
    assert row["mae"] == pytest.approx(2.0) and row["mae_naive"] == pytest.approx(5.0)
    assert row["skill"] == pytest.approx(1 - 2.0 / 5.0)
    assert row["coverage_50"] == pytest.approx(0.5) and row["coverage_90"] == pytest.approx(1.0)
    assert list(fs.interval_levels()) == [0.05, 0.25, 0.5, 0.75, 0.95]


# --- the choice and the band ----------------------------------------------------------------------------
def _series(kind: str, days: int = 420, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    if kind == "flat":
        mean = np.full(days, 200.0)
    else:  # slow waves: growth and decline that a trend or R(t) can follow for a week or two
        mean = 300.0 * np.exp(1.2 * np.sin(2 * np.pi * t / 120.0))
    return rng.poisson(rng.gamma(50.0, mean / 50.0)).astype(float)


def test_waves_are_forecast_better_than_naive_and_flat_noise_keeps_the_naive_forecast() -> None:
    cfg = fs.SkillConfig()
    waves = fs.evaluate(_series("waves"), SI, (7, 14), cfg, 300, 0)
    chosen = waves.scores[waves.scores["method"] == fs.CHOSEN].set_index("horizon")
    # The targets for the median series: skill 0.2 at 7 days and 0.1 at 14 days.
    assert chosen.loc[7, "skill"] > 0.2 and chosen.loc[14, "skill"] > 0.1, chosen
    assert set(waves.choices["method"]) - {fs.NAIVE}

    flat = fs.evaluate(_series("flat"), SI, (7, 14), cfg, 300, 0)
    picked = flat.choices["method"].value_counts()
    assert picked.get(fs.NAIVE, 0) >= 0.8 * len(flat.choices)  # nothing beats the mean of pure noise
    naive_notes = flat.choices.loc[flat.choices["method"] == fs.NAIVE, "note"]
    assert naive_notes.str.contains("naive forecast").all()
    chosen = flat.scores[flat.scores["method"] == fs.CHOSEN].set_index("horizon")
    assert (chosen["skill"] > -0.05).all(), chosen


# --- the weekday reporting pattern -------------------------------------------------------------------------
WEEKDAY = np.array([1.35, 1.1, 1.0, 1.0, 0.95, 0.85, 0.75])  # e.g. weekend tests reported on Monday


def test_a_weekday_pattern_is_found_taken_out_and_put_back_on_the_forecast() -> None:
    cfg = fs.SkillConfig()
    rng = np.random.default_rng(3)
    days = 140
    series = rng.poisson(400.0 * WEEKDAY[np.arange(days) % 7]).astype(float)
    factors = fs.weekday_factors(series, cfg)
    assert factors.mean() == pytest.approx(1.0)
    assert np.abs(factors - WEEKDAY / WEEKDAY.mean()).max() < 0.05
    paths = fs.point_paths(series, SI, 14, 1.0, cfg)
    ahead = factors[np.arange(days, days + 14) % 7]
    # Renewal, trend and ensemble carry the pattern; the naive baseline stays the plain 7-day mean.
    for method in (fs.RENEWAL, fs.TREND, fs.ENSEMBLE):
        shape = paths[method] / ahead
        assert shape.max() / shape.min() < 1.1, (method, paths[method])
    assert np.ptp(paths[fs.NAIVE]) == 0 and paths[fs.NAIVE][0] == pytest.approx(series[-7:].mean())


def test_noise_without_a_weekday_pattern_is_not_projected_as_one() -> None:
    cfg = fs.SkillConfig()
    found = [(fs.weekday_factors(np.random.default_rng(seed).poisson(30.0, 120).astype(float), cfg) != 1).any()
             for seed in range(200)]
    assert sum(found) <= 3  # p < 0.001 over 200 pattern-free series: 0.2 expected
    assert (fs.weekday_factors(np.zeros(120), cfg) == 1).all()  # nothing reported: no pattern, no error
    assert (fs.weekday_factors(np.arange(30.0), cfg) == 1).all()  # too short for eight weeks


def test_the_backtest_on_every_weekday_pools_the_seven_weekly_grids() -> None:
    cfg = fs.SkillConfig()
    series = _series("waves", days=200)
    pooled = fs.evaluate_every_weekday(series, SI, (7, 14), cfg, 100, 0)
    begin = fs.first_origin(SI, cfg)
    grids = [fs.evaluate(series, SI, (7, 14), cfg, 100, offset, start=begin + offset) for offset in range(7)]
    origins = sorted(o for g in grids for o in g.choices["origin"])
    assert sorted(pooled.choices["origin"]) == origins and len(set(np.asarray(origins) % 7)) == 7
    expected = fs.score_table(pd.concat([g.forecasts for g in grids], ignore_index=True))
    pd.testing.assert_frame_equal(pooled.scores, expected)


def test_the_band_is_calibrated_on_the_series_own_errors() -> None:
    cfg = fs.SkillConfig()
    for kind in ("waves", "flat"):
        scores = fs.evaluate(_series(kind, seed=3), SI, (7, 14), cfg, 400, 1).scores
        chosen = scores[scores["method"] == fs.CHOSEN]
        assert chosen["coverage_90"].between(0.8, 0.99).all(), (kind, chosen)
        assert chosen["coverage_50"].between(0.3, 0.75).all(), (kind, chosen)  # 50 origins: +-0.07 s.d.


def test_too_little_history_falls_back_to_the_naive_forecast_and_says_why() -> None:
    values = _series("waves", days=60)
    grid = np.arange(fs.first_origin(SI, fs.SkillConfig()), 61, 7)
    rolling = fs.rolling_paths(values, SI, grid, 14, fs.SkillConfig())
    choice = fs.choose(rolling, values, 60, fs.SkillConfig())
    assert choice.method == fs.NAIVE and "could be scored" in choice.note and choice.log_rms is None
    band = fs.quantile_paths(np.full(14, 100.0), choice, (0.05, 0.5, 0.95))
    assert band[0, 0] < 100 < band[2, 0]  # negative binomial around the path


def test_trajectories_share_one_draw_so_their_quantiles_are_the_band() -> None:
    values = _series("waves")
    cfg = fs.SkillConfig()
    grid = np.arange(fs.first_origin(SI, cfg), values.size + 1, 7)
    rolling = fs.rolling_paths(values, SI, grid, 28, cfg)
    choice = fs.choose(rolling, values, int(grid[-1]), cfg)
    assert choice.log_rms is not None
    point = rolling.paths[choice.method][-1]
    samples = fs.sample_paths(point, choice, 4000, np.random.default_rng(0))
    np.testing.assert_allclose(np.quantile(samples, [0.05, 0.95], axis=0),
                               fs.quantile_paths(point, choice, (0.05, 0.95)), rtol=0.05)
    # Comonotone: a trajectory above the median on day 1 stays above it on day 28.
    median = np.median(samples, axis=0)
    assert np.mean((samples[:, 0] > median[0]) == (samples[:, -1] > median[-1])) > 0.99


# --- backtest() is the job's method ---------------------------------------------------------------------
def test_backtest_defaults_are_the_shipped_method_and_match_the_evaluation() -> None:
    from jobs.early_warning import skill_config
    from settings import load_settings

    shipped = skill_config(load_settings())
    defaults = fs.SkillConfig()
    assert shipped == defaults, "analytics.forecast.backtest's defaults must be the job's configuration"
    values = pd.Series(_series("waves"), index=pd.date_range("2021-01-01", periods=420, freq="D"))
    result = backtest(values, SI, horizons=(7, 14), step_days=7, n_samples=300, seed=0)
    metrics = result.metrics
    assert list(metrics.index) == [7, 14] and list(metrics["horizon"]) == [7, 14]
    for column in ("mae", "mae_naive", "coverage_90", "skill", "wis", "coverage_50"):
        assert np.isfinite(metrics[column]).all(), column
    chosen = fs.evaluate(values.to_numpy(), SI, (7, 14), defaults, 300, 0).scores
    chosen = chosen[chosen["method"] == fs.CHOSEN].set_index("horizon")
    np.testing.assert_allclose(metrics["mae"], chosen["mae"])
    np.testing.assert_allclose(metrics["coverage_90"], chosen["coverage_90"])
    assert set(result.forecasts["method_used"]) <= set(fs.CANDIDATES)
    assert result.forecasts["origin_date"].notna().all()


# --- the job and the read model -------------------------------------------------------------------------
def test_the_job_stores_method_skill_and_the_read_model_says_it_in_one_line(computed_city) -> None:
    from auth.principal import principal_for, public_principal
    from services.early_warning import forecast_quality, page_view
    from store import Store
    from store import queries_forecast as qf
    from store import queries_warning as qw
    from store.definitions import CITYWIDE

    settings, _, _ = computed_city
    with Store(settings.path(settings.store.path)) as store:
        run = qw.latest_forecast_run(store, CITYWIDE)
        assert run["method"] in fs.CANDIDATES and run["method_note"]
        skill = qf.forecast_skill(store, run["as_of"], CITYWIDE)
        assert set(skill["method"]) == {*fs.CANDIDATES, fs.CHOSEN} and set(skill["horizon"]) == {7, 14}
        assert skill["coverage_90"].between(0, 1).all()

        quality = forecast_quality(store, principal_for("ex", "executive"), CITYWIDE)
        assert quality.method == run["method"] and quality.text.startswith(f"Forecast: {quality.method_label}.")
        chosen = skill[skill["method"] == fs.CHOSEN].set_index("horizon")
        if quality.origins:
            assert quality.skill[7] == pytest.approx(chosen.at[7, "skill"])
            assert f"{quality.coverage_90[14]:.0%} of the time" in quality.text
        # The public sees the same area-level sentence (no counts in it).
        assert forecast_quality(store, public_principal(), CITYWIDE).text == quality.text
        # The page reads the same function.
        view = page_view(store, settings, CITYWIDE, principal_for("ex", "executive"))
        assert view.forecast_quality == quality
        # An area without a forecast run has no line.
        assert forecast_quality(store, principal_for("ex", "executive"), "no-such-area").text == ""


def test_a_fallback_to_the_naive_forecast_is_said_in_the_line() -> None:
    from services.early_warning import quality_sentence

    note = "nothing beat the naive forecast over the last 20 scored weeks: the naive forecast"
    line = quality_sentence(fs.NAIVE, note, {7: 0.0, 14: -0.004}, {7: 0.9, 14: 0.875}, 20)
    assert line.startswith("Forecast: last week's average carried forward (nothing beat the naive forecast over "
                           "the last 20 scored weeks).")
    assert "was 0% at 7 days and 0% at 14 days" in line and "held the outcome 90% and 88% of the time" in line
    chosen = quality_sentence(fs.RENEWAL, "renewal: 20% lower error ...", {7: 0.21, 14: 0.12}, {7: 0.9, 14: 0.9}, 26)
    assert chosen.startswith("Forecast: renewal equation from R(t), R relaxing to 1. Over the last 26 weekly")
    assert "+21% at 7 days and +12% at 14 days" in chosen
    assert "Not yet scored" in quality_sentence(fs.NAIVE, "", {7: None, 14: None}, {}, 0)
