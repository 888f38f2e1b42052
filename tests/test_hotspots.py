"""Getis-Ord Gi / Gi* against PySAL esda 2.9.0 reference values, and H3 neighbour graphs.

Both forms of the neighbour argument are covered: a dict of id lists and a prebuilt
NeighbourGraph (the cached form the dashboard reuses), which must give identical results.
"""

from __future__ import annotations

import json
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from analytics.hotspots import getis_ord
from geo.neighbours import NeighbourGraph, cells_to_neighbour_graph, cells_to_neighbour_lists, neighbour_graph

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ESDA = SHARED / "esda-getisord"
NYC_TOTALS = SHARED / "nychealth-coronavirus-data" / "totals" / "data-by-modzcta.csv"

# The fixture's stored full vectors; esda's keys -> our columns.
COLUMNS = {"Gs": "G", "EGs": "EG", "VGs": "VG", "Zs": "Z", "p_norm": "p"}
ROOSEVELT_ISLAND = 10044  # the one MODZCTA without a Queen neighbour


@pytest.fixture(scope="module")
def fixture() -> dict:
    path = ESDA / "getisord_esda_fixture_expected.json"
    assert path.exists(), f"reference data missing: {path}"
    return json.loads(path.read_text())


def _neighbour_lists(name: str) -> dict[int, list[int]]:
    path = ESDA / f"nyc_modzcta_{name}_neighbors.csv"
    assert path.exists(), f"reference data missing: {path}"
    edges = pd.read_csv(path)
    return edges.groupby("MODZCTA")["neighbor_MODZCTA"].apply(list).to_dict()


@pytest.fixture(scope="module")
def nyc_case_rates() -> pd.Series:
    assert NYC_TOTALS.exists(), f"reference data missing: {NYC_TOTALS}"
    return pd.read_csv(NYC_TOTALS).set_index("MODIFIED_ZCTA")["COVID_CASE_RATE"]


@pytest.mark.parametrize("variant", ["binary", "row_standardized", "star_binary", "star_row_standardized"])
def test_matches_esda_on_every_element(fixture: dict, variant: str) -> None:
    expected = fixture["results"][variant]
    kwargs = expected["kwargs"]
    values = pd.Series(fixture["y"])
    neighbors = {int(unit): ids for unit, ids in fixture["neighbors"].items()}

    result = getis_ord(values, neighbors, star=bool(kwargs.get("star", False)), transform=kwargs["transform"])

    assert list(result.columns) == ["G", "EG", "VG", "Z", "p"]
    assert result.index.equals(values.index)
    for esda_key, column in COLUMNS.items():
        np.testing.assert_allclose(result[column].to_numpy(), expected[esda_key], rtol=1e-9, atol=1e-12, err_msg=f"{variant} {column}")


def test_readme_facts_for_the_fixture(fixture: dict) -> None:
    values = pd.Series(fixture["y"])
    neighbors = {int(unit): ids for unit, ids in fixture["neighbors"].items()}
    assert getis_ord(values, neighbors)["Z"].iloc[0] == pytest.approx(-1.0136729, abs=1e-7)
    assert getis_ord(values, neighbors, star=True)["Z"].iloc[0] == pytest.approx(-1.39727626, abs=1e-8)


def test_self_references_and_repeats_do_not_change_the_weights(fixture: dict) -> None:
    values = pd.Series(fixture["y"])
    neighbors = {int(unit): ids for unit, ids in fixture["neighbors"].items()}
    noisy = {unit: [unit, *ids, *ids] for unit, ids in neighbors.items()}
    for star in (False, True):
        pd.testing.assert_frame_equal(getis_ord(values, noisy, star=star), getis_ord(values, neighbors, star=star))


def test_nyc_queen_binary_hot_and_cold_spots(nyc_case_rates: pd.Series) -> None:
    result = getis_ord(nyc_case_rates, _neighbour_lists("queen"))

    assert len(result) == 177
    assert result.loc[10001, "Z"] == pytest.approx(0.11774052257074837, rel=1e-9)
    hottest = result["Z"].nlargest(5)
    assert list(hottest.index) == [10314, 10312, 10301, 10306, 10308]
    np.testing.assert_allclose(hottest.to_numpy(), [5.5281, 4.4668, 4.0683, 3.9728, 3.7912], atol=5e-5)
    coldest = result["Z"].nsmallest(5)
    assert list(coldest.index) == [10013, 10007, 10006, 11238, 10033]
    np.testing.assert_allclose(coldest.to_numpy(), [-2.9423, -2.6215, -2.5467, -2.3445, -2.2810], atol=5e-5)


def test_nyc_queen_island_has_no_z_under_gi_but_has_one_under_gi_star(nyc_case_rates: pd.Series) -> None:
    queen = _neighbour_lists("queen")
    assert ROOSEVELT_ISLAND not in queen

    gi = getis_ord(nyc_case_rates, queen)
    island = gi.loc[ROOSEVELT_ISLAND]
    assert island["G"] == 0 and island["EG"] == 0 and island["VG"] == 0
    assert np.isnan(island["Z"]) and np.isnan(island["p"])
    others = gi.drop(index=ROOSEVELT_ISLAND)
    assert np.isfinite(others[["G", "EG", "VG", "Z", "p"]].to_numpy()).all()

    gi_star = getis_ord(nyc_case_rates, queen, star=True)
    assert np.isfinite(gi_star.loc[ROOSEVELT_ISLAND, "Z"])
    assert np.isfinite(gi_star["Z"]).all()


@pytest.mark.parametrize("star", [False, True])
def test_nyc_knn5_basic_properties(nyc_case_rates: pd.Series, star: bool) -> None:
    knn = _neighbour_lists("knn5_lonlat")
    assert all(len(ids) == 5 for ids in knn.values())
    n = len(nyc_case_rates)

    binary = getis_ord(nyc_case_rates, knn, star=star, transform="B")
    row_std = getis_ord(nyc_case_rates, knn, star=star, transform="R")

    own = 1 if star else 0
    n_eff = n if star else n - 1
    np.testing.assert_allclose(binary["EG"], (5 + own) / n_eff)  # E[G_i] = W_i / N
    np.testing.assert_allclose(row_std["EG"], 1.0 / n_eff)  # rows sum to one
    for result in (binary, row_std):
        assert result["Z"].notna().all()
        assert ((result["G"] > 0) & (result["G"] < 1)).all()  # a share of a positive total
        assert ((result["p"] > 0) & (result["p"] <= 0.5)).all()  # one-sided on |Z|
        assert (result["VG"] > 0).all()
    if star:
        # Every row weighs the same (5 + self) and Gi* uses one global mean and variance, so
        # both Z's are the same increasing affine function of the neighbourhood sum.
        assert np.corrcoef(binary["Z"], row_std["Z"])[0, 1] == pytest.approx(1.0, abs=1e-12)
        assert (binary["Z"].rank() == row_std["Z"].rank()).all()


def _h3_disk_values(seed: int) -> tuple[pd.Series, str, list[str]]:
    centre = h3.latlng_to_cell(40.7128, -74.0060, 9)
    cells = sorted(h3.grid_disk(centre, 8))  # 217 cells
    rng = np.random.default_rng(seed)
    values = pd.Series(rng.poisson(5.0, size=len(cells)).astype(float), index=cells)
    hot_centre = h3.grid_ring(centre, 4)[0]
    block = h3.grid_disk(hot_centre, 1)
    values[block] = 30.0
    return values, hot_centre, block


@pytest.mark.parametrize("star", [False, True])
def test_planted_hot_block_on_h3_grid_gets_the_highest_z(star: bool) -> None:
    values, hot_centre, block = _h3_disk_values(seed=7)
    neighbors = cells_to_neighbour_lists(values.index, k=1)

    result = getis_ord(values, neighbors, star=star)

    assert result["Z"].idxmax() == hot_centre if star else result["Z"].idxmax() in block
    assert result.loc[hot_centre, "Z"] > 3.0
    assert result.loc[hot_centre, "p"] < 0.01
    if star:
        # Every block cell is hotter than every cell away from the block.
        far = [cell for cell in values.index if h3.grid_distance(cell, hot_centre) > 2]
        assert result.loc[block, "Z"].min() > result.loc[far, "Z"].max()


def test_cells_to_neighbour_lists_builds_symmetric_k_rings_within_the_given_cells() -> None:
    centre = h3.latlng_to_cell(40.7128, -74.0060, 9)
    cells = list(h3.grid_disk(centre, 3))
    lonely = h3.latlng_to_cell(40.60, -73.80, 9)  # far away: an island

    graph = cells_to_neighbour_lists([*cells, lonely, centre], k=1)

    assert set(graph) == {*cells, lonely}
    assert graph[lonely] == []
    assert sorted(graph[centre]) == sorted(h3.grid_ring(centre, 1))
    for cell, ids in graph.items():
        assert cell not in ids
        assert ids == sorted(ids)
        assert all(cell in graph[other] for other in ids)  # symmetric
    outer = h3.grid_ring(centre, 3)
    assert all(len(graph[cell]) < 6 for cell in outer)  # cut off at the edge of the set

    two = cells_to_neighbour_lists(cells, k=2)
    assert sorted(two[centre]) == sorted(set(h3.grid_disk(centre, 2)) - {centre})


def test_bad_input_is_rejected_with_a_clear_error() -> None:
    values = pd.Series([1.0, 2.0, 3.0], index=["a", "b", "c"])
    with pytest.raises(ValueError, match="transform"):
        getis_ord(values, {"a": ["b"]}, transform="V")
    with pytest.raises(ValueError, match="not in values.index"):
        getis_ord(values, {"a": ["zz"]})
    with pytest.raises(ValueError, match="not in values.index"):
        getis_ord(values, {"zz": ["a"]})
    with pytest.raises(ValueError, match="finite"):
        getis_ord(pd.Series([1.0, np.nan, 3.0], index=["a", "b", "c"]), {})
    with pytest.raises(ValueError, match="at least 3"):
        getis_ord(values.iloc[:2], {})
    with pytest.raises(ValueError, match="valid H3"):
        cells_to_neighbour_lists(["not-a-cell"])
    with pytest.raises(ValueError, match="valid H3"):
        cells_to_neighbour_graph([h3.latlng_to_cell(40.7, -74.0, 9), "-1"])  # h3 itself raises OverflowError
    with pytest.raises(ValueError, match="k must be"):
        cells_to_neighbour_lists([], k=0)
    with pytest.raises(ValueError, match="unique"):
        neighbour_graph(["a", "b", "a"], {})
    with pytest.raises(ValueError, match="not in ids"):
        neighbour_graph(["a", "b", "c"], {"a": ["zz"]})
    graph = neighbour_graph(["a", "b", "c"], {"a": ["b"]})
    with pytest.raises(ValueError, match="exactly the graph's ids"):
        getis_ord(pd.Series([1.0, 2.0, 3.0, 4.0], index=["a", "b", "c", "d"]), graph)
    with pytest.raises(ValueError, match="exactly the graph's ids"):
        getis_ord(pd.Series([1.0, 2.0, 3.0], index=["a", "b", "zz"]), graph)
    with pytest.raises(ValueError, match="unique"):
        getis_ord(pd.Series([1.0, 2.0, 3.0], index=["a", "b", "b"]), graph)


# ------------------------------------------------------------------ NeighbourGraph input


def _fixture_graph_inputs(fixture: dict) -> tuple[pd.Series, dict[int, list[int]]]:
    values = pd.Series(fixture["y"])
    return values, {int(unit): ids for unit, ids in fixture["neighbors"].items()}


@pytest.mark.parametrize("transform", ["B", "R"])
@pytest.mark.parametrize("star", [False, True])
def test_dict_and_neighbour_graph_give_identical_results(fixture: dict, nyc_case_rates: pd.Series, star: bool, transform: str) -> None:
    values, neighbors = _fixture_graph_inputs(fixture)
    graph = neighbour_graph(values.index, neighbors)
    pd.testing.assert_frame_equal(
        getis_ord(values, graph, star=star, transform=transform),
        getis_ord(values, neighbors, star=star, transform=transform),
        check_exact=True,
    )

    # NYC Queen has an island (absent from the dict); H3 ids come through cells_to_neighbour_graph.
    queen = _neighbour_lists("queen")
    pd.testing.assert_frame_equal(
        getis_ord(nyc_case_rates, neighbour_graph(nyc_case_rates.index, queen), star=star, transform=transform),
        getis_ord(nyc_case_rates, queen, star=star, transform=transform),
        check_exact=True,
    )
    h3_values, _, _ = _h3_disk_values(seed=11)
    pd.testing.assert_frame_equal(
        getis_ord(h3_values, cells_to_neighbour_graph(h3_values.index, k=1), star=star, transform=transform),
        getis_ord(h3_values, cells_to_neighbour_lists(h3_values.index, k=1), star=star, transform=transform),
        check_exact=True,
    )


def test_graph_with_ids_in_another_order_is_realigned_to_the_values(fixture: dict) -> None:
    values, neighbors = _fixture_graph_inputs(fixture)
    reversed_graph = neighbour_graph(values.index[::-1], neighbors)
    for star in (False, True):
        np.testing.assert_allclose(
            getis_ord(values, reversed_graph, star=star).to_numpy(),
            getis_ord(values, neighbors, star=star).to_numpy(),
            rtol=1e-12, atol=1e-15,
        )


def test_neighbour_graph_is_binary_without_self_loops_and_read_only(fixture: dict) -> None:
    values, neighbors = _fixture_graph_inputs(fixture)
    noisy = {unit: [unit, *ids, *ids] for unit, ids in neighbors.items()}
    graph = neighbour_graph(values.index, noisy)

    assert isinstance(graph, NeighbourGraph)
    assert graph.ids is values.index  # kept, so getis_ord can skip any re-alignment
    assert (graph.adjacency.data == 1.0).all() and (graph.adjacency.diagonal() == 0).all()
    np.testing.assert_array_equal(graph.degree, [len(set(neighbors.get(unit, []))) for unit in values.index])
    np.testing.assert_array_equal((graph.closed_adjacency - graph.adjacency).toarray(), np.eye(len(values)))
    assert graph.neighbour_lists() == {
        unit: sorted(set(neighbors.get(unit, [])), key=list(values.index).index) for unit in values.index
    }
    with pytest.raises(ValueError):
        graph.adjacency.data[0] = 5.0  # a cached graph cannot be altered behind getis_ord's back
    with pytest.raises(AttributeError):
        graph.ids = pd.Index([])  # type: ignore[misc]


def test_cells_to_neighbour_graph_matches_the_neighbour_dict() -> None:
    centre = h3.latlng_to_cell(40.7128, -74.0060, 9)
    cells = [*h3.grid_disk(centre, 4), h3.latlng_to_cell(40.60, -73.80, 9), centre]  # island, repeat
    for k in (1, 2):
        graph = cells_to_neighbour_graph(cells, k=k)
        assert list(graph.ids) == list(dict.fromkeys(cells))
        lists = {cell: sorted(ids) for cell, ids in graph.neighbour_lists().items()}
        present = set(cells)
        # Straight from h3, one cell at a time.
        assert lists == {cell: sorted(other for other in h3.grid_disk(cell, k) if other != cell and other in present)
                         for cell in graph.ids}
        assert (graph.adjacency != graph.adjacency.T).nnz == 0  # k-rings are symmetric
        assert lists[centre] == sorted(set(h3.grid_disk(centre, k)) - {centre})
