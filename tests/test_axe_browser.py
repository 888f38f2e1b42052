"""axe-core on every page and every role, in real headless Chromium on the wall server: signed out (the public),
then each role's wall user opens its overview and every page its navigation lists that no role before it
checked; axe runs once per page and no serious or critical violation may remain. The same walk checks that every page carries the feeds' freshness strip and
that no request leaves the machine on any page.
"""
from __future__ import annotations

import json
import time

import pytest
from selenium.webdriver.common.by import By

from tests.axe_helpers import describe, failing, run_axe
from tests.browser import external, patient_wait, requested_urls
from tests.conftest import ROOT
from tests.wall_helpers import ROLE_USERS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = ROOT / "tests" / "artifacts"
ROLES = (None, *ROLE_USERS)  # None: signed out


def wait_until_drawn(driver, timeout_s: float = 60) -> None:
    """Until the page's content is there and Dash has no callback in flight (pages refreshing every second
    on a busy machine may never be idle twice in a row)."""
    settled = {"n": 0}

    def ready(d) -> bool:
        done = d.execute_script(
            "const m = document.querySelector('#main-content');"
            "return document.readyState === 'complete' && !!m && m.innerText.trim().length > 0"
            " && !document.querySelector('[data-dash-is-loading=\"true\"]')"
            " && !document.querySelector('._dash-loading');")
        settled["n"] = settled["n"] + 1 if done else 0
        return settled["n"] >= 1

    patient_wait(driver, timeout_s, poll_frequency=0.2).until(ready, message=f"{driver.current_url} never settled")


def nav_pages(driver) -> list[str]:
    """The pages the navigation offers the signed-in role (the pages it may open)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.topbar nav a.nav-link:not(.nav-auth)'))"
        ".map(a => new URL(a.href).pathname);")


def test_axe_finds_no_serious_violation_on_any_page_of_any_role(wall_server, browser):
    problems, report, visited, checked = [], {}, 0, set()
    for role in ROLES:
        wall_server.sign_in(browser, role)
        who = role or "public"
        if role is None:  # the sign-in page is the public's first page
            browser.get(wall_server.url + "/login")
            found = run_axe(browser)
            report["public /login"] = found
            problems += describe("public /login", failing(found))
        browser.get(wall_server.url + "/")
        wait_until_drawn(browser)
        pages = nav_pages(browser) or ["/"]
        assert role is None or len(pages) > 1, f"{who} is offered no page"
        # Each page once, with the first role that may open it, and every role's own overview: a page's
        # markup is the same for every role that opens it except what the role may do there, and 38
        # visits (every page of every role) cost several minutes of the suite for little more.
        for path in [p for p in pages if p == "/" or p not in checked]:
            checked.add(path)
            requested_urls(browser)
            browser.get(wall_server.url + path)
            wait_until_drawn(browser)
            time.sleep(0.3)  # graphs draw after their figure arrives
            where = f"{who} {path}"
            found = run_axe(browser)
            visited += 1
            report[where] = found
            problems += describe(where, failing(found))
            assert browser.find_elements(By.CSS_SELECTOR, ".frame-fresh .feed"), f"{where}: no freshness strip"
            left = external(requested_urls(browser))
            assert not left, f"{where}: requests left the machine: {left}"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "axe-report.json").write_text(json.dumps(report, indent=1))
    assert visited >= len(ROLES) + 8  # every role's overview and each of the other pages
    assert not problems, "axe-core found serious or critical violations:\n" + "\n".join(problems)
