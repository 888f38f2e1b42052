"""Renewal-equation forecasts, hospital occupancy, capacity countdowns, and a backtest on MoH Malaysia
data."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.forecast import (
    COVID19_SERIAL_INTERVAL_MEAN_DAYS,
    COVID19_SERIAL_INTERVAL_STD_DAYS,
    NY_RED_ZONE_CAPACITY_FRACTION,
    NY_RED_ZONE_DAYS,
    HospitalParameters,
    backtest,
    band,
    capacity_trigger,
    days_until_capacity,
    days_until_capacity_by_facility,
    delayed_share,
    forecast,
    los_survival,
    occupancy_from_admissions,
    project_incidence,
    sample_r,
)
from analytics.rt import discretised_gamma_si

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MALAYSIA_CASES = SHARED / "moh-malaysia-covid19-public" / "epidemic" / "cases_state.csv"
# Days 0..30 hold all but ~1e-5 of the COVID-19 serial interval's mass.
SI = discretised_gamma_si(COVID19_SERIAL_INTERVAL_MEAN_DAYS, COVID19_SERIAL_INTERVAL_STD_DAYS, 30)
HOSPITAL = HospitalParameters(
    admission_share=0.05,
    admission_lag_days=7,
    los_mean_days=8.0,
    los_std_days=5.0,
    icu_share=0.01,
    icu_lag_days=9,
    icu_los_mean_days=12.0,
    icu_los_std_days=8.0,
)


def constant_history(level: float, days: int = 120) -> pd.Series:
    return pd.Series(level, index=pd.date_range("2021-01-01", periods=days, freq="D"), dtype=float)


def test_r_one_and_constant_incidence_stays_flat():
    expected = project_incidence(np.full(60, 100.0), SI, 1.0, 0.0, 28, n_samples=1, noise="none")
    assert expected[0] == pytest.approx(np.full(28, 100.0))
    # With Poisson noise the mean over many trajectories stays at 100: E[I_t] = R * sum w_s E[I_{t-s}].
    noisy = project_incidence(np.full(60, 100.0), SI, 1.0, 0.0, 28, n_samples=4000, noise="poisson", rng=1)
    assert noisy.mean(axis=0) == pytest.approx(np.full(28, 100.0), rel=0.02)


def test_r_above_one_grows_and_below_one_declines():
    history = np.full(60, 100.0)
    growing = band(project_incidence(history, SI, 1.5, 0.1, 28, n_samples=2000, rng=2))
    assert growing["median"].iloc[-1] > growing["median"].iloc[13] > growing["median"].iloc[0] > 100
    shrinking = band(project_incidence(history, SI, 0.7, 0.05, 28, n_samples=2000, rng=2))
    assert shrinking["median"].iloc[-1] < shrinking["median"].iloc[0] < 100


def test_band_contains_the_median_and_widens():
    result = forecast(constant_history(200.0), SI, HOSPITAL, horizon_days=28, r_mean=1.2, r_std=0.15)
    for frame in (result.cases, result.admissions, result.beds, result.icu):
        assert (frame["q05"] <= frame["median"]).all()
        assert (frame["median"] <= frame["q95"]).all()
    width = result.cases["q95"] - result.cases["q05"]
    assert width.iloc[-1] > width.iloc[0]
    assert result.cases.index[0] == pd.Timestamp("2021-05-01")  # the day after the 120-day history
    assert len(result.cases) == 28


def test_seeded_projection_is_reproducible():
    first = project_incidence(np.full(40, 50.0), SI, 1.1, 0.2, 14, n_samples=100, rng=7)
    second = project_incidence(np.full(40, 50.0), SI, 1.1, 0.2, 14, n_samples=100, rng=7)
    assert np.array_equal(first, second)


def test_r_is_drawn_from_the_gamma_posterior():
    draws = sample_r(1.3, 0.2, 200_000, np.random.default_rng(3))
    assert draws.mean() == pytest.approx(1.3, rel=0.01)
    assert draws.std() == pytest.approx(0.2, rel=0.02)


def test_length_of_stay_weights_sum_to_the_mean():
    assert los_survival(8.0, 5.0).sum() == pytest.approx(8.0, rel=1e-4)
    assert los_survival(5.0, 5.0).sum() == pytest.approx(5.0, rel=1e-4)  # exponential
    assert los_survival(8.0, 5.0)[0] < 1.0


def test_occupancy_from_constant_admissions_converges_to_admissions_times_mean_los():
    admissions = np.full(200, 30.0)
    census = occupancy_from_admissions(admissions, los_survival(8.0, 5.0))
    assert census[-1] == pytest.approx(30.0 * 8.0, rel=1e-3)
    assert census[0] < census[10] < census[-1]


def test_hospital_demand_follows_cases_by_share_lag_and_stay():
    result = forecast(
        constant_history(1000.0), SI, HOSPITAL, horizon_days=21, r_mean=1.0, r_std=0.0, noise="none"
    )
    assert result.cases["median"].to_numpy() == pytest.approx(np.full(21, 1000.0))
    assert result.admissions["median"].to_numpy() == pytest.approx(np.full(21, 50.0))
    assert result.beds["median"].to_numpy() == pytest.approx(np.full(21, 50.0 * 8.0), rel=1e-3)
    assert result.icu["median"].to_numpy() == pytest.approx(np.full(21, 10.0 * 12.0), rel=1e-3)


def test_delayed_share_moves_counts_later():
    shifted = delayed_share(np.array([[10.0, 20.0, 30.0, 40.0]]), 0.5, 2)
    assert shifted.tolist() == [[0.0, 0.0, 5.0, 10.0]]


def test_observed_admissions_replace_the_modelled_past():
    history = constant_history(1000.0)
    observed = pd.Series(80.0, index=history.index)  # hospitals admitted more than 5 % of cases
    result = forecast(
        history,
        SI,
        HOSPITAL,
        horizon_days=3,
        r_mean=1.0,
        r_std=0.0,
        noise="none",
        admissions_history=observed,
    )
    # On day 1 the census is mostly patients admitted (at 80 a day) before the origin.
    assert result.beds["median"].iloc[0] > 50.0 * 8.0 * 1.3


def test_r_is_estimated_from_history_when_not_given():
    rng = np.random.default_rng(11)
    history = pd.Series(rng.poisson(500.0, size=90).astype(float))
    result = forecast(history, SI, HOSPITAL, horizon_days=14, n_samples=200)
    assert result.r_mean == pytest.approx(1.0, abs=0.1)
    assert result.cases.index.name == "day_ahead"


def test_days_until_capacity_on_hand_made_bands():
    projected = pd.DataFrame(
        {
            "median": [50.0, 60.0, 70.0, 80.0, 90.0, 95.0],
            "q05": [45.0, 50.0, 55.0, 60.0, 65.0, 70.0],
            "q95": [60.0, 75.0, 90.0, 100.0, 110.0, 120.0],
        }
    )
    outlook = days_until_capacity(projected, capacity=100.0)
    assert outlook.beds_at_threshold == pytest.approx(90.0)
    assert outlook.days_median == 5
    assert outlook.days_upper == 3
    assert days_until_capacity(projected, capacity=200.0).days_median is None
    assert days_until_capacity(projected, capacity=100.0, threshold=0.5).days_median == 1
    already = days_until_capacity(projected, capacity=100.0, current_occupancy=92.0)
    assert (already.days_median, already.days_upper) == (0, 0)


def test_days_until_capacity_per_facility():
    bands = {
        "general": pd.DataFrame({"median": [10.0, 20.0, 30.0], "q95": [15.0, 30.0, 45.0]}),
        "children": pd.DataFrame({"median": [1.0, 1.0, 1.0], "q95": [2.0, 2.0, 2.0]}),
    }
    outlooks = days_until_capacity_by_facility(bands, {"general": 30.0, "children": 40.0})
    assert outlooks["general"].days_median == 3 and outlooks["general"].days_upper == 2
    assert outlooks["children"].days_median is None
    with pytest.raises(ValueError, match="no capacity"):
        days_until_capacity_by_facility(bands, {"general": 30.0})


def test_new_york_red_zone_trigger():
    assert NY_RED_ZONE_DAYS == 21 and NY_RED_ZONE_CAPACITY_FRACTION == 0.9
    assert capacity_trigger(21)
    assert capacity_trigger(0)
    assert not capacity_trigger(22)
    assert not capacity_trigger(None)


def test_capacity_countdown_from_a_growing_forecast():
    result = forecast(
        constant_history(1000.0), SI, HOSPITAL, horizon_days=28, r_mean=1.3, r_std=0.05, seed=5
    )
    outlook = days_until_capacity(result.beds, capacity=600.0)
    assert outlook.days_upper is not None and outlook.days_median is not None
    assert outlook.days_upper <= outlook.days_median <= 28
    assert capacity_trigger(outlook.days_median)


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="si_distr\\[0\\]"):
        project_incidence(np.ones(10), [0.5, 0.5], 1.0, 0.1, 7)
    with pytest.raises(ValueError, match="noise"):
        project_incidence(np.ones(10), SI, 1.0, 0.1, 7, noise="gaussian")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="admission_share"):
        HospitalParameters(1.5, 7, 8.0, 5.0, 0.01, 9, 12.0, 8.0)
    with pytest.raises(ValueError, match="capacity"):
        days_until_capacity(pd.DataFrame({"median": [1.0], "q95": [1.0]}), capacity=0.0)


def malaysian_state_cases(state: str) -> pd.Series:
    assert MALAYSIA_CASES.exists(), MALAYSIA_CASES
    frame = pd.read_csv(MALAYSIA_CASES, usecols=["date", "state", "cases_new"], parse_dates=["date"])
    series = frame[frame["state"] == state].set_index("date")["cases_new"].astype(float).sort_index()
    assert len(series) == 1097 and series.index.is_monotonic_increasing
    return series


@pytest.mark.parametrize("state", ["W.P. Putrajaya", "Selangor"])
def test_backtest_on_malaysian_state_series(state):
    cases = malaysian_state_cases(state)
    if state == "W.P. Putrajaya":
        assert cases.sum() == 32_374  # README's check that this is the expected file
    result = backtest(cases, SI, horizons=(7, 14), step_days=7, n_samples=500, seed=0)
    metrics = result.metrics
    assert list(metrics.index) == [7, 14]
    for column in ("mae", "mape", "smape", "coverage_90", "mae_naive"):
        assert np.isfinite(metrics[column]).all(), column
    assert ((metrics["coverage_90"] >= 0) & (metrics["coverage_90"] <= 1)).all()
    assert (metrics["n_forecasts"] > 100).all()
    # The period with sustained transmission (from 2021), where relative errors are not dominated by
    # single-digit counts.
    first_2021 = int(np.searchsorted(cases.index, pd.Timestamp("2021-01-01")))
    recent = backtest(cases, SI, horizons=(7, 14), first_origin=first_2021, seed=0).metrics
    first_date = result.forecasts["origin_date"].min().date()
    print(f"\nbacktest {state}, origins every 7 days from {first_date}")
    print(metrics.round(3).to_string())
    print(f"backtest {state}, origins from 2021-01-01")
    print(recent.round(3).to_string())
    assert all(math.isfinite(v) for v in recent[["mape", "coverage_90"]].to_numpy().ravel())


def test_r_relaxing_towards_one_damps_growth_and_decline():
    from analytics.forecast import project_incidence
    si = np.array([0.0, 0.2, 0.5, 0.3])
    history = np.full(10, 100.0)
    held = project_incidence(history, si, 1.5, 0.0, 28, 1, noise="none", rng=0)[0]
    relaxed = project_incidence(history, si, 1.5, 0.0, 28, 1, noise="none", rng=0, r_relax_days=7)[0]
    assert relaxed[0] == pytest.approx(held[0])  # day 1 uses today's R
    assert relaxed[-1] < held[-1] and np.all(np.diff(relaxed[-7:]) >= 0)  # still growing, but slower
    shrinking = project_incidence(history, si, 0.6, 0.0, 28, 1, noise="none", rng=0, r_relax_days=7)[0]
    assert shrinking[-1] > project_incidence(history, si, 0.6, 0.0, 28, 1, noise="none", rng=0)[0][-1]
    flat = project_incidence(history, si, 1.0, 0.0, 28, 1, noise="none", rng=0, r_relax_days=7)[0]
    assert np.allclose(flat, 100.0)
    with pytest.raises(ValueError, match="r_relax_days"):
        project_incidence(history, si, 1.5, 0.0, 28, 1, r_relax_days=0)
