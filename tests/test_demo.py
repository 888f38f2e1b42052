"""The demo city and its live simulator: deterministic, plausible, and valid for the ingest formats."""
from __future__ import annotations

import csv
import json
import threading
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from demo.city import CITY_UTC_OFFSET
from demo.files import DemoManifest, write_demo
from demo.simulator import LiveSimulator
from geo.areas import AreaShape, PointLocator, geometry_from_geojson
from ingest.files import kind_from_name
from ingest.records import FIELD_SPECS, ValidationContext, validate_record
from tests.conftest import shared_data

END = date(2026, 3, 1)
NOW = datetime(2026, 3, 1, 15, 30, tzinfo=CITY_UTC_OFFSET)
SEED, DAYS = 7, 120


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo120")
    steps = []
    t0 = time.perf_counter()
    manifest = write_demo(out, SEED, DAYS, END, NOW, progress=lambda s, d, t: steps.append((s, d, t)))
    elapsed = time.perf_counter() - t0
    print(f"\ndemo seed={SEED} days={DAYS}: {elapsed:.2f} s; rows {manifest.rows_by_kind()}")
    return manifest, steps


def features(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["features"]


def boundary_of(manifest: DemoManifest) -> shapely.Geometry:
    return geometry_from_geojson(features(manifest.boundary_path)[0]["geometry"])


def read_csv(manifest: DemoManifest, name: str) -> pd.DataFrame:
    return pd.read_csv(manifest.inbox_dir / name, keep_default_na=False, dtype=str)


def validation_context(manifest: DemoManifest, now: datetime) -> ValidationContext:
    communities = [AreaShape(f["properties"]["area_id"], f["properties"]["name"], "community",
                             f["properties"]["population"], geometry_from_geojson(f["geometry"]))
                   for f in features(manifest.area_paths[0])]
    boundary = boundary_of(manifest)
    shapely.prepare(boundary)
    return ValidationContext(
        now=now, h3_resolution=manifest.h3_resolution, boundary=boundary,
        community_locator=PointLocator(communities), sensor_ids=frozenset(s.sensor_id for s in manifest.sensors),
        facility_ids=frozenset(manifest.facility_ids), area_ids=frozenset(manifest.area_ids))


def test_same_seed_same_bytes_and_other_seed_differs(demo, tmp_path):
    a, _ = demo
    b = write_demo(tmp_path / "b", SEED, DAYS, END, NOW)
    c = write_demo(tmp_path / "c", SEED + 1, DAYS, END, NOW)
    for f in a.files:
        assert (a.out_dir / f.path).read_bytes() == (b.out_dir / f.path).read_bytes(), f.path
    assert (a.out_dir / "manifest.json").read_bytes() == (b.out_dir / "manifest.json").read_bytes()
    for name in ("city/boundary.geojson", "inbox/cases.csv", "inbox/readings-wastewater.csv"):
        assert (a.out_dir / name).read_bytes() != (c.out_dir / name).read_bytes()


def test_manifest_round_trips_through_json(demo):
    manifest, steps = demo
    assert DemoManifest.from_json(manifest.out_dir / "manifest.json") == manifest
    assert steps and all(0 <= d <= t for _, d, t in steps)


def test_city_size_areas_and_populations(demo):
    manifest, _ = demo
    boundary = features(manifest.boundary_path)
    assert [f["properties"]["kind"] for f in boundary] == ["boundary"]
    total = boundary[0]["properties"]["population"]
    assert total == manifest.population and 100_000 <= total <= 120_000
    geom = geometry_from_geojson(boundary[0]["geometry"])
    lat_c = geom.centroid.y
    area_km2 = geom.area * (111.32 ** 2) * np.cos(np.radians(lat_c))  # small area: plate carrée is close
    assert 45 <= area_km2 <= 55
    assert abs(lat_c - 2.93) < 0.03 and abs(geom.centroid.x - 101.69) < 0.03
    for path, kind, lo, hi, prefix in ((manifest.area_paths[0], "community", 10, 20, "C"),
                                       (manifest.area_paths[1], "precinct", 5, 8, "P")):
        feats = features(path)
        assert lo <= len(feats) <= hi
        assert {f["properties"]["kind"] for f in feats} == {kind}
        assert all(f["properties"]["area_id"].startswith(prefix) for f in feats)
        pops = [f["properties"]["population"] for f in feats]
        assert abs(sum(pops) - total) <= len(feats) and min(pops) > 0
        shapes = [geometry_from_geojson(f["geometry"]) for f in feats]
        assert abs(shapely.union_all(shapes).area - geom.area) / geom.area < 1e-4  # they tile the city


def test_registries_have_the_planned_mix(demo):
    manifest, _ = demo
    fac = read_csv(manifest, "facilities.csv")
    kinds = Counter(fac["kind"])
    assert kinds["temporary_hospital"] == 1 and kinds["quarantine_centre"] == 1
    assert 6 <= kinds["hospital"] + kinds["temporary_hospital"] + kinds["quarantine_centre"] <= 10
    assert 2 <= kinds["potential_site"] <= 3
    assert (fac["icu_beds"].astype(int) <= fac["beds"].astype(int)).all()
    sensors = Counter(read_csv(manifest, "sensors.csv")["kind"])
    assert set(sensors) == {"wastewater", "footfall", "fever_kiosk", "panic_button", "air_quality"}
    assert 250 <= sum(sensors.values()) <= 350 and 8 <= sensors["wastewater"] <= 12


def putrajaya_rows(name: str) -> list[dict]:
    path = shared_data("moh-malaysia-covid19-public", *name.split("/"))
    with open(path, encoding="utf-8", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["state"] == "W.P. Putrajaya"]


def test_city_is_sized_like_putrajaya(demo):
    """Population and hospital capacity of the real W.P. Putrajaya (MoH Malaysia open data)."""
    manifest, _ = demo
    real_pop = int(putrajaya_rows("static/population.csv")[0]["pop"])
    assert abs(manifest.population - real_pop) / real_pop < 0.1
    real_beds = [int(r["beds"]) for r in putrajaya_rows("epidemic/hospital.csv")]
    real_icu = [int(r["beds_icu_total"]) for r in putrajaya_rows("epidemic/icu.csv")]
    fac = read_csv(manifest, "facilities.csv")
    hospitals = fac[fac["kind"] == "hospital"]
    beds, icu = hospitals["beds"].astype(int).sum(), hospitals["icu_beds"].astype(int).sum()
    assert 0.8 * min(real_beds) <= beds <= 1.5 * max(real_beds)
    assert 0.8 * min(real_icu) <= icu <= 2.0 * max(real_icu)


def test_row_counts_are_sensible(demo):
    manifest, _ = demo
    rows = manifest.rows_by_kind()
    assert 1_500 <= rows["case"] <= 12_000
    assert 50 <= rows["admission"] <= 2_000
    assert rows["test"] == DAYS * (len(manifest.area_ids) - 1 - len(features(manifest.area_paths[1])))
    assert 100_000 <= rows["reading"] <= 400_000
    assert sum(rows.values()) <= 450_000
    for f in manifest.files:  # the ingest can tell each file's kind from its name
        assert kind_from_name(Path(f.path).name) == f.kind
        assert sum(1 for _ in open(manifest.out_dir / f.path, encoding="utf-8")) >= 1


def test_all_points_inside_the_boundary(demo):
    manifest, _ = demo
    boundary = boundary_of(manifest)
    for name in ("sensors.csv", "facilities.csv", "cases.csv"):
        df = read_csv(manifest, name)
        assert shapely.contains_xy(boundary, df["lng"].astype(float), df["lat"].astype(float)).all(), name


def test_every_record_passes_validation(demo):
    manifest, _ = demo
    ctx = validation_context(manifest, NOW)
    checked = 0
    for f in manifest.files:
        path = manifest.out_dir / f.path
        if path.suffix == ".geojson":
            for feat in features(path):
                validate_record("area", {**feat["properties"], "geometry": feat["geometry"]}, ctx)
                checked += 1
            continue
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            assert set(reader.fieldnames) <= set(FIELD_SPECS[f.kind])
            for rec in reader:
                validate_record(f.kind, rec, ctx, from_text=True)  # raises Reject on the first bad one
                checked += 1
    assert checked == sum(f.rows for f in manifest.files)


def test_nothing_after_now_and_offsets_everywhere(demo):
    manifest, _ = demo
    for f in manifest.files:
        if f.kind in ("reading", "capacity", "supply"):
            col = "ts" if f.kind == "reading" else "reported_at"
            ts = read_csv(manifest, Path(f.path).name)[col]
            assert ts.str.endswith("+08:00").all()
            assert max(datetime.fromisoformat(t) for t in ts) <= NOW
    cases = read_csv(manifest, "cases.csv")
    assert cases["reported_date"].max() == END.isoformat()
    symptomatic = cases[cases["onset_date"] != ""]
    assert 0.5 * len(cases) < len(symptomatic) < len(cases)
    assert (symptomatic["onset_date"] < symptomatic["reported_date"]).all()


def test_cases_have_the_clinical_mix(demo):
    manifest, _ = demo
    cases = read_csv(manifest, "cases.csv")
    status = Counter(cases["status"])
    assert status["confirmed"] > 0 and status["recovered"] > 0 and status["deceased"] > 0
    assert 0 < (cases["imported"] == "true").sum() < 0.05 * len(cases)
    older = cases["age_band"].isin(["60-69", "70-79", "80+"])
    grave = cases["severity"].isin(["severe", "critical"])
    assert grave[older].mean() > 3 * grave[~older].mean()  # severity rises with age
    assert cases["case_id"].str.fullmatch(r"DC-\d{6}").all() and cases["case_id"].is_unique
    adm = read_csv(manifest, "admissions.csv")
    assert set(adm["case_id"]) <= set(cases["case_id"])
    assert (adm["icu"] == "true").sum() > 0


def test_positivity_is_realistic(demo):
    manifest, _ = demo
    tests = read_csv(manifest, "tests.csv")
    daily = tests.assign(tested=tests["tested"].astype(int), positive=tests["positive"].astype(int)).groupby(
        "test_date")[["tested", "positive"]].sum()
    overall = daily["positive"].sum() / daily["tested"].sum()
    assert 0.03 <= overall <= 0.15
    busy = daily[daily["positive"] >= 20]
    assert ((busy["positive"] / busy["tested"]).between(0.02, 0.16)).all()


def test_capacity_reports_are_consistent(demo):
    manifest, _ = demo
    cap = read_csv(manifest, "capacity.csv").set_index(["facility_id", "reported_at"]).astype(int)
    assert (cap["covid_patients"] <= cap["beds_occupied"]).all()
    assert (cap["beds_occupied"] <= cap["beds_total"]).all() and (cap["icu_occupied"] <= cap["icu_total"]).all()
    assert cap["covid_patients"].max() > 0
    # The COVID census in each report is exactly the admissions in the bed that morning.
    adm = read_csv(manifest, "admissions.csv")
    pairs = cap.reset_index()[["facility_id", "reported_at", "covid_patients", "icu_occupied"]].merge(
        adm, on="facility_id")
    day = pairs["reported_at"].str[:10]
    present = (pairs["admitted_on"] <= day) & ((pairs["discharged_on"] == "") | (pairs["discharged_on"] > day))
    census = pairs[present].groupby(["facility_id", "reported_at"]).agg(
        n=("admission_id", "size"), icu=("icu", lambda v: (v == "true").sum()))
    joined = cap.join(census, how="left").fillna(0)
    assert (joined["n"] == joined["covid_patients"]).all()
    assert (joined["icu"] <= joined["icu_occupied"]).all()
    sup = read_csv(manifest, "supplies.csv")
    assert set(sup["item"]) == {"ppe", "oxygen", "test_kits"}


def daily_reported(manifest: DemoManifest) -> np.ndarray:
    cases = read_csv(manifest, "cases.csv")
    days = pd.to_datetime(cases["reported_date"]).dt.date.map(lambda d: (d - manifest.start_date).days)
    return np.bincount(days, minlength=manifest.days)


def test_wastewater_leads_reported_cases(demo):
    manifest, _ = demo
    ww = read_csv(manifest, "readings-wastewater.csv")
    ww["day"] = ww["ts"].str[:10].map(lambda d: (date.fromisoformat(d) - manifest.start_date).days)
    city_ww = ww.assign(value=ww["value"].astype(float)).groupby("day")["value"].mean().to_numpy()
    cases = daily_reported(manifest)

    def growth(series):  # week-on-week change of the log 7-day mean: compares turns, not levels
        level = np.log(np.convolve(series, np.ones(7) / 7, "valid") + 1.0)
        return level[7:] - level[:-7]

    x, y = growth(city_ww), growth(cases.astype(float))
    corr = [np.corrcoef(x[: len(x) - lag], y[lag:])[0, 1] for lag in range(15)]
    assert 3 <= int(np.argmax(corr)) <= 10
    assert max(corr) > 0.7


def test_planted_micro_clusters_stand_out(demo):
    manifest, _ = demo
    res = manifest.h3_resolution
    assert 2 <= len(manifest.clusters) <= 3
    cases = read_csv(manifest, "cases.csv")
    recent = cases[cases["reported_date"] > (END - timedelta(days=14)).isoformat()]
    cells = Counter(h3.latlng_to_cell(float(a), float(b), res) for a, b in zip(recent["lat"], recent["lng"]))
    n_cells = len(h3.geo_to_cells(boundary_of(manifest).__geo_interface__, res))
    city_mean = len(recent) / n_cells
    counts = np.array(list(cells.values()) + [0] * (n_cells - len(cells)))
    for c in manifest.clusters:
        assert (END - c.start_date).days <= 24
        assert 1 <= len(c.cells) <= 8  # street-block scale: a few cells
        ring = h3.grid_disk(h3.latlng_to_cell(c.lat, c.lng, res), 1)
        busiest = max(cells[r] for r in ring)
        assert busiest >= 5 * city_mean
        assert (counts < busiest).mean() >= 0.97  # among the city's top 3 % of cells


def test_simulator_publishes_valid_messages(demo):
    manifest, _ = demo
    clock = [NOW + timedelta(seconds=5)]
    sent: list[tuple[str, bytes]] = []
    sim = LiveSimulator(manifest, lambda topic, payload: sent.append((topic, payload)), "pheoc/test", seed=1,
                        clock=lambda: clock[0], case_rate_multiplier=200.0)
    per_tick = []
    for _ in range(150):
        clock[0] += timedelta(seconds=2)
        per_tick.append(sim.tick())
    assert sim.tick() == 0  # nothing new in no time
    assert 0 < max(per_tick) <= 50 + 20 and sum(per_tick) == len(sent)
    ctx = validation_context(manifest, clock[0])
    last_seq = {s.sensor_id: s.last_seq for s in manifest.sensors}
    case_ids = set(read_csv(manifest, "cases.csv")["case_id"])
    n_cases = 0
    for topic, payload in sent:
        msg = json.loads(payload)
        if topic == "pheoc/test/cases":
            row = validate_record("case", msg, ctx)
            assert row["case_id"].startswith("LIVE-") and row["case_id"] not in case_ids
            case_ids.add(row["case_id"])
            n_cases += 1
            continue
        sensor_id = msg["sensor_id"]
        assert topic == f"pheoc/test/sensors/{sensor_id}/readings"
        row = validate_record("reading", msg, ctx)
        assert NOW < row["ts"] <= clock[0]
        assert row["seq"] > last_seq[sensor_id]  # increasing, and never reuses a generated seq
        last_seq[sensor_id] = row["seq"]
    assert n_cases > 0
    assert len({json.loads(p)["sensor_id"] for t, p in sent if "/sensors/" in t}) > 100  # everyone gets a turn


def test_simulator_survives_a_failing_publisher(demo):
    manifest, _ = demo
    clock = [NOW + timedelta(seconds=5)]

    def broken(topic, payload):
        raise ConnectionError("broker gone")

    sim = LiveSimulator(manifest, broken, "pheoc/test", seed=2, clock=lambda: clock[0])
    clock[0] += timedelta(minutes=1)
    assert sim.tick() > 0 and sim.published["errors"] > 0


def test_simulator_runs_until_stopped(demo):
    manifest, _ = demo
    clock = [NOW]
    stop = threading.Event()
    sent = []

    def tick_clock():
        clock[0] += timedelta(seconds=2)
        return clock[0]

    def collect(topic, payload):
        sent.append(topic)
        if len(sent) >= 30:
            stop.set()

    sim = LiveSimulator(manifest, collect, "pheoc/test", seed=3, clock=tick_clock)
    worker = threading.Thread(target=sim.run, args=(stop, 0.0), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive() and len(sent) >= 30


def test_simulator_does_not_import_paho():
    source = (Path(__file__).resolve().parents[1] / "demo" / "simulator.py").read_text(encoding="utf-8")
    assert "paho" not in source.replace("never imports paho", "")
