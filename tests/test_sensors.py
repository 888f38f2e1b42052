"""Sensor states, thresholds, silent sensors and their alerts; wastewater's lead; the sensors read model per role.

The job runs on a copy of the demo city's database (real DuckDB, readings written through the ingest
validation path); the read model is asked as each role, and /sensors is posted to as the public.
"""
from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from analytics.sensors import lead_over_cases, sensor_states
from auth.principal import principal_for
from demo.sensors import OUT_OF_SERVICE
from ingest.batch import BatchBuilder
from ingest.context import ContextProvider
from jobs import sensor_alerts
from services.sensors import UnknownSensor, sensor_history, sensors_view
from settings import ConfigError, load_settings
from store import Store
from tests.conftest import write_config


# ---- pure parts --------------------------------------------------------------------------------------------
def test_states_silence_before_threshold_and_event_sensors_never_silent():
    now = pd.Timestamp("2026-01-10 12:00", tz="UTC")
    seen = pd.Series(pd.to_datetime(["2026-01-10 11:00", "2026-01-10 05:00", None, "2026-01-01 00:00", "2026-01-10 11:59"],
                                    utc=True))
    value = pd.Series([700.0, 900.0, np.nan, 1.0, 50.0])
    threshold = pd.Series([600.0, 600.0, 600.0, np.nan, np.nan])
    interval = pd.Series([3 * 3600, 3600, 3600, np.nan, np.nan])  # the last two: event-driven (panic buttons)
    states = sensor_states(seen, value, threshold, interval, now, silent_factor=2.0)
    assert list(states) == ["above", "silent", "no_data", "normal", "normal"]


def test_lead_finds_the_lag_of_a_series_that_leads_by_five_days():
    days = pd.date_range("2026-01-01", periods=90, freq="D")
    rng = np.random.default_rng(3)
    # An epidemic wave in logs; cases follow the wastewater signal five days later, with noise.
    wave = 2.0 * np.sin(np.arange(100) / 14.0) + np.arange(100) / 40.0
    log_ww = pd.Series(wave[5:95] + rng.normal(0, 0.05, 90), index=days)
    cases = pd.Series(np.round(np.exp(3 + wave[:90] + rng.normal(0, 0.05, 90))), index=days)
    lead = lead_over_cases(log_ww, cases, max_lag_days=14)
    assert lead.lag_days == 5 and lead.correlation > 0.8 and lead.days_used >= 60
    assert lead_over_cases(log_ww.head(10), cases.head(10), 14).lag_days is None  # too short to say


def test_a_people_counting_threshold_below_the_small_count_bar_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"sensors\.kinds\.fever_kiosk\.threshold"):
        load_settings(write_config(tmp_path, sensors={"kinds": {"fever_kiosk": {
            "label": "Fever kiosk", "metric": "fever_alerts", "threshold": 2, "counts_people": True}}}))
    with pytest.raises(ConfigError, match=r"sensors\.kinds\.panic_button"):
        load_settings(write_config(tmp_path, sensors={"kinds": {"panic_button": {
            "label": "Panic", "metric": "panic_press", "incident": True, "threshold": 1}}}))


def test_a_missing_thresholds_file_names_its_key(demo_city):
    dsettings, _ = demo_city
    kinds = dict(dsettings.sensors.kinds)
    kinds["footfall"] = kinds["footfall"].model_copy(update={"thresholds_file": dsettings.base_dir / "nowhere.csv"})
    broken = dsettings.with_overrides(sensors=dsettings.sensors.model_copy(update={"kinds": kinds}))
    with pytest.raises(ConfigError, match=r"sensors\.kinds\.footfall\.thresholds_file"):
        sensor_alerts.check_config(broken)


# ---- the job on the demo city ------------------------------------------------------------------------------
@pytest.fixture
def city_copy(demo_city, tmp_path):
    dsettings, manifest = demo_city
    db = tmp_path / "pheoc.duckdb"
    shutil.copy(dsettings.path(dsettings.store.path), db)
    settings = dsettings.with_overrides(store=dsettings.store.model_copy(update={"path": db}))
    with Store(db) as store:
        yield store, settings, manifest


def ingest_readings(store, settings, records: list[dict]) -> None:
    contexts = ContextProvider(store, settings)
    builder = BatchBuilder("test", "mqtt")
    ctx = contexts.get()
    for rec in records:
        assert builder.add("reading", dict(rec), json.dumps(rec).encode(), ctx), rec
    store.write_batch(builder.build()).result()


def reading(sensor_id: str, seq: int, metric: str, value: float, ts: datetime) -> dict:
    return {"sensor_id": sensor_id, "seq": seq, "ts": ts.isoformat(), "metric": metric, "value": value}


def alerts_of(store, kind: str) -> pd.DataFrame:
    return store.read("SELECT alert_id, kind, severity, area_id, title, detail, status, dedupe_key FROM alerts "
                      "WHERE kind = ? ORDER BY alert_id", [kind])


def test_job_flags_silent_sensors_raises_and_resolves_crossings(city_copy):
    store, settings, manifest = city_copy
    now = datetime.now(timezone.utc)
    summary = sensor_alerts.run(store, settings, now=now)
    quiet = {s.sensor_id for s in manifest.sensors if s.out_of_service}
    assert len(quiet) == sum(OUT_OF_SERVICE.values())
    states = store.read("SELECT sensor_id, state, since, last_seen FROM sensor_states").set_index("sensor_id")
    assert len(states) == len(manifest.sensors)
    assert set(states.index[states["state"] == "silent"]) == quiet  # silent since their last reading
    assert summary["silent_raised"] == len(quiet)
    silent_alerts = alerts_of(store, "sensor_silent")
    assert all(a.startswith("sensor_silent:") for a in silent_alerts["dedupe_key"]) and silent_alerts["area_id"].notna().all()

    # A footfall counter over its place's capacity (the demo's thresholds file), then back under it.
    capacity = pd.read_csv(settings.path(settings.sensors.kinds["footfall"].thresholds_file)).set_index("sensor_id")
    counter = next(s for s in manifest.sensors if s.kind == "footfall" and not s.out_of_service)
    cap = float(capacity.loc[counter.sensor_id, "threshold"])
    ingest_readings(store, settings, [reading(counter.sensor_id, counter.last_seq + 1, "footfall", cap * 1.5,
                                              now - timedelta(seconds=30))])
    sensor_alerts.run(store, settings, now=now)
    crossing = alerts_of(store, "sensor_threshold")
    mine = crossing[crossing["dedupe_key"].str.startswith(f"sensor_threshold:{counter.sensor_id}:")]
    assert len(mine) == 1 and mine["status"].iloc[0] == "active"
    assert f"{cap:,.0f}" in mine["detail"].iloc[0] or f"{cap:,.1f}" in mine["detail"].iloc[0]
    assert store.scalar("SELECT state FROM sensor_states WHERE sensor_id = ?", [counter.sensor_id]) == "above"
    ingest_readings(store, settings, [reading(counter.sensor_id, counter.last_seq + 2, "footfall", cap * 0.5,
                                              now - timedelta(seconds=10))])
    sensor_alerts.run(store, settings, now=now)
    assert store.scalar("SELECT status FROM alerts WHERE alert_id = ?", [int(mine["alert_id"].iloc[0])]) == "resolved"
    # A kiosk over the fever threshold: the alert names the threshold, never the count.
    kiosk = next(s for s in manifest.sensors if s.kind == "fever_kiosk" and not s.out_of_service)
    ingest_readings(store, settings, [reading(kiosk.sensor_id, kiosk.last_seq + 1, "fever_alerts", 37.0,
                                              now - timedelta(seconds=20))])
    sensor_alerts.run(store, settings, now=now)
    fever = alerts_of(store, "sensor_threshold")
    fever = fever[fever["dedupe_key"].str.startswith(f"sensor_threshold:{kiosk.sensor_id}:")]
    assert len(fever) == 1 and "37.0" not in fever["detail"].iloc[0] and "at or above 5.0" in fever["detail"].iloc[0]


def test_a_citywide_outage_raises_and_resolves_every_alert_in_one_pass(tmp_path):
    """Thousands of sensors silent at once (a network outage): each gets one alert, kept while it stays
    silent, resolved when it reports again, and a key once resolved is not raised again that day."""
    from datetime import date

    from store.queries_warning import AlertSpec, sync_alerts

    def spec(i: int, since: date) -> AlertSpec:
        return AlertSpec(f"sensor_silent:S{i:05d}", since, "warning", "sensor_silent", None, f"silent {i}", "d",
                         "sensors.silent_factor", "3")
    day = date(2026, 11, 30)
    now = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    with Store(tmp_path / "outage.duckdb") as store:
        def sync(specs):
            return store.submit(lambda con: sync_alerts(con, "sensor_silent", specs, now)).result()
        assert sync([spec(i, day) for i in range(3000)]) == {"raised": 3000, "resolved": 0}
        assert sync([spec(i, day) for i in range(3000)]) == {"raised": 0, "resolved": 0}
        assert sync([spec(i, day) for i in range(1000)]) == {"raised": 0, "resolved": 2000}
        assert sync([spec(i, day) for i in range(3000)]) == {"raised": 0, "resolved": 0}  # resolved keys stay so
        assert sync([spec(i, date(2026, 12, 1)) for i in range(3000)]) == {"raised": 2000, "resolved": 0}
        open_ = store.read("SELECT count(*) AS n, count(DISTINCT dedupe_key) AS keys FROM alerts "
                           "WHERE status = 'active'").iloc[0]
        assert int(open_["n"]) == int(open_["keys"]) == 3000


def test_a_press_is_one_incident_with_an_audit_record(city_copy):
    store, settings, manifest = city_copy
    now = datetime.now(timezone.utc)
    sensor_alerts.run(store, settings, now=now)  # the demo's own recent presses
    before = len(alerts_of(store, "panic_button"))
    button = next(s for s in manifest.sensors if s.kind == "panic_button")
    ingest_readings(store, settings, [reading(button.sensor_id, button.last_seq + 7, "panic_press", 1.0,
                                              now - timedelta(seconds=5))])
    sensor_alerts.run(store, settings)
    sensor_alerts.run(store, settings)  # never twice
    incidents = alerts_of(store, "panic_button")
    assert len(incidents) == before + 1
    new = incidents.iloc[-1]
    assert new["dedupe_key"] == f"panic_button:{button.sensor_id}:{button.last_seq + 7}"
    assert new["severity"] == "critical" and new["status"] == "active" and "pressed in" in new["title"]
    audit = store.read("SELECT actor, target, detail FROM audit_log WHERE action = 'incident_raised' AND target = ?",
                       [f"alert:{int(new['alert_id'])}"])
    assert len(audit) == 1 and json.loads(audit["detail"].iloc[0])["sensor"] == button.sensor_id


def test_wastewater_leads_are_stored_per_sampler_and_for_the_city(computed_city):
    from jobs import sensor_lead
    settings, manifest, today = computed_city
    with Store(settings.path(settings.store.path)) as store:
        summary = sensor_lead.run(store, settings, today)
        leads = store.read("SELECT * FROM sensor_leads")
        assert sensor_lead.run(store, settings, today)["status"] == "unchanged"
    samplers = {s.sensor_id for s in manifest.sensors if s.kind == "wastewater"}
    assert summary["status"] == "computed" and set(leads["series"]) == samplers | {"city"}
    city = leads[leads["series"] == "city"].iloc[0]
    assert 0 <= city["lag_days"] <= settings.sensors.lead_max_lag_days and city["days_used"] >= 14


# ---- the read model ----------------------------------------------------------------------------------------
def test_each_role_sees_what_it_may(city_copy):
    store, settings, manifest = city_copy
    sensor_alerts.run(store, settings, now=datetime.now(timezone.utc))
    min_count = settings.privacy.min_count
    operator = sensors_view(store, settings, principal_for("op", "operator"))
    assert len(operator.rows) == len(manifest.sensors)
    kiosks = operator.rows[operator.rows["kind"] == "fever_kiosk"]
    values = pd.to_numeric(kiosks["value"], errors="coerce")
    assert not ((values > 0) & (values < min_count)).any()  # small fever counts are withheld below points
    assert kiosks["value__suppressed"].any()
    # Non-personal readings (footfall) are shown as they are.
    assert not operator.rows[operator.rows["kind"] == "footfall"]["value__suppressed"].any()
    police = sensors_view(store, settings, principal_for("pol", "police", ("P01",)))
    for kind in ("fever_kiosk", "panic_button"):  # cut to the precinct: the kiosk's count, the button's presses
        assert 0 < (police.rows["kind"] == kind).sum() < (operator.rows["kind"] == kind).sum()
    assert (police.rows["kind"] == "footfall").sum() == (operator.rows["kind"] == "footfall").sum()
    outside = operator.rows[(operator.rows["kind"] == "fever_kiosk")
                            & ~operator.rows["sensor_id"].isin(police.rows["sensor_id"])]["sensor_id"].iloc[0]
    with pytest.raises(UnknownSensor):
        sensor_history(store, settings, principal_for("pol", "police", ("P01",)), outside)
    history = sensor_history(store, settings, principal_for("op", "operator"), outside)
    shown = pd.to_numeric(history.readings["value"], errors="coerce")
    assert len(history.readings) and not ((shown > 0) & (shown < min_count)).any()
    for role in ("data_manager", "admin", "public"):
        with pytest.raises(PermissionError):
            sensors_view(store, settings, principal_for("x", role))


def test_sensors_page_refuses_the_public_and_roles_without_the_permission(demo_city, tmp_path):
    from tests.app_helpers import app_on_copy, close_app
    from tests.auth_helpers import sign_in_client

    dsettings, _ = demo_city
    app, store, _ = app_on_copy(dsettings, tmp_path, users=[("dm", "data_manager"), ("pol", "police")])
    try:
        client = app.server.test_client()
        assert client.get("/sensors").status_code == 302  # to the login page
        sign_in_client(client, "dm")
        assert client.get("/sensors").status_code == 403
        police = app.server.test_client()
        sign_in_client(police, "pol")
        assert police.get("/sensors").status_code == 200
    finally:
        close_app(app, store)


# ---- the page in a real browser ------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
def test_sensors_page_shows_states_silent_sensors_and_a_clicked_history(wall_server, browser, demo_city):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    
    from tests.browser import console_errors, external, patient_wait, requested_urls

    _, manifest = demo_city
    quiet = sorted(s.sensor_id for s in manifest.sensors if s.out_of_service)
    wall_server.sign_in(browser, "operator")
    requested_urls(browser)
    browser.get(wall_server.url + "/sensors")
    patient_wait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sensors-list tr.row-silent"))
    # One tile per configured kind, its figure on the element.
    tiles = browser.find_elements(By.CSS_SELECTOR, "#sensors-kpis [data-indicator^='sensors.']")
    assert {t.get_attribute("id") for t in tiles} == {f"kpi-sensors-{k}" for k in wall_server.settings.sensors.kinds}
    # The out-of-service sensors are flagged silent, in words and not only by colour.
    silent_rows = browser.execute_script(  # read at once: a job's pass may redraw the list
        "return [...document.querySelectorAll('#sensors-list tr.row-silent')].map("
        "r => [JSON.parse(r.querySelector('button').id).index, r.innerText]);")
    assert {i for i, _ in silent_rows} == set(quiet) and all("silent" in text for _, text in silent_rows)
    # Every sensor is on the map (one marker each: customdata holds its id).
    ids_on_map = browser.execute_script(
        "const gd = document.querySelector('#sensors-map .js-plotly-plot');"
        "return gd.data.flatMap(t => Array.isArray(t.customdata) ? t.customdata : []);")
    assert len(set(ids_on_map)) == len(manifest.sensors)
    # The crowding panel: places against their capacity.
    assert browser.find_elements(By.CSS_SELECTOR, "#sensors-crowding-footfall .js-plotly-plot")
    # A sensor's name in a panel is a button: Enter opens its history.
    chosen = []

    def opened_by_keyboard(d) -> bool:
        # The list is redrawn only when its content changes (pages._redraw), but a sensor job's pass may
        # change it between focus and Enter: focus the row's button again and press Enter (sent as key
        # events to whatever has focus, so no element reference goes stale) until the history opens.
        title = d.find_element(By.ID, "sensors-history-title").text
        if "History: " in title and "(" in title:
            return True
        chosen.append(d.execute_script("const b = document.querySelector('#sensors-list tr.row-silent button');"
                                       "b.focus(); return JSON.parse(b.id).index;"))
        ActionChains(d).send_keys(Keys.ENTER).perform()
        return False
    patient_wait(browser, 20, poll_frequency=1.5).until(opened_by_keyboard)
    sensor = chosen[-1]
    # Refreshes (every second here) leave an unchanged list alone: the focused button keeps its focus.
    focus_and_list = ("return [document.activeElement && document.activeElement.id,"
                      " document.getElementById('sensors-list').innerText];")
    before = browser.execute_script(focus_and_list)
    time.sleep(2.5)
    after = browser.execute_script(focus_and_list)
    assert after[1] != before[1] or (after[0] == before[0] and sensor in before[0]), (before[0], after[0])
    title = browser.find_element(By.ID, "sensors-history-title").text
    assert sensor in title and sensor in quiet
    points = browser.execute_script(
        "const gd = document.querySelector('#sensors-history .js-plotly-plot'); return gd.data[0].x.length;")
    assert points > 0
    # A click on the map opens the history of the sensor clicked.
    browser.execute_script(
        "const gd = document.querySelector('#sensors-map .js-plotly-plot');"
        "const t = gd.data.findIndex(t => t.name && t.name.startsWith('Wastewater'));"
        "gd.emit('plotly_click', {points: [{curveNumber: t, pointNumber: 0, customdata: gd.data[t].customdata[0]}]});")
    patient_wait(browser, 15).until(lambda d: "WW-" in d.find_element(By.ID, "sensors-history-title").text)
    assert not external(requested_urls(browser)), "a request left the machine"
    assert not console_errors(browser)
