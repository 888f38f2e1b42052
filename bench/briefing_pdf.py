"""Benchmark the briefing's PDF: render time (p50 of 5) and size, against the page's JSON in the same run.

Run from the project root: ``python bench/briefing_pdf.py`` (``make bench-briefing``). Builds the demo city
(40 days, seed 11, as the tests do) in a temporary folder, runs the indicators, early-warning and cluster
jobs, then for the as-of day times, five times each:

* ``briefing_json``: the read model and its JSON (what GET /api/v1/briefing returns) — the baseline: the
  work every briefing does, whichever way it is delivered;
* ``briefing_pdf``: the same read model, the map and charts built, printed by headless Chromium
  (reports.briefing_pdf: start Chromium, plotly.js draws four PNGs, print to A4), as /briefing.pdf does.

Prints one JSON line per measurement and a summary line with the ratio pdf / json and the PDF's size and
pages. A render that asked for anything off the machine would fail (render_briefing_pdf refuses it).
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUNS = 5


def main() -> int:
    from app import build_demo
    from auth.principal import principal_for
    from jobs import clusters, early_warning, indicators
    from jobs.scheduler import today_in
    from reports.briefing_pdf import render_briefing_pdf, renderer_status
    from services.briefing import briefing_json, daily_briefing
    from services.mapdata import area_outlines
    from settings import load_settings
    from store import Store
    from tests.conftest import write_config

    folder = Path(tempfile.mkdtemp(prefix="pheoc-bench-briefing-"))
    try:
        settings = load_settings(write_config(folder))
        dsettings, _ = build_demo(settings, seed=11, days=40)
        dsettings = dsettings.with_overrides(clusters=dsettings.clusters.model_copy(update={"replications": 99}))
        status = renderer_status(dsettings)
        if not status.available:
            print(json.dumps({"bench": "briefing_pdf", "error": status.text}))
            return 1
        today = today_in(dsettings.city.timezone)
        mayor = principal_for("bench-mayor", "executive")
        with Store(dsettings.path(dsettings.store.path)) as store:
            indicators.run(store, dsettings, today)
            early_warning.run(store, dsettings, today)
            clusters.run(store, dsettings, today)
            outlines = area_outlines(store)

            def as_json() -> int:
                return len(json.dumps(briefing_json(daily_briefing(store, dsettings, mayor, today))))

            def as_pdf() -> bytes:
                return render_briefing_pdf(daily_briefing(store, dsettings, mayor, today), outlines, dsettings).pdf
            as_json(), as_pdf()  # warm: imports, caches of outlines and shapes
            timings: dict[str, list[float]] = {"briefing_json": [], "briefing_pdf": []}
            pdf = b""
            for _ in range(RUNS):
                for name, run in (("briefing_json", as_json), ("briefing_pdf", as_pdf)):
                    started = time.perf_counter()
                    out = run()
                    timings[name].append(time.perf_counter() - started)
                    if name == "briefing_pdf":
                        pdf = out
        p50 = {name: statistics.median(values) for name, values in timings.items()}
        for name, values in timings.items():
            print(json.dumps({"bench": name, "runs": RUNS, "p50_s": round(p50[name], 3),
                              "min_s": round(min(values), 3), "max_s": round(max(values), 3)}))
        path = folder / "briefing.pdf"
        path.write_bytes(pdf)
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True).stdout if shutil.which("pdfinfo") \
            else ""
        pages = next((int(line.split()[-1]) for line in info.splitlines() if line.startswith("Pages:")), None)
        print(json.dumps({"bench": "briefing_pdf_summary", "day": today.isoformat(), "pdf_p50_s": round(p50["briefing_pdf"], 3),
                          "json_p50_s": round(p50["briefing_json"], 3),
                          "pdf_vs_json": round(p50["briefing_pdf"] / p50["briefing_json"], 1),
                          "pdf_bytes": len(pdf), "pages": pages}))
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
