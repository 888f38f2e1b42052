"""/clusters in real headless Chromium: the demo city's planted micro-clusters appear as clusters and
zones, a click on a cell opens its history, small counts read "<k", nothing leaves 127.0.0.1.

The planted clusters are checked on a demo city of DEMO_DAYS days: the space-time permutation scan
(the demo reports tests per area, so the job falls back to it, and the page says so) compares each
cell's recent cases with its own past, so it needs weeks of history before the clusters begin. Under
NYC's reporting bar (recurrence interval >= 100 days, study period ending 3 days before the analysis
day) the weakest of the three planted clusters may stay a candidate: at least two must be zones. On the shared 40-day demo (served_demo) the clusters start half-way through a
city-wide ten-fold rise and are not unusual *in time*, so there the page is only checked to load
cleanly and to agree with what the job stored.
"""
from __future__ import annotations

import re
import secrets
import time
from datetime import date

import pandas as pd
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from components.clustermap import cluster_map_figure, cluster_table, shown
from tests.browser import ServerProcess, city_of, console_errors, external, patient_wait, requested_urls, serve_database_copy
from tests.conftest import ROOT, write_config

ARTIFACTS = ROOT / "tests" / "artifacts"
DEMO_DAYS = 120  # the demo's default length: ~3 months of history before the clusters emerge
DEMO_SEED = 11
TIERS = ("yellow", "orange", "red")
# The wall-screen role: sees every page at cell level, small counts as "<k".
USER, ROLE = "test-operator", "operator"
PASSWORD = secrets.token_urlsafe(18)


# ---- served city -------------------------------------------------------------------------------
def sign_in(driver, url: str) -> None:
    driver.get(url + "/login?next=/clusters")
    driver.find_element(By.ID, "username").send_keys(USER)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    patient_wait(driver, 30).until(lambda d: "/login" not in d.current_url)


@pytest.fixture(scope="module")
def long_demo(tmp_path_factory):
    """A DEMO_DAYS-day demo city, served; yields (server, manifest)."""
    from app import build_demo
    from settings import load_settings

    folder = tmp_path_factory.mktemp("clusters_demo")
    dsettings, manifest = build_demo(load_settings(write_config(folder)), seed=DEMO_SEED, days=DEMO_DAYS)
    served = folder / "served"
    served.mkdir()
    proc = serve_database_copy(dsettings.path(dsettings.store.path), served, city=city_of(dsettings),
                               users=((USER, ROLE, PASSWORD),))
    yield proc, manifest
    proc.stop()


def wait_for_cluster_job(proc: ServerProcess, timeout_s: float = 240) -> dict:
    """Poll /healthz until the clusters job has run once; return its summary."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = proc.healthz()["components"].get("JobScheduler", {}).get("jobs", {})
        job = jobs.get("clusters", {})
        if job.get("runs", 0) >= 1:
            assert job.get("last_error") is None, job["last_error"]
            return job
        time.sleep(1)
    raise AssertionError(f"the clusters job did not run in {timeout_s} s: {proc.log_path.read_text()[-2000:]}")


def open_clusters_page(driver, url: str) -> None:
    driver.get(url + "/clusters")
    wait = patient_wait(driver, 60)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#clusters-map .main-svg")))
    wait.until(lambda d: d.find_element(By.ID, "clusters-table").text.strip() != "")
    wait.until(lambda d: d.find_element(By.ID, "clusters-asof").text.strip() != "")


def map_traces(driver) -> list[dict]:
    """name, customdata and hovertext of every trace the map drew, as the browser holds them."""
    return driver.execute_script("""
        const gd = document.querySelector('#clusters-map .js-plotly-plot');
        return gd.data.map(t => ({name: t.name || '', customdata: t.customdata || null,
                                  hovertext: t.hovertext || null, text: t.text || null,
                                  hovertemplate: t.hovertemplate || null}));""")


def hover_shown(template: str, customdata: list) -> str:
    """The hover Plotly draws from a click-layer point's template and customdata (without <extra>)."""
    def value(match: re.Match) -> str:
        v = customdata[int(match.group(1))]
        return f"{v:,.0f}" if match.group(2) == ",.0f" else str(v)
    return re.sub(r"%\{customdata\[(\d+)\](?::([^}]*))?\}", value, template.split("<extra>")[0])


def _cell_points(traces: list[dict]) -> dict[str, tuple[int, int, str]]:
    """cell -> (index of its click-layer trace, its position there, its hover text). The click layer is a
    few traces named "cells", one per set of lines their hovers have (components.clustermap)."""
    return {c[1]: (i, at, hover_shown(t["hovertemplate"], c)) for i, t in enumerate(traces) if t["name"] == "cells"
            for at, c in enumerate(t["customdata"])}


@pytest.mark.browser
@pytest.mark.slow
def test_planted_clusters_appear_as_clusters_and_zones_and_a_cell_opens_its_history(long_demo, browser):
    proc, manifest = long_demo
    summary = wait_for_cluster_job(proc)
    assert summary["status"] in ("computed", "unchanged") and summary["significant"] >= 1, summary
    requested_urls(browser)
    sign_in(browser, proc.url)
    console_errors(browser)  # start both logs afresh
    open_clusters_page(browser, proc.url)

    # Every planted cluster lies in a cluster's core zone on the map (a core is the cluster's cells).
    traces = map_traces(browser)
    points = _cell_points(traces)
    hover = {cell: text for cell, (_, _, text) in points.items()}
    cluster_rows = browser.find_elements(By.CSS_SELECTOR, "#clusters-table table.cluster-table tbody tr")
    assert len(cluster_rows) == summary["significant"]  # two planted clusters may share one scan circle
    found_cells = []
    for planted in manifest.clusters:
        in_core = [c for c in planted.cells if c in hover and ":core" in hover[c]]
        if in_core:
            found_cells.append(in_core[0])
    assert len(found_cells) >= 2, f"fewer than two planted clusters are in a core zone: {found_cells}"
    method = browser.find_element(By.ID, "clusters-method-label").text
    assert method.startswith("Method: prospective space-time permutation scan") and "drive the zones" in method
    assert "tests-adjusted scan not run" in method  # the fallback says why
    zone_rows = browser.find_elements(By.CSS_SELECTOR, "#clusters-zones table.zone-table tbody tr")
    assert zone_rows and any(t in browser.find_element(By.ID, "clusters-zones").text for t in ("red", "orange"))
    labels = browser.execute_script(
        "return (document.querySelector('#clusters-map .js-plotly-plot').layout.annotations || [])"
        ".map(a => a.text);")
    assert sum("p=" in label for label in labels) == summary["significant"], "each circle carries its p-value"
    assert browser.find_element(By.ID, "clusters-asof").text.startswith("Scan of")

    # Small counts: no cell's hover gives 1..k-1 cases.
    window_counts = [h.split("<br>")[0].split(": ", 1)[1] for h in hover.values()]
    assert "<5" in window_counts
    assert not any(v in {"1", "2", "3", "4"} for v in window_counts)

    # Click a planted cluster's cell on the map: its history opens, with the tier it entered.
    target = found_cells[0]
    layer_index, position, _ = points[target]
    point = browser.execute_script(
        "return document.querySelectorAll('#clusters-map .scatterlayer .trace')[arguments[0]]"
        ".querySelectorAll('path.point')[arguments[1]];", layer_index, position)
    assert point is not None, "the click layer's point is not in the SVG"
    ActionChains(browser).move_to_element(point).click().perform()
    patient_wait(browser, 30).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, f"#clusters-detail [data-place='cell|{target}'] .main-svg")))
    detail = browser.find_element(By.ID, "clusters-detail").text
    assert target in detail and "Zone history" in detail
    assert "entered red" in detail or "entered orange" in detail
    assert "nys-cai-2020" in detail

    # A zone row in the table opens the zone's history.
    zone_rows = browser.find_elements(By.CSS_SELECTOR, "#clusters-zones table.zone-table tbody tr")
    zone_id = zone_rows[0].find_elements(By.TAG_NAME, "td")[0].text
    zone_rows[0].click()
    patient_wait(browser, 30).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, f"#clusters-detail [data-place='zone|{zone_id}'] .main-svg")))
    assert "entered" in browser.find_element(By.ID, "clusters-detail").text

    # Asking for the tests-adjusted scan the run could not compute keeps the permutation scan, and says so.
    browser.find_element(By.CSS_SELECTOR, "#clusters-method input[value='tests_adjusted']").click()
    patient_wait(browser, 30).until(lambda d: "not available" in d.find_element(By.ID, "clusters-method-label").text)
    browser.find_element(By.CSS_SELECTOR, "#clusters-method input[value='permutation']").click()

    # The Gi* layer: classed cells carry a symbol and a text label as well as their colour.
    browser.find_element(By.CSS_SELECTOR, "#clusters-measure input[value='hotspots']").click()
    patient_wait(browser, 30).until(lambda d: any(t["name"] == "Gi* class" for t in map_traces(d)))
    gi = next(t for t in map_traces(browser) if t["name"] == "Gi* class")
    assert gi["text"] and set(gi["text"]) <= {"H99", "H95", "H90", "C90", "C95", "C99"}
    assert any(t["name"].startswith("hot ") for t in map_traces(browser))

    # The rate view draws too.
    browser.find_element(By.CSS_SELECTOR, "#clusters-measure input[value='rate']").click()
    patient_wait(browser, 30).until(lambda d: any("per 100k" in t["name"] for t in map_traces(d)))
    time.sleep(1)

    browser.find_element(By.CSS_SELECTOR, "#clusters-measure input[value='cases']").click()
    patient_wait(browser, 30).until(lambda d: any(t["name"].endswith(" cases") for t in map_traces(d)))
    browser.execute_script("window.scrollTo(0, 0)")
    time.sleep(1.5)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "clusters.png"))

    assert console_errors(browser) == []
    urls = requested_urls(browser)
    assert any("_dash-update-component" in u for u in urls)
    assert external(urls) == [], "the clusters page asked for something outside 127.0.0.1"


# ---- small counts, without a browser -----------------------------------------------------------
def _clusters_frame(observed: int) -> pd.DataFrame:
    return pd.DataFrame([{
        "rank": 1, "cluster_id": "C1", "centre_cell": "89650518dc7ffff", "centre_lat": 2.93, "centre_lng": 101.72,
        "radius_m": 300.0, "cells": ["89650518dc7ffff"], "n_cells": 1, "start_date": date(2026, 11, 10),
        "end_date": date(2026, 11, 24), "observed": observed, "expected": 0.4, "relative_risk": 7.9,
        "p_value": 0.002, "recurrence_interval_days": 500.0, "zone_id": None, "zone_tier": None,
        "zone_since": None}])


def test_counts_below_the_threshold_are_shown_as_less_than_k():
    from auth.principal import principal_for
    from services.clusters import CELLS, CLUSTERS
    from services.privacy import disclose

    operator, manager = principal_for("op", "operator"), principal_for("dm", "data_manager")
    assert [shown(v, False, 5) for v in (0, 5, 1234)] == ["0", "5", "1,234"]
    assert shown(None, True, 5) == "<5" and shown(None, False, 5) == "–"

    def text(component) -> str:
        if isinstance(component, (str, int, float)):
            return str(component)
        children = getattr(component, "children", None)
        if children is None:
            return ""
        if not isinstance(children, (list, tuple)):
            children = [children]
        return " ".join(text(c) for c in children)

    def table(principal):
        clusters = disclose(principal, _clusters_frame(3), CLUSTERS, min_count=5)
        return text(cluster_table(clusters, tiers=TIERS, min_count=5, row_id_type="r", max_window_days=21))

    restricted = table(operator)
    assert "<5 / 0.4" in restricted and "7.9" not in restricted  # the relative risk would give the count back
    allowed = table(manager)
    assert "3 / 0.4" in allowed and "7.9" in allowed
    empty = text(cluster_table(pd.DataFrame(), tiers=TIERS, min_count=5, row_id_type="r", max_window_days=21))
    assert empty == "No clusters detected in the last 21 days."

    # Two small cells: withholding both leaves nothing to subtract (one alone would take the next with it).
    cells = disclose(operator, pd.DataFrame({"h3_cell": ["89650518dc7ffff", "89650518dc3ffff", "89650518dcbffff"],
                                             "cases": [2, 9, 3], "population": [300.0, 500.0, 400.0],
                                             "rate_per_100k": [666.7, 1800.0, 750.0]}), CELLS, min_count=5)
    for measure in ("cases", "rate"):
        fig = cluster_map_figure(cells, [], pd.DataFrame(), pd.DataFrame(), tiers=TIERS, measure=measure,
                                 min_count=5, resolution=9, window_days=14)
        hover = {c[1]: hover_shown(t.hovertemplate, c) for t in fig.data if t.name == "cells" for c in t.customdata}
        assert hover["89650518dc7ffff"].startswith("cases, 14 d: <5") and "667" not in hover["89650518dc7ffff"]
        assert hover["89650518dc3ffff"].startswith("cases, 14 d: 9")
        names = " ".join(t.name or "" for t in fig.data)
        assert ("<5 cases" in names) if measure == "rate" else ("<5 cases" in names or "<5" in names)
