"""Signing in during tests: users in a database file before a server starts, signed-in browsers and clients."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from settings import AuthConfig
from tests.browser import patient_wait

TEST_PASSWORD = "pheoc test password 7"
BROWSER_USER = "browser-operator"
# The cheapest argon2id cost settings allow (the OWASP floor): hashing in tests stays fast, and a
# server configured with stronger parameters re-hashes the password at the first login.
FAST_AUTH = {"argon2_memory_kib": 19_456, "argon2_time_cost": 2, "argon2_parallelism": 1}


def add_user_to_database(db_path: Path, username: str = BROWSER_USER, role: str = "operator",
                         password: str = TEST_PASSWORD, precincts: tuple[str, ...] = ()) -> None:
    """Add a user to a database file that no running process holds (e.g. before `app.py serve` starts)."""
    from auth.passwords import Passwords
    from auth.users import add_user
    from store import Store
    from store import queries_access as qa

    with Store(db_path) as store:
        if qa.get_user(store, username) is None:
            add_user(store, Passwords(AuthConfig(**FAST_AUTH)), username, role, password, actor="test-setup",
                     precincts=precincts)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the login page has no CSRF field"
    return match.group(1)


def sign_in_client(client, username: str, password: str = TEST_PASSWORD, next_path: str = "/", **kwargs):
    """Sign a Flask test client in through the real login form; returns the POST's response."""
    page = client.get("/login", **kwargs)
    return client.post("/login", data={"csrf": csrf_from(page.get_data(as_text=True)), "username": username,
                                       "password": password, "next": next_path}, **kwargs)


def sign_in_browser(driver, base_url: str, username: str = BROWSER_USER, password: str = TEST_PASSWORD,
                    timeout_s: float = 30) -> None:
    """Sign a Selenium browser in through /login; the session cookie then serves every later page."""
    from selenium.webdriver.common.by import By
    
    driver.get(base_url.rstrip("/") + "/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    patient_wait(driver, timeout_s).until(lambda d: d.get_cookie("pheoc_session") is not None
                                           or "Sign-in failed" in d.page_source)
    assert driver.get_cookie("pheoc_session") is not None, f"browser sign-in as {username} failed"


@pytest.fixture
def signed_in_browser(served_demo, browser):
    """The shared browser signed in to served_demo as BROWSER_USER (served_demo must have added that user).

    Signs in for every test: cookies are scoped to the host, not the port, so another test's server on
    127.0.0.1 may have replaced the session cookie since.
    """
    sign_in_browser(browser, served_demo[0].url)
    return browser
