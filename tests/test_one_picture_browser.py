"""Screen and API agree by construction: on /, /early-warning and /capacity of the served demo city, in
real headless Chromium, every element carrying data-indicator holds the value GET /api/v1/indicators
gives for that key, and prints the API's display text."""
from __future__ import annotations

import time

import pytest

from tests.browser import api_json, console_errors, page_indicators, patient_wait

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# Every page shows at least these figures (the list, and what each page is for).
EXPECTED = {
    "/": {"new_cases_24h", "new_cases_7d", "incidence_7d_per_100k", "test_positivity_7d", "bed_occupancy",
          "icu_occupancy", "rt", "active_alerts"},
    "/early-warning": {"cases_per_100k_7d_avg", "test_positivity_7d", "bed_occupancy", "icu_occupancy", "rt",
                       "days_to_bed_threshold"},
    "/capacity": {"bed_occupancy", "icu_occupancy", "days_to_bed_threshold", "beds_free", "supplies_low"},
}


def wait_for_jobs(proc, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = proc.healthz()["components"].get("JobScheduler", {}).get("jobs", {})
        if all(jobs.get(name, {}).get("runs", 0) >= 1 for name in ("indicators", "early_warning")):
            return
        time.sleep(1)
    raise AssertionError("the indicators and early-warning jobs did not run")


def _same(page_value: str, api_value) -> bool:
    if page_value in ("", None):
        return api_value is None
    return api_value is not None and float(page_value) == float(api_value)


@pytest.mark.parametrize("path", list(EXPECTED))
def test_every_data_indicator_equals_the_api(served_demo, signed_in_browser, path):
    proc, _, _ = served_demo
    browser = signed_in_browser
    wait_for_jobs(proc)
    console_errors(browser)
    browser.get(proc.url + path)
    patient_wait(browser, 60).until(lambda d: EXPECTED[path] <= set(page_indicators(d)),
                                     message=f"{path} never showed all of {sorted(EXPECTED[path])}")
    time.sleep(1.5)  # let the first refreshes settle
    for _attempt in range(3):
        before = api_json(browser, "/api/v1/indicators")["indicators"]
        shown = page_indicators(browser)
        after = api_json(browser, "/api/v1/indicators")["indicators"]
        if before == after:
            break  # no job run in between: page and API describe the same stored figures
        time.sleep(2)
    mismatches = []
    for key, (value, text) in shown.items():
        assert key in after, f"{path} shows {key}, which the API does not know"
        if not _same(value, after[key]["value"]):
            mismatches.append(f"{key}: page {value!r}, API {after[key]['value']!r}")
        if text is not None and text != after[key]["display"]:
            mismatches.append(f"{key}: page prints {text!r}, API displays {after[key]['display']!r}")
    assert not mismatches, f"{path}:\n" + "\n".join(mismatches)
    # The hospital gauges read the same census as every other page: never "no data" beside 56 %.
    for key in ("bed_occupancy", "icu_occupancy"):
        assert shown[key][0] not in ("", None), f"{path}: {key} has no value"
    assert console_errors(browser) == []
