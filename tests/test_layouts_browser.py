"""The main pages at a 3840×2160 wall and a 1366×768 laptop, in real headless Chromium on the wall server:
a screenshot of each into tests/artifacts/, nothing wider than the screen, no panel's content wider than the
panel (save what is meant to scroll: .scroll-table and overflow-x:auto wrappers), and every map's drawing as
tall as its panel leaves it (maps used about half their panel before).
"""
from __future__ import annotations

import time

import pytest

from pages import _ids as ids
from tests.browser import console_errors
from tests.conftest import ROOT
from tests.test_axe_browser import wait_until_drawn

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = ROOT / "tests" / "artifacts"
SIZES = {"wall": (3840, 2160), "laptop": (1366, 768)}
PAGES = ("/", "/clusters", "/early-warning", "/capacity", "/sensors", "/precincts", "/alerts", "/briefing")
MAPS = (ids.OVERVIEW_MAP, ids.CLUSTERS_MAP, ids.CAPACITY_MAP, ids.PRECINCTS_MAP, ids.SENSORS_MAP, ids.BRIEFING_MAP)
# A map's drawing may leave this share of its graph's box undrawn (Plotly's own rounding and margins stay inside
# the svg, so the svg itself should match the box to within a few pixels).
MAP_FILL = 0.95
# The graph takes at least this share of what its panel leaves below the panel's heading.
MAP_OF_PANEL = 0.85

OVERFLOW = """
const vw = document.documentElement.clientWidth, out = [];
const sw = document.documentElement.scrollWidth;
if (sw > vw + 1) out.push(`the page is ${sw} px wide on a ${vw} px screen`);
const scrolls = e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
  (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
document.querySelectorAll('.panel, .kpi, .topbar, .frame-fresh, .incident-banner, .kiosk-bar').forEach(p => {
  if (p.offsetParent === null || scrolls(p)) return;  // hidden, or meant to scroll sideways
  if (p.scrollWidth > p.clientWidth + 1) {
    const h = p.querySelector('h2');
    out.push(`${name(p)} "${h ? h.innerText.slice(0, 50) : ''}": content ${p.scrollWidth} px in ${p.clientWidth} px`);
  }
});
return out;
"""

MAP_BOXES = """
return arguments[0].map(id => {
  const g = document.getElementById(id);
  if (!g || g.offsetParent === null) return null;
  const svg = g.querySelector('.main-svg'), panel = g.closest('.panel');
  const head = panel ? Array.from(panel.children).filter(c => !c.contains(g))
    .reduce((s, c) => s + c.getBoundingClientRect().height, 0) : 0;
  const pad = panel ? parseFloat(getComputedStyle(panel).paddingTop) + parseFloat(getComputedStyle(panel).paddingBottom) : 0;
  return {id: id, graph: g.getBoundingClientRect().height, svg: svg ? svg.getBoundingClientRect().height : 0,
          room: panel ? panel.getBoundingClientRect().height - head - pad : g.getBoundingClientRect().height};
}).filter(x => x);
"""


# The README's two pictures (docs/img/): the overview on the wall at half scale, /sensors on the laptop.
README_SHOTS = {("wall", "/"): 0.5, ("laptop", "/sensors"): 1.0}


def _save_scaled(browser, path, width: int, height: int, scale: float) -> None:
    """A PNG of the viewport drawn at ``scale`` (Chromium scales it: no image library needed)."""
    import base64

    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": scale}})
    path.write_bytes(base64.b64decode(shot["data"]))


def _viewport(browser, width: int, height: int) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


@pytest.mark.parametrize("size", list(SIZES))
def test_main_pages_fit_the_screen_and_maps_fill_their_panels(wall_server, browser, size):
    width, height = SIZES[size]
    wall_server.sign_in(browser, "operator")
    ARTIFACTS.mkdir(exist_ok=True)
    problems, maps_seen = [], set()
    _viewport(browser, width, height)
    try:
        console_errors(browser)
        for path in PAGES:
            browser.get(wall_server.url + path)
            wait_until_drawn(browser)
            time.sleep(0.6)  # Plotly resizes its graphs to their boxes after the first draw
            slug = path.strip("/") or "overview"
            browser.save_screenshot(str(ARTIFACTS / f"layout-{size}-{slug}.png"))
            if (size, path) in README_SHOTS:
                _save_scaled(browser, ARTIFACTS / f"readme-{size}-{slug}.png", width, height, README_SHOTS[size, path])
            problems += [f"{path}: {p}" for p in browser.execute_script(OVERFLOW)]
            for box in browser.execute_script(MAP_BOXES, list(MAPS)):
                maps_seen.add(box["id"])
                if box["svg"] < MAP_FILL * box["graph"]:
                    problems.append(f"{path} {box['id']}: drawn {box['svg']:.0f} px of a {box['graph']:.0f} px graph")
                if box["graph"] < MAP_OF_PANEL * box["room"]:
                    problems.append(f"{path} {box['id']}: graph {box['graph']:.0f} px of {box['room']:.0f} px its "
                                    "panel leaves")
        assert maps_seen >= {ids.OVERVIEW_MAP, ids.CLUSTERS_MAP, ids.CAPACITY_MAP, ids.SENSORS_MAP}, maps_seen
        assert not problems, f"at {width}×{height}:\n" + "\n".join(problems)
        assert not [e for e in console_errors(browser) if "favicon" not in e]
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
