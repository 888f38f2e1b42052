"""EARS C1/C2/C3 against R surveillance::earsC outputs, and the ESSENCE-style EWMA on synthetic series."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import signal, stats

from analytics.aberration import ears, ewma

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EARSC = SHARED / "surveillance-earsc"
UPPERBOUND_TOLERANCE = 1e-6


def read_earsc(name: str) -> pd.DataFrame:
    path = EARSC / name
    assert path.exists(), f"reference data missing: {path}"
    return pd.read_csv(path)


@pytest.fixture(scope="module")
def germany() -> pd.Series:
    weekly = read_earsc("salmNewport_germany_weekly.csv")
    # 1-based index as in R, so expected rows select by label.
    return pd.Series(weekly["observed"].to_numpy(), index=weekly["index"].to_numpy())


@pytest.fixture(scope="module")
def expected() -> pd.DataFrame:
    return read_earsc("earsC_salmNewport_germany_expected.csv")


def parameter_sets(expected: pd.DataFrame):
    keys = ["method", "alpha", "alpha_was_default", "baseline", "minSigma"]
    return expected.groupby(keys, sort=True)


def test_expected_file_has_the_documented_parameter_sets(expected: pd.DataFrame) -> None:
    sizes = parameter_sets(expected).size()
    assert len(sizes) == 8
    assert sorted(sizes.tolist()) == [52] * 5 + [517] * 3


def test_every_parameter_set_reproduces_surveillance(germany: pd.Series, expected: pd.DataFrame) -> None:
    for (method, alpha, alpha_was_default, baseline, min_sigma), rows in parameter_sets(expected):
        result = ears(
            germany,
            method=method,
            alpha=None if alpha_was_default else alpha,
            baseline=int(baseline),
            min_sigma=min_sigma,
        )
        got = result.loc[rows["index"].to_numpy()]
        label = f"{method} alpha={alpha} baseline={baseline} minSigma={min_sigma}"
        np.testing.assert_allclose(
            got["upperbound"].to_numpy(),
            rows["upperbound"].to_numpy(dtype=float),
            rtol=UPPERBOUND_TOLERANCE,
            atol=UPPERBOUND_TOLERANCE,
            err_msg=label,
        )
        np.testing.assert_array_equal(
            got["alarm"].to_numpy(), rows["alarm"].to_numpy() == 1, err_msg=label
        )


def test_package_asserted_values(germany: pd.Series) -> None:
    """surveillance's tests/testthat/test-earsC.R: C1, alpha 0.05, first four weeks of ISO-year 2011."""
    weekly = read_earsc("salmNewport_germany_weekly.csv")
    first_2011 = weekly.loc[weekly["iso_year"] == 2011, "index"].iloc[0]
    result = ears(germany, method="C1", alpha=0.05)
    first_four = result["upperbound"].loc[first_2011 : first_2011 + 3].to_numpy()
    np.testing.assert_allclose(first_four, [3.278854, 3.278854, 3.436517, 3.855617], atol=1e-6)


def test_c1_alarms_of_2011_are_the_mung_bean_sprout_outbreak(germany: pd.Series) -> None:
    weekly = read_earsc("salmNewport_germany_weekly.csv").set_index("index")
    result = ears(germany, method="C1", alpha=0.05)
    in_2011 = weekly["iso_year"] == 2011
    alarm_weeks = weekly.loc[in_2011 & result["alarm"], "week_start"].tolist()
    assert alarm_weeks == [
        "2011-08-01",
        "2011-08-29",
        "2011-10-24",
        "2011-10-31",
        "2011-11-07",
        "2011-11-14",
    ]


@pytest.mark.parametrize(("method", "first_1_based"), [("C1", 8), ("C2", 10), ("C3", 12)])
def test_no_bound_before_baseline_is_available(germany: pd.Series, method: str, first_1_based: int) -> None:
    """Defaults of earsC's range: B+1 (C1), B+3 (C2, guard band), B+5 (C3, two earlier C2 statistics)."""
    result = ears(germany, method=method)
    assert result.index.equals(germany.index)
    before = result.loc[: first_1_based - 1]
    assert before["upperbound"].isna().all()
    assert not before["alarm"].any()
    assert result["upperbound"].loc[first_1_based:].notna().all()


def test_default_alpha_per_method(germany: pd.Series) -> None:
    for method, alpha in {"C1": 0.001, "C2": 0.001, "C3": 0.025}.items():
        pd.testing.assert_frame_equal(ears(germany, method), ears(germany, method, alpha=alpha))


def test_c3_zero_variance_baseline_gives_nan_and_no_alarm() -> None:
    """0/0 in the C2 statistic with min_sigma 0 is NA in R; min_sigma removes it."""
    series = np.array([2.0] * 14 + [5.0])
    flat = ears(series, method="C3")
    assert flat["upperbound"].iloc[11:].isna().all()
    assert not flat["alarm"].any()
    floored = ears(series, method="C3", min_sigma=1.0)
    assert floored["upperbound"].iloc[11:].notna().all()


def test_plain_array_gets_a_range_index() -> None:
    result = ears([1, 2, 3, 2, 1, 2, 3, 2, 9], method="C1", alpha=0.05)
    assert list(result.columns) == ["upperbound", "alarm"]
    assert result.index.equals(pd.RangeIndex(9))
    assert result["alarm"].tolist() == [False] * 8 + [True]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"method": "C4"}, "method"), ({"alpha": 1.5}, "alpha"), ({"baseline": 1}, "baseline")],
)
def test_ears_rejects_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ears([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], **kwargs)


# --- EWMA -------------------------------------------------------------------------------------------

SEED = 20_260_524


def test_ewma_matches_a_direct_computation() -> None:
    """Each column re-derived for one day with plain loops and the documented formula."""
    rng = np.random.default_rng(SEED)
    counts = rng.poisson(6, 60).astype(float)
    result = ewma(counts)
    w, baseline, guard, day = 0.4, 28, 2, 45

    smoothed = counts[0]
    for value in counts[1 : day + 1]:
        smoothed = w * value + (1 - w) * smoothed
    reference = counts[day - guard - baseline : day - guard]
    baseline_weight = (1 - w) ** (guard + 1) * (1 - (1 - w) ** baseline)
    variance_factor = w / (2 - w) + 1 / baseline - 2 * baseline_weight / baseline
    warning_t = stats.t.ppf(0.95, baseline - 1)
    constant = (0.1289 - (0.2414 - 0.1826 * (1 - w) ** 4) * np.log(0.5)) * w / warning_t
    floor = w / warning_t * (1 + 0.5 * (1 - w) ** 2)
    sigma = max(reference.std(ddof=1) * np.sqrt(variance_factor) + constant, floor)
    statistic = (smoothed - reference.mean()) / sigma

    row = result.iloc[day]
    assert row["smoothed"] == pytest.approx(smoothed, rel=1e-12)
    assert row["expected"] == pytest.approx(reference.mean(), rel=1e-12)
    assert row["sigma"] == pytest.approx(sigma, rel=1e-12)
    assert row["statistic"] == pytest.approx(statistic, rel=1e-10)
    assert row["p_value"] == pytest.approx(stats.t.sf(statistic, baseline - 1), rel=1e-10)


def test_ewma_variance_factor_is_the_variance_of_smoothed_minus_baseline_mean() -> None:
    """Monte Carlo check of the ESSENCE variance correction on white noise (sd 1)."""
    rng = np.random.default_rng(SEED)
    w, baseline, guard, day = 0.4, 28, 2, 80
    noise = rng.standard_normal((20_000, day + 1))
    smoothed = signal.lfilter([w], [1, -(1 - w)], noise, axis=1)[:, day]
    difference = smoothed - noise[:, day - guard - baseline : day - guard].mean(axis=1)
    factor = w / (2 - w) + 1 / baseline - 2 * (1 - w) ** (guard + 1) * (1 - (1 - w) ** baseline) / baseline
    assert difference.var() == pytest.approx(factor, rel=0.03)


def test_ewma_flat_poisson_noise_gives_few_alarms() -> None:
    rng = np.random.default_rng(SEED)
    for mean_count in (1, 10, 100):
        result = ewma(pd.Series(rng.poisson(mean_count, 2000)))
        tested = result["p_value"].notna()
        assert tested.sum() == 2000 - 30
        # Nominal 1% per day; allow for discreteness and the autocorrelation of the smoothed series.
        assert result.loc[tested, "alarm"].mean() < 0.03


def test_ewma_detects_a_planted_step_within_days() -> None:
    rng = np.random.default_rng(SEED)
    counts = rng.poisson(10, 200).astype(float)
    step_day = 150
    counts[step_day:] += 10  # doubling of the daily count
    result = ewma(counts)
    first_alarm = int(np.flatnonzero(result["alarm"].to_numpy()[step_day:])[0])
    assert first_alarm <= 3


def test_ewma_alarm_is_observed_above_upperbound() -> None:
    rng = np.random.default_rng(SEED)
    counts = pd.Series(rng.poisson(4, 400), index=pd.date_range("2024-01-01", periods=400, freq="D"))
    counts.iloc[300:310] += 8
    result = ewma(counts)
    assert result.index.equals(counts.index)
    assert result["alarm"].any()
    np.testing.assert_array_equal(result["alarm"], counts > result["upperbound"])
    assert result.iloc[:30].drop(columns=["smoothed", "alarm"]).isna().all().all()
    assert not result["alarm"].iloc[:30].any()


def test_ewma_rejects_missing_values() -> None:
    with pytest.raises(ValueError, match="complete series"):
        ewma([1.0, np.nan] + [1.0] * 40)
