"""Backtest of the early-warning case forecast: every candidate method and the job's own, per series and horizon.

Run from the project root: ``python bench/forecast_backtest.py [--out FILE]``. Prints JSON lines:

* one per series and horizon (7, 14, 28 days): ``set`` is "tuning" or "out_of_sample"; ``chosen`` is
  the job's method (analytics.forecast_skill: at each weekly origin, the candidate that beat the naive
  forecast on the series' own earlier origins, with its band calibrated on its own earlier errors, as
  the early-warning job runs it with the shipped configuration; analytics.forecast.backtest replays
  exactly this); ``candidates`` holds naive, renewal, trend and ensemble, each with its band calibrated
  the same way. Per method: ``origins``, ``mae``, ``skill`` (1 - MAE / MAE of the naive forecast, the
  baseline of the same run), ``wis`` (weighted interval score over the 50 % and 90 % bands),
  ``coverage_50`` and ``coverage_90``; ``chosen_methods`` counts which candidate the job used;
* one summary per set: median skill at 7 and 14 days, the lowest skill of any series, median 90 %
  coverage, and the issue's targets (median skill >= 0.20 at 7 days and >= 0.10 at 14 days, no series
  below -0.10, median 90 % coverage 0.85-0.95) with whether each is met.

Series. Tuning (the method's settings were chosen on these only): the demo city (``python app.py
demo``'s default seed and length, built in a temporary folder through the real file ingest path; the
citywide daily cases the early-warning job forecasts), and the Ministry of Health Malaysia's daily new
cases of W.P. Putrajaya and Selangor (2020-01-25 .. 2023-01-25). Out of sample: the other fourteen
Malaysian states, and New York City's daily cases (NYC DOHMH, by date of interest) citywide and for each
of its five boroughs. Real series come from ../shared/data (a bench may read it; the app never does).
Origins on every day from the first with a full R(t) window behind it, as seven weekly grids pooled
(analytics.forecast_skill.evaluate_every_weekday: the job forecasts every day, choosing on the weekly
grid that ends on that day; one grid alone would score one weekday of targets); an origin where R(t) is
not estimated (fewer than 11 cases in its window) is not scored, as the job shows no forecast there.
Series are backtested in parallel, one process per core.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analytics import forecast_skill as fs  # noqa: E402
from jobs.early_warning import skill_config  # noqa: E402
from jobs.indicators import serial_interval  # noqa: E402
from settings import load_settings  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
MALAYSIA_CASES = SHARED / "moh-malaysia-covid19-public" / "epidemic" / "cases_state.csv"
NYC_BY_DAY = SHARED / "nychealth-coronavirus-data" / "trends" / "data-by-day.csv"
TUNING_STATES = ("W.P. Putrajaya", "Selangor")
NYC_SERIES = {"NYC citywide": "CASE_COUNT", "NYC Bronx": "BX_CASE_COUNT", "NYC Brooklyn": "BK_CASE_COUNT",
              "NYC Manhattan": "MN_CASE_COUNT", "NYC Queens": "QN_CASE_COUNT", "NYC Staten Island": "SI_CASE_COUNT"}
HORIZONS = (7, 14, 28)
SAMPLES = 500
SEED = 0
TARGETS = {"median_skill_7": 0.20, "median_skill_14": 0.10, "min_skill": -0.10, "coverage_90": (0.85, 0.95)}


def demo_city_cases() -> pd.Series:
    """Citywide daily cases of a freshly built demo city, as the early-warning job reads them."""
    from app import build_demo
    from jobs import indicators
    from jobs.daily_inputs import load_stored
    from jobs.scheduler import today_in
    from store import Store
    from store import queries_indicators as qi
    from store.definitions import CITYWIDE

    logging.disable(logging.WARNING)
    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="pheoc-bench-") as folder:
        base = settings.with_overrides(
            demo=settings.demo.model_copy(update={"workdir": Path(folder) / "demo"}),
            store=settings.store.model_copy(update={"path": Path(folder) / "unused.duckdb"}),
            ingest=settings.ingest.model_copy(update={"inbox": Path(folder) / "inbox"}))
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            dsettings, _ = build_demo(base, settings.demo.seed, settings.demo.days)
        with Store(dsettings.path(dsettings.store.path)) as store:
            indicators.run(store, dsettings, today_in(dsettings.city.timezone))
            data = load_stored(store, qi.latest_indicator_day(store))
    cases = data.counts[CITYWIDE]["cases"]
    return cases.loc[cases.ne(0).idxmax():]


def malaysian_states() -> dict[str, pd.Series]:
    assert MALAYSIA_CASES.exists(), f"shared data missing: {MALAYSIA_CASES}"
    frame = pd.read_csv(MALAYSIA_CASES, usecols=["date", "state", "cases_new"], parse_dates=["date"])
    out = {}
    for state, rows in frame.groupby("state"):
        series = rows.set_index("date")["cases_new"].astype(float).sort_index()
        out[str(state)] = series.loc[series.ne(0).idxmax():]
    return out


def nyc_series() -> dict[str, pd.Series]:
    assert NYC_BY_DAY.exists(), f"shared data missing: {NYC_BY_DAY}"
    frame = pd.read_csv(NYC_BY_DAY, usecols=["date_of_interest", *NYC_SERIES.values()])
    frame.index = pd.to_datetime(frame["date_of_interest"], format="%m/%d/%Y")
    return {name: frame[column].astype(float).sort_index() for name, column in NYC_SERIES.items()}


def series_lines(name: str, kind: str, series: pd.Series, si: np.ndarray, cfg: fs.SkillConfig) -> list[dict]:
    evaluation = fs.evaluate_every_weekday(series.to_numpy(dtype=float), si, HORIZONS, cfg, SAMPLES, SEED)
    scores = evaluation.scores.set_index(["method", "horizon"])
    used = evaluation.choices["method"].value_counts().to_dict()
    lines = []
    for horizon in HORIZONS:
        def row(method: str) -> dict:
            r = scores.loc[(method, horizon)]
            return {"origins": int(r["origins"]), "mae": round(float(r["mae"]), 2),
                    "skill": round(float(r["skill"]), 3), "wis": round(float(r["wis"]), 2),
                    "coverage_50": round(float(r["coverage_50"]), 3), "coverage_90": round(float(r["coverage_90"]), 3)}
        lines.append({"bench": "forecast_backtest", "series": name, "set": kind, "horizon": horizon,
                      "days": int(len(series)), "cases": int(series.sum()), "chosen": row(fs.CHOSEN),
                      "candidates": {m: row(m) for m in fs.CANDIDATES}, "chosen_methods": used})
    return lines


def summary(kind: str, lines: list[dict]) -> dict:
    mine = [line for line in lines if line["set"] == kind]
    skill = {h: [line["chosen"]["skill"] for line in mine if line["horizon"] == h] for h in HORIZONS}
    coverage = [line["chosen"]["coverage_90"] for line in mine if line["horizon"] in (7, 14)]
    out = {"bench": "forecast_backtest", "summary": kind, "series": len(skill[7]),
           **{f"median_skill_{h}": round(float(np.median(skill[h])), 3) for h in HORIZONS},
           **{f"min_skill_{h}": round(float(np.min(skill[h])), 3) for h in HORIZONS},
           "median_coverage_90_at_7_14": round(float(np.median(coverage)), 3)}
    low, high = TARGETS["coverage_90"]
    out["targets"] = TARGETS
    out["met"] = {
        "median_skill_7": out["median_skill_7"] >= TARGETS["median_skill_7"],
        "median_skill_14": out["median_skill_14"] >= TARGETS["median_skill_14"],
        "no_series_below_min_skill_7_14": min(out["min_skill_7"], out["min_skill_14"]) >= TARGETS["min_skill"],
        "median_coverage_90": low <= out["median_coverage_90_at_7_14"] <= high,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the JSON lines to this file")
    args = parser.parse_args()
    started = time.monotonic()
    settings = load_settings()
    si = serial_interval(settings)
    cfg = skill_config(settings)
    states = malaysian_states()
    tuning = {"demo city": demo_city_cases(), **{f"Malaysia {s}": states[s] for s in TUNING_STATES}}
    held_out = {**{f"Malaysia {s}": v for s, v in states.items() if s not in TUNING_STATES}, **nyc_series()}
    work = [(name, kind, series, si, cfg) for kind, group in (("tuning", tuning), ("out_of_sample", held_out))
            for name, series in group.items()]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        lines: list[dict] = [line for part in pool.map(series_lines, *zip(*work)) for line in part]
    lines += [summary("tuning", lines), summary("out_of_sample", lines)]
    lines.append({"bench": "forecast_backtest", "config": {k: getattr(cfg, k) for k in cfg.__slots__},
                  "samples": SAMPLES, "seed": SEED, "seconds": round(time.monotonic() - started, 1)})
    text = "\n".join(json.dumps(line, separators=(",", ":")) for line in lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
