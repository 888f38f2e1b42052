"""Wall-screen theme: dark background, large type, colour-blind-safe palettes.

Okabe & Ito (2008) qualitative colours stay distinguishable for the common colour-vision
deficiencies; sequential scales use viridis, which is perceptually uniform and CB-safe.
"""
from __future__ import annotations

OKABE_ITO = {
    "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "grey": "#999999",
}
STATUS_COLOURS = {"ok": OKABE_ITO["green"], "warn": OKABE_ITO["orange"], "bad": OKABE_ITO["vermillion"],
                  "neutral": "#BBBBBB"}
# The same statuses as text on a panel (#1a2027): Okabe-Ito vermillion reads at only 4.2:1 there (WCAG 1.4.3
# asks 4.5:1), this lighter one at 7.0:1; green is 4.8:1 and orange 7.3:1 as they are. Fills and markers keep
# STATUS_COLOURS; the word or figure beside the colour says the status either way.
STATUS_TEXT_COLOURS = {**STATUS_COLOURS, "bad": "#FF8A4C"}
# viridis sampled at 6 steps, low -> high
SEQUENTIAL = ("#440154", "#414487", "#2A788E", "#22A884", "#7AD151", "#FDE725")
BACKGROUND = "#101418"
PANEL = "#1a2027"
TEXT = "#e8eaed"
MUTED = "#9aa4ae"
FONT = "DejaVu Sans, Verdana, sans-serif"  # a font the machine has: no web fonts on a closed network


def base_layout(**overrides) -> dict:
    """Plotly layout defaults for every chart on a dark wall screen."""
    layout = dict(
        paper_bgcolor=PANEL, plot_bgcolor=PANEL, font=dict(family=FONT, color=TEXT, size=16),
        margin=dict(l=50, r=20, t=40, b=40), legend=dict(orientation="h", y=-0.15),
        hoverlabel=dict(font=dict(size=16)),
    )
    layout.update(overrides)
    return layout
