"""Early-warning indicators against values computed by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from analytics.indicators import (
    ADMISSIONS_PER_100K_7D,
    BED_OCCUPANCY,
    CASES_PER_100K_7D,
    CASES_PER_100K_7D_AVG,
    CITYWIDE,
    COVID_BED_SHARE_7D,
    DOUBLING_TIME_DAYS,
    ICU_OCCUPANCY,
    INDICATOR_COLUMNS,
    TEST_POSITIVITY_7D,
    WEEK_OVER_WEEK_GROWTH,
    area_indicators,
    complete_daily_range,
    daily_indicators,
    doubling_time_days,
    sensor_signal,
    wastewater_trend,
    week_over_week_growth,
)


def days(n: int, start: str = "2021-03-01") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="D", name="date")


def test_seven_day_average_and_total_per_100k():
    # 1 + 2 + ... + 7 = 28 cases in the week: 4 a day; population 200,000 -> 2 per 100k a day, 14 a week.
    frame = pd.DataFrame({"cases": [1, 2, 3, 4, 5, 6, 7]}, index=days(7))
    result = daily_indicators(frame, population=200_000)
    assert list(result.columns) == list(INDICATOR_COLUMNS)
    assert result[CASES_PER_100K_7D_AVG].iloc[-1] == pytest.approx(2.0)
    assert result[CASES_PER_100K_7D].iloc[-1] == pytest.approx(14.0)
    # A partial first week would understate the weekly figure: no value before day 7.
    assert result[CASES_PER_100K_7D_AVG].iloc[:6].isna().all()


def test_missing_days_become_zero_counts_and_unknown_census():
    frame = pd.DataFrame(
        {"cases": [7, 7, 7, 7, 7, 7], "beds_total": [100] * 6, "beds_occupied": [50] * 6},
        index=days(7).delete(3),
    )
    completed = complete_daily_range(frame)
    assert len(completed) == 7
    gap = completed.loc["2021-03-04"]
    assert gap["cases"] == 0
    assert math.isnan(gap["beds_total"]) and math.isnan(gap["beds_occupied"])
    result = daily_indicators(frame, population=100_000)
    assert result[CASES_PER_100K_7D].iloc[-1] == pytest.approx(42.0)  # 6 reported days x 7 cases
    assert math.isnan(result[BED_OCCUPANCY].loc["2021-03-04"])
    assert result[BED_OCCUPANCY].loc["2021-03-05"] == pytest.approx(0.5)


def test_completion_to_a_wider_range():
    frame = pd.DataFrame({"cases": [3]}, index=days(1, "2021-03-05"))
    completed = complete_daily_range(frame, start="2021-03-01", end="2021-03-07")
    assert completed["cases"].tolist() == [0, 0, 0, 0, 3, 0, 0]


def test_positivity_is_a_ratio_of_weekly_sums():
    # Mean of daily ratios would be (0.5 + 6 x 0.01) / 7 = 0.08; the weekly ratio is 65 / 1,610.
    tested = [10] + [100] * 6
    positive = [5] + [1] * 6
    frame = pd.DataFrame({"tested": tested, "positive": positive}, index=days(7))
    result = daily_indicators(frame, population=1_000)
    assert result[TEST_POSITIVITY_7D].iloc[-1] == pytest.approx(11 / 610)


def test_zero_denominators_give_nan_not_inf():
    frame = pd.DataFrame(
        {
            "cases": [0] * 14,
            "tested": [0] * 14,
            "positive": [0] * 14,
            "beds_total": [0] * 14,
            "beds_occupied": [0] * 14,
            "icu_total": [0] * 14,
            "icu_occupied": [0] * 14,
            "beds_covid": [0] * 14,
        },
        index=days(14),
    )
    result = daily_indicators(frame, population=50_000)
    last = result.iloc[-1]
    ratios = (TEST_POSITIVITY_7D, BED_OCCUPANCY, ICU_OCCUPANCY, COVID_BED_SHARE_7D, WEEK_OVER_WEEK_GROWTH)
    for column in ratios:
        assert math.isnan(last[column]), column
    assert math.isnan(last[DOUBLING_TIME_DAYS])
    assert not np.isinf(result.drop(columns=[DOUBLING_TIME_DAYS]).to_numpy(dtype=float)).any()
    assert last[CASES_PER_100K_7D_AVG] == 0.0


def test_absent_feeds_give_nan_columns():
    frame = pd.DataFrame({"cases": [1] * 7}, index=days(7))
    result = daily_indicators(frame, population=10_000)
    assert result[ADMISSIONS_PER_100K_7D].isna().all()
    assert result[ICU_OCCUPANCY].isna().all()


def test_admissions_per_100k_is_a_weekly_total():
    frame = pd.DataFrame({"admissions": [2, 0, 1, 3, 0, 2, 2]}, index=days(7))  # 10 in the week
    result = daily_indicators(frame, population=50_000)
    assert result[ADMISSIONS_PER_100K_7D].iloc[-1] == pytest.approx(20.0)


def test_occupancy_is_occupied_over_total():
    frame = pd.DataFrame(
        {
            "beds_total": [200, 200],
            "beds_occupied": [150, 170],
            "icu_total": [20, 20],
            "icu_occupied": [15, 19],
        },
        index=days(2),
    )
    result = daily_indicators(frame, population=1_000)
    assert result[BED_OCCUPANCY].tolist() == pytest.approx([0.75, 0.85])
    assert result[ICU_OCCUPANCY].tolist() == pytest.approx([0.75, 0.95])


def test_covid_bed_share_averages_over_reported_days_and_needs_four():
    covid = [10, 20, np.nan, np.nan, np.nan, 30, 40]
    total = [100, 100, 100, np.nan, np.nan, 100, 100]
    frame = pd.DataFrame({"beds_covid": covid, "beds_total": total}, index=days(7))
    result = daily_indicators(frame, population=1_000)
    # Days reported with both: 1, 2, 6, 7 -> (10 + 20 + 30 + 40) / 400.
    assert result[COVID_BED_SHARE_7D].iloc[-1] == pytest.approx(0.25)
    frame.iloc[0, 0] = np.nan  # only 3 complete days left: too few for a weekly average
    assert math.isnan(daily_indicators(frame, population=1_000)[COVID_BED_SHARE_7D].iloc[-1])


def test_week_over_week_growth_and_doubling_time():
    cases = pd.Series([10] * 7 + [20] * 7, index=days(14), dtype=float)
    growth = week_over_week_growth(cases)
    assert growth.iloc[:13].isna().all()
    assert growth.iloc[-1] == pytest.approx(2.0)
    # Doubling in exactly one week: ln2 / (ln2 / 7) = 7 days.
    assert doubling_time_days(growth).iloc[-1] == pytest.approx(7.0)


def test_doubling_time_is_inf_when_not_growing_and_nan_when_unmeasurable():
    growth = pd.Series([1.0, 0.5, 0.0, np.nan, 1.5])
    doubling = doubling_time_days(growth)
    assert doubling.iloc[0] == math.inf
    assert doubling.iloc[1] == math.inf
    assert doubling.iloc[2] == math.inf
    assert math.isnan(doubling.iloc[3])
    assert doubling.iloc[4] == pytest.approx(7 * math.log(2) / math.log(1.5))


def test_growth_from_an_empty_week_is_nan():
    cases = pd.Series([0] * 7 + [5] * 7, index=days(14), dtype=float)
    assert math.isnan(week_over_week_growth(cases).iloc[-1])


def test_area_and_citywide_indicators():
    dates = days(7)
    north = pd.DataFrame(
        {"area": "north", "date": dates, "cases": 10, "beds_total": 100, "beds_occupied": 80}
    )
    south = pd.DataFrame(
        {"area": "south", "date": dates, "cases": 30, "beds_total": 300, "beds_occupied": 150}
    )
    # South does not report its census on the last day, and misses a whole day of rows.
    south.loc[6, "beds_occupied"] = np.nan
    south = south.drop(index=2)
    long = pd.concat([north, south], ignore_index=True)
    result = area_indicators(long, {"north": 100_000, "south": 300_000})
    assert set(result.index.get_level_values("area")) == {"north", "south", CITYWIDE}
    last = pd.Timestamp(dates[-1])
    assert result.loc[("north", last), CASES_PER_100K_7D] == pytest.approx(70.0)
    assert result.loc[("south", last), CASES_PER_100K_7D] == pytest.approx(60.0)  # 6 days x 30
    # Citywide: (70 + 180) cases over 400,000 people.
    assert result.loc[(CITYWIDE, last), CASES_PER_100K_7D] == pytest.approx(250 / 4.0)
    # On the last day only north's census is complete, so citywide occupancy is north's alone.
    assert result.loc[(CITYWIDE, last), BED_OCCUPANCY] == pytest.approx(0.8)
    assert result.loc[(CITYWIDE, pd.Timestamp(dates[0])), BED_OCCUPANCY] == pytest.approx(230 / 400)
    # The day south missed entirely: its census is unknown, so again north's alone.
    assert result.loc[(CITYWIDE, pd.Timestamp(dates[2])), BED_OCCUPANCY] == pytest.approx(0.8)


def test_area_without_population_is_an_error():
    long = pd.DataFrame({"area": ["a"], "date": ["2021-01-01"], "cases": [1]})
    with pytest.raises(ValueError, match="no population"):
        area_indicators(long, {"b": 1})


def test_wastewater_trend_of_exact_exponential_growth():
    # Concentration doubling every 7 days, sampled irregularly: slope ln2/7 per day, and over CDC's
    # 15-day window (14 days end to end) two doublings: +300 %.
    sample_days = [0, 3, 7, 10, 14, 17, 21]
    dates = pd.Timestamp("2021-05-01") + pd.to_timedelta(sample_days, unit="D")
    values = pd.Series(1000.0 * 2.0 ** (np.array(sample_days) / 7.0), index=dates)
    trend = wastewater_trend(values)
    last = trend.iloc[-1]
    assert last["samples"] == 5  # days 7..21 fall in the 15 days ending on day 21
    assert last["log_slope_per_day"] == pytest.approx(math.log(2) / 7)
    assert last["percent_change"] == pytest.approx(300.0)


def test_wastewater_trend_matches_least_squares_and_drops_non_positive():
    dates = pd.to_datetime(["2021-05-01", "2021-05-03", "2021-05-06", "2021-05-08", "2021-05-10"])
    values = pd.Series([120.0, 0.0, 95.0, 160.0, 140.0], index=dates)
    trend = wastewater_trend(values, window_days=10, min_samples=3)
    kept = np.array([0, 5, 7, 9], dtype=float)
    expected = np.polyfit(kept, np.log([120.0, 95.0, 160.0, 140.0]), 1)[0]
    assert trend.iloc[-1]["samples"] == 4
    assert trend.iloc[-1]["log_slope_per_day"] == pytest.approx(expected)
    assert trend.iloc[-1]["percent_change"] == pytest.approx(100 * (math.exp(expected * 9) - 1))
    # Before the third usable sample there is no trend.
    assert trend.loc[:"2021-05-05", "log_slope_per_day"].isna().all()


def test_sensor_signal_week_against_previous_week():
    counts = pd.Series([2] * 7 + [3] * 6, index=days(13))  # last day missing from the feed
    counts = pd.concat([counts, pd.Series([5], index=days(1, "2021-03-15"))])
    signal = sensor_signal(counts)
    last = signal.iloc[-1]
    assert last["sum_7d"] == 3 * 5 + 0 + 5  # days 8..14: five 3s, the missing day, then the 5
    assert last["previous_sum_7d"] == 2 * 6 + 3
    assert last["ratio"] == pytest.approx(20 / 15)
    assert last["days_reported_7d"] == 6


def test_invalid_inputs_are_rejected():
    frame = pd.DataFrame({"cases": [1, 2]}, index=pd.to_datetime(["2021-01-01", "2021-01-01"]))
    with pytest.raises(ValueError, match="duplicate dates"):
        daily_indicators(frame, population=1_000)
    with pytest.raises(ValueError, match="negative"):
        daily_indicators(pd.DataFrame({"cases": [-1]}, index=days(1)), population=1_000)
    with pytest.raises(ValueError, match="population"):
        daily_indicators(pd.DataFrame({"cases": [1]}, index=days(1)), population=0)
