"""A panic-button press, from an MQTT message to every wall screen and its acknowledgement, in real Chromium.

The press goes through a real Mosquitto into the served demo city; the sensor job raises it as an
incident; the frame of any page shows it within the refresh interval with its place and time; the
operator's Acknowledge takes it off every screen; the raise and the acknowledgement are in the audit log.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from tests.browser import api_json, console_errors, external, patient_wait, requested_urls
from tests.wall_helpers import WALL_PREFIX

pytestmark = [pytest.mark.browser, pytest.mark.mqtt, pytest.mark.slow]


def press(wall_server, sensor_id: str, seq: int) -> float:
    publisher = wall_server.publisher()
    try:
        payload = {"sensor_id": sensor_id, "seq": seq, "ts": datetime.now(timezone.utc).isoformat(),
                   "metric": "panic_press", "value": 1.0, "unit": "press"}
        sent = time.time()
        publisher.publish(f"{WALL_PREFIX}/sensors/{sensor_id}/readings", json.dumps(payload).encode())
        return sent
    finally:
        publisher.close()


def test_a_press_reaches_the_wall_and_stays_until_acknowledged(wall_server, browser):
    wall_server.sign_in(browser, "operator")
    browser.get(wall_server.url + "/capacity?kiosk=1")  # any page: the frame carries the banner
    requested_urls(browser)
    sensor = "PB-007"
    seq = 10_000_000
    sent = press(wall_server, sensor, seq)
    selector = f".incident[data-sensor='{sensor}']"
    # Refresh 1 s, sensor job every 2 s, MQTT batches within 0.2 s: well inside 15 s.
    patient_wait(browser, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))
    seen = time.time()
    banner = browser.find_element(By.CSS_SELECTOR, selector)
    text = banner.text
    assert sensor in text and "PANIC BUTTON PRESSED" in text
    assert datetime.now().astimezone().strftime("%d %b") in text or ":" in text  # the press's time
    alert_id = int(banner.get_attribute("data-incident"))
    # The place: the button's community area, as the alert inbox names it.
    alerts = api_json(browser, "/api/v1/alerts?state=open&kind=panic_button")["alerts"]
    mine = [a for a in alerts if a["id"] == alert_id]
    assert mine and mine[0]["area"]["name"] in text and mine[0]["severity"] == "critical"
    assert seen - sent < 15

    # It stays: a later page of the wall still shows it ...
    browser.get(wall_server.url + "/sensors")
    patient_wait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))
    # ... until the operator acknowledges it, which takes it off at once.
    clicked = []

    def acknowledge(d) -> bool:  # the banner is drawn anew on every refresh: find the button again if replaced
        if not clicked:
            try:
                d.find_element(By.CSS_SELECTOR, f"{selector} button.incident-ack").click()
                clicked.append(True)
            except StaleElementReferenceException:
                return False
        return not d.find_elements(By.CSS_SELECTOR, selector)
    patient_wait(browser, 15).until(acknowledge)
    status = browser.find_element(By.ID, "shell-incident-status").text
    assert "acknowledged" in status
    browser.refresh()
    patient_wait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".frame-fresh .feed"))
    assert not browser.find_elements(By.CSS_SELECTOR, selector)
    assert not external(requested_urls(browser)), "a request left the machine"
    assert not [e for e in console_errors(browser) if "favicon" not in e]

    # Audited: the raise (by the sensor job) and the acknowledgement (by the operator), seen by the admin.
    wall_server.sign_in(browser, "admin")
    records = api_json(browser, "/api/v1/audit?action=incident_raised")
    raised = [r for r in records.get("records", []) if r.get("target") == f"alert:{alert_id}"]
    acked = [r for r in api_json(browser, "/api/v1/audit?action=alert_acknowledged").get("records", [])
             if r.get("target") == f"alert:{alert_id}"]
    assert raised and raised[0]["user"] == "system" and acked and acked[0]["user"] == "wall-operator"


def test_roles_that_do_not_read_alerts_see_no_incident(wall_server, browser):
    press(wall_server, "PB-011", 10_000_001)
    wall_server.sign_in(browser, "operator")
    browser.get(wall_server.url + "/")
    patient_wait(browser, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".incident[data-sensor='PB-011']"))
    for role in ("data_manager", None):  # points-level data manager has no view_alerts; the public neither
        wall_server.sign_in(browser, role)
        browser.get(wall_server.url + "/")
        patient_wait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".frame-fresh .feed"))
        assert not browser.find_elements(By.CSS_SELECTOR, ".incident"), role
    # The executive reads alerts but may not acknowledge: the incident shows without a button.
    wall_server.sign_in(browser, "executive")
    browser.get(wall_server.url + "/")
    patient_wait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".incident[data-sensor='PB-011']"))
    assert not browser.find_elements(By.CSS_SELECTOR, ".incident[data-sensor='PB-011'] button")
