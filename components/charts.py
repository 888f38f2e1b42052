"""Time-series charts for the wall screen."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analytics.catalog import COUNT
from components.theme import MUTED, OKABE_ITO, base_layout
from services.formatting import display_value


def count_hover(values: pd.Series, suppressed: pd.Series | None, min_count: int) -> list[str]:
    """Hover text of disclosed daily counts: "<k" where withheld, "–" where unknown."""
    hidden = suppressed.fillna(False).astype(bool) if suppressed is not None else pd.Series(False, index=values.index)
    return [display_value(COUNT, v, suppressed=h, min_count=min_count) for v, h in zip(values, hidden)]


def trend_figure(trend: pd.DataFrame, *, min_count: int, height: int | None = None) -> go.Figure:
    """Daily cases (bars, 7-day average line), admissions, and bed/ICU occupancy on a second axis.

    ``trend`` is services.series.daily_view: withheld days have no bar (their hover says "<k") and
    the average breaks over any week that holds one.
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if trend.empty:
        fig.add_annotation(text="no case data yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                           font=dict(color=MUTED, size=20))
        fig.update_layout(**base_layout(height=height))
        return fig
    fig.add_trace(go.Bar(x=trend["day"], y=trend["cases"], name="cases / day", marker_color=OKABE_ITO["sky"],
                         opacity=0.45, customdata=count_hover(trend["cases"], trend.get("cases__suppressed"),
                                                              min_count),
                         hovertemplate="%{x|%d %b}: %{customdata} cases<extra></extra>"), secondary_y=False)
    fig.add_trace(go.Scatter(x=trend["day"], y=trend["cases_7d_avg"], name="cases, 7-day avg",
                             line=dict(color=OKABE_ITO["sky"], width=3)), secondary_y=False)
    fig.add_trace(go.Scatter(x=trend["day"], y=trend["admissions"], name="admissions / day",
                             customdata=count_hover(trend["admissions"], trend.get("admissions__suppressed"),
                                                    min_count),
                             hovertemplate="%{x|%d %b}: %{customdata} admitted<extra></extra>",
                             line=dict(color=OKABE_ITO["orange"], width=2)), secondary_y=False)
    fig.add_trace(go.Scatter(x=trend["day"], y=trend["bed_occupancy"], name="bed occupancy",
                             line=dict(color=OKABE_ITO["purple"], width=3, dash="dot")), secondary_y=True)
    fig.add_trace(go.Scatter(x=trend["day"], y=trend["icu_occupancy"], name="ICU occupancy",
                             line=dict(color=OKABE_ITO["vermillion"], width=3, dash="dash")), secondary_y=True)
    fig.update_layout(**base_layout(height=height, bargap=0.1))
    fig.update_yaxes(title_text="per day", gridcolor="#2a323b", secondary_y=False)
    fig.update_yaxes(title_text="occupancy", tickformat=".0%", range=[0, 1.05], tickvals=[0, 0.25, 0.5, 0.75, 1],
                     showgrid=False, secondary_y=True)
    fig.update_xaxes(gridcolor="#2a323b")
    return fig
