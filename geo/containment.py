"""Which H3 cells lie in which areas: a cell belongs to the area that contains its centre.

H3's own polygon fill uses the same centre rule (a cell is inside a polygon when its centre is),
so a cell is in exactly one area of a partition, and a precinct's cells are the ones a point-in-
polygon test on the cell centres would give.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from geo.areas import AreaShape, PointLocator
from geo.cells import cells_to_latlngs, is_valid_cell


def areas_of_cells(cells: Iterable[str], areas: Sequence[AreaShape]) -> dict[str, str | None]:
    """cell -> id of the area containing the cell's centre (None outside every area, or not a cell)."""
    cells = list(dict.fromkeys(cells))
    valid = [c for c in cells if is_valid_cell(c)]
    out: dict[str, str | None] = dict.fromkeys(cells)
    if valid:
        centres = cells_to_latlngs(valid)
        out.update(zip(valid, PointLocator(areas).locate(centres[:, 0], centres[:, 1])))
    return out


def point_areas(lat: Sequence[float], lng: Sequence[float], areas: Sequence[AreaShape]) -> np.ndarray:
    """Area id containing each point (None outside every area)."""
    return PointLocator(areas).locate(lat, lng)
