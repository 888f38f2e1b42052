"""Backtest of the early-warning case forecast on the demo city and on Malaysian state series.

Run from the project root: ``python bench/forecast_backtest.py``. Prints ONE JSON line.

The forecast is analytics.forecast's renewal-equation projection from the current R(t) (Cori et al.
2013, 7-day window, the configured serial interval), as the early-warning job runs it. The backtest
(analytics.forecast.backtest) re-estimates R(t) from the data up to each origin, every 7 days, projects
500 trajectories and scores the median and the 5-95 % band at 7, 14 and 28 days ahead against what was
then reported, over every origin (``all``) and over the origins from which the job would project
(``job_rule``: at least MIN_CASES_FOR_RT cases in the last R(t) window):

* ``mae``, ``smape`` (2|F - A| / (|F| + |A|), bounded, so one explosive origin cannot swamp it): error of
  the median;
* ``coverage_90``: share of outcomes inside the 5-95 % band (nominal 0.90);
* ``mae_naive``: the baseline in the same run, a naive forecast that carries the last 7-day mean
  forward; ``skill`` = 1 - mae / mae_naive (above 0: better than the naive forecast).

Series: the demo city (``python app.py demo``'s default seed and length, built in a temporary folder
through the real file ingest path; citywide reported cases, the last, still-open day left out) and the
Ministry of Health Malaysia's daily new cases of W.P. Putrajaya (the demo city's namesake) and Selangor,
2020-01-25 .. 2023-01-25, from ../shared/data (a bench may read it; the app never does).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analytics.forecast import backtest  # noqa: E402
from services import early_warning as ew  # noqa: E402
from settings import load_settings  # noqa: E402
from store import Store  # noqa: E402
from store import queries as q  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
MALAYSIA_CASES = SHARED / "moh-malaysia-covid19-public" / "epidemic" / "cases_state.csv"
STATES = ("W.P. Putrajaya", "Selangor")
HORIZONS = (7, 14, 28)
STEP_DAYS = 7
SAMPLES = 500
SEED = 0


def demo_city_cases() -> tuple[pd.Series, dict]:
    """Citywide daily reported cases of a freshly built demo city (complete days only)."""
    import logging

    from app import build_demo

    logging.disable(logging.WARNING)
    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="pheoc-bench-") as folder:
        base = settings.with_overrides(
            demo=settings.demo.model_copy(update={"workdir": Path(folder) / "demo"}),
            store=settings.store.model_copy(update={"path": Path(folder) / "unused.duckdb"}),
            ingest=settings.ingest.model_copy(update={"inbox": Path(folder) / "inbox"}))
        dsettings, _ = _quietly(build_demo, base, settings.demo.seed, settings.demo.days)
        with Store(dsettings.path(dsettings.store.path)) as store:
            last = q.latest_case_date(store)
            data = ew.load_daily(store, dsettings, last - timedelta(days=1), days=settings.demo.days + 30)
    cases = data.counts[ew.CITYWIDE]["cases"]
    cases = cases.loc[cases.ne(0).idxmax():]  # from the first reported case
    return cases, {"seed": settings.demo.seed, "days": int(len(cases)), "cases": int(cases.sum())}


def _quietly(fn, *args):
    """Run a function with its progress output on stderr silenced (the bench prints one JSON line)."""
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        return fn(*args)


def malaysian_cases(state: str) -> pd.Series:
    assert MALAYSIA_CASES.exists(), f"shared data missing: {MALAYSIA_CASES}"
    frame = pd.read_csv(MALAYSIA_CASES, usecols=["date", "state", "cases_new"], parse_dates=["date"])
    series = frame[frame["state"] == state].set_index("date")["cases_new"].astype(float).sort_index()
    return series.loc[series.ne(0).idxmax():]


def scores(series: pd.Series, si: np.ndarray, window: int) -> dict:
    """Metrics per horizon over every origin ("all") and over the origins the job would project from.

    The job (services.early_warning) projects only when the last R(t) window holds at least
    MIN_CASES_FOR_RT cases: with fewer, EpiEstim's prior (mean 5) dominates R and a 28-day projection
    explodes. ``all`` is analytics.forecast.backtest's own table, unfiltered.
    """
    result = backtest(series, si, horizons=HORIZONS, window=window, step_days=STEP_DAYS, n_samples=SAMPLES,
                      r_relax_days=load_settings().early_warning.forecast_r_relax_days,
                      seed=SEED)
    forecasts = result.forecasts
    values = series.to_numpy(dtype=float)
    window_cases = np.array([values[o - window:o].sum() for o in forecasts["origin"]])
    projected = forecasts[window_cases >= ew.MIN_CASES_FOR_RT]
    return {"all": _metrics(forecasts), "job_rule": _metrics(projected)}


def _metrics(forecasts: pd.DataFrame) -> dict:
    out = {}
    for horizon, group in forecasts.groupby("horizon"):
        actual, median = group["actual"].to_numpy(), group["median"].to_numpy()
        error = np.abs(median - actual)
        pair = (np.abs(median) + np.abs(actual)) > 0
        naive = np.abs(group["naive"].to_numpy() - actual).mean()
        covered = ((group["q05"] <= group["actual"]) & (group["actual"] <= group["q95"])).mean()
        out[f"h{int(horizon)}"] = {
            "origins": int(len(group)),
            "mae": round(float(error.mean()), 2),
            "smape": round(float(100 * np.mean(2 * error[pair] / (np.abs(median) + np.abs(actual))[pair])), 1),
            "coverage_90": round(float(covered), 3),
            "mae_naive": round(float(naive), 2),
            "skill": round(1.0 - float(error.mean()) / float(naive), 3) if naive > 0 else None,
        }
    return out


def main() -> None:
    started = time.monotonic()
    settings = load_settings()
    si = ew.serial_interval(settings)
    window = settings.early_warning.rt_window
    demo_cases, demo_info = demo_city_cases()
    report = {
        "bench": "forecast_backtest",
        "method": f"renewal projection from Cori R(t) relaxing to 1 "
                  f"(tau {settings.early_warning.forecast_r_relax_days} d), window {window} d, SI mean "
                  f"{settings.early_warning.serial_interval_mean} sd {settings.early_warning.serial_interval_std}, "
                  f"{SAMPLES} trajectories, negative binomial k=10",
        "horizons_days": list(HORIZONS),
        "baseline": "naive: last 7-day mean carried forward",
        "demo_city": {**demo_info, **scores(demo_cases, si, window)},
    }
    for state in STATES:
        series = malaysian_cases(state)
        report[f"malaysia_{state}"] = {"days": int(len(series)), "cases": int(series.sum()), **scores(series, si, window)}
    report["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report, separators=(",", ":")))


if __name__ == "__main__":
    main()
