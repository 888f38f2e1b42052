"""Named queries of the forecast-skill feature: the backtest scores the early-warning job stores per area."""
from __future__ import annotations

from datetime import date

import pandas as pd

from store.store import Store

SKILL_COLUMNS = ("as_of", "area_id", "method", "horizon", "origins", "mae", "mae_naive", "skill", "wis",
                 "coverage_50", "coverage_90")


def replace_skill_in(con, as_of: date, area_id: str, scores: pd.DataFrame) -> None:
    """Store one area's backtest scores for ``as_of`` (scores: method, horizon, origins, mae, ...)."""
    con.execute("DELETE FROM ew_forecast_skill WHERE as_of = ? AND area_id = ?", [as_of, area_id])
    if scores is None or scores.empty:
        return
    frame = scores.assign(as_of=as_of, area_id=area_id)[list(SKILL_COLUMNS)]
    con.register("ew_skill_in", frame)
    try:
        con.execute(f"INSERT INTO ew_forecast_skill ({', '.join(SKILL_COLUMNS)}) "
                    f"SELECT CAST(as_of AS DATE), area_id, method, horizon, origins, mae, mae_naive, skill, wis, "
                    f"coverage_50, coverage_90 FROM ew_skill_in")
    finally:
        con.unregister("ew_skill_in")


def forecast_skill(store: Store, as_of: date, area_id: str) -> pd.DataFrame:
    """The stored backtest scores of one area's forecast of ``as_of``, by method and horizon."""
    return store.read("SELECT * FROM ew_forecast_skill WHERE as_of = ? AND area_id = ? ORDER BY method, horizon",
                      [as_of, area_id])
