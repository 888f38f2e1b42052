"""map.basemap "tiles": the overview map draws the configured tile server's tiles (here a tile server on
loopback, as a command centre would run inside its network) and asks nothing of anyone else."""
from __future__ import annotations

import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium.webdriver.common.by import By

from tests.auth_helpers import sign_in_browser
from tests.browser import city_of, console_errors, external, patient_wait, requested_urls, serve_database_copy
from tests.conftest import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def grey_png(size: int = 256) -> bytes:
    """A valid size×size grey PNG, written by hand so the test needs no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x60" * size for _ in range(size))  # filter byte + grey samples
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def tile_server():
    tile = grey_png()
    served: list[str] = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self):
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Access-Control-Allow-Origin", "*")  # MapLibre fetches tiles cross-origin
            self.send_header("Content-Length", str(len(tile)))
            self.end_headers()
            self.wfile.write(tile)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()


def test_overview_map_draws_configured_tiles_only(demo_city, tmp_path, tile_server, browser):
    dsettings, _ = demo_city
    tiles_url, served = tile_server
    proc = serve_database_copy(dsettings.path(dsettings.store.path), tmp_path, city=city_of(dsettings), sections={
        "map": {"basemap": "tiles", "tile_url": tiles_url + "/{z}/{x}/{y}.png", "tile_attribution": "test tiles"}})
    try:
        sign_in_browser(browser, proc.url)
        requested_urls(browser)
        console_errors(browser)  # start both logs afresh
        browser.get(proc.url + "/")
        patient_wait(browser, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#overview-map .maplibregl-canvas"))
        patient_wait(browser, 30).until(lambda d: len(served) > 0)
        time.sleep(1)
        assert all(p.endswith(".png") for p in served)
        assert external(requested_urls(browser)) == []  # the tile server is on loopback too
        assert console_errors(browser) == []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "overview-tiles.png"))
    finally:
        proc.stop()
