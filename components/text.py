"""Text that Plotly draws: names from the data are escaped, so they stay text.

Plotly renders a subset of HTML in trace names, hover texts, text labels and annotations (``<a href>``,
``<b>``, ``<br>``...). An area or facility name comes from an ingested file: ``<a href=...>`` in it
would become a live link on the public map. Every name a figure shows passes through here.
"""
from __future__ import annotations

import html


def plotly_text(value) -> str:
    """``value`` as text Plotly shows literally (``<`` ``>`` ``&`` escaped as entities)."""
    return html.escape("" if value is None else str(value), quote=False)
