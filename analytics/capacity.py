"""From a projected COVID-19 bed census to occupied beds per hospital and per area.

The forecast (analytics.forecast) projects the COVID-19 census from cases and observed admissions.
Beds used by other patients are carried forward unchanged, so the projection is anchored on the
occupancy reported today:

    occupied(t) = occupied(today) + w * (covid census(t) - covid census(today))

with w = 1 for the city. A hospital takes the citywide change in proportion to its share ``w`` of
today's COVID-19 patients (of occupied beds where none are reported), and an area's hospitals
together take the sum of their shares. The census is linear in w, and quantiles commute with a
positive scale, so the hospitals' medians add up to the city's.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def anchored_band(projected_census: pd.DataFrame, census_now: float, occupied_now: float,
                  weight: float = 1.0) -> pd.DataFrame:
    """Occupied beds per day ahead (band columns kept), never below zero."""
    # On the arrays: the job anchors a band for every hospital and area, and pandas' per-frame overhead
    # was most of that time. NaN stays NaN (np.clip, like DataFrame.clip).
    values = occupied_now + weight * (projected_census.to_numpy(dtype=float) - census_now)
    return pd.DataFrame(np.clip(values, 0.0, None), index=projected_census.index, columns=projected_census.columns)


def allocation_weights(facility_ids: pd.Series, covid_patients: pd.Series, occupied: pd.Series) -> pd.Series:
    """Each hospital's share of today's COVID-19 patients (of occupied beds where none are reported).

    Indexed by facility id; sums to 1 when any hospital has patients, else all zero.
    """
    covid = pd.to_numeric(covid_patients, errors="coerce").astype(float)
    basis = covid if covid.notna().any() and covid.sum() > 0 else pd.to_numeric(occupied, errors="coerce").astype(float)
    basis = basis.fillna(0.0)
    total = float(basis.sum())
    weights = basis / total if total > 0 else basis * 0.0
    return pd.Series(weights.to_numpy(), index=pd.Index(facility_ids.to_numpy(), name="facility_id"))


def days_on_hand(stock, daily_use) -> np.ndarray:
    """Stock / daily use (the CDC/NHSN supply pathway asks facilities for exactly this); NaN where no use
    is reported or none is used: then there is no basis for a number."""
    stock = np.asarray(pd.to_numeric(pd.Series(stock, dtype=object), errors="coerce"), dtype=float)
    use = np.asarray(pd.to_numeric(pd.Series(daily_use, dtype=object), errors="coerce"), dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(use > 0, stock / use, np.nan)
