"""Replay of the Malaysian Ministry of Health COVID-19 open data for one state, through pheoc's own ingest.

Source: MoH-Malaysia/covid19-public (``epidemic/cases_state.csv``, ``tests_state.csv``,
``hospital.csv``, ``icu.csv``, ``pkrc.csv``, ``static/population.csv``). The user passes the folder;
nothing here refers to any fixed copy of it. Every row becomes a record in one of pheoc's ingest
formats (docs/ingest.md) and goes through BatchBuilder and Store.write_batch like any file, so the
same validation applies and anything refused is in the quarantine with its reason code:

* cases: ``cases_new`` of a day becomes that many confirmed cases without a location, with ids
  ``MOH-<state>-<date>-<n>`` (n = 1..cases_new), so a replay loaded twice stores nothing new and the
  stored total equals the file's; the first ``cases_import`` of them are marked imported.
* tests: one test record per day for the state's area, tested = ``rtk-ag`` + ``pcr``. The files give no
  positive tests, so ``positive`` is that day's ``cases_new`` — the usual approximation (positivity =
  new cases / tests), stated here because it is one.
* hospital, icu, pkrc: each is one *aggregate* facility of the state (all MoH hospitals, all ICUs, all
  PKRC quarantine-and-treatment centres), with one capacity report per day at 23:59 local time (the
  files are end-of-day census counts). Occupied = the covid + pui + non-covid census. MoH's hospital
  ``beds`` include the critical-care beds (``beds - beds_noncrit`` equals ``beds_icu_total`` on the
  median state-day), so a sum of hospital and ICU beds counts the ICU beds twice; the two are kept as
  the files give them rather than re-derived. Days on which the census exceeds the beds (ICU surges)
  are quarantined as ``occupied_exceeds_total`` — real overflow, kept for a person to judge.

Area: if the database has no city boundary yet (and none is given), the importer writes a
*placeholder*: a square of the state's land area around its approximate centre, named as such. It
is not the state's shape; it only gives the tests, the aggregate facilities and the maps a frame.
"""
from __future__ import annotations

import json
import math
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import shapely

from geo.areas import geometry_from_geojson
from ingest.batch import BatchBuilder
from ingest.context import ContextProvider
from ingest.files import FileIngestor
from settings import Settings
from store import BatchResult, Store
from store import queries_capacity as qc

ProgressFn = Callable[[str, int, int], None]  # (step, done, total), as ingest.files
PUBLISHER = "Ministry of Health Malaysia, MoH-Malaysia/covid19-public"
MALAYSIA_TZ = "Asia/Kuala_Lumpur"
# The files are end-of-day census counts; Malaysia keeps UTC+8 all year (no daylight saving).
REPORT_TIME = "T23:59:00+08:00"
KM_PER_DEGREE_LAT = 111.32

# Approximate centre (lat, lng) and land area (km2) of each state, only for the placeholder square.
STATE_CENTRES: dict[str, tuple[float, float, float]] = {
    "Johor": (2.00, 103.30, 19_166), "Kedah": (5.95, 100.65, 9_492), "Kelantan": (5.35, 102.00, 15_040),
    "Melaka": (2.25, 102.25, 1_664), "Negeri Sembilan": (2.75, 102.15, 6_686), "Pahang": (3.70, 102.70, 36_137),
    "Perak": (4.60, 101.05, 21_035), "Perlis": (6.45, 100.20, 821), "Pulau Pinang": (5.35, 100.35, 1_049),
    "Sabah": (5.40, 117.10, 73_904), "Sarawak": (2.50, 113.20, 124_450), "Selangor": (3.30, 101.50, 8_104),
    "Terengganu": (4.85, 103.00, 13_035), "W.P. Kuala Lumpur": (3.14, 101.69, 243),
    "W.P. Labuan": (5.30, 115.23, 91), "W.P. Putrajaya": (2.93, 101.69, 49),
}


class MohDataError(ValueError):
    """The data folder or the state is not usable; the message says what is missing."""


@dataclass(frozen=True)
class MohStateData:
    """The rows of one state from each file (empty frames where the file has none)."""
    state: str
    cases: pd.DataFrame
    tests: pd.DataFrame
    hospital: pd.DataFrame
    icu: pd.DataFrame
    pkrc: pd.DataFrame
    population: int | None


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay loaded: per record kind the store's result, and the files' own totals to compare."""
    state: str
    database: Path
    settings: Settings
    placeholder_boundary: bool
    first_date: date | None
    last_date: date | None
    file_totals: dict[str, int]
    results: dict[str, BatchResult]
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """Human-readable summary for the CLI."""
        out = [f"MoH replay of {self.state}: {self.first_date} .. {self.last_date} into {self.database}"]
        for kind, r in self.results.items():
            out.append(f"  {kind}: {r.accepted:,} stored, {r.duplicate:,} duplicate, {r.rejected:,} rejected")
        out.append("  file totals: " + ", ".join(f"{k} {v:,}" for k, v in self.file_totals.items()))
        if self.rejected_by_reason:
            out.append("  quarantined: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.rejected_by_reason.items())))
        if self.placeholder_boundary:
            out.append("  boundary: PLACEHOLDER square of the state's area (not the real boundary)")
        return out


def state_slug(state: str) -> str:
    """``W.P. Putrajaya`` -> ``WP-Putrajaya`` (for ids)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", state.replace(".", "")).strip("-")


def facility_ids(state: str) -> dict[str, str]:
    slug = state_slug(state)
    return {"hospital": f"MOH-{slug}-HOSP", "icu": f"MOH-{slug}-ICU", "pkrc": f"MOH-{slug}-PKRC"}


# ---- reading the files --------------------------------------------------------------------------
def _find(data_dir: Path, *names: str) -> Path | None:
    for name in names:
        for candidate in (data_dir / name, data_dir / "epidemic" / name, data_dir / "static" / name):
            if candidate.exists():
                return candidate
    return None


def _state_rows(path: Path | None, state: str) -> pd.DataFrame:
    if path is None:
        return pd.DataFrame()
    frame = pd.read_csv(path)
    return frame[frame["state"] == state].sort_values("date").reset_index(drop=True)


def read_state(data_dir: Path | str, state: str) -> MohStateData:
    """Read one state's rows from the MoH folder (the repository root or its ``epidemic/`` folder)."""
    data_dir = Path(data_dir)
    cases_path = _find(data_dir, "cases_state.csv")
    if cases_path is None:
        raise MohDataError(f"{data_dir}: no epidemic/cases_state.csv (expected the MoH-Malaysia/covid19-public "
                           "folder)")
    cases = _state_rows(cases_path, state)
    if cases.empty:
        known = sorted(pd.read_csv(cases_path, usecols=["state"])["state"].unique())
        raise MohDataError(f"no state {state!r} in {cases_path.name}; one of: {', '.join(known)}")
    population = None
    pop_path = _find(data_dir, "population.csv")
    if pop_path is not None:
        pop = pd.read_csv(pop_path)
        match = pop.loc[pop["state"] == state, "pop"]
        population = int(match.iloc[0]) if len(match) else None
    return MohStateData(state=state, cases=cases, tests=_state_rows(_find(data_dir, "tests_state.csv"), state),
                        hospital=_state_rows(_find(data_dir, "hospital.csv"), state),
                        icu=_state_rows(_find(data_dir, "icu.csv"), state),
                        pkrc=_state_rows(_find(data_dir, "pkrc.csv"), state), population=population)


# ---- rows -> pheoc records ----------------------------------------------------------------------
def case_records(data: MohStateData) -> Iterator[dict[str, Any]]:
    """One confirmed case per ``cases_new``, the first ``cases_import`` of a day marked imported."""
    slug = state_slug(data.state)
    for day, new, imported in zip(data.cases["date"], data.cases["cases_new"], data.cases["cases_import"]):
        for n in range(1, int(new) + 1):
            yield {"case_id": f"MOH-{slug}-{day}-{n}", "reported_date": day, "status": "confirmed",
                   "imported": n <= int(imported)}


def test_records(data: MohStateData, area_id: str) -> Iterator[dict[str, Any]]:
    """Daily tests of the state's area; positive = that day's new cases (see the module docstring)."""
    if data.tests.empty:
        return
    new_cases = dict(zip(data.cases["date"], data.cases["cases_new"]))
    for day, rtk_ag, pcr in zip(data.tests["date"], data.tests["rtk-ag"], data.tests["pcr"]):
        yield {"test_date": day, "area_id": area_id, "tested": int(rtk_ag) + int(pcr),
               "positive": int(new_cases.get(day, 0))}


def capacity_records(data: MohStateData) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file, capacity record) for every hospital, icu and pkrc row of the state."""
    ids = facility_ids(data.state)
    for r in data.hospital.itertuples(index=False):
        yield "hospital", {"facility_id": ids["hospital"], "reported_at": r.date + REPORT_TIME,
                           "beds_total": int(r.beds),
                           "beds_occupied": int(r.hosp_covid + r.hosp_pui + r.hosp_noncovid),
                           "covid_patients": int(r.hosp_covid)}
    for r in data.icu.itertuples(index=False):
        occupied = int(r.icu_covid + r.icu_pui + r.icu_noncovid)
        yield "icu", {"facility_id": ids["icu"], "reported_at": r.date + REPORT_TIME,
                      "beds_total": int(r.beds_icu_total), "beds_occupied": occupied,
                      "icu_total": int(r.beds_icu_total), "icu_occupied": occupied,
                      # devices: fixed plus portable ventilators, and those of each in use
                      "ventilators_total": int(r.vent + r.vent_port),
                      "ventilators_in_use": int(r.vent_used + r.vent_port_used),
                      "covid_patients": int(r.icu_covid)}
    for r in data.pkrc.itertuples(index=False):
        yield "pkrc", {"facility_id": ids["pkrc"], "reported_at": r.date + REPORT_TIME, "beds_total": int(r.beds),
                       "beds_occupied": int(r.pkrc_covid + r.pkrc_pui + r.pkrc_noncovid),
                       "covid_patients": int(r.pkrc_covid)}


def placeholder_boundary(state: str, population: int | None) -> dict[str, Any]:
    """A square of the state's land area around its approximate centre: a frame, NOT the real boundary."""
    if state not in STATE_CENTRES:
        raise MohDataError(f"no placeholder centre for {state!r}; pass a boundary GeoJSON instead")
    lat, lng, area_km2 = STATE_CENTRES[state]
    half_km = math.sqrt(area_km2) / 2
    dlat = half_km / KM_PER_DEGREE_LAT
    dlng = dlat / math.cos(math.radians(lat))  # a degree of longitude is shorter away from the equator
    ring = [[lng - dlng, lat - dlat], [lng + dlng, lat - dlat], [lng + dlng, lat + dlat], [lng - dlng, lat + dlat],
            [lng - dlng, lat - dlat]]
    record = {"area_id": f"MOH-{state_slug(state)}", "kind": "boundary",
              "name": f"{state} (placeholder square, not the real boundary)",
              "geometry": {"type": "Polygon", "coordinates": [ring]}}
    if population is not None:
        record["population"] = population
    return record


def facility_records(data: MohStateData, boundary: shapely.Geometry) -> list[dict[str, Any]]:
    """The state's aggregate facilities, placed inside the boundary (their position is not a real site)."""
    ids = facility_ids(data.state)
    centre = boundary.representative_point()
    minx, _, maxx, _ = boundary.bounds
    step = (maxx - minx) / 8

    def inside(dx: float) -> tuple[float, float]:
        pt = shapely.Point(centre.x + dx, centre.y)
        return (pt.y, pt.x) if boundary.contains(pt) else (centre.y, centre.x)

    kinds = (("hospital", "hospital", f"MoH hospitals, {data.state} (aggregate)", 0.0, data.hospital),
             ("icu", "icu", f"MoH ICUs, {data.state} (aggregate)", step, data.icu),
             ("pkrc", "quarantine_centre", f"PKRC quarantine & treatment centres, {data.state} (aggregate)", -step,
              data.pkrc))
    out = []
    for key, kind, name, dx, rows in kinds:
        if rows.empty:
            continue
        lat, lng = inside(dx)
        out.append({"facility_id": ids[key], "name": name, "kind": kind, "owner": "MOH Malaysia",
                    "lat": lat, "lng": lng})
    return out


# ---- loading --------------------------------------------------------------------------------------
def _raw(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), default=str).encode()


def _write(store: Store, contexts: ContextProvider, source: str, kind: str, records: Iterable[dict[str, Any]],
           total: int, batch_rows: int, progress: ProgressFn | None, step: str) -> BatchResult:
    """Validate and store records in batches of ``batch_rows``; one transaction per batch."""
    result = BatchResult()
    builder = BatchBuilder(source, "file")
    ctx = contexts.get()
    done = 0
    for record in records:
        builder.add(kind, record, _raw(record), ctx)
        done += 1
        if len(builder) >= batch_rows:
            result = result + store.write_batch(builder.build()).result()
            builder = BatchBuilder(source, "file")
            ctx = contexts.get()
            if progress:
                progress(step, done, total)
    if len(builder):
        result = result + store.write_batch(builder.build()).result()
    if progress:
        progress(step, done, total)
    return result


def _boundary(store: Store) -> tuple[str, shapely.Geometry] | None:
    rows = qc.boundary_areas(store)
    if rows.empty:
        return None
    geoms = [geometry_from_geojson(g) for g in rows["geometry"]]
    return str(rows["area_id"].iloc[0]), shapely.union_all(geoms)


def load_state(store: Store, contexts: ContextProvider, data: MohStateData, *, batch_rows: int = 5000,
               progress: ProgressFn | None = None) -> tuple[dict[str, BatchResult], bool]:
    """Load one state's data into ``store``; returns the result per step and whether the city boundary
    is the placeholder square (written now, or by an earlier load)."""
    source = f"moh-malaysia:{data.state}"
    results: dict[str, BatchResult] = {}
    square = placeholder_boundary(data.state, data.population) if data.state in STATE_CENTRES else None
    found = _boundary(store)
    if found is None:
        if square is None:
            raise MohDataError(f"no placeholder centre for {data.state!r}; pass a boundary GeoJSON instead")
        results["area"] = _write(store, contexts, source, "area", [square], 1, batch_rows, progress, "boundary")
        contexts.invalidate()
        found = _boundary(store)
        if found is None:
            raise MohDataError("the placeholder boundary was not stored; see the quarantine table")
    area_id, geom = found
    placeholder = square is not None and area_id == square["area_id"]
    facilities = facility_records(data, geom)
    results["facility"] = _write(store, contexts, source, "facility", facilities, len(facilities), batch_rows,
                                 progress, "facilities")
    contexts.invalidate()
    n_cases = int(data.cases["cases_new"].sum())
    results["case"] = _write(store, contexts, source, "case", case_records(data), n_cases, batch_rows, progress,
                             "cases")
    results["test"] = _write(store, contexts, source, "test", test_records(data, area_id), len(data.tests),
                             batch_rows, progress, "tests")
    n_capacity = len(data.hospital) + len(data.icu) + len(data.pkrc)
    results["capacity"] = _write(store, contexts, source, "capacity", (rec for _, rec in capacity_records(data)),
                                 n_capacity, batch_rows, progress, "capacity")
    dates = pd.concat([data.cases["date"], data.tests.get("date", pd.Series(dtype=str))])
    qc.save_replay_source(
        store, source_id=source, publisher=PUBLISHER, region=data.state,
        data_from=date.fromisoformat(dates.min()), data_to=date.fromisoformat(dates.max()),
        loaded_at=datetime.now(timezone.utc), placeholder_boundary=placeholder,
        detail={"file_totals": file_totals(data), "area_id": area_id})
    return results, placeholder


def file_totals(data: MohStateData) -> dict[str, int]:
    """The files' own totals for the state, to compare with what was stored."""
    tests = data.tests
    return {"cases": int(data.cases["cases_new"].sum()),
            "tests": int((tests["rtk-ag"] + tests["pcr"]).sum()) if not tests.empty else 0,
            "test_days": len(tests), "hospital_days": len(data.hospital), "icu_days": len(data.icu),
            "pkrc_days": len(data.pkrc)}


def replay_settings(settings: Settings, workdir: Path, state: str, boundary_file: Path | None = None) -> Settings:
    """Settings for the replay's own database under ``workdir`` (never the deployment's database)."""
    city = {"name": f"{state} (MoH replay)", "slug": ("moh-" + state_slug(state).lower())[:41],
            "timezone": MALAYSIA_TZ, "boundary_file": boundary_file, "area_layers": []}
    store = settings.store.model_copy(update={"path": workdir / "pheoc-replay.duckdb"})
    ingest = settings.ingest.model_copy(update={"inbox": workdir / "inbox"})
    return settings.with_overrides(city=city, store=store, ingest=ingest)


def replay_moh(settings: Settings, data_dir: Path | str, state: str, progress: ProgressFn | None = None, *,
               workdir: Path | None = None, boundary_file: Path | None = None) -> ReplaySummary:
    """Build a fresh database under ``workdir`` (default var/replay/<state>) holding the state's replay.

    ``boundary_file`` (GeoJSON) is loaded as the city boundary if given; otherwise a placeholder square
    is written (see the module docstring). Returns the summary, whose ``settings`` serve the replay.
    """
    data = read_state(data_dir, state)
    workdir = Path(workdir) if workdir else settings.path(Path("var/replay")) / state_slug(state).lower()
    if workdir.exists():
        shutil.rmtree(workdir)  # a replay is rebuilt from the files every time, like the demo
    rsettings = replay_settings(settings, workdir, state, boundary_file)
    with Store(rsettings.path(rsettings.store.path), queue_size=rsettings.store.queue_size) as store:
        contexts = ContextProvider(store, rsettings)
        if boundary_file is not None:
            result = FileIngestor(store, contexts).ingest_file(Path(boundary_file), area_kind="boundary")
            if result.error:
                raise MohDataError(f"boundary file {boundary_file} was rejected: {result.error}")
            contexts.invalidate()
        results, placeholder = load_state(store, contexts, data, batch_rows=rsettings.ingest.batch_max_rows,
                                          progress=progress)
        reasons = Counter(dict(store.read_rows("SELECT reason_code, count(*) FROM quarantine GROUP BY 1")))
        database = store.path
    dates = pd.concat([data.cases["date"], data.tests.get("date", pd.Series(dtype=str))])
    return ReplaySummary(state=state, database=database, settings=rsettings, placeholder_boundary=placeholder,
                         first_date=date.fromisoformat(dates.min()), last_date=date.fromisoformat(dates.max()),
                         file_totals=file_totals(data), results=results,
                         rejected_by_reason={k: int(v) for k, v in reasons.items()})
