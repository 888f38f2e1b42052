"""The briefing as an A4 PDF of one or two pages: the read model's text as printed on screen, and the map
and charts drawn by plotly.js from the same figures as the page (components.briefing), embedded as PNG.

The document is a static HTML file written to a temporary folder with plotly.js from the installed
plotly package beside it (file: URLs only), printed by reports.chromium, which refuses any request that
would leave the machine. Text comes from the briefing (services.briefing) and is HTML-escaped here;
figure JSON is escaped so that no name in it can close the script element.
"""
from __future__ import annotations

import html
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import plotly

from components.briefing import FIGURE_SIZES, FIGURE_TITLES, briefing_figures
from reports.chromium import Printed, RenderError, find_chromium, missing_renderer_text, print_to_pdf
from services.briefing import Briefing
from services.narrative import day_text
from settings import Settings

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
MAX_ALERT_ROWS = 6  # the rest are counted: the alert inbox has them all
# Plotly.toImage at twice the CSS size: sharp when printed (about 190 dpi on A4).
IMAGE_SCALE = 2


class RendererUnavailable(RuntimeError):
    """No Chromium to print with; the message says what to install."""


@dataclass(frozen=True)
class RendererStatus:
    available: bool
    text: str


def renderer_status(settings: Settings) -> RendererStatus:
    found = find_chromium(settings.briefing.chromium)
    if found is None:
        return RendererStatus(False, missing_renderer_text(settings.briefing.chromium))
    if not PLOTLY_JS.exists():
        return RendererStatus(False, f"PDF unavailable: plotly.js is missing at {PLOTLY_JS}")
    return RendererStatus(True, f"PDF printed by {found}")


def _e(text) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _tile(h) -> str:
    f = h.figure
    lines = "".join(f'<div class="change">{_e(c.text or "vs " + what + ": " + c.previous_display)}</div>'
                    for c, what in ((h.change_day, "day before"), (h.change_week, "week before")))
    return (f'<div class="tile" data-indicator="{_e(f.key)}"><div class="label">{_e(f.label)}</div>'
            f'<div class="value">{_e(f.display)}</div>{lines}</div>')


def _capacity(b: Briefing) -> str:
    c = b.capacity
    rows = [("Bed occupancy", c.bed_occupancy.display), ("ICU occupancy", c.icu_occupancy.display),
            (f"Days until {c.threshold:.0%} of beds", c.days_to_beds.display),
            ("… 1 in 20 chance within", c.days_to_beds_upper.display),
            (f"Days until {c.threshold:.0%} of ICU beds", c.days_to_icu.display),
            ("Hospitals reporting", c.hospitals_reporting.display), ("Stale reports", c.stale_reports.display)]
    if c.first_to_fill:
        rows.append(("First hospital to fill", f"{c.first_to_fill[0]}: {c.first_to_fill[1]} d"))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _level(b: Briefing) -> str:
    lv = b.level
    if lv is None:
        return '<p class="muted">No level: no indicators stored for the day.</p>'
    swatch = f'<span class="swatch" style="background:{_e(lv.colour or "#999")}"></span>'
    label = _e(lv.label or "not assessed")
    changes = "".join(f"<li>{_e(c['area'])}: {_e(c['from_label'])} → {_e(c['to_label'])}</li>" for c in lv.changes)
    return (f'<div class="level">{swatch}<b>{label}</b> <span class="muted">({_e(lv.rulebook_name)}, '
            f'{_e(lv.rulebook_version)})</span></div><div class="muted small">{_e(lv.basis)}</div>'
            + (f'<ul class="small">{changes}</ul>' if changes else ""))


def _table(head: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted small">{_e(empty)}</p>'
    thead = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f'<table class="grid"><thead><tr>{thead}</tr></thead><tbody>{body}</tbody></table>'


def _hot_spots(b: Briefing) -> str:
    return _table(["Area", "Per 100k, 7 d", "Cases, 7 d", "Week / last"],
                  [[h.name, h.incidence.display, h.cases_7d.display, h.growth.display] for h in b.hot_spots],
                  "No area had cases in the last 7 days.")


def _sections(b: Briefing) -> str:
    out = []
    if b.clusters is not None:
        rows = b.clusters.clusters
        listed = [[f"#{r['rank']}", r.get("area_name") or "–", "new" if r["is_new"] else "continuing",
                   f"{float(r['radius_m']):,.0f} m", f"{r['p_value']:.3f}"]
                  for r in (rows.to_dict("records") if len(rows) else [])]
        scan = f"scan of {day_text(b.clusters.scan_day)}" if b.clusters.scan_day else "no scan stored"
        out += [f'<h2>Micro-clusters <span class="muted small">({_e(scan)}; {len(b.clusters.zones)} zones in force)'
                '</span></h2>', _table(["Cluster", "Area", "", "Radius", "p"], listed, "No significant clusters.")]
    if b.precincts is not None:
        out += ['<h2>Precincts that changed tier</h2>',
                _table(["Precinct", "Before", "Now"], [[c.name, c.tier_before or "none", c.tier or "none"]
                                                      for c in b.precincts.changes],
                       "No precinct changed tier.")]
    if b.alerts is not None:
        shown = b.alerts.head(MAX_ALERT_ROWS)
        more = len(b.alerts) - len(shown)
        out += [f'<h2>Alerts of the last 24 h <span class="muted small">({len(b.alerts)})</span></h2>',
                _table(["Raised", "Severity", "Area", "Alert"],
                       [[f"{r['raised_at']:%d %b %H:%M}", r["severity"], r["area_name"] or "city", r["title"]]
                        for r in shown.to_dict("records")], "No alerts were raised.")]
        if more > 0:
            out.append(f'<p class="muted small">… and {more} more on /alerts.</p>')
    return "".join(out)


def _notes(b: Briefing) -> str:
    items = [*b.forecast_caveats,
             f"Counts of people from 1 to {b.min_count - 1} are withheld (“<{b.min_count}”), and so are figures "
             "that would give them away.",
             "Deaths are not a pheoc figure yet: they are not in this briefing."]
    items += [f"Not shown to the {b.role} role: {w}." for w in b.withheld]
    return '<ul class="notes">' + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


STYLE = """
@page { size: A4; margin: 10mm 11mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Verdana, sans-serif; font-size: 9.5pt; color: #14181c; margin: 0; }
header { display: flex; justify-content: space-between; align-items: baseline; border-bottom: 2px solid #14181c;
         padding-bottom: 4px; margin-bottom: 6px; }
header h1 { font-size: 15pt; margin: 0; } header .meta { font-size: 8pt; color: #555; text-align: right; }
h2 { font-size: 10.5pt; margin: 8px 0 3px; }
.tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: 4px; }
.tile { border: 1px solid #c8ced4; border-top: 3px solid #3a444f; padding: 3px 5px; break-inside: avoid; }
.tile .label { font-size: 7.5pt; color: #444; } .tile .value { font-size: 15pt; font-weight: bold; }
.tile .change { font-size: 7pt; color: #444; }
.narrative { margin: 6px 0; padding: 5px 8px; background: #f1f3f5; border-left: 4px solid #0072B2; }
.narrative p { margin: 2px 0; }
.row { display: flex; gap: 8px; } .row > div { flex: 1; } .row > div.wide { flex: 1.4; }
.fig img { width: 100%; display: block; } .fig { break-inside: avoid; }
table { border-collapse: collapse; width: 100%; font-size: 8pt; }
table.kv th { text-align: left; font-weight: normal; color: #444; padding: 1px 4px 1px 0; }
table.kv td { font-weight: bold; text-align: right; }
table.grid th, table.grid td { border-bottom: 1px solid #dde1e5; padding: 1px 4px; text-align: left; }
.level { font-size: 11pt; } .swatch { display: inline-block; width: 11px; height: 11px; margin-right: 5px; }
.muted { color: #666; } .small { font-size: 7.5pt; } .notes { font-size: 7pt; color: #444; padding-left: 14px; }
.page2 { break-before: page; }
"""

SCRIPT = """
window.briefingReady = (async () => {
  try {
    for (const [name, fig] of Object.entries(FIGURES)) {
      const url = await Plotly.toImage(fig, {format: 'png', width: fig.layout.width, height: fig.layout.height,
                                             scale: SCALE});
      const img = new Image();
      img.src = url;
      img.alt = TITLES[name];
      await img.decode();
      document.getElementById('fig-' + name).replaceChildren(img);
    }
  } catch (e) { window.briefingError = String(e); }
})();
"""


def _script_json(value) -> str:
    """JSON safe inside <script>: no '<' at all, so no '</script>' from a name."""
    return value.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def briefing_html(b: Briefing, figures: dict, plotly_src: str) -> str:
    """The print document of a briefing (figures: plotly figures by name, drawn into PNG by the page)."""
    figures_json = "{" + ",".join(f"{json.dumps(n)}:{_script_json(f.to_json())}" for n, f in figures.items()) + "}"
    state = "" if b.complete else " · day in progress"

    def fig(name: str) -> str:
        width, height = FIGURE_SIZES[name]
        return (f'<div class="fig"><h2>{_e(FIGURE_TITLES[name])}</h2><div id="fig-{name}" '
                f'style="aspect-ratio:{width}/{height}"></div></div>')
    narrative = "".join(f"<p>{_e(s)}</p>" for s in b.narrative)
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Daily briefing {_e(b.day.isoformat())} · {_e(b.city)}</title><style>{STYLE}</style></head><body>
<header><h1>Daily briefing · {_e(b.city)}</h1><div class="meta">{_e(day_text(b.day))}{_e(state)}<br>
generated {_e(f"{b.generated_at:%d %b %Y %H:%M} UTC")} for the {_e(b.role)} role</div></header>
<div class="tiles">{"".join(_tile(h) for h in b.headline)}</div>
<div class="narrative">{narrative}</div>
{fig("map")}
<div class="row"><div><h2>Level</h2>{_level(b)}</div><div><h2>Capacity</h2>{_capacity(b)}</div>
<div class="wide"><h2>Hot spots</h2>{_hot_spots(b)}</div></div>
<section class="page2">
{fig("trend")}
<div class="row"><div>{fig("capacity")}</div><div>{fig("rt")}</div></div>
{_sections(b)}
<h2>About these figures</h2>{_notes(b)}
</section>
<script src="{_e(plotly_src)}"></script>
<script>const FIGURES = {figures_json}; const TITLES = {json.dumps(FIGURE_TITLES)}; const SCALE = {IMAGE_SCALE};</script>
<script>{SCRIPT}</script>
</body></html>"""


def render_briefing_pdf(b: Briefing, outlines, settings: Settings) -> Printed:
    """The briefing printed to PDF bytes (RendererUnavailable without Chromium, RenderError if printing fails)."""
    status = renderer_status(settings)
    if not status.available:
        raise RendererUnavailable(status.text)
    chromium = find_chromium(settings.briefing.chromium)
    folder = Path(tempfile.mkdtemp(prefix="pheoc-briefing-"))
    try:
        try:
            (folder / "plotly.min.js").symlink_to(PLOTLY_JS)
        except OSError:  # a file system without symbolic links
            shutil.copyfile(PLOTLY_JS, folder / "plotly.min.js")
        document = folder / "briefing.html"
        document.write_text(briefing_html(b, briefing_figures(b, outlines, for_print=True), "plotly.min.js"),
                            encoding="utf-8")
        printed = print_to_pdf(chromium, document, timeout_s=settings.briefing.render_timeout_s)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if printed.blocked:
        # Nothing in the document asks for the network; a request means a figure or a name smuggled one in.
        raise RenderError(f"the briefing asked for {len(printed.blocked)} outside resources (refused): "
                          f"{', '.join(printed.blocked[:3])}")
    return printed


def make_briefing_pdf(store, settings: Settings, principal, day=None, now=None) -> tuple[Briefing, Printed]:
    """The briefing of ``day`` for ``principal`` and its PDF (the page's button, /briefing.pdf, the CLI, the outbox)."""
    from services.briefing import daily_briefing
    from services.mapdata import area_outlines
    b = daily_briefing(store, settings, principal, day, now)
    return b, render_briefing_pdf(b, area_outlines(store), settings)


__all__ = ["make_briefing_pdf", "RendererUnavailable", "RenderError", "RendererStatus", "renderer_status", "briefing_html",
           "render_briefing_pdf"]
