"""The one privacy function (services.privacy.disclose), tested exhaustively: every role and detail
level against every grain, the precinct scope of police, small-count and complementary suppression,
derived figures and case-level text, and the ledger that audits what was released."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from auth.ledger import start_ledger, take_releases
from auth.principal import ROLES, principal_for, public_principal
from geo.areas import AreaShape, geometry_from_geojson
from geo.cells import latlng_to_cell
from services.privacy import GRAINS, SUPPRESSED_SUFFIX, Disclosure, Jurisdiction, disclose

K = 5
# Two precincts side by side (GeoJSON lng,lat), and one cell well inside each.
WEST = {"type": "Polygon", "coordinates": [[[101.60, 2.90], [101.65, 2.90], [101.65, 2.95], [101.60, 2.95],
                                            [101.60, 2.90]]]}
EAST = {"type": "Polygon", "coordinates": [[[101.65, 2.90], [101.70, 2.90], [101.70, 2.95], [101.65, 2.95],
                                            [101.65, 2.90]]]}
JURISDICTION = Jurisdiction([AreaShape("P-W", "West", "precinct", None, geometry_from_geojson(WEST)),
                             AreaShape("P-E", "East", "precinct", None, geometry_from_geojson(EAST))])
CELL_W = latlng_to_cell(2.925, 101.625, 9)
CELL_E = latlng_to_cell(2.925, 101.675, 9)
OUTSIDE = latlng_to_cell(3.10, 101.90, 9)


def every_principal():
    """Every role as it signs in, police unbound and bound to the west precinct, and the public."""
    out = [principal_for(r.name, r.name) for r in ROLES if r.name != "public"]
    out.append(principal_for("cop-west", "police", ("P-W",)))
    out.append(public_principal())
    return out


def _cells_frame() -> pd.DataFrame:
    return pd.DataFrame({"h3_cell": [CELL_W, CELL_E, OUTSIDE], "cases": [3, 12, 7], "rate": [30.0, 120.0, 70.0]})


CELLS = Disclosure("test.cells", grain="cell", counts=("cases",), derived=(("rate", "cases"),))


@pytest.mark.parametrize("principal", every_principal(), ids=lambda p: f"{p.role}{'-bound' if p.precincts else ''}")
@pytest.mark.parametrize("grain", GRAINS)
def test_grain_by_level_and_scope(principal, grain):
    frame = pd.DataFrame({"h3_cell": [CELL_W, CELL_E], "lat": [2.925, 2.925], "lng": [101.625, 101.675],
                          "cases": [20, 30]})
    spec = Disclosure("test", grain=grain, counts=("cases",))
    out = disclose(principal, frame, spec, min_count=K, jurisdiction=JURISDICTION)
    needed = {"city": "aggregates", "area": "aggregates", "cell": "cells", "point": "points"}[grain]
    if not principal.sees_at_least(needed):
        assert out.empty and list(out.columns)[:4] == list(frame.columns)  # columns kept, no rows
        return
    if grain in ("cell", "point") and principal.precincts:
        assert list(out["h3_cell"]) == [CELL_W]  # only inside the bound precinct
    else:
        assert list(out["h3_cell"]) == [CELL_W, CELL_E]


@pytest.mark.parametrize("principal", every_principal(), ids=lambda p: f"{p.role}{'-bound' if p.precincts else ''}")
def test_small_counts_and_what_derives_from_them(principal):
    out = disclose(principal, _cells_frame(), CELLS, min_count=K, jurisdiction=JURISDICTION)
    if not principal.sees_at_least("cells"):
        assert out.empty
        return
    by_cell = out.set_index("h3_cell")
    if principal.may_see_small_counts:
        assert not by_cell["cases" + SUPPRESSED_SUFFIX].any() and by_cell.at[CELL_W, "cases"] == 3
        return
    if CELL_W in by_cell.index:
        assert np.isnan(by_cell.at[CELL_W, "cases"]) and by_cell.at[CELL_W, "cases" + SUPPRESSED_SUFFIX]
        assert np.isnan(by_cell.at[CELL_W, "rate"]) and by_cell.at[CELL_W, "rate" + SUPPRESSED_SUFFIX]
    for cell in set(by_cell.index) - {CELL_W}:
        assert not by_cell.at[cell, "cases" + SUPPRESSED_SUFFIX] and by_cell.at[cell, "cases"] >= K


def test_zero_and_unknown_are_shown_and_k_itself_is_not_small():
    frame = pd.DataFrame({"area_id": ["a", "b", "c", "d"], "n": [0, None, K, K - 1]})
    out = disclose(public_principal(), frame, Disclosure("t", grain="area", counts=("n",)), min_count=K)
    assert out["n" + SUPPRESSED_SUFFIX].tolist() == [False, False, False, True]
    assert out["n"].iloc[0] == 0 and np.isnan(out["n"].iloc[1]) and out["n"].iloc[2] == K


@pytest.mark.parametrize("seed", range(40))
def test_complementary_suppression_leaves_no_single_withheld_part(seed):
    """Random tables of parts: after disclosure no group holds exactly one withheld part with others
    shown (the total minus the shown parts would give it back), unless every other part is zero."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    frame = pd.DataFrame({"area_id": [f"A{i}" for i in range(n)], "day": rng.integers(0, 3, n),
                          "cases": rng.choice([0, 1, 2, 3, 4, 5, 8, 20, 50], n)})
    spec = Disclosure("t", grain="area", counts=("cases",), complementary=("cases",), group_by=("day",))
    out = disclose(public_principal(), frame, spec, min_count=K)
    for _, group in out.assign(raw=frame["cases"].to_numpy()).groupby("day"):
        hidden = group["cases" + SUPPRESSED_SUFFIX]
        others_positive = (group["raw"] > 0) & ~hidden
        assert hidden.sum() != 1 or not others_positive.any(), group
        # Every small count is withheld; every withheld one was small or taken as the complement.
        assert (hidden | ~group["raw"].between(1, K - 1)).all()


def test_complementary_takes_the_smallest_other_part():
    frame = pd.DataFrame({"area_id": ["a", "b", "c"], "cases": [2, 40, 9]})
    spec = Disclosure("t", grain="area", counts=("cases",), complementary=("cases",))
    out = disclose(public_principal(), frame, spec, min_count=K)
    assert out["cases" + SUPPRESSED_SUFFIX].tolist() == [True, False, True]


def test_case_level_text_is_blanked_below_points():
    frame = pd.DataFrame({"reason_code": ["outside_city"], "record_key": ["CASE-9"],
                          "reason_detail": ["lat=2.95123, lng=101.75432 is outside the city boundary"]})
    spec = Disclosure("t", grain="area", case_level_columns=("record_key", "reason_detail"))
    for principal in every_principal():
        out = disclose(principal, frame, spec, min_count=K)
        shown = json.dumps(out.to_dict("records"), default=str)
        if principal.may_see_points:
            assert "CASE-9" in shown and "2.95123" in shown
        else:
            assert "CASE-9" not in shown and "2.95123" not in shown and out["reason_code"].iloc[0] == "outside_city"


def test_cell_lists_are_cut_to_the_precincts():
    zones = pd.DataFrame({"zone_id": ["Z1", "Z2"], "cells": [[CELL_W, CELL_E], [CELL_E, OUTSIDE]]})
    spec = Disclosure("t", grain="cell", cell_column=None, cell_list_columns=("cells",))
    cop = principal_for("cop", "police", ("P-W",))
    out = disclose(cop, zones, spec, min_count=K, jurisdiction=JURISDICTION)
    assert out["zone_id"].tolist() == ["Z1"] and out["cells"].tolist() == [[CELL_W]]
    everyone = disclose(principal_for("op", "operator"), zones, spec, min_count=K, jurisdiction=JURISDICTION)
    assert everyone["cells"].tolist() == zones["cells"].tolist()


def test_a_bound_principal_without_a_jurisdiction_is_an_error_not_a_leak():
    with pytest.raises(ValueError, match="jurisdiction"):
        disclose(principal_for("cop", "police", ("P-W",)), _cells_frame(), CELLS, min_count=K)


def test_releases_of_cells_and_points_are_noted_for_the_audit():
    start_ledger()
    operator = principal_for("op", "operator")
    disclose(operator, _cells_frame(), CELLS, min_count=K)
    disclose(operator, pd.DataFrame({"area_id": ["a"], "n": [9]}), Disclosure("areas", grain="area"), min_count=K)
    disclose(public_principal(), _cells_frame(), CELLS, min_count=K)  # nothing released: nothing noted
    released = take_releases()
    assert [(r.resource, r.level, r.rows) for r in released] == [("test.cells", "cells", 3)]
    assert take_releases() == []  # the ledger ends with the request


def test_every_combination_of_flags_is_consistent():
    """For every role, grain and suppression switch, the output never shows a count from 1 to k-1
    to a principal below case level."""
    frame = pd.DataFrame({"h3_cell": [CELL_W, CELL_E], "lat": [2.925, 2.925], "lng": [101.625, 101.675],
                          "n": [1, 4], "m": [7, 2]})
    for principal, grain, complementary in itertools.product(every_principal(), GRAINS, ((), ("n",), ("n", "m"))):
        spec = Disclosure("t", grain=grain, counts=("n", "m"), complementary=complementary)
        out = disclose(principal, frame, spec, min_count=K, jurisdiction=JURISDICTION)
        if principal.may_see_small_counts:
            continue
        for column in ("n", "m"):
            values = out[column].dropna()
            assert not values.between(1, K - 1).any(), (principal.role, grain, column, values.tolist())


def test_one_cell_is_judged_by_the_same_rule_as_a_table_of_cells():
    from services.privacy import may_see_cell

    for principal in every_principal():
        for cell in (CELL_W, CELL_E, OUTSIDE):
            table = disclose(principal, pd.DataFrame({"h3_cell": [cell]}), Disclosure("t", grain="cell"),
                             min_count=K, jurisdiction=JURISDICTION)
            assert may_see_cell(principal, cell, JURISDICTION) == (len(table) == 1), (principal.role, cell)
