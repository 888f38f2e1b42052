"""R(t) by Cori et al. (2013) against R EpiEstim's own stored outputs (shared/data/epiestim)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.rt import (
    RT_COLUMNS,
    discretised_gamma_si,
    estimate_rt,
    estimate_rt_parametric,
    overall_infectivity,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EPIESTIM = SHARED / "epiestim"

# The expected files carry R's printed precision (7-8 significant digits).
PRINTED_PRECISION = 1e-6
# Flu2009's SI in EpiEstim: shifted Gamma, mean 2.6 days, sd 1.5 days (Ferguson et al. 2005).
FLU_SI_MEAN, FLU_SI_STD = 2.6, 1.5

EPIESTIM_COLUMNS = {
    "mean": "Mean(R)",
    "std": "Std(R)",
    "q025": "Quantile.0.025(R)",
    "q05": "Quantile.0.05(R)",
    "q25": "Quantile.0.25(R)",
    "median": "Median(R)",
    "q75": "Quantile.0.75(R)",
    "q95": "Quantile.0.95(R)",
    "q975": "Quantile.0.975(R)",
}


def read_epiestim(relative: str) -> pd.DataFrame:
    path = EPIESTIM / relative
    assert path.exists(), f"reference data missing: {path}"
    return pd.read_csv(path)


def assert_matches_epiestim(result: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(result.columns) == list(RT_COLUMNS)
    assert len(result) == len(expected)
    np.testing.assert_array_equal(result["t_start"], expected["t_start"])
    np.testing.assert_array_equal(result["t_end"], expected["t_end"])
    for ours, theirs in EPIESTIM_COLUMNS.items():
        want = expected[theirs].to_numpy(dtype=float)
        got = result[ours].to_numpy(dtype=float)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"NA pattern of {ours}")
        np.testing.assert_allclose(got, want, rtol=PRINTED_PRECISION, atol=0, err_msg=ours)


def test_example1_non_parametric_si_flu2009() -> None:
    incidence = read_epiestim("expected/estimate_R_example1_incidence.csv")
    si_distr = read_epiestim("datasets/Flu2009_si_distr.csv")["p"]
    result = estimate_rt(incidence["I"], si_distr)
    assert_matches_epiestim(result, read_epiestim("expected/estimate_R_example1_R.csv"))


def test_example2_parametric_si_with_imported_cases() -> None:
    incidence = read_epiestim("expected/estimate_R_example2_incidence.csv")
    result = estimate_rt_parametric(
        incidence["I_local"], FLU_SI_MEAN, FLU_SI_STD, imported=incidence["I_imported"]
    )
    assert_matches_epiestim(result, read_epiestim("expected/estimate_R_example2_R.csv"))


def test_example3_parametric_si_flu2009() -> None:
    incidence = read_epiestim("expected/estimate_R_example3_incidence.csv")
    result = estimate_rt_parametric(incidence["I"], FLU_SI_MEAN, FLU_SI_STD)
    assert_matches_epiestim(result, read_epiestim("expected/estimate_R_example3_R.csv"))


def test_example3_equals_explicit_si_from_snapshot() -> None:
    """The SI vector EpiEstim used in example 3 (printed) gives the same R(t) through estimate_rt."""
    incidence = read_epiestim("expected/estimate_R_example3_incidence.csv")
    si_distr = read_epiestim("expected/estimate_R_example3_si_distr.csv")["p"]
    result = estimate_rt(incidence["I"], si_distr)
    assert_matches_epiestim(result, read_epiestim("expected/estimate_R_example3_R.csv"))


def test_example4_uncertain_si_is_consistent_with_fixed_si() -> None:
    """Example 4 (uncertain SI) is Monte Carlo with R's RNG, so only a loose consistency check is possible:
    its posterior median lies inside the fixed-SI 90% credible interval of every window."""
    incidence = read_epiestim("expected/estimate_R_example4_incidence.csv")
    expected = read_epiestim("expected/estimate_R_example4_R.csv")
    result = estimate_rt_parametric(incidence["I"], FLU_SI_MEAN, FLU_SI_STD)
    np.testing.assert_array_equal(result["t_end"], expected["t_end"])
    median = expected["Median(R)"].to_numpy()
    assert np.all((result["q05"].to_numpy() <= median) & (median <= result["q95"].to_numpy()))


def test_imported_incidence_matches_snapshot_split() -> None:
    """Passing Flu2009 as all cases equals passing EpiEstim's own local/imported split of it."""
    incidence = read_epiestim("expected/estimate_R_example1_incidence.csv")
    si_distr = read_epiestim("datasets/Flu2009_si_distr.csv")["p"]
    as_total = estimate_rt(incidence["I"], si_distr)
    as_split = estimate_rt(incidence["I_local"], si_distr, imported=incidence["I_imported"])
    pd.testing.assert_frame_equal(as_total, as_split)


def test_windows_ending_before_mean_si_are_na() -> None:
    """SARS2003's SI has mean 8.372 days: the window 2..8 has no estimate, 3..9 has one."""
    incidence = read_epiestim("datasets/SARS2003_incidence.csv")["I"]
    si_distr = read_epiestim("datasets/SARS2003_si_distr.csv")["p"]
    result = estimate_rt(incidence, si_distr)
    assert (result["t_start"].iloc[0], result["t_end"].iloc[0]) == (2, 8)
    assert result.iloc[0, 2:].isna().all()
    assert result.iloc[1:, 2:].notna().all().all()
    assert len(result) == len(incidence) - 7


def test_overall_infectivity_is_the_causal_weighted_sum() -> None:
    incidence = np.array([3.0, 1.0, 4.0, 1.0, 5.0])
    si_distr = np.array([0.0, 0.5, 0.3, 0.2])
    expected = [
        sum(incidence[t - s] * si_distr[s] for s in range(1, min(t, 3) + 1)) for t in range(5)
    ]
    np.testing.assert_allclose(overall_infectivity(incidence, si_distr), expected)


@pytest.mark.parametrize(
    ("dataset", "mean", "std"),
    [("Flu2009", 2.6, 1.5), ("Flu1918", 2.6, 1.5), ("SARS2003", 8.4, 3.8)],
)
def test_discretised_gamma_reproduces_rounded_dataset_si(dataset: str, mean: float, std: float) -> None:
    """These dataset SIs are discretised shifted Gammas printed to 3 decimals (README)."""
    published = read_epiestim(f"datasets/{dataset}_si_distr.csv")["p"].to_numpy()
    ours = discretised_gamma_si(mean, std, len(published) - 1)
    np.testing.assert_array_equal(np.round(ours, 3), published)


def test_discretised_gamma_reproduces_covid_si_at_full_precision() -> None:
    """The UK COVID SI (mean 6.1, sd 4.2) is discr_si on days 0..30, stored unrounded and unnormalised."""
    published = read_epiestim("datasets/covid_deaths_2020_uk_si_distr.csv")["p"].to_numpy()
    ours = discretised_gamma_si(6.1, 4.2, len(published) - 1)
    # The closed form subtracts nearly equal CDF terms, so agreement is limited to ~1e-12 relative.
    np.testing.assert_allclose(ours, published, rtol=1e-9, atol=1e-15)
    assert ours.sum() == pytest.approx(0.999348, abs=1e-6)


def test_discretised_gamma_matches_epiestim_parametric_si() -> None:
    """Example 3's printed SI: discr_si on days 0..T-1, then a zero for day T."""
    printed = read_epiestim("expected/estimate_R_example3_si_distr.csv")["p"].to_numpy()
    ours = discretised_gamma_si(FLU_SI_MEAN, FLU_SI_STD, len(printed) - 2)
    np.testing.assert_allclose(ours, printed[:-1], rtol=PRINTED_PRECISION, atol=0)
    assert printed[-1] == 0


def test_discretised_gamma_basic_properties() -> None:
    weights = discretised_gamma_si(8.4, 3.8, 200)
    assert weights[0] == 0
    assert np.all(weights >= 0)
    assert weights.sum() == pytest.approx(1.0, abs=1e-9)
    # The linear-kernel discretisation preserves the mean of the continuous distribution.
    assert np.sum(np.arange(weights.size) * weights) == pytest.approx(8.4, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"si_distr": [0.5, 0.5]}, "si_distr\\[0\\]"),
        ({"si_distr": [0.0, 0.5]}, "sum to 1"),
        ({"incidence": [1, 2, -1, 3, 4, 5, 6, 7, 8]}, "non-negative"),
        ({"window": 20}, "at least window"),
        ({"imported": [0, 1]}, "imported has"),
    ],
)
def test_invalid_inputs_are_rejected(kwargs: dict, message: str) -> None:
    arguments = {"incidence": [1, 2, 3, 4, 5, 6, 7, 8, 9], "si_distr": [0.0, 0.6, 0.4]} | kwargs
    with pytest.raises(ValueError, match=message):
        estimate_rt(**arguments)
