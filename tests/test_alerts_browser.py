"""/alerts in real headless Chromium on the served demo city: the overview's open-alerts tile opens it, an
operator acknowledges an alert with a note (the API then shows who and the note), and a composed
warning is approved on the page and its CAP document is served."""
from __future__ import annotations

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By

from tests.auth_helpers import BROWSER_USER
from tests.browser import api_json, console_errors, patient_wait, text_of
from tests.test_cap import xsd  # noqa: F401  (the CAP 1.2 schema, a fixture)
from tests.test_one_picture_browser import wait_for_jobs

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def post_json(driver, path: str, body: dict) -> dict:
    """POST JSON from the page's own origin with the browser's session (as a script on the page would)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', credentials: 'same-origin', headers: {'Content-Type': "
        "'application/json'}, body: JSON.stringify(arguments[1])}).then(r => r.json()).then(done)"
        ".catch(e => done({error: String(e)}));", path, body)


def test_alerts_page_acknowledges_and_approves(served_demo, signed_in_browser, xsd):  # noqa: F811
    proc, _, _ = served_demo
    browser = signed_in_browser
    wait_for_jobs(proc)
    console_errors(browser)
    browser.get(proc.url + "/")
    tile = patient_wait(browser, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-indicator='active_alerts'] a.kpi-link"))
    tile[0].click()
    patient_wait(browser, 30).until(lambda d: d.current_url.endswith("/alerts"))
    row = patient_wait(browser, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#alerts-inbox tr[data-state='active']"))[0]
    alert_id = row.get_attribute("data-alert")

    def acknowledge(d):  # the table is redrawn every few seconds: find the row again if it was replaced
        try:
            row = d.find_element(By.CSS_SELECTOR, f"#alerts-inbox tr[data-alert='{alert_id}']")
            if row.get_attribute("data-state") != "active":
                return True
            note = row.find_element(By.CSS_SELECTOR, "input")
            note.clear()
            note.send_keys("checked with the district office")
            next(b for b in row.find_elements(By.TAG_NAME, "button") if b.text == "Acknowledge").click()
        except StaleElementReferenceException:
            return False
        return "acknowledged" in d.find_element(By.ID, "alerts-status").text
    patient_wait(browser, 30).until(acknowledge)
    patient_wait(browser, 30).until(lambda d: "acknowledged by" in d.find_element(
        By.CSS_SELECTOR, f"#alerts-inbox tr[data-alert='{alert_id}'] .alert-state").text)
    state = text_of(browser, f"#alerts-inbox tr[data-alert='{alert_id}'] .alert-state")
    assert BROWSER_USER in state and "checked with the district office" in state
    listed = api_json(browser, "/api/v1/alerts?state=all")
    assert "alerts" in listed, listed
    shown = next(a for a in listed["alerts"] if str(a["id"]) == alert_id)
    assert shown["status"] == "acknowledged" and shown["acknowledged"]["by"] == BROWSER_USER
    assert shown["acknowledged"]["note"] == "checked with the district office"

    areas = [a["id"] for a in api_json(browser, "/api/v1/areas")["areas"] if a["kind"] == "community"][:1]
    made = post_json(browser, "/api/v1/warnings", {"headline": "Browser test: wash your hands",
                                                   "description": "Cases are rising.", "areas": areas})
    warning_id = made["warning"]["id"]
    def approve(d):
        try:
            block = d.find_element(By.CSS_SELECTOR, f".warning[data-warning='{warning_id}']")
            if block.get_attribute("data-approval") == "approved":
                return True
            next(b for b in block.find_elements(By.TAG_NAME, "button") if b.text == "Approve and send").click()
        except (StaleElementReferenceException, NoSuchElementException, StopIteration):
            return False
        return "issued" in d.find_element(By.ID, "alerts-decision-status").text
    patient_wait(browser, 40).until(approve)
    issued = patient_wait(browser, 30).until(lambda d: d.find_elements(
        By.CSS_SELECTOR, f".warning[data-warning='{warning_id}'][data-approval='approved']"))[0]
    link = issued.find_element(By.LINK_TEXT, "CAP document").get_attribute("href")
    assert link.endswith(f"/api/v1/warnings/{warning_id}/cap.xml")
    document = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text()).then(done);", link)
    assert "<status>Actual</status>" in document and "Browser test: wash your hands" in document
    xsd.validate(document)
    listed = next(w for w in api_json(browser, "/api/v1/warnings")["warnings"] if w["id"] == warning_id)
    assert listed["approval"] == "approved" and listed["decided"]["by"] == BROWSER_USER
    assert console_errors(browser) == []
