"""Writes the demo city as files in the documented ingest formats, and a manifest describing them.

Layout of ``out_dir``:
  city/boundary.geojson, city/communities.geojson, city/precincts.geojson   (FeatureCollections)
  inbox/addresses.csv (the address gazetteer; every case is placed at one of its addresses),
        sensors.csv, facilities.csv, cases.csv, tests.csv, admissions.csv, capacity.csv,
        supplies.csv, readings-<sensor kind>.csv                               (CSV with a header)
  manifest.json                                                              (DemoManifest, paths relative)
Field names are exactly ingest.records.FIELD_SPECS; dates are YYYY-MM-DD, timestamps ISO 8601 with the
city's +08:00 offset. The same seed, end date and ``now`` always give byte-identical files.
"""
from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from demo.addresses import build_addresses, place_at_addresses
from demo.city import CITY_UTC_OFFSET, City, build_city, geometry_to_lnglat, metric_to_latlng
from demo.context import write_context_layers
from demo.epidemic import METRICS, EpidemicData, generate_epidemic
from demo.sensors import out_of_service, silence, write_capacities
from geo.cells import latlng_to_cell
from ingest.records import FIELD_SPECS

ProgressFn = Callable[[str, int, int], None]
DATE_FIELDS = frozenset({"reported_date", "onset_date", "test_date", "admitted_on", "discharged_on"})
TIMESTAMP_FIELDS = frozenset({"ts", "reported_at"})
RECENT_DAYS = 14           # "recent" cases handed to the live simulator
MAX_RECENT_POINTS = 400    # enough to seed new cases plausibly, small enough for a JSON manifest


@dataclass(frozen=True)
class DemoFile:
    path: str               # relative to the manifest's out_dir
    kind: str               # ingest record kind
    rows: int


@dataclass(frozen=True)
class PlantedClusterInfo:
    cluster_id: int
    lat: float
    lng: float
    start_date: date
    cells: tuple[str, ...]  # H3 cells (manifest resolution) of the cluster's reported cases


@dataclass(frozen=True)
class SensorState:
    """What the live simulator needs to continue one sensor's stream."""
    sensor_id: str
    kind: str
    lat: float
    lng: float
    metric: str
    unit: str
    last_seq: int           # 0 if the sensor has sent nothing yet
    last_ts: datetime | None
    # The sensor's current typical value: wastewater copies/L; footfall people/h at an average hour;
    # fever alerts/h at an average hour; pm2_5 µg/m³; panic presses per day.
    level: float
    out_of_service: bool = False  # demo.sensors: silent since before now; the simulator leaves it quiet


@dataclass(frozen=True)
class EpidemicState:
    cases_total: int
    infections_total: int
    reported_last_14: tuple[int, ...]   # oldest first, ending on end_date
    growth_rate_per_day: float          # log-linear slope of daily reports over the last 14 days
    recent_cases: tuple[tuple[float, float], ...]   # (lat, lng) of recent cases, newest first


@dataclass(frozen=True)
class DemoManifest:
    out_dir: Path
    seed: int
    days: int
    start_date: date
    end_date: date
    now: datetime
    h3_resolution: int
    population: int
    files: tuple[DemoFile, ...]
    clusters: tuple[PlantedClusterInfo, ...]
    sensors: tuple[SensorState, ...]
    facility_ids: tuple[str, ...]
    area_ids: tuple[str, ...]
    epidemic: EpidemicState
    boundary_file: str = "city/boundary.geojson"
    area_files: tuple[str, ...] = ("city/communities.geojson", "city/precincts.geojson")
    inbox: str = "inbox"

    @property
    def inbox_dir(self) -> Path:
        return self.out_dir / self.inbox

    @property
    def boundary_path(self) -> Path:
        return self.out_dir / self.boundary_file

    @property
    def area_paths(self) -> tuple[Path, ...]:
        return tuple(self.out_dir / p for p in self.area_files)

    def rows_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.kind] = out.get(f.kind, 0) + f.rows
        return out

    def to_json(self) -> str:
        def enc(v):
            if isinstance(v, (date, datetime)):
                return v.isoformat()
            raise TypeError(type(v).__name__)
        data = asdict(self)
        del data["out_dir"]  # paths are relative: the folder can move
        return json.dumps(data, default=enc, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, path: Path) -> "DemoManifest":
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            out_dir=Path(path).parent, seed=d["seed"], days=d["days"],
            start_date=date.fromisoformat(d["start_date"]), end_date=date.fromisoformat(d["end_date"]),
            now=datetime.fromisoformat(d["now"]), h3_resolution=d["h3_resolution"], population=d["population"],
            files=tuple(DemoFile(**f) for f in d["files"]),
            clusters=tuple(PlantedClusterInfo(c["cluster_id"], c["lat"], c["lng"],
                                              date.fromisoformat(c["start_date"]), tuple(c["cells"]))
                           for c in d["clusters"]),
            sensors=tuple(SensorState(**{**s, "last_ts": datetime.fromisoformat(s["last_ts"]) if s["last_ts"]
                                         else None}) for s in d["sensors"]),
            facility_ids=tuple(d["facility_ids"]), area_ids=tuple(d["area_ids"]),
            epidemic=EpidemicState(d["epidemic"]["cases_total"], d["epidemic"]["infections_total"],
                                   tuple(d["epidemic"]["reported_last_14"]), d["epidemic"]["growth_rate_per_day"],
                                   tuple(tuple(p) for p in d["epidemic"]["recent_cases"])),
            boundary_file=d["boundary_file"], area_files=tuple(d["area_files"]), inbox=d["inbox"])


# ---- formatting -------------------------------------------------------------------------------
def _column_text(name: str, values: pd.Series) -> np.ndarray:
    """One column as CSV text: dates YYYY-MM-DD, timestamps with +08:00, booleans true/false, None empty."""
    if name in DATE_FIELDS or name in TIMESTAMP_FIELDS:
        arr = values.to_numpy(dtype="datetime64[s]")
        unit = "D" if name in DATE_FIELDS else "s"
        text = np.datetime_as_string(arr, unit=unit).astype(object)
        if unit == "s":
            text = text + CITY_UTC_OFFSET.tzname(None)
        text[np.isnat(arr)] = ""
        return text
    if values.dtype == bool:
        return np.where(values.to_numpy(), "true", "false").astype(object)
    if pd.api.types.is_float_dtype(values.dtype):
        arr = values.to_numpy()
        text = arr.astype(str).astype(object)
        text[np.isnan(arr)] = ""
        return text
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy().astype(str).astype(object)
    missing = values.isna().to_numpy()
    text = values.astype(object).to_numpy(copy=True)
    text[missing] = ""
    return text.astype(str).astype(object)


def write_records_csv(path: Path, kind: str, frame: pd.DataFrame) -> int:
    """Write ``frame`` as a CSV of ``kind`` records (columns in FIELD_SPECS order); return the row count."""
    unknown = set(frame.columns) - set(FIELD_SPECS[kind])
    if unknown:
        raise ValueError(f"{kind} has no field(s) {sorted(unknown)}")
    columns = [c for c in FIELD_SPECS[kind] if c in frame.columns]
    texts = [_column_text(c, frame[c]) for c in columns]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(zip(*texts))
    return len(frame)


def _feature_collection(city: City, kind: str) -> dict:
    areas = [city.boundary_area()] if kind == "boundary" else list(
        (city.communities if kind == "community" else city.precincts).areas)
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature",
         "properties": {"area_id": a.area_id, "name": a.name, "kind": a.kind, "population": a.population},
         "geometry": json.loads(json.dumps(geometry_to_lnglat(a.geometry).__geo_interface__))}
        for a in areas]}


# ---- the demo -----------------------------------------------------------------------------------
def _registry_frames(city: City) -> tuple[pd.DataFrame, pd.DataFrame]:
    s_lat, s_lng = metric_to_latlng([s.x for s in city.sensors], [s.y for s in city.sensors])
    sensors = pd.DataFrame({"sensor_id": [s.sensor_id for s in city.sensors], "kind": [s.kind for s in city.sensors],
                            "name": [s.name for s in city.sensors], "lat": s_lat, "lng": s_lng})
    f_lat, f_lng = metric_to_latlng([f.x for f in city.facilities], [f.y for f in city.facilities])
    facilities = pd.DataFrame({
        "facility_id": [f.facility_id for f in city.facilities], "name": [f.name for f in city.facilities],
        "kind": [f.kind for f in city.facilities], "owner": [f.owner for f in city.facilities],
        "lat": f_lat, "lng": f_lng, "beds": [f.beds for f in city.facilities],
        "icu_beds": [f.icu_beds for f in city.facilities]})
    return sensors, facilities


def _sensor_states(city: City, data: EpidemicData, sensors: pd.DataFrame,
                   quiet: frozenset[str] = frozenset()) -> tuple[SensorState, ...]:
    last: dict[str, tuple[int, np.datetime64]] = {}
    for frame in data.readings.values():
        if len(frame):
            tail = frame.groupby("sensor_id", sort=False).agg(seq=("seq", "max"), ts=("ts", "max"))
            last.update({sid: (int(r.seq), r.ts) for sid, r in tail.iterrows()})
    out = []
    for row in sensors.itertuples(index=False):
        seq, ts = last.get(row.sensor_id, (0, None))
        last_ts = None if ts is None else pd.Timestamp(ts).to_pydatetime().replace(tzinfo=CITY_UTC_OFFSET)
        metric, unit = METRICS[row.kind]
        out.append(SensorState(row.sensor_id, row.kind, float(row.lat), float(row.lng), metric, unit, seq, last_ts,
                               round(float(data.sensor_levels.get(row.sensor_id, 0.0)), 4),
                               row.sensor_id in quiet))
    return tuple(out)


def _epidemic_state(data: EpidemicData) -> EpidemicState:
    daily = data.daily_reported.astype(float)
    last14 = daily[-RECENT_DAYS:]
    slope = float(np.polyfit(np.arange(len(last14)), np.log(last14 + 1.0), 1)[0]) if len(last14) >= 3 else 0.0
    cases = data.cases
    cutoff = np.datetime64(data.start_date.isoformat()) + np.timedelta64(data.days - RECENT_DAYS, "D")
    recent = cases[cases["reported_date"] >= cutoff].iloc[::-1].head(MAX_RECENT_POINTS)
    return EpidemicState(len(cases), len(data.infections.day), tuple(int(v) for v in last14), round(slope, 5),
                         tuple((float(a), float(b)) for a, b in zip(recent["lat"], recent["lng"])))


def _cluster_info(data: EpidemicData, h3_resolution: int) -> tuple[PlantedClusterInfo, ...]:
    out = []
    for c in data.clusters:
        members = np.flatnonzero((data.infections.cluster == c.cluster_id) & (data.course.report_day >= 0))
        lat, lng = metric_to_latlng(data.infections.x[members], data.infections.y[members])
        cells = tuple(sorted({latlng_to_cell(a, b, h3_resolution) for a, b in zip(lat, lng)}))
        out.append(PlantedClusterInfo(c.cluster_id, c.lat, c.lng,
                                      data.start_date + timedelta(days=c.start_day), cells))
    return tuple(out)


def write_demo(out_dir: Path, seed: int, days: int, end_date: date, now: datetime, h3_resolution: int = 9,
               progress: ProgressFn | None = None) -> DemoManifest:
    """Generate the demo city and its ``days`` days of data ending on ``end_date``, cut at ``now``."""
    out_dir = Path(out_dir)
    city_dir, inbox = out_dir / "city", out_dir / "inbox"
    city_dir.mkdir(parents=True, exist_ok=True)
    inbox.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda step, done, total: None)

    say("city", 0, 1)
    city = build_city(seed)
    say("city", 1, 1)
    data = generate_epidemic(city, seed, days, end_date, now, progress=progress)
    addresses = build_addresses(city)
    # Cases are reported at their household's address (the address check looks there).
    data = dataclasses.replace(data, cases=place_at_addresses(data.cases, addresses))
    # A few sensors out of service, and each footfall counter's capacity (demo.sensors).
    quiet = frozenset(out_of_service({k: [s.sensor_id for s in city.sensors if s.kind == k]
                                      for k in {s.kind for s in city.sensors}}, seed))
    data = dataclasses.replace(data, readings=silence(data.readings, set(quiet), now))

    files: list[DemoFile] = []
    for name, kind in (("boundary", "boundary"), ("communities", "community"), ("precincts", "precinct")):
        fc = _feature_collection(city, kind)
        (city_dir / f"{name}.geojson").write_text(json.dumps(fc, separators=(",", ":")), encoding="utf-8")
        files.append(DemoFile(f"city/{name}.geojson", "area", len(fc["features"])))
    write_context_layers(city, out_dir)  # roads, the lake, landmarks: the offline basemap (map.context_layers)
    write_capacities(data.sensor_levels, [s.sensor_id for s in city.sensors if s.kind == "footfall"], seed, out_dir)

    sensors, facilities = _registry_frames(city)
    tables: list[tuple[str, str, pd.DataFrame]] = [
        ("addresses.csv", "address", addresses),
        ("sensors.csv", "sensor", sensors), ("facilities.csv", "facility", facilities),
        ("cases.csv", "case", data.cases), ("tests.csv", "test", data.tests),
        ("admissions.csv", "admission", data.admissions), ("capacity.csv", "capacity", data.capacity),
        ("supplies.csv", "supply", data.supplies)]
    tables += [(f"readings-{k.replace('_', '-')}.csv", "reading", f) for k, f in data.readings.items()]
    for i, (name, kind, frame) in enumerate(tables):
        say("write files", i, len(tables))
        files.append(DemoFile(f"inbox/{name}", kind, write_records_csv(inbox / name, kind, frame)))
    say("write files", len(tables), len(tables))

    manifest = DemoManifest(
        out_dir=out_dir, seed=seed, days=days, start_date=data.start_date, end_date=end_date,
        now=now.astimezone(CITY_UTC_OFFSET), h3_resolution=h3_resolution, population=city.population,
        files=tuple(files), clusters=_cluster_info(data, h3_resolution),
        sensors=_sensor_states(city, data, sensors, quiet),
        facility_ids=tuple(f.facility_id for f in city.facilities),
        area_ids=("city", *(a.area_id for a in city.communities.areas), *(a.area_id for a in city.precincts.areas)),
        epidemic=_epidemic_state(data))
    (out_dir / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    return manifest
