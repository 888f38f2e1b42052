"""Named queries of the forecast-skill feature: the backtest scores the early-warning job stores per area."""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from store.frames import insert_frame_in
from store.store import Store

SKILL_COLUMNS = ("as_of", "area_id", "method", "horizon", "origins", "mae", "mae_naive", "skill", "wis",
                 "coverage_50", "coverage_90")


def replace_skills_in(con, as_of: date, scores_by_area: dict[str, pd.DataFrame | None]) -> None:
    """Store every area's backtest scores for ``as_of`` (scores: method, horizon, origins, mae, ...), replacing
    the day's earlier ones in one DELETE and one INSERT."""
    con.execute("DELETE FROM ew_forecast_skill WHERE as_of = ? AND list_contains(?, area_id)",
                [as_of, list(scores_by_area)])
    kept = [(area_id, scores) for area_id, scores in scores_by_area.items() if scores is not None and not scores.empty]
    if not kept:
        return
    # One concat and one column for the areas, not an assign per area (a hundred areas).
    rows = pd.concat([scores for _, scores in kept], ignore_index=True)
    rows["as_of"] = as_of
    rows["area_id"] = np.repeat(np.array([area_id for area_id, _ in kept], dtype=object),
                                [len(scores) for _, scores in kept])
    insert_frame_in(con, "ew_forecast_skill", rows, SKILL_COLUMNS,
                    "CAST(as_of AS DATE), " + ", ".join(SKILL_COLUMNS[1:]))


def forecast_skill(store: Store, as_of: date, area_id: str) -> pd.DataFrame:
    """The stored backtest scores of one area's forecast of ``as_of``, by method and horizon."""
    return store.read("SELECT * FROM ew_forecast_skill WHERE as_of = ? AND area_id = ? ORDER BY method, horizon",
                      [as_of, area_id])
