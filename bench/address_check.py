"""Benchmark the address check on the demo city: time per check, p50 and p95, against the naive way.

Run from the project root: ``python bench/address_check.py [--days N] [--checks N]``. Prints JSON lines.

The demo city (seed 7, 120 days by default: ~31,000 addresses, every case at one of them) is built
and ingested through the real file path in a temporary folder, the indicators job runs, and then:

(a) ``check``: ``services.address_check.check_address`` end to end, as GET /api/v1/address-check calls
    it: the address typed as an officer would (upper case, commas dropped), normalised and looked up
    in the gazetteer index, its precinct (STRtree), its zone tier, the counted cases within 5 m
    reported in the isolation period (DuckDB), and the audit record committed through the store's
    single writer before the answer returns. Half the addresses have an active case.
(b) ``search``: the matches offered as the officer types (``suggest_addresses``) for the first half
    of each address's text.

Baselines, in the same run, on the same queries, written the straightforward way: normalise every
address of the gazetteer for each query and compare (search: test every one for the prefix); locate
the precinct by testing each polygon in turn; read every counted case of the period and measure the
distance to each in Python; no audit write (so the baseline is favoured). Both answers are checked
to agree.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import shapely  # noqa: E402

from app import build_demo  # noqa: E402
from auth.principal import principal_for  # noqa: E402
from auth.ratelimit import RateLimiter  # noqa: E402
from geo.addresses import address_key  # noqa: E402
from jobs import indicators  # noqa: E402
from jobs.scheduler import today_in  # noqa: E402
from services.address_check import CASE_MATCH_M, check_address  # noqa: E402
from services.address_search import address_index, suggest_addresses  # noqa: E402
from services.precincts import precinct_index  # noqa: E402
from settings import load_settings  # noqa: E402
from store import Store  # noqa: E402
from store.definitions import as_of_day  # noqa: E402


def percentiles(times_s: list[float]) -> tuple[float, float]:
    ms = sorted(t * 1000 for t in times_s)
    return statistics.median(ms), ms[min(len(ms) - 1, math.ceil(0.95 * len(ms)) - 1)]


def naive_check(store, settings, typed: str, rows, shapes, today) -> tuple[str | None, bool]:
    """The same answer the slow way: every address normalised and compared, every polygon tested, every
    case of the period measured."""
    key = address_key(typed)
    match = next(r for r in rows if address_key(r[1]) == key)
    lat, lng = match[2], match[3]
    point = shapely.Point(lng, lat)
    precinct = next((p.area_id for p in shapes if p.geometry.contains(point)), None)
    as_of = as_of_day(store, today, settings.city.timezone)
    since = as_of - timedelta(days=settings.police.isolation_days - 1)
    cases = store.read_rows("SELECT lat, lng FROM counted_cases WHERE reported_date BETWEEN ? AND ? "
                            "AND lat IS NOT NULL", [since, as_of])
    scale = 111_320.0
    near = any(math.hypot((a - lat) * scale, (b - lng) * scale * math.cos(math.radians(lat))) <= CASE_MATCH_M
               for a, b in cases)
    return precinct, near


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--checks", type=int, default=400)
    ap.add_argument("--baseline-checks", type=int, default=40)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pheoc-bench-address-"))
    base = load_settings()
    settings = base.with_overrides(
        demo=base.demo.model_copy(update={"workdir": folder / "demo"}),
        store=base.store.model_copy(update={"path": folder / "unused.duckdb"}),
        ingest=base.ingest.model_copy(update={"inbox": folder / "inbox"}))
    started = time.perf_counter()
    with open("/dev/null", "w") as quiet:
        stderr, sys.stderr = sys.stderr, quiet  # the demo's progress lines: not this benchmark's output
        try:
            dsettings, _ = build_demo(settings, seed=7, days=args.days)
        finally:
            sys.stderr = stderr
    build_s = time.perf_counter() - started
    today = today_in(dsettings.city.timezone)
    rng = np.random.default_rng(12)
    with Store(dsettings.path(dsettings.store.path)) as store:
        indicators.run(store, dsettings, today)
        as_of = as_of_day(store, today, dsettings.city.timezone)
        since = as_of - timedelta(days=dsettings.police.isolation_days - 1)
        rows = store.read_rows("SELECT address_id, text, lat, lng FROM addresses ORDER BY address_id")
        active = [r for r in store.read_rows(
            """SELECT DISTINCT a.address_id, a.text, a.lat, a.lng FROM addresses a JOIN counted_cases c
               ON a.lat = c.lat AND a.lng = c.lng WHERE c.reported_date BETWEEN ? AND ? ORDER BY 1""", [since, as_of])]
        n = args.checks
        picks = [active[i] for i in rng.integers(0, len(active), n // 2)] + \
                [rows[i] for i in rng.integers(0, len(rows), n - n // 2)]
        typed = [r[1].upper().replace(",", "") for r in picks]
        principal = principal_for("bench-officer", "police")
        limiter = RateLimiter({"address_check": 10**9})
        address_index(store)  # built once per gazetteer version, as a serving app does on its first search
        shapes = list(precinct_index(store).precincts)
        check_address(store, dsettings, principal, limiter, purpose="warm-up", address=typed[0])
        times, answers = [], []
        for text in typed:
            t = time.perf_counter()
            answers.append(check_address(store, dsettings, principal, limiter, purpose="bench", address=text))
            times.append(time.perf_counter() - t)
        base_times = []
        for text, answer in zip(typed[: args.baseline_checks], answers):
            t = time.perf_counter()
            precinct, near = naive_check(store, dsettings, text, rows, shapes, today)
            base_times.append(time.perf_counter() - t)
            assert precinct == (answer["precinct"] or {}).get("id") and near == answer["active_case_at_address"], text
        p50, p95 = percentiles(times)
        b50, b95 = percentiles(base_times)
        common = {"bench": "address_check", "addresses": len(rows), "counted_cases": int(store.scalar(
            "SELECT count(*) FROM counted_cases")), "days": args.days}
        print(json.dumps({**common, "what": "check", "n": len(times), "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
                          "active_share": round(sum(a["active_case_at_address"] for a in answers) / len(answers), 2),
                          "baseline": "naive scan of every address, polygon and case; no audit write",
                          "baseline_n": len(base_times), "baseline_p50_ms": round(b50, 1),
                          "baseline_p95_ms": round(b95, 1), "speedup_p50": round(b50 / p50, 1)}))
        prefixes = [text[: max(4, len(text) // 2)] for text in typed]
        s_times = []
        for prefix in prefixes:
            t = time.perf_counter()
            suggest_addresses(store, prefix, 10)
            s_times.append(time.perf_counter() - t)
        sb_times = []
        for prefix in prefixes[: args.baseline_checks]:
            t = time.perf_counter()
            wanted = address_key(prefix)
            [a for a, _ in sorted(((a, k) for a, k in ((r[0], address_key(r[1])) for r in rows)
                                   if k.startswith(wanted)), key=lambda x: (len(x[1]), x[1]))][:10]
            sb_times.append(time.perf_counter() - t)
        s50, s95 = percentiles(s_times)
        sb50, sb95 = percentiles(sb_times)
        print(json.dumps({**common, "what": "search_as_you_type", "n": len(s_times), "p50_ms": round(s50, 3),
                          "p95_ms": round(s95, 3), "baseline": "normalise and test every address per keystroke",
                          "baseline_n": len(sb_times), "baseline_p50_ms": round(sb50, 1),
                          "baseline_p95_ms": round(sb95, 1), "speedup_p50": round(sb50 / s50, 1)}))
        print(json.dumps({**common, "what": "demo_build", "seconds": round(build_s, 1)}))
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
