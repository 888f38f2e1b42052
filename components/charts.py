"""Time-series charts for the wall screen."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.theme import OKABE_ITO, base_layout


def trend_figure(trend: pd.DataFrame, height: int | None = None) -> go.Figure:
    """Daily cases (bars, 7-day average line), admissions, and bed/ICU occupancy on a second axis."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=trend["day"], y=trend["cases"], name="cases / day",
                         marker_color=OKABE_ITO["sky"], opacity=0.45), secondary_y=False)
    fig.add_trace(go.Scatter(x=trend["day"], y=trend["cases_7d_avg"], name="cases, 7-day avg",
                             line=dict(color=OKABE_ITO["sky"], width=3)), secondary_y=False)
    fig.add_trace(go.Scatter(x=trend["day"], y=trend["admissions"], name="admissions / day",
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
