"""Neighbour graphs: which units are neighbours of which, built once per grid and handed to statistics.

The spatial-weights half of a hot-spot analysis (as libpysal.weights is to esda): this module
says who neighbours whom; analytics.hotspots computes Getis-Ord on whatever graph it is given.

The relation is binary (0/1 weights, no self weight): everything a local statistic needs
is the adjacency A (zero diagonal) and its row counts d = A·1, so a ``NeighbourGraph``
keeps A as a CSR matrix over integer positions of the units. Building one maps ids to
positions with a dict (``neighbour_graph``, from id lists) or, for H3 cells, with a
vectorised search on the sorted uint64 ids (``cells_to_neighbour_graph``); either is
meant to be built once per grid and reused on every refresh.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat

import numpy as np
import pandas as pd
import scipy.sparse as sp

from geo.cell_ints import grid_disks_of_cell_ints, unique_cells_to_ints

# Row/column positions while the graph is assembled: int64 so that no grid size can
# overflow them (scipy then picks the CSR's own index width).
_POSITION_DTYPE = np.int64
_MISSING = -1  # position of an id that is not a unit of the graph


@dataclass(frozen=True, eq=False)
class NeighbourGraph:
    """Binary neighbour relation over a fixed, ordered set of units, built once per grid.

    ``ids[i]`` is the unit of row and column i of ``adjacency``, an n x n CSR matrix of
    ones with sorted column indices, no duplicates and an empty diagonal (the Gi* self
    weight is added by ``analytics.hotspots.getis_ord``, not stored). Build it with
    ``neighbour_graph`` or ``cells_to_neighbour_graph``; the graph takes ownership of the
    matrix and makes its arrays read-only so a cached graph cannot be altered by a caller.

    ``closed_adjacency`` (A + I, derived) is kept alongside for Gi*: summing each closed
    neighbourhood in one column-ordered pass gives bit-identical sums to units with the
    same neighbourhood, so their Z scores tie exactly instead of differing in the last bit.
    """

    ids: pd.Index
    adjacency: sp.csr_array
    closed_adjacency: sp.csr_array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.ids, pd.Index):
            raise TypeError(f"ids must be a pandas Index, got {type(self.ids).__name__}")
        if not self.ids.is_unique:
            raise ValueError("ids must be unique (one row per unit)")
        n = len(self.ids)
        if not isinstance(self.adjacency, sp.csr_array) or self.adjacency.shape != (n, n):
            raise ValueError(f"adjacency must be a {n} x {n} scipy.sparse.csr_array")
        if not self.adjacency.has_canonical_format:
            raise ValueError("adjacency must have sorted indices and no duplicates")
        if np.any(self.adjacency.data != 1.0) or np.any(self.adjacency.diagonal() != 0.0):
            raise ValueError("adjacency must be binary with an empty diagonal")
        closed = sp.csr_array(self.adjacency + sp.eye_array(n, format="csr"))
        closed.sort_indices()
        object.__setattr__(self, "closed_adjacency", closed)  # frozen: set once, here
        for matrix in (self.adjacency, self.closed_adjacency):
            for array in (matrix.data, matrix.indices, matrix.indptr):
                array.flags.writeable = False

    @property
    def n_units(self) -> int:
        return len(self.ids)

    @property
    def degree(self) -> np.ndarray:
        """Number of neighbours of each unit (0 for an island)."""
        return np.diff(self.adjacency.indptr)

    def neighbour_lists(self) -> dict[Hashable, list[Hashable]]:
        """The graph back as {id: [neighbour ids]} (neighbours in ``ids`` order)."""
        id_array = np.asarray(self.ids, dtype=object)
        per_unit = np.split(id_array[self.adjacency.indices], self.adjacency.indptr[1:-1])
        return {unit: neighbours.tolist() for unit, neighbours in zip(id_array.tolist(), per_unit)}


def neighbour_graph(
    ids: Iterable[Hashable], neighbors: Mapping[Hashable, Sequence[Hashable]], *, ids_name: str = "ids"
) -> NeighbourGraph:
    """Graph over ``ids`` (unique, order kept) from a dict id -> neighbour ids.

    Units missing from ``neighbors`` are islands; every id named in it must be in ``ids``
    (keys with an empty list excepted). Self-references and repeats are ignored.
    ``ids_name`` is what error messages call the ids (a caller's own argument name).
    """
    index = ids if isinstance(ids, pd.Index) else pd.Index(list(ids))
    if not index.is_unique:
        raise ValueError(f"{ids_name} must be unique (one row per unit)")
    position = dict(zip(index.tolist(), range(len(index))))
    focal_ids = list(neighbors)
    list_sizes = np.fromiter(map(len, neighbors.values()), dtype=_POSITION_DTYPE, count=len(focal_ids))
    focal_pos = np.fromiter(
        map(position.get, focal_ids, repeat(_MISSING)), dtype=_POSITION_DTYPE, count=len(focal_ids)
    )
    # A key with an empty list adds no edge, so it is not required to be a unit.
    unknown_focal = (focal_pos == _MISSING) & (list_sizes > 0)
    if np.any(unknown_focal):
        examples = [focal_ids[i] for i in np.flatnonzero(unknown_focal)[:5]]
        raise ValueError(f"neighbors has units not in {ids_name}, e.g. {examples}")
    cols = np.fromiter(
        map(position.get, chain.from_iterable(neighbors.values()), repeat(_MISSING)),
        dtype=_POSITION_DTYPE,
        count=int(list_sizes.sum()),
    )
    if np.any(cols == _MISSING):
        flat = list(chain.from_iterable(neighbors.values()))
        examples = [flat[i] for i in np.flatnonzero(cols == _MISSING)[:5]]
        raise ValueError(f"neighbor lists name units not in {ids_name}, e.g. {examples}")
    rows = np.repeat(focal_pos, list_sizes)
    return NeighbourGraph(index, _binary_adjacency(rows, cols, len(index)))


def cells_to_neighbour_graph(cells: Iterable[str], k: int = 1) -> NeighbourGraph:
    """k-ring graph of H3 cells, restricted to the given cells (repeats dropped, order kept).

    The ring members of every cell (``grid_disk`` through h3's integer API) are located
    among the cells by a vectorised search on the sorted uint64 ids. Cells with no given
    cell within k steps are islands.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ids = cells if isinstance(cells, pd.Index) and cells.is_unique else pd.Index(list(dict.fromkeys(cells)))
    cell_ints = unique_cells_to_ints(ids.tolist())
    disk_sizes, members = grid_disks_of_cell_ints(cell_ints, k)
    rows = np.repeat(np.arange(len(ids), dtype=_POSITION_DTYPE), disk_sizes)
    cols = _positions_of(cell_ints, members)
    present = cols != _MISSING
    return NeighbourGraph(ids, _binary_adjacency(rows[present], cols[present], len(ids)))


def cells_to_neighbour_lists(cells: Iterable[str], k: int = 1) -> dict[str, list[str]]:
    """k-ring neighbours of each cell, restricted to the given cells (self excluded).

    Cells without any listed cell within k steps map to an empty list (islands), so
    every given cell is a key. Lists are sorted for reproducible weights. For repeated
    use prefer ``cells_to_neighbour_graph``, which ``getis_ord`` takes directly.
    """
    graph = cells_to_neighbour_graph(cells, k)
    return {cell: sorted(neighbours) for cell, neighbours in graph.neighbour_lists().items()}


def _positions_of(unit_ints: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Position of each ``wanted`` id in ``unit_ints`` (unique), ``_MISSING`` where absent."""
    if unit_ints.size == 0:
        return np.full(wanted.size, _MISSING, dtype=_POSITION_DTYPE)
    order = np.argsort(unit_ints, kind="stable")
    sorted_ints = unit_ints[order]
    if np.any(sorted_ints[1:] == sorted_ints[:-1]):
        # Only possible through spelling: h3 accepts upper- and lower-case hex for one cell.
        raise ValueError("the same H3 cell is given twice (spelled differently)")
    slot = np.minimum(np.searchsorted(sorted_ints, wanted), unit_ints.size - 1)
    return np.where(sorted_ints[slot] == wanted, order[slot], _MISSING).astype(_POSITION_DTYPE)


def _binary_adjacency(rows: np.ndarray, cols: np.ndarray, n: int) -> sp.csr_array:
    """n x n 0/1 CSR from (row, col) pairs: self-pairs dropped, repeats counted once."""
    off_diagonal = rows != cols  # the Gi* self weight is added by getis_ord, never stored
    rows, cols = rows[off_diagonal], cols[off_diagonal]
    adjacency = sp.csr_array((np.ones(rows.size), (rows, cols)), shape=(n, n))
    adjacency.sum_duplicates()  # sorted indices, one entry per pair (repeats summed ...)
    adjacency.data[:] = 1.0  # ... then clipped back to binary
    return adjacency
