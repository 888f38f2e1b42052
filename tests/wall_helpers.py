"""The wall server of the browser tests of sensors, panic buttons, kiosk mode, playlists, accessibility and
layouts: the demo city served by `python app.py serve` with a real Mosquitto (its ingest login in the
environment, as an external deployment has it), one user per role, a three-view playlist of a few
seconds per view, and pages refreshing every second. One per session: starting it costs ~10 s.
"""
from __future__ import annotations

import os
import time

import pytest

from tests.auth_helpers import TEST_PASSWORD, sign_in_browser

WALL_PREFIX = "pheoc/wallcity"
USER_ENV, PASSWORD_ENV = "PHEOC_WALL_TEST_MQTT_USER", "PHEOC_WALL_TEST_MQTT_PASSWORD"
PLAYLIST = "three"
PLAYLIST_VIEWS = ({"page": "/", "seconds": 4}, {"page": "/sensors", "seconds": 4},
                  {"page": "/early-warning?area=C01", "seconds": 4})
ROLE_USERS = {role: f"wall-{role.replace('_', '-')}" for role in
              ("operator", "executive", "police", "analyst", "data_manager", "admin")}


class WallServer:
    def __init__(self, proc, broker, folder, settings):
        self.proc, self.broker, self.folder, self.settings = proc, broker, folder, settings
        self.url = proc.url

    def publisher(self):
        from ingest.mqtt import MqttPublisher
        return MqttPublisher(self.broker.host, self.broker.port, login=self.broker.publisher_login,
                             protocol_v5=self.broker.mqtt_v5).connect()

    def sign_in(self, driver, role: str | None) -> None:
        """Sign the browser in as the wall user of ``role`` (None: signed out, the public)."""
        driver.get(self.url + "/logout")
        if role is not None:
            sign_in_browser(driver, self.url, ROLE_USERS.get(role, role), TEST_PASSWORD)


@pytest.fixture(scope="session")
def wall_server(demo_city, tmp_path_factory):
    from ingest.broker import EmbeddedBroker, find_mosquitto
    from tests.browser import city_of, serve_database_copy

    assert find_mosquitto(), "Mosquitto is required (make system-deps installs it)"
    dsettings, _ = demo_city
    broker = EmbeddedBroker(topic_prefix=WALL_PREFIX).start()
    saved = {k: os.environ.get(k) for k in (USER_ENV, PASSWORD_ENV)}
    os.environ[USER_ENV], os.environ[PASSWORD_ENV] = broker.ingest_login.username, broker.ingest_login.password
    folder = tmp_path_factory.mktemp("wall")
    users = tuple((name, role) for role, name in ROLE_USERS.items())
    proc = None
    try:
        proc = serve_database_copy(
            dsettings.path(dsettings.store.path), folder, city=city_of(dsettings), users=users,
            sections={"mqtt": {"mode": "external", "host": broker.host, "port": broker.port,
                               "topic_prefix": WALL_PREFIX, "username_env": USER_ENV, "password_env": PASSWORD_ENV,
                               "tls": False},
                      "wall": {"playlists": {PLAYLIST: list(PLAYLIST_VIEWS)}},
                      "map": {"context_layers": [{"id": c.id, "label": c.label, "file": str(dsettings.path(c.file))}
                                                 for c in dsettings.map.context_layers]},
                      "sensors": {"kinds": {name: {**k.model_dump(mode="json"), **(
                          {"thresholds_file": str(dsettings.path(k.thresholds_file))} if k.thresholds_file else {})}
                          for name, k in dsettings.sensors.kinds.items()}}})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the ingestor is connected once /healthz says so
            health = proc.healthz()
            if health["components"].get("MqttIngestor", {}).get("connected"):
                break
            time.sleep(0.3)
        yield WallServer(proc, broker, folder, dsettings)
    finally:
        if proc is not None:
            proc.stop()
        broker.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
