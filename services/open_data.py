"""Open data (ISO 37113: publish as much as privacy allows): daily new cases per area and per coarse H3 cell,
as CSV and GeoJSON, cut to what the public may see.

Two tables, each of places x days with its row totals (the place over the period), column totals (the
day over the places) and grand total, held long (one row per entry; ``total`` marks a margin):

* ``areas``: the populated areas' ``new_cases_24h`` as the indicators job stored it (the same figure as
  GET /api/v1/indicators?area=A&date=D). The API already publishes each day's areas with their own
  suppression, so an entry it shows is known and one it withholds stays withheld here (Margins.released);
* ``cells``: counted cases per H3 cell at ``briefing.open_data_resolution`` (7 by default, about 5 km²,
  the size of a community area), on the same grid as the cluster job's inputs (services.clusters).

Both are disclosed to the public principal whoever exports them, through services.privacy: counts from 1
to privacy.min_count - 1 are withheld, then complementary suppression over the whole two-way table, so
that no total minus the shown parts (nor any combination of rows and columns) gives a withheld entry
back. Coarse cells are published at the ``area`` grain: at resolution 7 or coarser (settings refuse
finer) a cell is an aggregate of thousands of residents, not a place a person can be found in.

CSV cells are neutralised against formula injection (OWASP "CSV Injection"): a cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading apostrophe, so a spreadsheet shows
it as text instead of running it (area names come from the city's own files). Every export writes an
``export`` audit record with its purpose.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from analytics import catalog as cat
from auth.principal import public_principal
from geo.cells import cell_to_boundary_lnglat
from services.clusters import cases_by_cell_day, grid_of
from services.indicators import AREAS, CITY
from services.privacy import MARGIN_TOTAL, SUPPRESSED_SUFFIX, Disclosure, Margins, disclose
from settings import Settings
from store import Store
from store import queries as q
from store import queries_access as qa
from store import queries_briefing as qb
from store import queries_indicators as qi
from store.definitions import CITYWIDE

TABLES = ("areas", "cells")
FORMATS = ("csv", "geojson")
AREA_TABLE = Disclosure("open_data.areas", grain="area", counts=("cases",), complementary=("cases",),
                        margins=Margins("place", "date", released="released"))
CELL_TABLE = Disclosure("open_data.cells", grain="area", counts=("cases",), complementary=("cases",),
                        margins=Margins("place", "date"))
# The first characters a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("place", "name", "date", "cases", "suppressed")
LICENCE_NOTE = ("Counts from 1 to {k} - 1 are withheld (empty, suppressed=true), and further entries where a total "
                "minus the shown parts would give a withheld one back.")


class UnknownTable(ValueError):
    """Not one of TABLES / FORMATS."""


@dataclass(frozen=True)
class OpenTable:
    name: str
    start: date
    end: date
    rows: pd.DataFrame  # place, name, date ("YYYY-MM-DD" or "total"), cases (NaN where withheld), suppressed
    geometries: dict[str, dict]  # place -> GeoJSON geometry
    min_count: int
    resolution: int | None


def neutralise(cell) -> str:
    """A CSV cell as text a spreadsheet will not run: a leading apostrophe before a formula start."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def export_window(store: Store, settings: Settings, end: date | None = None) -> tuple[date, date]:
    """[start, end] of an export: ``briefing.open_data_days`` days to ``end`` (default: the latest complete day)."""
    from services.briefing import latest_complete_day
    end = end or latest_complete_day(store, settings) or qi.latest_indicator_day(store)
    if end is None:
        raise LookupError("no indicators are stored yet (the indicators job has not run)")
    return end - timedelta(days=settings.briefing.open_data_days - 1), end


def _with_margins(entries: pd.DataFrame, released: dict | None = None) -> pd.DataFrame:
    """entries (place, date, cases[, released]) plus each place's total, each day's total and the grand total."""
    rows = entries.groupby("place", as_index=False, sort=False)["cases"].sum().assign(date=MARGIN_TOTAL)
    columns = entries.groupby("date", as_index=False, sort=False)["cases"].sum().assign(place=MARGIN_TOTAL)
    grand = pd.DataFrame({"place": [MARGIN_TOTAL], "date": [MARGIN_TOTAL], "cases": [entries["cases"].sum()]})
    out = pd.concat([entries, rows, columns, grand], ignore_index=True)
    if "released" in entries:
        # A place all of whose days are public is public in total too (and so is the city's grand total).
        by_place = entries.groupby("place")["released"].apply(lambda s: bool((s == True).all()))  # noqa: E712
        out.loc[(out["date"] == MARGIN_TOTAL) & (out["place"] != MARGIN_TOTAL), "released"] = \
            out["place"].map(lambda p: True if by_place.get(p, False) else None)
        if released is not None:
            for day, shown in released.items():
                out.loc[(out["place"] == MARGIN_TOTAL) & (out["date"] == day), "released"] = shown
        day_totals = out[(out["place"] == MARGIN_TOTAL) & (out["date"] != MARGIN_TOTAL)]["released"]
        out.loc[(out["place"] == MARGIN_TOTAL) & (out["date"] == MARGIN_TOTAL), "released"] = \
            True if len(day_totals) and bool((day_totals == True).all()) else None  # noqa: E712
    return out


def area_table(store: Store, settings: Settings, start: date, end: date) -> OpenTable:
    """Daily new cases per populated area (stored new_cases_24h) with margins, cut for the public."""
    public = public_principal()
    k = settings.privacy.min_count
    entries, city_released = [], {}
    stored = qb.indicator_by_day(store, cat.NEW_CASES_24H, start, end)
    populated = set(q.populated_area_list(store)["area_id"])
    for day, rows in stored.groupby("day", sort=True):
        day = pd.Timestamp(day).date()
        rows = rows.rename(columns={"value": cat.NEW_CASES_24H})
        # What GET /api/v1/indicators gives the public for the day: the city alone, the areas together
        # (services.indicators' own specs; suppression of one column depends on that column only).
        city = disclose(public, rows[rows["area_id"] == CITYWIDE], CITY, min_count=k)
        areas = disclose(public, rows[rows["area_id"].isin(populated)], AREAS, min_count=k)
        city_released[day.isoformat()] = not bool(city[cat.NEW_CASES_24H + SUPPRESSED_SUFFIX].any())
        for area_id, value, hidden in zip(areas["area_id"], rows.set_index("area_id").loc[areas["area_id"],
                                                                                          cat.NEW_CASES_24H],
                                          areas[cat.NEW_CASES_24H + SUPPRESSED_SUFFIX]):
            entries.append({"place": area_id, "date": day.isoformat(), "cases": float(value), "released": not hidden})
    frame = _with_margins(pd.DataFrame(entries, columns=["place", "date", "cases", "released"]), city_released)
    cut = disclose(public, frame, AREA_TABLE, min_count=settings.privacy.min_count)
    names = dict(zip(*(q.populated_area_list(store)[c] for c in ("area_id", "name"))))
    stored = q.areas(store, ("boundary", "community", "precinct", "district"))
    shapes = {r.area_id: json.loads(r.geometry) if isinstance(r.geometry, str) else r.geometry
              for r in stored.itertuples(index=False) if r.area_id in names}
    return OpenTable("areas", start, end, _finish(cut, names), shapes, settings.privacy.min_count, None)


def cell_table(store: Store, settings: Settings, start: date, end: date) -> OpenTable:
    """Daily counted cases per coarse H3 cell (every cell with residents or cases), with margins, cut for the public."""
    resolution = settings.briefing.open_data_resolution
    daily, _unplaced = cases_by_cell_day(store, start, end, resolution)
    cells = sorted(set(grid_of(store, resolution).population.index) | set(daily["h3_cell"]))
    days = [d.isoformat() for d in pd.date_range(start, end, freq="D").date]
    counts = {(c, d.isoformat() if isinstance(d, date) else str(d)): n
              for c, d, n in zip(daily["h3_cell"], daily["day"], daily["cases"])}
    entries = pd.DataFrame([{"place": c, "date": d, "cases": float(counts.get((c, d), 0))} for c in cells for d in days],
                           columns=["place", "date", "cases"])
    cut = disclose(public_principal(), _with_margins(entries), CELL_TABLE, min_count=settings.privacy.min_count)
    shapes = {c: {"type": "Polygon", "coordinates": [[list(p) for p in cell_to_boundary_lnglat(c)]]} for c in cells}
    return OpenTable("cells", start, end, _finish(cut, {}), shapes, settings.privacy.min_count, resolution)


def _finish(cut: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    out = pd.DataFrame({"place": cut["place"].to_numpy(),
                        "name": [names.get(p, "City" if p == MARGIN_TOTAL else "") for p in cut["place"]],
                        "date": cut["date"].to_numpy(), "cases": cut["cases"].to_numpy(dtype=float),
                        "suppressed": cut["cases" + SUPPRESSED_SUFFIX].to_numpy(dtype=bool)})
    # Places in order, each place's days then its total; the city's totals last.
    out["__total_place"] = out["place"] == MARGIN_TOTAL
    out["__total_day"] = out["date"] == MARGIN_TOTAL
    out = out.sort_values(["__total_place", "place", "__total_day", "date"], kind="stable")
    return out.drop(columns=["__total_place", "__total_day"]).reset_index(drop=True)


def open_table(store: Store, settings: Settings, name: str, end: date | None = None) -> OpenTable:
    if name not in TABLES:
        raise UnknownTable(f"table must be one of {', '.join(TABLES)}, got {name!r}")
    start, end = export_window(store, settings, end)
    return (area_table if name == "areas" else cell_table)(store, settings, start, end)


# ---- formats -------------------------------------------------------------------------------------------
def _count(value: float) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.0f}"


def table_csv(table: OpenTable) -> str:
    """The table as CSV (UTF-8, one row per entry, totals marked ``total``), every cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180 line ends
    writer.writerow(CSV_COLUMNS)
    for r in table.rows.itertuples(index=False):
        writer.writerow([neutralise(v) for v in (r.place, r.name, r.date, _count(r.cases),
                                                 "true" if r.suppressed else "false")])
    return buffer.getvalue()


def table_geojson(table: OpenTable) -> dict:
    """One feature per place (GeoJSON lng,lat) with its daily counts, its total, and what is withheld."""
    features = []
    for place, rows in table.rows[table.rows["place"] != MARGIN_TOTAL].groupby("place", sort=False):
        daily = rows[rows["date"] != MARGIN_TOTAL]
        total = rows[rows["date"] == MARGIN_TOTAL].iloc[0]
        features.append({"type": "Feature", "id": place, "geometry": table.geometries.get(place), "properties": {
            "place": place, "name": rows["name"].iloc[0] or None,
            "total": None if total["suppressed"] else int(total["cases"]), "total_suppressed": bool(total["suppressed"]),
            "daily": [{"date": d, "cases": None if s else int(n), "suppressed": bool(s)}
                      for d, n, s in zip(daily["date"], daily["cases"], daily["suppressed"])]}})
    return {"type": "FeatureCollection", "name": f"pheoc_{table.name}_daily_cases",
            "metadata": metadata(table), "features": features}


def metadata(table: OpenTable) -> dict:
    return {"table": table.name, "from": table.start.isoformat(), "to": table.end.isoformat(),
            "counts": "counted cases (confirmed, recovered or deceased; never suspected) by report date",
            "h3_resolution": table.resolution, "min_count": table.min_count,
            "suppression": LICENCE_NOTE.format(k=table.min_count)}


def record_export(store: Store, actor: str, target: str, purpose: str, detail: dict) -> None:
    """The ``export`` audit record of one export, committed before the export is handed over."""
    qa.submit_audit(store, actor, "export", target, {"purpose": purpose, **detail}).result(timeout=30)


def write_open_data(store: Store, settings: Settings, folder: Path, *, actor: str, purpose: str,
                    end: date | None = None) -> list[Path]:
    """Every table in every format into ``folder`` (created), audited as one export."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLES:
        table = open_table(store, settings, name, end)
        path = folder / f"{name}_daily_cases.csv"
        path.write_text(table_csv(table), encoding="utf-8", newline="")
        written.append(path)
        path = folder / f"{name}_daily_cases.geojson"
        path.write_text(json.dumps(table_geojson(table), ensure_ascii=False), encoding="utf-8")
        written.append(path)
    start, end = export_window(store, settings, end)
    record_export(store, actor, "open_data", purpose, {"from": start.isoformat(), "to": end.isoformat(),
                                                       "files": [p.name for p in written],
                                                       "at": datetime.now(timezone.utc).isoformat()})
    return written
