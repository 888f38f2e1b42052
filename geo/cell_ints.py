"""H3 cell ids as uint64 arrays, for vectorised work on many cells at once.

Cell ids travel as lower-case hex strings (h3's default API) everywhere else; here they are
uint64 so that parents can be taken with vectorised bit arithmetic on the documented H3
index layout (h3geo.org, "H3 Index": resolution in bits 52-55, one 3-bit digit per
resolution below, unused digits set to 7). Convert at the edges with ``cells_to_ints`` /
``ints_to_cells``, and call ``ints_to_cells`` on unique ids: it loops in Python.
"""
from __future__ import annotations

from collections.abc import Iterable
from itertools import chain, repeat

import h3
import h3.api.basic_int as h3_int
import numpy as np
import pandas as pd

from geo.cells import is_valid_cell

_H3_RES_SHIFT = np.uint64(52)
_H3_RES_MASK = np.uint64(0xF) << _H3_RES_SHIFT
_H3_DIGIT_BITS = 3
_H3_MAX_RES = 15


def cells_to_ints(cells: Iterable[str]) -> np.ndarray:
    """Hex cell ids (repeats welcome) -> uint64 array; raises ValueError on any invalid id."""
    codes, uniques = pd.factorize(pd.Series(list(cells), dtype=object), use_na_sentinel=True)
    if np.any(codes < 0):
        raise ValueError("cell ids must not be missing")
    return unique_cells_to_ints(list(uniques))[codes]


def unique_cells_to_ints(cells: list) -> np.ndarray:
    """Hex ids -> uint64 without looking for repeats, raising ValueError naming the first invalid id."""
    # Convert first and validate the integers: the same checks as h3.is_valid_cell on the
    # strings (it converts with str_to_int too) at about half the cost.
    # str_to_int also takes bytes, so the type is checked on its own.
    try:
        cell_ints = np.fromiter(map(h3.str_to_int, cells), dtype=np.uint64, count=len(cells))
        all_valid = all(map(h3_int.is_valid_cell, cell_ints.tolist())) and all(isinstance(c, str) for c in cells)
    except (TypeError, ValueError, OverflowError):
        all_valid = False
    if not all_valid:
        bad = next(cell for cell in cells if not is_valid_cell(cell))
        raise ValueError(f"not a valid H3 cell id: {bad!r}")
    return cell_ints


def ints_to_cells(cells: np.ndarray) -> list[str]:
    """uint64 cell ids -> hex strings (call on unique ids: it loops in Python)."""
    return [h3.int_to_str(int(cell)) for cell in cells]


def latlngs_to_cell_ints(lat: np.ndarray, lng: np.ndarray, resolution: int) -> np.ndarray:
    """Points -> uint64 cells at ``resolution``.

    h3-py 4.5 has no array form of latlng_to_cell, so the C call is made once per
    *distinct* point (geocoded cases share addresses) through the integer API, which
    skips building hex strings.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lng = np.asarray(lng, dtype=np.float64)
    bad = ~(np.isfinite(lat) & np.isfinite(lng) & (np.abs(lat) <= 90.0) & (np.abs(lng) <= 180.0))
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{int(bad.sum())} row(s) have a missing or out-of-range lat/lng (first at position {first})")
    codes, unique_points = pd.factorize(lat + 1j * lng)
    unique_cells = np.fromiter(
        map(h3_int.latlng_to_cell, unique_points.real.tolist(), unique_points.imag.tolist(), repeat(resolution)),
        dtype=np.uint64,
        count=len(unique_points),
    )
    return unique_cells[codes]


def cell_int_resolutions(cells: np.ndarray) -> np.ndarray:
    """Resolution of each uint64 cell id."""
    return ((np.asarray(cells, dtype=np.uint64) & _H3_RES_MASK) >> _H3_RES_SHIFT).astype(np.int64)


def parent_cell_ints(cells: np.ndarray, resolution: int) -> np.ndarray:
    """Vectorised ``cell_to_parent`` on uint64 ids (every cell must be at ``resolution`` or finer)."""
    cells = np.asarray(cells, dtype=np.uint64)
    if cells.size and cell_int_resolutions(cells).min() < resolution:
        raise ValueError(f"cannot take a parent at resolution {resolution} of a coarser cell")
    unused_digits = np.uint64((1 << ((_H3_MAX_RES - resolution) * _H3_DIGIT_BITS)) - 1)
    with_res = (cells & ~_H3_RES_MASK) | (np.uint64(resolution) << _H3_RES_SHIFT)
    return with_res | unused_digits


def grid_disks_of_cell_ints(cells: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every cell within ``k`` steps of each uint64 cell -> (disk sizes, members of all disks, concatenated).

    h3-py 4.5 has no array form of ``grid_disk``, so it is called once per cell through
    the integer API (no hex strings built for the ~3k(k+1) ring members).
    """
    disks = list(map(h3_int.grid_disk, np.asarray(cells, dtype=np.uint64).tolist(), repeat(k)))
    sizes = np.fromiter(map(len, disks), dtype=np.int64, count=len(disks))
    members = np.fromiter(chain.from_iterable(disks), dtype=np.uint64, count=int(sizes.sum()))
    return sizes, members
