"""The demo city's address gazetteer: streets, house numbers and apartment blocks where its people live.

Streets run east-west along the rows of the 50 m population grid, one street per row within each
community ("Jalan Melati 3" in Taman Melati; every fourth a "Lorong", the longest row of a community
its "Persiaran"). Along a street, each populated cell holds its households (people / HOUSEHOLD_SIZE)
as houses on both sides, numbered from the west, odd on the north side and even on the south, as
Malaysian and British streets are; a cell with more households than fit as houses is an apartment
block of its own, one address. The names are the demo's own: a flower or tree word taken from the
community's name, as Putrajaya's planners did, with no real street behind them.

Houses stand at least MIN_SPACING_M apart, wider than the address check's match radius, so a case
placed at one house never shows at its neighbour's.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from demo.city import City, lnglat_to_metric, metric_to_latlng

# Malaysia's mean household size, 2020 census (DOSM): 3.8 persons.
HOUSEHOLD_SIZE = 3.8
# Houses along 50 m of street, both sides together: 6 a side leaves 8.3 m between door points,
# a terrace-house frontage. More households than this in a cell: an apartment block.
MAX_HOUSES_PER_CELL = 12
SIDE_OFFSET_M = 9.0   # door points either side of the street's centre line
MIN_SPACING_M = 8.0   # the closest two houses come (see the module docstring)
BLOCK_LETTERS = "ABCDEFGH"


def _street_stem(community_name: str) -> str:
    """'Taman Melati' -> 'Melati', 'Bukit Permai' -> 'Permai': the word streets of the area are named after."""
    return community_name.split()[-1]


def build_addresses(city: City) -> pd.DataFrame:
    """address_id, text, lat, lng of every address of the city (ordered by community, street, number)."""
    grid = city.grid
    ny, nx = grid.people.shape
    cx, cy = grid.centres()
    people = grid.people.ravel()
    owner = city.communities.locate(cx, cy)
    households = np.where(people > 0, np.maximum(1, np.rint(people / HOUSEHOLD_SIZE)), 0).astype(int)
    rows = np.arange(ny * nx) // nx
    cols = np.arange(ny * nx) % nx
    ids, texts, xs, ys = [], [], [], []
    for c, area in enumerate(city.communities.areas):
        stem = _street_stem(area.name)
        mine = np.flatnonzero((owner == c) & (households > 0))
        if len(mine) == 0:
            continue
        street_rows = sorted(set(rows[mine]), reverse=True)  # numbered from the north
        longest = max(street_rows, key=lambda r: int((rows[mine] == r).sum()))
        for k, r in enumerate(street_rows, start=1):
            if r == longest:
                street = f"Persiaran {stem}"
            else:
                street = f"{'Lorong' if k % 4 == 0 else 'Jalan'} {stem} {k}"
            odd, even, block = 1, 2, 0
            for cell in sorted(mine[rows[mine] == r], key=lambda i: cols[i]):
                n = int(households[cell])
                x0 = grid.x0 + cols[cell] * grid.cell_m
                y_mid = float(cy[cell])
                if n > MAX_HOUSES_PER_CELL:
                    block += 1
                    letter = BLOCK_LETTERS[(block - 1) % len(BLOCK_LETTERS)]
                    texts.append(f"Blok {letter}, Pangsapuri {stem} {street.split()[-1]}, {street}, {area.name}")
                    xs.append(x0 + grid.cell_m / 2)
                    ys.append(y_mid)
                    continue
                north = (n + 1) // 2
                for side, count in ((+1, north), (-1, n - north)):
                    if count == 0:
                        continue
                    step = grid.cell_m / count
                    for j in range(count):
                        number = odd if side > 0 else even
                        if side > 0:
                            odd += 2
                        else:
                            even += 2
                        texts.append(f"{number} {street}, {area.name}")
                        xs.append(x0 + (j + 0.5) * step)
                        ys.append(y_mid + side * SIDE_OFFSET_M)
    lat, lng = metric_to_latlng(np.array(xs), np.array(ys))
    ids = [f"AD-{i + 1:06d}" for i in range(len(texts))]
    return pd.DataFrame({"address_id": ids, "text": texts, "lat": lat, "lng": lng})


def place_at_addresses(frame: pd.DataFrame, addresses: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with lat, lng) with each point moved to its nearest address: a case is reported where its
    household lives. Rows without coordinates stay as they are."""
    out = frame.copy()
    has = out["lat"].notna().to_numpy() & out["lng"].notna().to_numpy()
    if not has.any() or addresses.empty:
        return out
    ax, ay = lnglat_to_metric(addresses["lng"].to_numpy(), addresses["lat"].to_numpy())
    px, py = lnglat_to_metric(out.loc[has, "lng"].to_numpy(), out.loc[has, "lat"].to_numpy())
    _, nearest = cKDTree(np.column_stack([ax, ay])).query(np.column_stack([px, py]))
    out.loc[has, "lat"] = addresses["lat"].to_numpy()[nearest]
    out.loc[has, "lng"] = addresses["lng"].to_numpy()[nearest]
    return out
