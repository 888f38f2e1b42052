"""Shared fixtures: real DuckDB files and config files on tmp_path, and one small demo city per session."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data; a missing one fails the test (CI must have it), never skips it."""
    path = SHARED_DATA.joinpath(*parts)
    assert path.exists(), f"shared reference data missing: {path}"
    return path


def write_config(folder: Path, **sections) -> Path:
    """Write a config file for a test city in ``folder`` (sections override the defaults) and return its path."""
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    base["store"]["path"] = str(folder / "pheoc.duckdb")
    base["ingest"]["inbox"] = str(folder / "inbox")
    base["demo"]["workdir"] = str(folder / "demo")
    base["mqtt"]["mode"] = "off"
    # The project's rulebooks, wherever the test's config file lives.
    base["clusters"]["zone_rulebook"] = str(ROOT / base["clusters"]["zone_rulebook"])
    base["clusters"]["scan_rulebook"] = str(ROOT / base["clusters"]["scan_rulebook"])
    base["early_warning"]["rulebooks"] = [str(ROOT / p) for p in base["early_warning"]["rulebooks"]]
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


@pytest.fixture
def settings_factory(tmp_path):
    def make(**sections) -> Settings:
        return load_settings(write_config(tmp_path, **sections))
    return make


@pytest.fixture(scope="session")
def demo_city(tmp_path_factory):
    """A 40-day demo city built and ingested through the real file path (shared by read-only tests)."""
    from app import build_demo

    folder = tmp_path_factory.mktemp("demo_city")
    settings = load_settings(write_config(folder))
    dsettings, manifest = build_demo(settings, seed=11, days=40)
    return dsettings, manifest


@pytest.fixture(scope="session")
def computed_city(demo_city, tmp_path_factory):
    """A copy of the demo city's database with the indicators and early-warning jobs run on it, as a
    serving instance would have them: (settings pointing at the copy, manifest, today)."""
    import shutil

    from jobs import early_warning, indicators
    from jobs.scheduler import today_in
    from store import Store

    dsettings, manifest = demo_city
    folder = tmp_path_factory.mktemp("computed_city")
    db = folder / "pheoc.duckdb"
    shutil.copy(dsettings.path(dsettings.store.path), db)
    settings = dsettings.with_overrides(store=dsettings.store.model_copy(update={"path": db}))
    today = today_in(settings.city.timezone)
    with Store(db) as store:
        assert indicators.run(store, settings, today)["status"] == "computed"
        assert early_warning.run(store, settings, today)["status"] == "computed"
    return settings, manifest, today


@pytest.fixture(scope="session")
def served_demo(demo_city, tmp_path_factory):
    """The demo city served by `python app.py serve` in a subprocess that owns a copy of its database.

    Yields (ServerProcess, folder, demo settings). Its inbox (folder/"inbox") is watched every 0.5 s
    and the overview refreshes every second, so tests can drop files and watch pages change.
    """
    from tests.browser import city_of, serve_database_copy

    dsettings, _ = demo_city
    folder = tmp_path_factory.mktemp("served")
    proc = serve_database_copy(dsettings.path(dsettings.store.path), folder, city=city_of(dsettings))
    yield proc, folder, dsettings
    proc.stop()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (Debian chromium + chromium-driver)."""
    from tests.browser import chromium_driver

    driver = chromium_driver()
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def _browser_left_on_a_blank_page(request):
    """After a test that drove the shared browser, leave it on about:blank.

    A page left open keeps refreshing (every second on the test servers): its server and Chromium go on
    computing through every later test, and once that server has stopped, each refresh logs a refused
    connection that the next test would read as its own console error."""
    yield
    if "browser" in request.fixturenames:
        request.getfixturevalue("browser").get("about:blank")


# The shared browser signed in to served_demo (defined beside the other sign-in helpers).
from tests.auth_helpers import signed_in_browser  # noqa: E402,F401
# The wall server of the sensors, panic, kiosk, accessibility and layout browser tests (one per session).
from tests.wall_helpers import wall_server  # noqa: E402,F401
