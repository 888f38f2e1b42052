"""Time-series charts for the wall screen."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.catalog import COUNT
from components.figdict import figure
from components.theme import MUTED, OKABE_ITO, base_layout
from services.formatting import display_value

GRID = "#2a323b"


def count_hover(values: pd.Series, suppressed: pd.Series | None, min_count: int) -> list[str]:
    """Hover text of disclosed daily counts: "<k" where withheld, "–" where unknown."""
    hidden = suppressed.fillna(False).astype(bool) if suppressed is not None else pd.Series(False, index=values.index)
    return [display_value(COUNT, v, suppressed=h, min_count=min_count) for v, h in zip(values, hidden)]


def trend_figure(trend: pd.DataFrame, *, min_count: int, height: int | None = None) -> dict:
    """Daily cases (bars, 7-day average line), admissions, and bed/ICU occupancy on a second axis, as a
    figure dict (components.figdict).

    ``trend`` is services.series.daily_view: withheld days have no bar (their hover says "<k") and
    the average breaks over any week that holds one.
    """
    # One plot with a second y axis on the right (the layout plotly.subplots gives secondary_y).
    layout = base_layout(height=height, bargap=0.1)
    layout["xaxis"] = {"anchor": "y", "domain": [0.0, 0.94], "gridcolor": GRID}
    layout["yaxis"] = {"anchor": "x", "domain": [0.0, 1.0], "title": {"text": "per day"}, "gridcolor": GRID}
    layout["yaxis2"] = {"anchor": "x", "overlaying": "y", "side": "right", "title": {"text": "occupancy"},
                        "tickformat": ".0%", "range": [0, 1.05], "tickvals": [0, 0.25, 0.5, 0.75, 1], "showgrid": False}
    if trend.empty:
        layout["annotations"] = [{"text": "no case data yet", "showarrow": False, "xref": "paper", "yref": "paper",
                                  "x": 0.5, "y": 0.5, "font": dict(color=MUTED, size=20)}]
        return figure([], layout)
    x = [f"{d:%Y-%m-%d}" for d in pd.to_datetime(trend["day"])]

    def values(column: str) -> np.ndarray:
        return pd.to_numeric(trend[column], errors="coerce").to_numpy(dtype=float)
    data = [
        {"type": "bar", "x": x, "y": values("cases"), "name": "cases / day", "marker": {"color": OKABE_ITO["sky"]},
         "opacity": 0.45, "customdata": count_hover(trend["cases"], trend.get("cases__suppressed"), min_count),
         "hovertemplate": "%{x|%d %b}: %{customdata} cases<extra></extra>", "yaxis": "y"},
        {"type": "scatter", "x": x, "y": values("cases_7d_avg"), "name": "cases, 7-day avg",
         "line": dict(color=OKABE_ITO["sky"], width=3), "yaxis": "y"},
        {"type": "scatter", "x": x, "y": values("admissions"), "name": "admissions / day",
         "customdata": count_hover(trend["admissions"], trend.get("admissions__suppressed"), min_count),
         "hovertemplate": "%{x|%d %b}: %{customdata} admitted<extra></extra>",
         "line": dict(color=OKABE_ITO["orange"], width=2), "yaxis": "y"},
        {"type": "scatter", "x": x, "y": values("bed_occupancy"), "name": "bed occupancy",
         "line": dict(color=OKABE_ITO["purple"], width=3, dash="dot"), "yaxis": "y2"},
        {"type": "scatter", "x": x, "y": values("icu_occupancy"), "name": "ICU occupancy",
         "line": dict(color=OKABE_ITO["vermillion"], width=3, dash="dash"), "yaxis": "y2"},
    ]
    return figure(data, layout)
