"""HL7 FHIR SANER MeasureReports -> capacity_reports, on the IG's own examples (../shared/data/hl7-fhir-saner).

The 54 facility reports of 2020-05-11 sum to 26,620 total beds, 5,299 occupied and 767 occupied ICU
beds (the folder's README); data-absent counts are stored as NULL, never 0; reports of facilities
that are not registered are quarantined as unknown_facility.
"""
from __future__ import annotations

import copy
import json
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from ingest.context import ContextProvider
from ingest.fhir import (
    DATA_ABSENT_REASON_URL,
    capacity_record,
    facility_record,
    location_id_from_reference,
    parse_measure_report,
    sniff_fhir,
)
from ingest.files import FileIngestor
from jobs.daily_inputs import citywide_census
from settings import Settings
from store import Store
from store import queries_indicators as qi
from tests.conftest import shared_data

EXAMPLES = ("hl7-fhir-saner", "examples")
FACILITY_REPORTS = 162  # 54 facilities x 3 days
FACILITIES = 54
# Sums over the 54 facility reports per day (README "Handy facts"); numC19HospPats -> covid_patients.
DAY_SUMS = {
    date(2020, 5, 11): {"beds_total": 26_620, "beds_occupied": 5_299, "icu_total": 3_348, "icu_occupied": 767,
                        "ventilators_total": 648, "ventilators_in_use": 648, "covid_patients": 2_639},
    date(2020, 5, 12): {"beds_occupied": 5_011, "icu_occupied": 679, "covid_patients": 2_351},
    date(2020, 5, 13): {"beds_occupied": 4_950, "icu_occupied": 660, "covid_patients": 2_290},
}


def example(name: str) -> dict:
    return json.loads(shared_data(*EXAMPLES, name).read_text())


def bundle(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def all_examples(prefix: str) -> list[dict]:
    folder = shared_data(*EXAMPLES)
    return [json.loads(p.read_text()) for p in sorted(folder.glob(f"{prefix}*.json"))]


@pytest.fixture
def city(tmp_path):
    """An empty store with no boundary (the examples are in Illinois and Rhode Island)."""
    settings = Settings.model_validate({"city": {"name": "SANER test", "slug": "saner", "timezone": "UTC"}})
    store = Store(tmp_path / "pheoc.duckdb")
    contexts = ContextProvider(store, settings)
    yield store, FileIngestor(store, contexts), tmp_path
    store.close()


def write_json(folder: Path, name: str, doc: dict) -> Path:
    path = folder / name
    path.write_text(json.dumps(doc))
    return path


# ---- parsing -------------------------------------------------------------------------------------
def test_populations_are_read_by_code_and_data_absent_is_none():
    report = parse_measure_report(example("MeasureReport-FHIR-102.json"))
    assert report.location_ref == "Loc-X410011"
    assert report.date == "2020-05-11T00:00:00-05:00"
    expected = {"numTotBeds": 53, "numbeds": 51, "numBedsOcc": 10, "numICUBeds": 2, "numICUBedsOcc": 1,
                "numVent": 1, "numVentUse": 1, "numC19HospPats": 5, "numC19Died": 0}
    assert {code: report.count(code) for code in expected} == expected
    for absent in ("numC19Pats", "numC19VentPats"):
        pop = report.population(absent)
        assert pop is not None and pop.count is None and pop.absent_reason == "unsupported"
    assert report.count("NUMBEDS") == 51  # codes match without regard to case (numbeds / numBeds quirk)


def test_capacity_record_maps_the_cdc_measure():
    record = capacity_record(parse_measure_report(example("MeasureReport-FHIR-102.json")))
    assert record == {"facility_id": "Loc-X410011", "reported_at": "2020-05-11T00:00:00-05:00", "beds_total": 53,
                      "beds_occupied": 10, "icu_total": 2, "icu_occupied": 1, "ventilators_total": 1,
                      "ventilators_in_use": 1, "covid_patients": 5}


def test_state_report_with_data_absent_beds_occupied_leaves_the_field_out():
    report = parse_measure_report(example("MeasureReport-ExampleNJ-20200406-CDCPatientImpactAndHospitalCapacity.json"))
    assert report.count("numBedsOcc") is None and report.population("numBedsOcc").absent_reason == "unsupported"
    assert (report.count("numTotBeds"), report.count("numICUBeds"), report.count("numVent"),
            report.count("numVentUse"), report.count("numC19HospPats"), report.count("numC19MechVentPats")) == (
        20_000, 2_500, 2_250, 1_576, 6_390, 1_263)
    record = capacity_record(report)
    assert "beds_occupied" not in record  # missing, not 0
    assert record["beds_total"] == 20_000


def test_location_becomes_a_facility_record():
    record = facility_record(example("Location-Loc-X410011.json"))
    assert record == {"facility_id": "Loc-X410011", "name": "NORTH COUNTY HOSPITAL Building", "kind": "hospital",
                      "lat": 42.00532, "lng": -71.49621}


def test_location_references():
    assert location_id_from_reference("Location/Loc-X1") == "Loc-X1"
    assert location_id_from_reference("https://fhir.example.org/r4/Location/abc/_history/3") == "abc"
    assert location_id_from_reference("Organization/X1") is None
    assert location_id_from_reference("#l1", {"l1": {"resourceType": "Location", "id": "l1"}}) == "l1"
    assert location_id_from_reference(None) is None


def test_sniffing_takes_only_fhir_json():
    assert sniff_fhir("MeasureReport-FHIR-102.json",
                      shared_data(*EXAMPLES, "MeasureReport-FHIR-102.json").read_bytes()) is not None
    assert sniff_fhir("capacity.json", b'{"records": []}') is None
    assert sniff_fhir("x.json", b'{"resourceType": "Organization", "id": "o"}') is None
    assert sniff_fhir("x.csv", b'resourceType,MeasureReport') is None


# ---- ingest --------------------------------------------------------------------------------------
def test_the_54_facilities_sum_to_the_published_totals(city):
    """All 54 Locations and 162 facility reports in one Bundle; per-day sums through the page's own path."""
    store, files, folder = city
    locations = all_examples("Location-Loc-")
    reports = all_examples("MeasureReport-FHIR-")
    assert (len(locations), len(reports)) == (FACILITIES, FACILITY_REPORTS)
    result = files.ingest_file(write_json(folder, "saner-2020-05.json", bundle(locations + reports)))
    assert result.error is None and result.kind == "capacity"
    assert result.result.accepted == FACILITIES + FACILITY_REPORTS and result.result.rejected == 0
    assert store.scalar("SELECT count(*) FROM capacity_reports") == FACILITY_REPORTS
    daily = qi.facility_days(store, date(2020, 5, 11), date(2020, 5, 13), "UTC", max_age_hours=26,
                             now=datetime(2020, 5, 14, tzinfo=timezone.utc))
    days = pd.date_range(date(2020, 5, 11), date(2020, 5, 13), freq="D")
    city_sums = citywide_census(daily, days).rename(columns={"beds_covid": "covid_patients"})
    for day, sums in DAY_SUMS.items():
        row = city_sums.loc[pd.Timestamp(day)]
        assert row["hospitals_reporting"] == FACILITIES
        assert {k: int(row[k]) for k in sums} == sums, day
    # numC19Pats/numC19VentPats are data-absent in every report and are not capacity fields: nothing invented.
    assert store.scalar("SELECT count(*) FROM capacity_reports WHERE staff_on_duty IS NOT NULL") == 0


def test_single_files_location_first_then_reports(city):
    store, files, folder = city
    paths = [shared_data(*EXAMPLES, n) for n in ("MeasureReport-FHIR-102.json", "Location-Loc-X410011.json")]
    results = files.ingest_paths(paths)  # registries are not named as such: order by name puts Location first
    assert [r.path.name for r in results] == ["Location-Loc-X410011.json", "MeasureReport-FHIR-102.json"]
    assert all(r.error is None for r in results)
    row = store.read("SELECT * FROM capacity_reports").iloc[0]
    assert (row["facility_id"], row["beds_total"], row["beds_occupied"], row["icu_occupied"]) == (
        "Loc-X410011", 53, 10, 1)
    assert store.scalar("SELECT name FROM facilities") == "NORTH COUNTY HOSPITAL Building"
    again = files.ingest_paths(paths)
    assert all(r.result.skipped_file for r in again)


def test_data_absent_count_is_stored_as_null_not_zero(city):
    store, files, folder = city
    report = example("MeasureReport-FHIR-102.json")
    for group in report["group"]:
        for pop in group["population"]:
            if pop["code"]["coding"][0]["code"] in ("numICUBedsOcc", "numC19HospPats"):
                del pop["count"]
                pop["_count"] = {"extension": [{"url": DATA_ABSENT_REASON_URL, "valueCode": "asked-unknown"}]}
    result = files.ingest_file(write_json(folder, "saner.json", bundle([example("Location-Loc-X410011.json"),
                                                                        report])))
    assert result.result.accepted == 2
    row = store.read("SELECT beds_total, beds_occupied, icu_total, icu_occupied, covid_patients "
                     "FROM capacity_reports").iloc[0]
    assert (row["beds_total"], row["beds_occupied"], row["icu_total"]) == (53, 10, 2)
    assert row.isna()["icu_occupied"] and row.isna()["covid_patients"]
    assert store.scalar("SELECT count(*) FROM capacity_reports WHERE icu_occupied = 0 OR covid_patients = 0") == 0


def test_data_absent_required_count_is_quarantined_not_zero(city):
    store, files, folder = city
    report = example("MeasureReport-FHIR-102.json")
    for group in report["group"]:
        for pop in group["population"]:
            if pop["code"]["coding"][0]["code"] == "numBedsOcc":
                del pop["count"]
                pop["_count"] = {"extension": [{"url": DATA_ABSENT_REASON_URL, "valueCode": "unsupported"}]}
    files.ingest_file(write_json(folder, "saner.json", bundle([example("Location-Loc-X410011.json"), report])))
    assert store.scalar("SELECT count(*) FROM capacity_reports") == 0
    q = store.read("SELECT reason_code, kind, reason_detail FROM quarantine")
    assert list(q["reason_code"]) == ["missing_field"] and "beds_occupied" in q["reason_detail"][0]


def test_unknown_facility_is_quarantined(city):
    store, files, folder = city
    files.ingest_file(write_json(folder, "loc.json", example("Location-Loc-X410011.json")))
    result = files.ingest_file(write_json(folder, "rep.json", bundle([example("MeasureReport-FHIR-102.json"),
                                                                      example("MeasureReport-FHIR-381.json")])))
    assert (result.result.accepted, result.result.rejected) == (1, 1)
    q = store.read("SELECT reason_code, kind, raw_payload FROM quarantine")
    assert list(q["reason_code"]) == ["unknown_facility"] and list(q["kind"]) == ["capacity"]
    assert b'"id":"FHIR-381"' in bytes(q["raw_payload"][0])  # the whole report kept for a person


def test_unusable_reports_are_quarantined_with_a_reason(city):
    store, files, folder = city
    loc = example("Location-Loc-X410011.json")
    in_error = copy.deepcopy(example("MeasureReport-FHIR-102.json"))
    in_error["status"] = "error"
    no_subject = copy.deepcopy(example("MeasureReport-FHIR-102.json"))
    no_subject["id"] = "no-subject"
    no_subject.pop("subject")
    no_subject["reporter"] = {"reference": "Organization/X410011"}
    no_tz = copy.deepcopy(example("MeasureReport-FHIR-102.json"))
    no_tz["date"] = "2020-05-11"
    nameless = {"resourceType": "Location", "id": "Loc-nameless", "position": {"latitude": 42.0, "longitude": -71.5}}
    files.ingest_file(write_json(folder, "mixed.json", bundle([loc, nameless, in_error, no_subject, no_tz])))
    reasons = sorted(store.read("SELECT reason_code FROM quarantine")["reason_code"])
    assert reasons == ["invalid_value", "missing_field", "missing_field", "timestamp_without_timezone"]
    assert store.scalar("SELECT count(*) FROM capacity_reports") == 0


def test_fhir_file_dropped_in_the_inbox_is_processed(city):
    store, files, folder = city
    inbox = folder / "inbox"
    inbox.mkdir()
    write_json(inbox, "saner-bundle.json", bundle([example("Location-Loc-X410011.json"),
                                                   example("MeasureReport-FHIR-102.json")]))
    results = files.ingest_inbox(inbox)
    assert [r.moved_to.parent.name for r in results] == ["processed"]
    assert store.scalar("SELECT count(*) FROM capacity_reports") == 1
    kinds = set(store.read("SELECT kind FROM ingest_log")["kind"])
    assert kinds == {"facility", "capacity"}
