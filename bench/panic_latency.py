"""Panic-button latency: from an MQTT publish to the press on a wall screen, in real headless Chromium.

Builds a small demo city, serves it with `python app.py serve` and a real Mosquitto (as an external
deployment runs), signs an operator's Chromium in to a kiosk wall (/?kiosk=1), and presses N different
panic buttons one after another at random phases of the refresh: each press is published, the browser
notes (MutationObserver, the page's own clock) when its incident first appears in the banner, and the
operator acknowledges it before the next. The machine's one clock serves both sides.

Prints one JSON line per press set and one for the baseline, in the same run: the ceiling the design
promises, MQTT batching (ingest.batch_max_ms) + the sensor job's interval (sensors.run_every_s) and its
lane's polling (0.25 s) + the wall's refresh interval (wall.refresh_s) + one second for the callback and
drawing. ``make bench-panic`` runs it (~2 min).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PREFIX = "pheoc/benchcity"
USER_ENV, PASSWORD_ENV = "PHEOC_BENCH_MQTT_USER", "PHEOC_BENCH_MQTT_PASSWORD"
WATCH = """
window.__seen = window.__seen || {};
if (!window.__observer) {
  const note = () => document.querySelectorAll('.incident[data-sensor]').forEach(e => {
    const s = e.getAttribute('data-sensor'); if (!(s in window.__seen)) { window.__seen[s] = Date.now(); } });
  window.__observer = new MutationObserver(note);
  window.__observer.observe(document.body, {childList: true, subtree: true});
  note();
}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def acknowledge(driver, selector: str, within_s: float = 30) -> None:
    """Click Acknowledge on every incident matching ``selector`` until none is left on the wall.

    Each acknowledgement redraws the banner, so a button found before a redraw is gone after it: look
    each one up again rather than clicking a list found once.
    """
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        buttons = driver.find_elements(By.CSS_SELECTOR, f"{selector} button.incident-ack")
        if not buttons:
            return
        try:
            buttons[0].click()
        except StaleElementReferenceException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"incidents {selector} still on the wall after {within_s} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--refresh-s", type=int, default=None, help="wall.refresh_s (default: config.yaml's)")
    args = parser.parse_args()

    from selenium.webdriver.common.by import By

    from app import build_demo
    from ingest.broker import EmbeddedBroker
    from ingest.mqtt import MqttPublisher
    from jobs.scheduler import LANE_TICK_S
    from settings import load_settings
    from tests.auth_helpers import BROWSER_USER, sign_in_browser
    from tests.browser import chromium_driver, city_of, serve_database_copy
    from tests.conftest import write_config

    base = load_settings()
    refresh_s = args.refresh_s or base.wall.refresh_s
    with tempfile.TemporaryDirectory(prefix="pheoc-bench-panic-") as tmp:
        folder = Path(tmp)
        (folder / "build").mkdir()
        settings = load_settings(write_config(folder / "build"))
        dsettings, manifest = build_demo(settings, seed=5, days=args.days)
        buttons = [s.sensor_id for s in manifest.sensors if s.kind == "panic_button"][: args.presses]
        broker = EmbeddedBroker(topic_prefix=PREFIX).start()
        os.environ[USER_ENV], os.environ[PASSWORD_ENV] = broker.ingest_login.username, broker.ingest_login.password
        server = driver = None
        try:
            (folder / "serve").mkdir()
            server = serve_database_copy(
                dsettings.path(dsettings.store.path), folder / "serve", city=city_of(dsettings), refresh_s=refresh_s,
                users=((BROWSER_USER, "operator"),),
                sections={"mqtt": {"mode": "external", "host": broker.host, "port": broker.port, "topic_prefix": PREFIX,
                                   "username_env": USER_ENV, "password_env": PASSWORD_ENV}})
            served = load_settings(folder / "serve" / "config.yaml")
            publisher = MqttPublisher(broker.host, broker.port, login=broker.publisher_login,
                                      protocol_v5=broker.mqtt_v5).connect()
            driver = chromium_driver()
            sign_in_browser(driver, server.url)
            driver.get(server.url + "/?kiosk=1")
            time.sleep(3)
            # The demo's own recent presses are open incidents: acknowledge them first.
            acknowledge(driver, ".incident")
            latencies = []
            rng = random.Random(1)
            for i, sensor in enumerate(buttons):
                driver.execute_script(WATCH)
                time.sleep(rng.uniform(0, refresh_s))  # a random phase of the refresh
                payload = {"sensor_id": sensor, "seq": 50_000_000 + i, "ts": datetime.now(timezone.utc).isoformat(),
                           "metric": "panic_press", "value": 1.0, "unit": "press"}
                sent_ms = time.time() * 1000
                publisher.publish(f"{PREFIX}/sensors/{sensor}/readings", json.dumps(payload).encode())
                deadline = time.monotonic() + 120
                seen = None
                while time.monotonic() < deadline:
                    seen = driver.execute_script("return (window.__seen || {})[arguments[0]] || null;", sensor)
                    if seen:
                        break
                    time.sleep(0.05)
                if not seen:
                    print(json.dumps({"bench": "panic_latency", "error": f"press {i} ({sensor}) never shown"}))
                    return 1
                latencies.append((seen - sent_ms) / 1000)
                acknowledge(driver, f".incident[data-sensor='{sensor}']")
            publisher.close()
        finally:
            if driver is not None:
                driver.quit()
            if server is not None:
                server.stop()
            broker.stop()
    ceiling = (served.ingest.batch_max_ms / 1000 + served.sensors.run_every_s + LANE_TICK_S["live"]
               + served.wall.refresh_s + 1.0)
    print(json.dumps({"bench": "panic_latency", "presses": len(latencies), "p50_s": round(percentile(latencies, 0.5), 2),
                      "p95_s": round(percentile(latencies, 0.95), 2), "max_s": round(max(latencies), 2),
                      "mean_s": round(statistics.mean(latencies), 2), "refresh_s": served.wall.refresh_s,
                      "within_ceiling": sum(v <= ceiling for v in latencies)}))
    print(json.dumps({"bench": "panic_latency_ceiling", "ceiling_s": round(ceiling, 2),
                      "batch_max_s": served.ingest.batch_max_ms / 1000, "sensor_job_every_s": served.sensors.run_every_s,
                      "lane_tick_s": LANE_TICK_S["live"], "refresh_s": served.wall.refresh_s, "draw_s": 1.0}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
