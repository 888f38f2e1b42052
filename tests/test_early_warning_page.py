"""/early-warning in real headless Chromium on the demo city: gauges with threshold marks, the aligned
view, R(t), capacity and alarms render; the area selector and the rulebook selector work (the switch is
stored and survives a reload); a role without set_rulebook cannot switch; no console errors and no
request leaves 127.0.0.1.

The page needs a signed-in role (view_early_warning), so the shared 40-day demo city (demo_city) is served
from its own copy with users to sign in as, configured as the served_demo fixture configures its server.
"""
from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By

from pages import _ids as ids
from tests.auth_helpers import BROWSER_USER, sign_in_browser
from tests.browser import city_of, console_errors, external, patient_wait, requested_urls, serve_database_copy
from tests.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = ROOT / "tests" / "artifacts"
PAGE = "/early-warning"
VIEWER = "browser-executive"  # may view early warning, may not set the rulebook


def wait_for_early_warning_job(proc, timeout_s: float = 240) -> dict:
    """Poll /healthz until the indicators and early-warning jobs have run once (the server runs jobs at
    start); returns the early-warning job's summary with the indicators job's level of the city."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = proc.healthz()["components"].get("JobScheduler", {}).get("jobs", {})
        job, levels = jobs.get("early_warning", {}), jobs.get("indicators", {})
        if job.get("runs", 0) >= 1 and levels.get("runs", 0) >= 1:
            assert job.get("last_error") is None, job["last_error"]
            assert levels.get("last_error") is None, levels["last_error"]
            return {**job, "citywide_level": levels.get("citywide_level")}
        time.sleep(1)
    raise AssertionError(f"the early-warning job did not run in {timeout_s} s: {proc.log_path.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def server(demo_city, tmp_path_factory):
    """The demo city served by `python app.py serve` (as served_demo does) with an operator and an executive."""
    dsettings, _ = demo_city
    folder = tmp_path_factory.mktemp("early_warning_served")
    proc = serve_database_copy(dsettings.path(dsettings.store.path), folder, city=city_of(dsettings),
                               users=((BROWSER_USER, "operator"), (VIEWER, "executive")))
    try:
        job = wait_for_early_warning_job(proc)
        yield proc, job
    finally:
        proc.stop()


@pytest.fixture
def signed_in(server, browser):
    """The browser signed in as the operator (the session cookie is dropped again afterwards)."""
    proc, job = server
    browser.delete_all_cookies()
    sign_in_browser(browser, proc.url, BROWSER_USER)
    requested_urls(browser)
    console_errors(browser)  # start both logs afresh
    yield proc, job
    browser.delete_all_cookies()


def banner(driver):
    return driver.find_element(By.CSS_SELECTOR, f"#{ids.EW_LEVEL} [data-rulebook]")


def wait_for_page(driver, rulebook: str | None = None, area_name: str | None = None):
    wait = patient_wait(driver, 40)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#{ids.EW_GAUGES} .main-svg"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#{ids.EW_TIMELINE} .main-svg"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#{ids.EW_LEVEL} [data-rulebook]"))
    if rulebook:
        wait.until(lambda d: banner(d).get_attribute("data-rulebook").startswith(rulebook + "@"))
    if area_name:
        wait.until(lambda d: d.find_element(By.ID, ids.EW_ASOF).text.startswith(area_name + " ·"))


def svg_text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).get_attribute("textContent")


def choose_rulebook(driver, rulebook_id: str) -> None:
    radio = driver.find_element(By.CSS_SELECTOR, f"#{ids.EW_RULEBOOK} input[value='{rulebook_id}']")
    radio.find_element(By.XPATH, "./ancestor::label").click()


def test_page_shows_the_citywide_view_offline(signed_in, browser):
    proc, job = signed_in
    assert job["as_of"] and job["citywide_level"], job
    browser.get(proc.url + PAGE)
    wait_for_page(browser, rulebook="harvard_ghi", area_name="Citywide")
    time.sleep(1.5)  # let every callback settle

    assert banner(browser).get_attribute("data-level") == job["citywide_level"]
    gauges = svg_text(browser, ids.EW_GAUGES)
    assert "Daily new cases per" in gauges  # the title wraps over lines
    for mark in ("1.0", "10.0", "25.0"):  # Harvard GHI thresholds are the gauge's tick marks
        assert mark in gauges, gauges
    timeline = svg_text(browser, ids.EW_TIMELINE)
    for panel in ("New infections", "Severity", "Hospital capacity", "90% of capacity"):
        assert panel in timeline
    assert "forecast 5–95 %" in timeline
    # Next to the forecast, one line on how good it has been for this series (the read model's sentence).
    quality = browser.find_element(By.ID, ids.EW_FORECAST_QUALITY).text
    assert quality.startswith("Forecast: ") and ("at 7 days" in quality or "Not yet scored" in quality), quality
    capacity = browser.find_element(By.ID, ids.EW_CAPACITY).text
    assert "days until 90%" in capacity and "21 days" in capacity
    assert browser.find_elements(By.CSS_SELECTOR, f"#{ids.EW_RT} .main-svg")
    alarms = browser.find_element(By.ID, ids.EW_ALARMS).text
    assert alarms.startswith("Series") or alarms.startswith("No current alarms")

    urls = requested_urls(browser)
    assert any("_dash-update-component" in u for u in urls)
    assert external(urls) == [], "the early-warning page asked for something outside 127.0.0.1"
    assert console_errors(browser) == []


def test_area_selector_switches_the_view(signed_in, browser):
    proc, _ = signed_in
    browser.get(proc.url + PAGE)
    wait_for_page(browser, area_name="Citywide")
    browser.find_element(By.ID, ids.EW_AREA).click()
    options = patient_wait(browser, 10).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option"))
    target = next(o for o in options if o.text.strip() and o.text.strip() != "Citywide")
    area_name = target.text.strip()
    target.click()
    wait_for_page(browser, area_name=area_name)
    assert browser.find_element(By.ID, "ew-level-banner").text.startswith(f"{area_name}: level by")
    # The area's own series, the city's hospital census: the capacity tile stays citywide.
    assert "days until 90%" in browser.find_element(By.ID, ids.EW_CAPACITY).text
    assert console_errors(browser) == []
    assert external(requested_urls(browser)) == []


def test_rulebook_selector_switches_records_and_persists(signed_in, browser):
    proc, _ = signed_in
    browser.get(proc.url + PAGE)
    wait_for_page(browser, rulebook="harvard_ghi")
    try:
        choose_rulebook(browser, "covid_act_now")
        wait_for_page(browser, rulebook="covid_act_now")
        patient_wait(browser, 20).until(
            lambda d: "Active rulebook: covid_act_now v2021" in d.find_element(By.ID, ids.EW_SWITCH_STATUS).text)
        assert "Covid Act Now risk levels (v2021)" in browser.find_element(By.ID, "ew-level-banner").text
        # The switch re-levelled the stored indicators; each change lists the rulebook id and version.
        patient_wait(browser, 20).until(
            lambda d: "covid_act_now@2021" in d.find_element(By.ID, ids.EW_CHANGES).text)
        assert "switch" in browser.find_element(By.ID, ids.EW_CHANGES).text
        patient_wait(browser, 20).until(lambda d: "75.0" in svg_text(d, ids.EW_GAUGES))  # case density, extreme
        assert "Positive test rate" in svg_text(browser, ids.EW_GAUGES)

        # Persisted: a new page load (another screen) opens with the operator's choice.
        browser.get(proc.url + PAGE)
        wait_for_page(browser, rulebook="covid_act_now")
        checked = browser.find_element(By.CSS_SELECTOR, f"#{ids.EW_RULEBOOK} input:checked")
        assert checked.get_attribute("value") == "covid_act_now"
        assert console_errors(browser) == []
        assert external(requested_urls(browser)) == []
    finally:
        choose_rulebook(browser, "harvard_ghi")  # leave the shared served city as the other tests expect it
        wait_for_page(browser, rulebook="harvard_ghi")


def test_screenshot(signed_in, browser):
    proc, _ = signed_in
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = browser.get_window_size()
    browser.set_window_size(1920, 2300)  # the whole page, for the record
    try:
        browser.get(proc.url + PAGE)
        wait_for_page(browser, area_name="Citywide")
        time.sleep(2)
        browser.save_screenshot(str(ARTIFACTS / "early-warning.png"))
    finally:
        browser.set_window_size(size["width"], size["height"])
    assert (ARTIFACTS / "early-warning.png").stat().st_size > 50_000
    assert console_errors(browser) == []


def test_a_role_without_set_rulebook_sees_the_level_but_cannot_switch(server, browser):
    proc, _ = server
    browser.delete_all_cookies()
    sign_in_browser(browser, proc.url, VIEWER)
    try:
        browser.get(proc.url + PAGE)
        wait_for_page(browser, rulebook="harvard_ghi")
        radios = browser.find_elements(By.CSS_SELECTOR, f"#{ids.EW_RULEBOOK} input")
        assert radios and all(not r.is_enabled() for r in radios)
        assert "may not change it" in browser.find_element(By.CLASS_NAME, "page-early-warning").text
        assert console_errors(browser) == []
    finally:
        browser.delete_all_cookies()
