"""Kiosk mode, a playlist rotating through three views, and the freshness strip every page carries."""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from selenium.webdriver.common.by import By

from services.feeds import feed_health
from settings import FeedLimits
from tests.browser import external, patient_wait, requested_urls
from tests.wall_helpers import PLAYLIST, PLAYLIST_VIEWS


def test_feed_health_turns_stale_then_dead(demo_city):
    from store import Store
    dsettings, _ = demo_city
    with Store(dsettings.path(dsettings.store.path)) as store:
        # The clock just after the demo's last ingest, not the wall clock: the demo city is built once per
        # session, and on a slow machine its readings were stored more than 10 min before this runs.
        probe = feed_health(store, dsettings, datetime.now(timezone.utc))
        now = max(f.last_received_at for f in probe.feeds if f.last_received_at is not None) + timedelta(seconds=1)
        fresh = feed_health(store, dsettings, now)
        assert fresh.status == "ok" and {f.kind for f in fresh.feeds} == set(dsettings.wall.feeds)
        later = feed_health(store, dsettings, now + timedelta(minutes=20))  # readings: stale after 10 min
        assert later.status == "stale" and {f.kind for f in later.feeds if f.status == "stale"} == {"reading"}
        much_later = feed_health(store, dsettings, now + timedelta(days=4))
        assert much_later.status == "dead" and all(f.status == "dead" for f in much_later.feeds)
        assert fresh.newest_record_at is not None


def test_the_strip_of_every_page_says_stale_and_dead_in_words(demo_city, tmp_path):
    """The frame's callback, posted to as the public and as the operator: amber and red with the word beside."""
    from tests.app_helpers import app_on_copy, close_app
    from tests.auth_helpers import sign_in_client

    dsettings, _ = demo_city
    wall = dsettings.wall.model_copy(update={"feeds": {"reading": FeedLimits(stale_after_s=1, dead_after_s=10**6),
                                                       "case": FeedLimits(stale_after_s=1, dead_after_s=1)}})
    app, store, _ = app_on_copy(dsettings, tmp_path, users=[("op", "operator")], wall=wall)
    try:
        time.sleep(1.1)
        body = {"output": next(k for k in app.callback_map if "shell-freshness.className" in k),
                "outputs": [], "inputs": [{"id": "shell-refresh", "property": "n_intervals", "value": 3},
                                          {"id": "shell-incident-acked", "property": "data", "value": 0}],
                "state": [{"id": "shell-incident-signature", "property": "data", "value": None}],
                "changedPropIds": ["shell-refresh.n_intervals"]}
        body["outputs"] = [dict(zip(("id", "property"), o.split("."))) for o in body["output"].strip(".").split("...")]
        for client in (app.server.test_client(), None):
            if client is None:
                client = app.server.test_client()
                sign_in_client(client, "op")
            response = client.post("/_dash-update-component", json=body)
            assert response.status_code == 200, response.get_data(as_text=True)
            text = response.get_data(as_text=True)
            assert "frame-fresh frame-fresh-dead" in text
            assert re.search(r"case reports: dead", text) and re.search(r"sensor readings: stale", text)
    finally:
        close_app(app, store)


@pytest.mark.browser
@pytest.mark.slow
def test_kiosk_mode_hides_the_chrome_and_shows_clock_and_data_time(wall_server, browser):
    wall_server.sign_in(browser, "operator")
    requested_urls(browser)
    browser.get(wall_server.url + "/?kiosk=1")
    patient_wait(browser, 15).until(lambda d: d.find_element(By.ID, "kiosk-data-time").text.startswith("data as of"))
    assert "kiosk" in browser.find_element(By.TAG_NAME, "html").get_attribute("class")
    assert not browser.find_element(By.CSS_SELECTOR, ".topbar nav").is_displayed()
    clock = browser.find_element(By.ID, "kiosk-clock")
    assert clock.is_displayed() and re.search(r"\d{2}:\d{2}:\d{2}", clock.text)
    first = clock.text
    patient_wait(browser, 5).until(lambda d: d.find_element(By.ID, "kiosk-clock").text != first)  # it ticks
    size = browser.execute_script("return parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert size >= 24  # large type (18 px off kiosk mode)
    assert browser.find_elements(By.CSS_SELECTOR, ".frame-fresh .feed")
    browser.get(wall_server.url + "/")
    patient_wait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, ".topbar nav").is_displayed())
    assert not external(requested_urls(browser))


@pytest.mark.browser
@pytest.mark.slow
def test_a_playlist_rotates_through_three_views(wall_server, browser):
    wall_server.sign_in(browser, "operator")
    browser.get(wall_server.url + f"/?playlist={PLAYLIST}&kiosk=1")
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + sum(v["seconds"] for v in PLAYLIST_VIEWS) + 15
    while time.monotonic() < deadline and len(seen) < 4:  # three views and back to the first
        where = browser.execute_script("return [location.pathname, location.search]")
        if not seen or tuple(where) != seen[-1]:
            seen.append(tuple(where))
        time.sleep(0.2)
    paths = [p for p, _ in seen]
    assert paths[:4] == ["/", "/sensors", "/early-warning", "/"], seen
    for path, search in seen:  # the playlist and kiosk mode travel with every view
        assert f"playlist={PLAYLIST}" in search and "kiosk=1" in search
    area = dict(s.lstrip("?").split("=") for s in seen[2][1].split("&"))
    assert area["area"] == "C01"
    # Each view drew its own page (the router rendered it, not just the address bar).
    assert browser.find_elements(By.CSS_SELECTOR, ".page-overview")
    assert "kiosk" in browser.find_element(By.TAG_NAME, "html").get_attribute("class")
    assert json.loads(browser.find_element(By.ID, "wall-settings").get_attribute("data-playlists"))[PLAYLIST]
