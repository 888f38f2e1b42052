"""/capacity: builders on small frames, then the page in real headless Chromium against the demo city
(table sorts, map and trends render, a facility's trend opens, no console errors, nothing leaves
127.0.0.1; screenshot tests/artifacts/capacity.png) and against the MoH Putrajaya replay (the
capacity, overview and early-warning pages show the replay as of its last day)."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from selenium.webdriver.common.by import By

from components.capacity import (
    capacity_trend_figure,
    count_text,
    facility_map_figure,
    facility_table_rows,
    sites_table,
    supplies_table,
)
from tests.auth_helpers import sign_in_browser
from tests.browser import (
    api_json, city_of, console_errors, external, patient_wait, requested_urls, serve_database_copy, text_of,
)
from tests.conftest import ROOT, shared_data

ARTIFACTS = ROOT / "tests" / "artifacts"


# ---- builders -------------------------------------------------------------------------------------
def _facility_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "facility_id": ["A", "B"], "name": ["Alpha", "Beta"], "kind": ["hospital", "temporary_hospital"],
        "lat": [2.9, 2.95], "lng": [101.7, 101.72], "beds_total": [400, np.nan], "beds_occupied": [380, np.nan],
        "icu_total": [20, np.nan], "icu_occupied": [19, np.nan], "ventilators_total": [10, np.nan],
        "ventilators_in_use": [4, np.nan], "covid_patients": [3, np.nan], "occupancy": [0.95, np.nan],
        "free_beds": [20, np.nan], "icu_occupancy": [0.95, np.nan], "vent_free": [6, np.nan],
        "report_age_h": [2.0, np.nan], "stale": [False, True], "status": ["bad", "neutral"],
        "days_until_full": [0, np.nan]})


def test_table_rows_show_withheld_counts_as_less_than_k_and_flag_stale():
    withheld = _facility_frame().assign(covid_patients=[np.nan, np.nan], covid_patients__suppressed=[True, False])
    rows = facility_table_rows(withheld, horizon=28, min_count=5)
    texts = [[str(getattr(td, "children", "")) for td in tr.children] for tr in rows]
    assert "<5" in texts[0][5] and "now" in texts[0][6] and "2 h ago" in texts[0][7]
    assert rows[1].className == "stale" and "never" in texts[1][7]
    shown = facility_table_rows(_facility_frame(), horizon=28, min_count=5)
    assert str(shown[0].children[5].children) == "3"
    assert count_text({"n": 0}, "n", 5) == "0" and count_text({"n": None}, "n", 5) == "–"
    empty = facility_table_rows(_facility_frame().iloc[0:0], horizon=28, min_count=5)
    assert "No facilities registered" in str(empty[0].children.children)


def test_map_sizes_markers_by_beds_and_colours_by_status():
    sites = pd.DataFrame({"facility_id": ["S"], "name": ["Stadium"], "lat": [2.92], "lng": [101.71], "beds": [800],
                          "area_name": ["X"]})
    demand = pd.DataFrame({"area_id": ["X"], "rising": [True]})
    outlines = [{"area_id": "X", "name": "X", "kind": "community", "rings": [[(101.6, 2.8), (101.8, 2.8),
                 (101.8, 3.0), (101.6, 2.8)]], "label_lng": 101.7, "label_lat": 2.9}]
    fig = facility_map_figure(_facility_frame(), sites, demand, outlines, min_count=5)
    names = [t.name for t in fig.data]
    assert {"cases rising (7 d)", "90 % or more occupied", "stale report", "potential site"} <= set(names)
    site = next(t for t in fig.data if t.name == "potential site")
    hospital = next(t for t in fig.data if t.name == "90 % or more occupied")
    assert site.marker.size[0] > hospital.marker.size[0]  # 800 potential beds draw larger than 400 beds
    assert hospital.marker.color == "#D55E00"


def test_trend_figure_has_history_band_and_full_line():
    days = pd.date_range("2026-01-01", periods=10, freq="D")
    history = pd.DataFrame({"day": days, "beds_total": [100.0] * 10, "beds_occupied": np.linspace(50, 80, 10),
                            "icu_total": [10.0] * 10, "icu_occupied": [5.0] * 10})
    band = pd.DataFrame({"median": np.linspace(82, 95, 14), "q05": np.linspace(81, 90, 14),
                         "q95": np.linspace(83, 99, 14)}, index=pd.date_range("2026-01-11", periods=14, freq="D"))
    fig = capacity_trend_figure(history, band, 100.0, 0.9, days_until_full=9)
    names = {t.name for t in fig.data}
    assert {"beds", "occupied beds", "ICU occupancy", "projection 5–95 %", "projection (median)"} <= names
    assert any(s.y0 == 90 for s in fig.layout.shapes)  # the 90 % line
    assert any("full in 9 d" in (a.text or "") for a in fig.layout.annotations)
    empty = capacity_trend_figure(history.iloc[0:0], None, None, 0.9)
    assert any("no capacity reports" in (a.text or "") for a in empty.layout.annotations)


def test_empty_states_say_what_is_missing():
    none = pd.DataFrame(columns=["facility_id", "name", "item", "stock", "daily_use", "unit", "days_on_hand",
                                 "status", "report_age_h", "stale"])
    assert "No supply reports yet" in str(supplies_table(none, 7))
    sites = pd.DataFrame(columns=["facility_id", "name", "beds", "area_name", "area_change", "area_rising",
                                  "nearest_rising_area", "nearest_rising_km"])
    text = str(sites_table(sites, pd.DataFrame(columns=["rising"]), min_count=5))
    assert "No potential sites registered" in text and "No located cases" in text


# ---- served pages -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_server(demo_city, tmp_path_factory):
    """The shared 40-day demo city (demo_city), served from its own copy with a user to sign in as."""
    dsettings, _ = demo_city
    proc = serve_database_copy(dsettings.path(dsettings.store.path), tmp_path_factory.mktemp("capacity_demo"),
                               city=city_of(dsettings), refresh_s=2)
    yield proc, dsettings
    proc.stop()


def _open_capacity(driver, url: str) -> None:
    driver.get(url + "/capacity")
    wait = patient_wait(driver, 40)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#capacity-table-body tr[data-facility]"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#capacity-map .main-svg .scatterlayer .trace"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#capacity-city-trend .main-svg .scatterlayer .trace"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-indicator='bed_occupancy']"))


def _column_values(driver, col: str) -> list[float]:
    """The column's sort values, read in one script call: the table re-renders on every refresh."""
    values = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(td => td.getAttribute('data-value'))",
        f"#capacity-table-body td[data-col='{col}']")
    return [float(v) for v in values if v]


def _click_sort(driver, col: str, expect_ascending: bool) -> list[float]:
    heading = f"button[id*='\"col\":\"{col}\"']"
    driver.find_element(By.CSS_SELECTOR, heading).click()
    # Wait for the heading's arrow as well as the order: equal values (e.g. reports all of the same age)
    # are "sorted" before the table has even re-rendered.
    arrow = "▲" if expect_ascending else "▼"
    patient_wait(driver, 20).until(lambda d: arrow in d.find_element(By.CSS_SELECTOR, heading).text)
    patient_wait(driver, 20).until(
        lambda d: (v := _column_values(d, col)) and v == sorted(v, reverse=not expect_ascending))
    return _column_values(driver, col)


@pytest.mark.browser
@pytest.mark.slow
def test_capacity_page_in_the_browser(demo_server, browser):
    proc, dsettings = demo_server
    sign_in_browser(browser, proc.url)
    requested_urls(browser)
    console_errors(browser)  # start both logs afresh
    _open_capacity(browser, proc.url)
    time.sleep(2)  # a refresh or two
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "capacity.png"))

    # The tiles are the API's figures, and the table lists the API's facilities.
    api = api_json(browser, "/api/v1/indicators")["indicators"]
    # Read in one script call: the tiles are redrawn on every refresh (a found element may go stale).
    assert text_of(browser, "[data-indicator='bed_occupancy'] .kpi-value") == api["bed_occupancy"]["display"]
    facilities = api_json(browser, "/api/v1/capacity")["facilities"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#capacity-table-body tr[data-facility]")
    assert len(rows) == len(facilities) > 0
    # Default order: most occupied first.
    occupancy = _column_values(browser, "occupancy")
    assert occupancy == sorted(occupancy, reverse=True)

    # Sorting: free beds ascending on the first click, descending on the second; then by report age.
    ascending = _click_sort(browser, "free_beds", expect_ascending=True)
    assert len(ascending) >= 2 and ascending[0] < ascending[-1]
    _click_sort(browser, "free_beds", expect_ascending=False)
    _click_sort(browser, "report_age_h", expect_ascending=False)
    assert "▼" in text_of(browser, "button[id*='\"col\":\"report_age_h\"']")

    # Map: one marker per bed-holding facility, plus the potential sites.
    points = browser.find_elements(By.CSS_SELECTOR, "#capacity-map .scatterlayer .trace .points path")
    assert len(points) >= len(facilities) + 1  # and the potential sites (the demo city registers three)

    # A facility's trend: pick one in the dropdown; the note names it.
    name = max(facilities, key=lambda f: f["beds_total"] or 0)["name"]
    browser.find_element(By.ID, "capacity-facility-select").click()
    patient_wait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[role=option]"))
    next(o for o in browser.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text == name).click()
    patient_wait(browser, 20).until(
        lambda d: d.find_element(By.ID, "capacity-facility-note").text.startswith(name))
    assert browser.find_elements(By.CSS_SELECTOR, "#capacity-facility-trend .scatterlayer .trace")

    supplies = browser.find_element(By.ID, "capacity-supplies").text
    assert "Days on hand" in supplies
    assert console_errors(browser) == []
    urls = requested_urls(browser)
    assert any("_dash-update-component" in u for u in urls)
    assert external(urls) == [], "the capacity page asked for something outside 127.0.0.1"


@pytest.fixture(scope="module")
def replay_server(tmp_path_factory):
    """The MoH W.P. Putrajaya replay built by replay_moh, served."""
    from ingest.moh_malaysia import replay_moh
    from settings import load_settings
    from tests.conftest import write_config

    folder = tmp_path_factory.mktemp("moh_replay")
    summary = replay_moh(load_settings(write_config(folder)), shared_data("moh-malaysia-covid19-public"),
                         "W.P. Putrajaya", workdir=folder / "replay")
    served = folder / "served"
    served.mkdir()
    proc = serve_database_copy(summary.database, served,
                               city={"name": "W.P. Putrajaya (MoH replay)", "boundary_file": None, "area_layers": []},
                               refresh_s=2)
    yield proc, summary
    proc.stop()


@pytest.mark.browser
@pytest.mark.slow
def test_the_moh_replay_shows_on_capacity_overview_and_early_warning(replay_server, browser):
    proc, summary = replay_server
    sign_in_browser(browser, proc.url)
    console_errors(browser)
    requested_urls(browser)
    _open_capacity(browser, proc.url)
    time.sleep(1)
    browser.save_screenshot(str(ARTIFACTS / "capacity-moh-replay.png"))
    asof = browser.find_element(By.ID, "capacity-asof").text
    assert "REPLAY" in asof and "W.P. Putrajaya" in asof and "placeholder" in asof and "25 Jan 2023" in asof
    table = browser.find_element(By.ID, "capacity-table-body").text
    assert "MoH hospitals, W.P. Putrajaya (aggregate)" in table and "MoH ICUs" in table
    assert "STALE" in table  # the PKRC aggregate last reported in August 2022
    assert console_errors(browser) == []

    browser.get(proc.url + "/")
    patient_wait(browser, 40).until(lambda d: "25 Jan 2023" in d.find_element(By.ID, "overview-asof").text)
    cases = pd.read_csv(shared_data("moh-malaysia-covid19-public", "epidemic", "cases_state.csv"))
    last_week = int(cases[(cases["state"] == "W.P. Putrajaya") & (cases["date"] >= "2023-01-19")]["cases_new"].sum())
    patient_wait(browser, 20).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-indicator='new_cases_7d'] .kpi-value").text
        .replace(",", "") == str(last_week))

    browser.get(proc.url + "/early-warning")
    patient_wait(browser, 40).until(
        lambda d: d.execute_script("return document.querySelector('._dash-loading') === null")
        and d.find_elements(By.CSS_SELECTOR, ".main-svg"))
    time.sleep(2)
    assert console_errors(browser) == []
    assert external(requested_urls(browser)) == []
