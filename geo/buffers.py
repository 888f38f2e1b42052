"""Buffers around a set of H3 cells: every cell within k steps, and how many steps make a width in metres."""
from __future__ import annotations

import math
from collections.abc import Iterable

import h3

from geo.cells import cell_spacing_m


def cells_to_grid_disk(cells: Iterable[str], k: int) -> set[str]:
    """Every cell within ``k`` grid steps of any of ``cells`` (the cells themselves included)."""
    return {cell for centre in cells for cell in h3.grid_disk(centre, k)}


def grid_rings_for_width_m(width_m: float, resolution: int) -> int:
    """Rings of cells at ``resolution`` needed to reach ``width_m`` metres out (at least one).

    A ring adds one cell-centre spacing (sqrt(3) edge lengths) to the reach.
    """
    return max(1, math.ceil(width_m / cell_spacing_m(resolution)))
