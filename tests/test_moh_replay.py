"""Replay of the Malaysian MoH open data for W.P. Putrajaya: what is stored equals the files.

Figures checked against ../shared/data/moh-malaysia-covid19-public (README "Handy facts"): 32,374
cases in total, 72 on 2021-08-01; tests, hospital, ICU and PKRC rows and sums per day; anything the
validation refused is in the quarantine with its reason, so stored + quarantined = the file.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from ingest.context import ContextProvider
from ingest.moh_malaysia import (
    MohDataError,
    facility_ids,
    load_state,
    placeholder_boundary,
    read_state,
    replay_moh,
    state_slug,
)
from services.capacity import capacity_view
from services.overview import overview
from settings import Settings, load_settings
from store import Store
from tests.conftest import ROOT, shared_data, write_config

STATE = "W.P. Putrajaya"
PUTRAJAYA_CASES = 32_374
PUTRAJAYA_POPULATION = 116_100
MOH = ("moh-malaysia-covid19-public",)

pytestmark = pytest.mark.slow  # loads 32k cases (a few seconds)


def file_rows(name: str) -> pd.DataFrame:
    frame = pd.read_csv(shared_data(*MOH, "epidemic", name))
    return frame[frame["state"] == STATE].reset_index(drop=True)


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """Putrajaya loaded into a fresh store through load_state; yields (store, results, placeholder)."""
    folder = tmp_path_factory.mktemp("moh")
    settings = Settings.model_validate({"city": {"name": "Putrajaya replay", "slug": "pj",
                                                 "timezone": "Asia/Kuala_Lumpur"}})
    store = Store(folder / "replay.duckdb")
    contexts = ContextProvider(store, settings)
    data = read_state(shared_data(*MOH), STATE)
    results, placeholder = load_state(store, contexts, data, batch_rows=5000)
    yield store, contexts, data, results, placeholder, settings
    store.close()


def test_case_total_matches_the_file(replay):
    store, _, data, results, _, _ = replay
    cases = file_rows("cases_state.csv")
    assert int(cases["cases_new"].sum()) == PUTRAJAYA_CASES
    assert results["case"].accepted == PUTRAJAYA_CASES and results["case"].rejected == 0
    assert store.scalar("SELECT count(*) FROM cases") == PUTRAJAYA_CASES
    assert store.scalar("SELECT count(*) FROM cases WHERE imported") == int(cases["cases_import"].sum())
    assert store.scalar("SELECT count(*) FROM cases WHERE lat IS NOT NULL OR h3_cell IS NOT NULL") == 0
    per_day = store.read("SELECT reported_date AS date, count(*) AS n FROM cases GROUP BY 1")
    per_day["date"] = pd.to_datetime(per_day["date"]).dt.strftime("%Y-%m-%d")
    merged = cases[cases["cases_new"] > 0].merge(per_day, on="date", how="outer")
    assert (merged["cases_new"] == merged["n"]).all()
    ids = store.read("SELECT case_id FROM cases WHERE reported_date = DATE '2021-08-01'")["case_id"]
    assert len(ids) == 72 and set(ids) == {f"MOH-WP-Putrajaya-2021-08-01-{n}" for n in range(1, 73)}


def test_tests_per_day_match_the_file(replay):
    store, _, data, results, _, _ = replay
    tests = file_rows("tests_state.csv")
    assert results["test"].accepted == len(tests) == 572 and results["test"].rejected == 0
    stored = store.read("SELECT strftime(test_date, '%Y-%m-%d') AS date, area_id, tested, positive FROM tests")
    assert set(stored["area_id"]) == {"MOH-WP-Putrajaya"}
    merged = tests.merge(stored, on="date").merge(file_rows("cases_state.csv")[["date", "cases_new"]], on="date")
    assert len(merged) == len(tests)
    assert (merged["tested"] == merged["rtk-ag"] + merged["pcr"]).all()
    assert (merged["positive"] == merged["cases_new"]).all()
    assert int(stored["tested"].sum()) == int((tests["rtk-ag"] + tests["pcr"]).sum()) == 289_528


def test_hospital_icu_and_pkrc_reports_match_the_files(replay):
    store, _, data, results, _, _ = replay
    ids = facility_ids(STATE)
    hospital, icu, pkrc = file_rows("hospital.csv"), file_rows("icu.csv"), file_rows("pkrc.csv")
    assert (len(hospital), len(icu), len(pkrc)) == (625, 645, 1)
    stored = store.read("SELECT facility_id, strftime(reported_at AT TIME ZONE 'Asia/Kuala_Lumpur', '%Y-%m-%d')"
                        " AS date, beds_total, beds_occupied, icu_total, icu_occupied, ventilators_total,"
                        " ventilators_in_use, covid_patients FROM capacity_reports")
    hosp = hospital.merge(stored[stored["facility_id"] == ids["hospital"]], on="date")
    assert len(hosp) == len(hospital)  # every day stored: the census never exceeds the beds here
    assert (hosp["beds_total"] == hosp["beds"]).all()
    assert (hosp["beds_occupied"] == hosp["hosp_covid"] + hosp["hosp_pui"] + hosp["hosp_noncovid"]).all()
    assert (hosp["covid_patients"] == hosp["hosp_covid"]).all()
    # ICU: a day whose census exceeds the ICU beds (the July 2021 surge) is quarantined, not altered.
    icu["occupied"] = icu["icu_covid"] + icu["icu_pui"] + icu["icu_noncovid"]
    over = icu[icu["occupied"] > icu["beds_icu_total"]]
    stored_icu = icu.merge(stored[stored["facility_id"] == ids["icu"]], on="date")
    assert len(stored_icu) + len(over) == len(icu) and len(over) == 30
    assert not set(stored_icu["date"]) & set(over["date"])
    assert (stored_icu["icu_total"] == stored_icu["beds_icu_total"]).all()
    assert (stored_icu["icu_occupied"] == stored_icu["occupied"]).all()
    assert (stored_icu["ventilators_total"] == stored_icu["vent"] + stored_icu["vent_port"]).all()
    assert (stored_icu["ventilators_in_use"] == stored_icu["vent_used"] + stored_icu["vent_port_used"]).all()
    q = store.read("SELECT reason_code, record_key, raw_payload FROM quarantine")
    assert list(q["reason_code"].unique()) == ["occupied_exceeds_total"] and len(q) == 30
    assert results["capacity"].accepted == len(hospital) + len(icu) - 30 + len(pkrc)
    row = stored[(stored["facility_id"] == ids["icu"]) & (stored["date"] == "2021-08-02")].iloc[0]
    file_row = icu[icu["date"] == "2021-08-02"].iloc[0]
    assert (row["icu_occupied"], row["icu_total"]) == (file_row["occupied"], file_row["beds_icu_total"])
    assert stored[stored["facility_id"] == ids["pkrc"]]["date"].tolist() == ["2022-08-12"]


def test_placeholder_boundary_is_written_and_labelled(replay):
    store, _, data, _, placeholder, _ = replay
    assert placeholder
    area = store.read("SELECT area_id, name, kind, population FROM areas").iloc[0]
    assert (area["area_id"], area["kind"], area["population"]) == ("MOH-WP-Putrajaya", "boundary",
                                                                    PUTRAJAYA_POPULATION)
    assert "placeholder" in area["name"] and "not the real boundary" in area["name"]
    facilities = store.read("SELECT facility_id, kind, name FROM facilities ORDER BY facility_id")
    assert list(facilities["kind"]) == ["hospital", "icu", "quarantine_centre"]
    assert all("aggregate" in n for n in facilities["name"])
    square = placeholder_boundary(STATE, None)["geometry"]["coordinates"][0]
    assert square[0] == square[-1] and len(square) == 5
    assert state_slug("Negeri Sembilan") == "Negeri-Sembilan" and state_slug(STATE) == "WP-Putrajaya"


def test_loading_twice_stores_nothing_new(replay):
    store, contexts, data, _, _, _ = replay
    before = store.table_counts()
    results, placeholder = load_state(store, contexts, data)
    assert placeholder and "area" not in results  # the placeholder from the first load is kept, not rewritten
    assert all(r.accepted == 0 for r in results.values())
    assert results["case"].duplicate == PUTRAJAYA_CASES
    after = store.table_counts()
    for table in ("cases", "tests", "capacity_reports", "facilities", "areas"):
        assert after[table] == before[table]


def test_pages_read_the_replay_as_of_its_last_day(replay):
    from auth.principal import principal_for
    from jobs import early_warning, indicators

    store, _, data, _, _, settings = replay
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    # The jobs compute for the replay's last day (the as-of day), whatever today is.
    assert indicators.run(store, settings, now.date(), now=now)["as_of"] == "2023-01-25"
    early_warning.run(store, settings, now.date(), now=now)
    manager = principal_for("dm", "data_manager")  # case level: the file's own numbers, none withheld
    view = capacity_view(store, settings, manager, now)
    assert view.replay is not None and view.replay["region"] == STATE and view.replay["placeholder_boundary"]
    assert view.reference_time == datetime(2023, 1, 25, 15, 59, tzinfo=timezone.utc)  # 23:59 +08:00
    assert view.as_of == date(2023, 1, 25)
    rows = view.facilities.set_index("facility_id")
    ids = facility_ids(STATE)
    assert not rows.loc[ids["hospital"], "stale"] and not rows.loc[ids["icu"], "stale"]
    assert rows.loc[ids["pkrc"], "stale"]  # its only report is from 2022-08-12
    last = file_rows("hospital.csv").iloc[-1]
    assert rows.loc[ids["hospital"], "beds_total"] == last["beds"]
    assert rows.loc[ids["hospital"], "beds_occupied"] == last["hosp_covid"] + last["hosp_pui"] + last["hosp_noncovid"]
    # The overview also reports on the replay's last day, with the file's own numbers.
    data_ov = overview(store, settings, manager, now)
    assert data_ov.as_of == date(2023, 1, 25)
    cases = file_rows("cases_state.csv")
    last_week = int(cases[cases["date"] >= "2023-01-19"]["cases_new"].sum())
    assert next(t for t in data_ov.tiles if t.figure.key == "new_cases_7d").figure.value == last_week


def test_replay_builds_its_own_database(tmp_path):
    settings = load_settings(write_config(tmp_path))
    progress = []
    summary = replay_moh(settings, shared_data(*MOH), STATE, lambda step, done, total: progress.append(step),
                         workdir=tmp_path / "replay")
    assert summary.database == tmp_path / "replay" / "pheoc-replay.duckdb" and summary.database.exists()
    assert not settings.path(settings.store.path).exists()  # the deployment's database is not touched
    assert summary.settings.store.path == summary.database
    assert summary.settings.city.boundary_file is None and summary.settings.city.timezone == "Asia/Kuala_Lumpur"
    assert summary.results["case"].accepted == summary.file_totals["cases"] == PUTRAJAYA_CASES
    assert summary.rejected_by_reason == {"occupied_exceeds_total": 30}
    assert (summary.first_date, summary.last_date) == (date(2020, 1, 25), date(2023, 1, 25))
    assert {"boundary", "facilities", "cases", "tests", "capacity"} <= set(progress)
    assert any("PLACEHOLDER" in line for line in summary.lines())
    with Store(summary.database) as store:
        assert store.scalar("SELECT count(*) FROM cases") == PUTRAJAYA_CASES


def test_bad_folder_or_state_is_refused_with_the_choices(tmp_path):
    with pytest.raises(MohDataError, match="cases_state.csv"):
        read_state(tmp_path, STATE)
    with pytest.raises(MohDataError, match="W.P. Putrajaya"):
        read_state(shared_data(*MOH), "Putrajaya")
    assert Path(ROOT).exists()
