"""Helpers for real-browser tests: a pheoc server subprocess and headless Debian Chromium via Selenium."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tests.conftest import ROOT

CHROMIUM = os.environ.get("PHEOC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PHEOC_CHROMEDRIVER", "/usr/bin/chromedriver")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python app.py serve --config CFG` in a subprocess, waited for until /healthz answers."""

    def __init__(self, config: Path, port: int, log_path: Path):
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(log_path, "wb")
        self.log_path = log_path
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "serve", "--config", str(config)],
                                     cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"server did not start: {log_path.read_text()[-3000:]}")

    def healthz(self) -> dict:
        with urllib.request.urlopen(self.url + "/healthz", timeout=5) as r:
            return json.load(r)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def chromium_driver(width: int = 1920, height: int = 1080):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists(), f"Chromium not installed at {CHROMIUM} (make test installs it)"
    assert Path(CHROMEDRIVER).exists(), f"ChromeDriver not installed at {CHROMEDRIVER} (make test installs it)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--disable-extensions", f"--window-size={width},{height}",
                "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def requested_urls(driver) -> list[str]:
    """Every URL the page asked for since the last call (from the DevTools performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def external(urls: list[str]) -> list[str]:
    """The URLs that would leave the machine."""
    out = []
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme in ("data", "blob", "about", "chrome", "devtools"):
            continue
        if parts.hostname not in LOCAL_HOSTS:
            out.append(u)
    return out


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def city_of(settings) -> dict:
    """The city section of ``settings`` with absolute paths, for a config file written elsewhere."""
    return {"boundary_file": str(settings.path(settings.city.boundary_file)) if settings.city.boundary_file else None,
            "area_layers": [{"kind": a.kind, "label": a.label, "file": str(settings.path(a.file))}
                            for a in settings.city.area_layers]}


def serve_database_copy(db_source: Path, folder: Path, *, city: dict | None = None,
                        users: tuple[tuple[str, ...], ...] | None = None, refresh_s: int = 1,
                        sections: dict | None = None) -> ServerProcess:
    """`python app.py serve` on a copy of ``db_source`` (the server process must own its file).

    ``users`` are (username, role[, password]) added before the server starts (default: the
    operator BROWSER_USER); ``city`` overrides the config's city section (see city_of), ``sections``
    other sections' keys (e.g. {"map": {...}}). The inbox
    (folder/"inbox") is watched every 0.5 s, MQTT is off, pages refresh every ``refresh_s`` s.
    """
    import shutil

    import yaml

    from tests.auth_helpers import BROWSER_USER, add_user_to_database

    db = folder / "pheoc.duckdb"
    shutil.copy(db_source, db)
    for user in users if users is not None else ((BROWSER_USER, "operator"),):
        add_user_to_database(db, user[0], role=user[1], **({"password": user[2]} if len(user) > 2 else {}))
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["city"].update(city if city is not None else {"boundary_file": None, "area_layers": []})
    cfg["clusters"]["zone_rulebook"] = str(ROOT / cfg["clusters"]["zone_rulebook"])
    cfg["clusters"]["scan_rulebook"] = str(ROOT / cfg["clusters"]["scan_rulebook"])
    cfg["early_warning"]["rulebooks"] = [str(ROOT / p) for p in cfg["early_warning"]["rulebooks"]]
    cfg["store"]["path"] = str(db)
    # Test files are written whole before the watcher looks: no need to wait for them to settle.
    cfg["ingest"].update(inbox=str(folder / "inbox"), watch_interval_s=0.5, settle_s=0)
    cfg["mqtt"]["mode"] = "off"
    port = free_port()
    cfg["server"]["port"] = port
    cfg["wall"]["refresh_s"] = refresh_s
    # The indicators job reruns only when its inputs changed; checking often lets a dropped file show fast.
    cfg.setdefault("indicators", {})["run_every_s"] = 5
    for name, values in (sections or {}).items():
        cfg.setdefault(name, {}).update(values)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return ServerProcess(folder / "config.yaml", port, folder / "server.log")


def api_json(driver, path: str) -> dict:
    """GET ``path`` from the page's own origin with the browser's session, parsed as JSON."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.json()).then(done)"
        ".catch(e => done({error: String(e)}));", path)


def text_of(driver, css: str) -> str | None:
    """The innerText of the first element matching ``css``, found and read in one script call.

    Elements inside a redrawn container (tiles, table rows, sortable headings) can be replaced between
    a find_element and its .text; one call cannot be split that way.
    """
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
                                 css)


def page_indicators(driver) -> dict[str, tuple[str, str]]:
    """{key: (data-value, printed text)} of every element on the page carrying data-indicator."""
    return driver.execute_script(
        "const out = {}; document.querySelectorAll('[data-indicator]').forEach(e => {"
        "  const v = e.querySelector('.kpi-value'); "
        "  out[e.getAttribute('data-indicator')] = [e.getAttribute('data-value'), v ? v.innerText : null]; });"
        "return out;")


def patient_wait(driver, timeout_s: float, poll_frequency: float = 0.5):
    """A WebDriverWait that polls past elements Dash replaced between finding and reading them.

    Pages redraw their tiles, banners and strips on every refresh (every second in the tests): an
    element found a moment ago may be gone when its text is read. That is a reason to look again, not
    a failure.
    """
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=poll_frequency,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
