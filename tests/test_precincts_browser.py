"""/precincts in real headless Chromium, at a patrol laptop's 1366×768 and a phone's 390×844: an officer
types an address, picks it from the matches offered, gives a purpose and checks; the answer appears in
large type, inside the screen's width, with no request leaving the machine and no console error."""
from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser import console_errors, external, patient_wait, requested_urls
from tests.conftest import ROOT
from tests.test_one_picture_browser import wait_for_jobs

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = ROOT / "tests" / "artifacts"
SIZES = {"laptop": (1366, 768), "phone": (390, 844)}
# Large type: at least 24 CSS px for the sentence to act on (body text is 18 px on this theme).
MIN_ANSWER_PX = 24


def _viewport(browser, width: int, height: int) -> None:
    """Set the page's viewport (not the window) to width × height CSS pixels."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def _check_an_address(browser, typed: str, purpose: str) -> None:
    box = patient_wait(browser, 30).until(lambda d: d.find_element(By.ID, "address-check-address"))
    box.click()
    search = patient_wait(browser, 10).until(
        lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, "input") if e.is_displayed()
                        and e.get_attribute("id") != "address-check-purpose"), None))
    search.send_keys(typed)
    patient_wait(browser, 30).until(lambda d: any(typed.split()[0] in o.text and o.is_displayed() for o in
                                                   d.find_elements(By.CSS_SELECTOR, "[role=option]")),
                                     message="no address was offered while typing")
    search.send_keys(Keys.ENTER)
    patient_wait(browser, 10).until(lambda d: typed.split()[1].lower() in
                                     d.find_element(By.ID, "address-check-address").text.lower())
    browser.find_element(By.ID, "address-check-purpose").send_keys(purpose)
    browser.find_element(By.ID, "address-check-button").click()


@pytest.mark.parametrize("size", list(SIZES))
def test_the_address_check_reads_large_on_a_laptop_and_a_phone(served_demo, signed_in_browser, size):
    proc, folder, _ = served_demo
    browser = signed_in_browser
    wait_for_jobs(proc)
    width, height = SIZES[size]
    _viewport(browser, width, height)
    try:
        console_errors(browser)
        requested_urls(browser)
        browser.get(proc.url + "/precincts")
        patient_wait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-precinct]"),
                                         message="the precinct table never filled")
        _check_an_address(browser, "1 Jalan", "domestic call")
        answer = patient_wait(browser, 30).until(
            lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, ".address-answer-text")), None),
            message="no answer appeared")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", answer)
        time.sleep(0.3)
        text = answer.text
        assert text.startswith(("Active case at this address: take precautions.", "No active case reported",
                                "Not available outside your precincts."))
        assert answer.is_displayed()
        px = float(browser.execute_script("return parseFloat(getComputedStyle(arguments[0]).fontSize)", answer))
        assert px >= MIN_ANSWER_PX, f"the answer is {px}px"
        box = browser.execute_script("const r = arguments[0].getBoundingClientRect();"
                                     "return [r.left, r.right, r.top, r.bottom, window.innerWidth];", answer)
        assert box[0] >= 0 and box[1] <= box[4] + 1, f"the answer runs off the screen: {box}"
        card = browser.find_element(By.CSS_SELECTOR, ".address-answer")
        assert card.get_attribute("data-flag") in ("true", "false", "null")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / f"precincts-{size}.png"))
        # The map and table are there too, and the page asked nothing of another machine.
        assert browser.find_elements(By.CSS_SELECTOR, "#precincts-map .main-svg")
        assert external(requested_urls(browser)) == []
        assert console_errors(browser) == []
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
