"""/briefing in real headless Chromium against `python app.py serve` on the demo city: the tiles hold
and print the figures GET /api/v1/indicators gives for the chosen day, the narrative, the map and the charts
are drawn, choosing another day redraws it, the PDF button downloads a PDF, and nothing leaves the machine."""
from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By

from tests.browser import api_json, console_errors, external, page_indicators, patient_wait, requested_urls
from tests.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]
HEADLINE = {"new_cases_24h", "new_cases_7d", "incidence_7d_per_100k", "test_positivity_7d", "rt", "admissions_7d",
            "bed_occupancy", "icu_occupancy"}


def _tiles_match_api(driver, day: str) -> None:
    patient_wait(driver, 60).until(lambda d: HEADLINE <= set(page_indicators(d)),
                                    message="the briefing never showed its headline tiles")
    patient_wait(driver, 30).until(lambda d: d.find_element(By.ID, "briefing-asof").text.strip() != "")
    api = api_json(driver, f"/api/v1/indicators?date={day}")["indicators"]
    shown = page_indicators(driver)
    for key in HEADLINE:
        value, text = shown[key]
        assert (float(value) if value else None) == api[key]["value"], key
        assert text == api[key]["display"], key


def test_the_briefing_page_shows_the_apis_figures_and_its_pdf(served_demo, signed_in_browser):
    """On the session's served demo city (its own jobs compute the figures), as its operator."""
    from datetime import date

    from tests.test_one_picture_browser import wait_for_jobs

    proc, _, _ = served_demo
    browser = signed_in_browser
    wait_for_jobs(proc)
    assert "BriefingOutbox" in proc.healthz()["components"]
    today = date.fromisoformat(api_json(browser, "/api/v1/briefing")["latest_day"])
    requested_urls(browser)
    console_errors(browser)
    browser.get(proc.url + "/briefing")
    default = patient_wait(browser, 30).until(
        lambda d: d.find_element(By.ID, "briefing-date").get_attribute("value"))
    assert default == api_json(browser, "/api/v1/briefing")["date"]
    _tiles_match_api(browser, default)
    sentences = browser.find_elements(By.CSS_SELECTOR, "#briefing-narrative p")
    assert sentences and sentences[0].text == api_json(browser, f"/api/v1/briefing?date={default}")["narrative"][0]
    for graph in ("briefing-map", "briefing-trend", "briefing-capacity-chart", "briefing-rt"):
        patient_wait(browser, 30).until(
            lambda d, g=graph: d.find_elements(By.CSS_SELECTOR, f"#{g} .main-svg .scatterlayer .trace"),
            message=f"{graph} was not drawn")
    # Another day: the as-of day itself, typed into the date picker.
    from selenium.webdriver.common.keys import Keys
    picker = browser.find_element(By.ID, "briefing-date")
    picker.click()
    picker.send_keys(Keys.CONTROL, "a")
    picker.send_keys(today.isoformat(), Keys.TAB)
    patient_wait(browser, 60).until(lambda d: today.strftime("%-d %B %Y") in d.find_element(By.ID, "briefing-asof").text)
    time.sleep(0.5)
    _tiles_match_api(browser, today.isoformat())
    link = patient_wait(browser, 30).until(lambda d: d.find_element(By.ID, "briefing-pdf-link"))
    assert link.get_attribute("href").endswith(f"/briefing.pdf?date={today.isoformat()}")
    pdf = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(async r => done([r.status, r.headers.get('content-type'),"
        " (await r.arrayBuffer()).byteLength])).catch(e => done([0, String(e), 0]));", link.get_attribute("href"))
    assert pdf[0] == 200 and pdf[1] == "application/pdf" and pdf[2] > 20_000, pdf
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)  # close the calendar for the screenshot
    browser.save_screenshot(str(ROOT / "tests" / "artifacts" / "briefing.png"))
    assert external(requested_urls(browser)) == []
    assert console_errors(browser) == []
