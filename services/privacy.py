"""The one privacy function: every read model cuts its tables to the caller with ``disclose``.

Three rules, applied in this order, decided by the principal's detail level and precincts:

1. **Detail level.** A table has a grain: ``city`` and ``area`` figures are aggregates that every
   principal may see; ``cell`` rows (H3 cells) need the ``cells`` level; ``point`` rows (single
   cases, record keys, coordinates) need ``points``. A table the principal may not see at all
   comes back empty, with its columns, so a page draws "nothing here" rather than failing.
2. **Precinct scope.** A principal bound to precincts (police) sees cells and points only inside
   them; elsewhere it sees what the public sees (areas and the city, suppressed). Of a table of
   precinct figures (``Disclosure.precinct_column``) it gets its own precincts' rows.
3. **Small counts.** Below the ``points`` level, a count of people from 1 to ``min_count - 1`` is
   withheld, and so is every figure derived from it (a rate, a share). Where the rows are parts of
   a total that is also shown (areas of the city, facilities of the city's hospitals), a single
   withheld part could be recovered by subtraction, so the next smallest part of its group is
   withheld too (complementary suppression; each group ends with none or at least two withheld).
   Zero is shown: "no cases here" is the figure, and it singles nobody out.
4. **Tables with margins.** A two-way table (areas x days, say) published with its row totals, column
   totals and grand total (``Disclosure.margins``) is a system of sums: a withheld entry can be solved
   from any combination of rows and columns, not only from its own line. After the small counts are
   withheld, every withheld entry that the shown entries and the sums determine exactly (its row of the
   null space of the sums is zero) takes one more entry of its row or column with it, the smallest, until
   none is determined. Entries already published elsewhere (``Margins.released``: True shown there, False
   withheld there) are known: hiding them here protects nothing, and showing one withheld there would undo
   that release's own protection.

Every release of cell- or case-level rows is noted in the per-request ledger (auth.ledger); auth.web
writes one ``data_access`` audit record per release for a signed-in caller when the response leaves,
so a page or API handler cannot forget to audit a read.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.catalog import small_counts
from auth.ledger import note_release
from auth.principal import Principal
from geo.areas import AreaShape, geometry_from_geojson
from geo.containment import areas_of_cells, point_areas
from store import Store
from store import queries as q

GRAINS = ("city", "area", "cell", "point")
_LEVEL_FOR_GRAIN = {"city": "aggregates", "area": "aggregates", "cell": "cells", "point": "points"}
SUPPRESSED_SUFFIX = "__suppressed"


@dataclass(frozen=True)
class Disclosure:
    """How one table is cut. ``resource`` names it in the audit log."""
    resource: str
    grain: str
    counts: tuple[str, ...] = ()  # columns holding counts of people
    derived: tuple[tuple[str, str], ...] = ()  # (column, the count column it is computed from)
    complementary: tuple[str, ...] = ()  # count columns whose rows are parts of a total shown beside them
    group_by: tuple[str, ...] = ()  # complementary suppression within these groups (e.g. one day)
    cell_column: str | None = "h3_cell"  # the row's cell (grain "cell"); None when rows hold cell lists only
    cell_list_columns: tuple[str, ...] = ()  # columns holding lists of cells (a zone's, a cluster's)
    lat_column: str = "lat"
    lng_column: str = "lng"
    case_level_columns: tuple[str, ...] = ()  # text that may identify a case: blanked below "points"
    # Area rows that are precincts (their id in this column): a principal bound to precincts gets its own
    # precincts' rows only, cut after small counts are withheld on the whole table (the same figures as
    # everyone else sees, and nothing about the precincts it does not serve).
    precinct_column: str | None = None
    margins: "Margins | None" = None  # complementary suppression over a two-way table with its totals

    def __post_init__(self):
        if self.grain not in GRAINS:
            raise ValueError(f"grain must be one of {GRAINS}, got {self.grain!r}")


MARGIN_TOTAL = "total"


@dataclass(frozen=True)
class Margins:
    """A two-way table held long, one row per entry: ``row`` and ``column`` name the entry's place; where
    one of them is ``total`` the entry is that line's sum (both: the grand total)."""
    row: str
    column: str
    total: str = MARGIN_TOTAL
    released: str | None = None  # optional boolean column: True = shown in another release, False = withheld there


# ---- jurisdiction ----------------------------------------------------------------------------------
class Jurisdiction:
    """The precinct polygons, to tell whether a cell or a point lies in a principal's precincts."""

    def __init__(self, precincts: Sequence[AreaShape]):
        self._shapes = {a.area_id: a for a in precincts}
        self._lock = threading.Lock()
        self._cell_area: dict[str, str | None] = {}

    def precinct_of_cells(self, cells: Iterable[str]) -> dict[str, str | None]:
        wanted = [c for c in dict.fromkeys(cells) if isinstance(c, str)]
        with self._lock:
            missing = [c for c in wanted if c not in self._cell_area]
        if missing:
            found = areas_of_cells(missing, list(self._shapes.values()))
            with self._lock:
                for c in missing:
                    self._cell_area[c] = found.get(c)
        with self._lock:
            return {c: self._cell_area.get(c) for c in wanted}

    def cells_within(self, cells: pd.Series, precincts: frozenset[str]) -> np.ndarray:
        """Boolean mask: the cell's centre lies in one of ``precincts``."""
        located = self.precinct_of_cells(cells.dropna().tolist())
        return cells.map(lambda c: located.get(c) in precincts).to_numpy(dtype=bool)

    def points_within(self, lat: pd.Series, lng: pd.Series, precincts: frozenset[str]) -> np.ndarray:
        shapes = [self._shapes[p] for p in precincts if p in self._shapes]
        if not shapes or len(lat) == 0:
            return np.zeros(len(lat), dtype=bool)
        ok = lat.notna().to_numpy() & lng.notna().to_numpy()
        out = np.zeros(len(lat), dtype=bool)
        if ok.any():
            out[ok] = pd.notna(point_areas(lat[ok].to_numpy(float), lng[ok].to_numpy(float), shapes))
        return out


_jurisdictions: dict[tuple[str, str], Jurisdiction] = {}
_jurisdiction_lock = threading.Lock()


def jurisdiction(store: Store) -> Jurisdiction:
    """The city's precincts as stored (rebuilt when the areas change)."""
    key = (str(store.path), q.areas_version(store))
    with _jurisdiction_lock:
        found = _jurisdictions.get(key)
    if found is not None:
        return found
    shapes = []
    for r in q.areas(store, ("precinct",)).itertuples(index=False):
        try:
            shapes.append(AreaShape(r.area_id, r.name, r.kind, r.population, geometry_from_geojson(r.geometry)))
        except ValueError:
            continue  # a precinct that cannot be parsed holds nothing: its officers see only public figures
    made = Jurisdiction(shapes)
    with _jurisdiction_lock:
        _jurisdictions.clear()  # one city per process: keep the newest
        _jurisdictions[key] = made
    return made


# ---- the function ----------------------------------------------------------------------------------
def disclose(principal: Principal, frame: pd.DataFrame, spec: Disclosure, *, min_count: int,
             jurisdiction: Jurisdiction | None = None) -> pd.DataFrame:
    """``frame`` cut to what ``principal`` may see (see the module docstring for the rules).

    Count and derived columns come back as floats with NaN where withheld, each with a boolean
    ``<column>__suppressed`` beside it; case-level text columns are None below ``points``.
    """
    out = frame.copy()
    needed = _LEVEL_FOR_GRAIN[spec.grain]
    if not principal.sees_at_least(needed):
        return _with_flags(out.iloc[0:0], spec)
    if spec.grain in ("cell", "point") and principal.precincts:
        out = _cut_to_scope(out, spec, principal.precincts, jurisdiction)
    out = out.reset_index(drop=True)
    if not principal.may_see_points:
        for column in spec.case_level_columns:
            if column in out:
                out[column] = None
    out = _suppress_small_counts(out, spec, min_count, enabled=not principal.may_see_small_counts)
    if spec.precinct_column is not None and principal.precincts:
        out = out[out[spec.precinct_column].isin(principal.precincts)].reset_index(drop=True)
    if spec.grain in ("cell", "point"):
        note_release(spec.resource, needed, len(out))
    return out


def may_see_cell(principal: Principal, cell: str, jurisdiction: Jurisdiction | None) -> bool:
    """Whether one cell is within what the principal may see (detail level and precincts): the rule
    disclose() applies to a table of cells, asked of one cell (a place someone clicked)."""
    if not principal.sees_at_least("cells"):
        return False
    if not principal.precincts:
        return True
    if jurisdiction is None:
        raise ValueError("a precinct-bound principal needs the jurisdiction to cut by")
    return bool(jurisdiction.cells_within(pd.Series([cell]), principal.precincts)[0])


def point_in_scope(principal: Principal, lat: float, lng: float, jurisdiction: Jurisdiction | None) -> bool:
    """Whether one point lies within the principal's precinct scope (always, for a principal not bound to
    precincts): the scope rule of disclose(), asked of one place. The address check uses it to decide
    whether an officer may be told about the address, whatever the detail level (its own permission)."""
    if not principal.precincts:
        return True
    if jurisdiction is None:
        raise ValueError("a precinct-bound principal needs the jurisdiction to cut by")
    return bool(jurisdiction.points_within(pd.Series([lat]), pd.Series([lng]), principal.precincts)[0])


def _cut_to_scope(frame: pd.DataFrame, spec: Disclosure, precincts: frozenset[str],
                  jurisdiction: Jurisdiction | None) -> pd.DataFrame:
    """Rows (and cells of cell lists) inside the principal's precincts only."""
    if jurisdiction is None:
        raise ValueError(f"{spec.resource}: a precinct-bound principal needs the jurisdiction to cut by")
    if spec.grain == "point":
        return frame[jurisdiction.points_within(frame[spec.lat_column], frame[spec.lng_column], precincts)]
    if spec.cell_column is not None:
        frame = frame[jurisdiction.cells_within(frame[spec.cell_column], precincts)]
    if spec.cell_list_columns and len(frame):
        frame = frame.copy()
        every = [c for column in spec.cell_list_columns for cells in frame[column] for c in _cell_list(cells)]
        located = jurisdiction.precinct_of_cells(every)
        for column in spec.cell_list_columns:
            frame[column] = [[c for c in _cell_list(cells) if located.get(c) in precincts] for cells in frame[column]]
        if spec.cell_column is None:
            keep = np.zeros(len(frame), dtype=bool)
            for column in spec.cell_list_columns:
                keep |= np.array([len(cells) > 0 for cells in frame[column]], dtype=bool)
            frame = frame[keep]
    return frame


def _cell_list(cells) -> list:
    """A stored list of cells (DuckDB hands VARCHAR[] over as an array) as a list; [] for none."""
    return [] if cells is None or (isinstance(cells, float) and np.isnan(cells)) else list(cells)


def _with_flags(frame: pd.DataFrame, spec: Disclosure) -> pd.DataFrame:
    """The table with its count and derived columns as floats and all-False flags beside them."""
    return _replace_columns(frame, *_numeric_columns(frame, spec))


def _numeric_columns(frame: pd.DataFrame, spec: Disclosure) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    columns = [c for c in dict.fromkeys((*spec.counts, *(c for c, _ in spec.derived))) if c in frame]
    values = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float, copy=True) for c in columns}
    flags = {c: np.zeros(len(frame), dtype=bool) for c in columns}
    return values, flags


def _replace_columns(frame: pd.DataFrame, values: dict[str, np.ndarray], flags: dict[str, np.ndarray]) -> pd.DataFrame:
    # One concat instead of a column at a time: a wide table (every indicator) is cut on each refresh.
    if not values:
        return frame
    new = pd.DataFrame({**values, **{c + SUPPRESSED_SUFFIX: f for c, f in flags.items()}}, index=frame.index)
    kept = frame.drop(columns=[c for c in new.columns if c in frame.columns])
    return pd.concat([kept, new], axis=1)


def _suppress_small_counts(frame: pd.DataFrame, spec: Disclosure, min_count: int, enabled: bool) -> pd.DataFrame:
    values, flags = _numeric_columns(frame, spec)
    if enabled and len(frame):
        for column in spec.counts:
            if column not in values:
                continue
            v = values[column]
            small = small_counts(v, min_count)
            if column in spec.complementary and spec.margins is not None:
                small = _complementary_with_margins(frame, v, small, spec.group_by, spec.margins)
            elif column in spec.complementary:
                small = _complementary(frame, v, small, spec.group_by)
            flags[column] = small
            v[small] = np.nan
        for column, basis in spec.derived:
            if column in values and basis in flags:
                hidden = flags[basis] | flags[column]
                flags[column] = hidden
                values[column][hidden] = np.nan
    return _replace_columns(frame, values, flags)


def _complementary(frame: pd.DataFrame, values: np.ndarray, small: np.ndarray, group_by: tuple[str, ...]
                   ) -> np.ndarray:
    """Withhold the next smallest positive part of any group that has exactly one withheld part."""
    small = small.copy()
    groups = [np.arange(len(frame))] if not group_by else [
        np.asarray(idx) for idx in frame.groupby(list(group_by), sort=False).indices.values()]
    for rows in groups:
        while small[rows].sum() == 1:
            candidates = [r for r in rows if not small[r] and math.isfinite(values[r]) and values[r] > 0]
            if not candidates:
                break  # the only other parts are zero or unknown: nothing left to hide it behind
            small[min(candidates, key=lambda r: values[r])] = True
    return small


# ---- tables with margins ---------------------------------------------------------------------------
def _complementary_with_margins(frame: pd.DataFrame, values: np.ndarray, small: np.ndarray,
                                group_by: tuple[str, ...], margins: Margins) -> np.ndarray:
    """Withhold entries of each two-way table until no withheld entry can be solved from the sums."""
    hidden = small.copy()
    known_elsewhere = np.zeros(len(frame), dtype=bool)
    if margins.released is not None:
        released = frame[margins.released]
        known_elsewhere = (released == True).to_numpy(dtype=bool)  # noqa: E712 (a column of True/False/None)
        hidden |= (released == False).to_numpy(dtype=bool)  # noqa: E712
        hidden &= ~known_elsewhere
    groups = [np.arange(len(frame))] if not group_by else [
        np.asarray(idx) for idx in frame.groupby(list(group_by), sort=False).indices.values()]
    for rows in groups:
        hidden[rows] = _protect_table(frame.iloc[rows], values[rows], hidden[rows], known_elsewhere[rows], margins)
    return hidden


def _table_relations(frame: pd.DataFrame, margins: Margins) -> list[np.ndarray]:
    """Each sum of the table as the positions of its entries: the parts, then the total last."""
    row_keys = frame[margins.row].astype(str).to_numpy()
    col_keys = frame[margins.column].astype(str).to_numpy()
    total = margins.total
    relations = []
    for axis_keys, other_keys in ((row_keys, col_keys), (col_keys, row_keys)):
        for key in dict.fromkeys(axis_keys):
            line = np.flatnonzero(axis_keys == key)
            parts = line[other_keys[line] != total]
            sums = line[other_keys[line] == total]
            if len(parts) and len(sums) == 1:
                relations.append(np.append(parts, sums[0]))
    return relations


def _determined(relations: list[np.ndarray], hidden: np.ndarray) -> np.ndarray:
    """Which withheld entries the sums fix exactly, whatever the shown entries are: x_e is fixed iff
    e's row of the null space of the sums (restricted to withheld entries) is zero."""
    unknown = np.flatnonzero(hidden)
    out = np.zeros(len(hidden), dtype=bool)
    if len(unknown) == 0:
        return out
    column_of = {int(u): i for i, u in enumerate(unknown)}
    matrix = np.zeros((len(relations), len(unknown)))
    for r, positions in enumerate(relations):
        for p in positions[:-1]:
            if int(p) in column_of:
                matrix[r, column_of[int(p)]] = 1.0
        if int(positions[-1]) in column_of:
            matrix[r, column_of[int(positions[-1])]] = -1.0
    from scipy.linalg import null_space
    basis = null_space(matrix) if matrix.any() else np.eye(len(unknown))
    free = np.abs(basis).max(axis=1) > 1e-9 if basis.size else np.zeros(len(unknown), dtype=bool)
    out[unknown[~free]] = True
    return out


def _protect_table(frame: pd.DataFrame, values: np.ndarray, hidden: np.ndarray, known: np.ndarray,
                   margins: Margins) -> np.ndarray:
    hidden = hidden.copy()
    relations = _table_relations(frame, margins)
    if known.any():
        # What the sums give from public entries alone (a row total of public days) is public too:
        # hiding it protects nothing, and it can never be made unsolvable.
        known = known | _determined(relations, ~known)
        hidden &= ~known
    while True:
        added = False
        for entry in np.flatnonzero(_determined(relations, hidden) & ~known):
            # Hide one more entry beside it, in its row or column (else anywhere): preferably one whose
            # other line already holds a withheld entry, which closes a cycle of withheld entries (a
            # cycle can be shifted by +t/-t around it, so none of its entries is fixed); then the
            # smallest. Zeros stay shown, and an entry public elsewhere protects nothing.
            lines = [r for r in relations if entry in r]
            beside = {int(p) for r in lines for p in r}
            choices = [p for p in beside if _may_hide(p, hidden, known, values)]
            if not choices:
                choices = [p for p in range(len(values)) if _may_hide(p, hidden, known, values)]
            if choices:
                def closes_cycle(p: int) -> bool:
                    return any(hidden[r].sum() > 0 for r in relations if p in r and not any(r is x for x in lines))
                hidden[min(choices, key=lambda p: (not closes_cycle(p), values[p], p))] = True
                added = True
                break
        if not added:
            return hidden  # none exposed, or only by what is zero or public elsewhere (that release decides)


def _may_hide(position: int, hidden: np.ndarray, known: np.ndarray, values: np.ndarray) -> bool:
    return not hidden[position] and not known[position] and bool(np.isfinite(values[position])) \
        and values[position] > 0
