"""Page callback benchmark: every page's server callbacks replayed over HTTP against a served dataset.

The dataset (``--dataset demo``: the demo city built through the real file ingest, kept in
``var/bench/demo/``; ``--dataset scale``: the city ``bench/scale.py`` loaded, default the issue's
1M-person one) has its jobs run once (the stored results the pages read), and is served by
``python app.py serve`` in a subprocess, as in production (waitress). The bench signs in as an
operator over the real login form, then does what the browser does, over HTTP only: reads
``/_dash-dependencies`` and the shell's ``/_dash-layout``, asks Dash's router for each page's layout
(the pages are the shell's navigation links), and for every server callback whose inputs are all
on that page (the ones the browser fires when the page opens and on each refresh tick) builds the
request body the browser sends: input and state values from the layout, a refresh tick
(``n_intervals`` = 1) named as the changed input where the callback has one. Each body is posted
``--calls`` times; one JSON line per callback: page, callback (its outputs), p50_ms, p95_ms, bytes of
the response, dataset, and whether it is a refresh callback. That is the citywide view (``"view":
"citywide"``: every control as the page opens). Then the area view (``"view": "area"``): where a page
picks a place (the early-warning area, the alert inbox's area filter, a hospital, a cluster-map cell, a
precinct, a sensor), the first place the page itself offers (a dropdown's first option other than the
current one, or the first cell, precinct or sensor its map answered with) is put into that control and
every callback that reads the control is posted again. A last line gives the server's RSS.

The baseline in the same run is the target of issue 16 (p95 <= 150 ms per callback a refresh tick or a
place picked fires): each line says ``over_target``; beside it ``first_ms``, the first call of a body, before anything is cached
for it (what a refresh right after new data costs).

Run: ``python bench/pages.py [--dataset demo|scale] [--calls 40]``.
"""
from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH_DIR = ROOT / "var" / "bench"
TARGET_P95_MS = 150.0  # issue 16: every refresh callback
USER = "bench-operator"
ROUTER_OUTPUT = "_pages_content.children"
UPDATE = "/_dash-update-component"


# ---- the datasets --------------------------------------------------------------------------------------
def _run_jobs_once(settings, marker: Path) -> None:
    """Every scheduled job once, as `app.py demo` does before serving (pages read what jobs stored)."""
    if marker.exists():
        return
    from jobs.scheduler import JobScheduler, registered_jobs, registered_sensor_jobs, today_in
    from store import Store
    with Store(settings.path(settings.store.path)) as store:
        scheduler = JobScheduler()
        for name, run, _section in registered_jobs():
            scheduler.add(name, lambda run=run: run(store, settings, today_in(settings.city.timezone)), 3600)
        for name, run, _key, lane in registered_sensor_jobs():
            scheduler.add(name, lambda run=run: run(store, settings, today_in(settings.city.timezone)), 3600,
                          lane=lane)
        scheduler.run_all_now()
    marker.write_text("jobs run\n")


def demo_dataset():
    """(settings, database) of the demo city under var/bench/demo, built once."""
    from app import build_demo
    from settings import load_settings
    base = load_settings(ROOT / "config.yaml")
    base = base.with_overrides(demo=base.demo.model_copy(update={"workdir": BENCH_DIR / "demo"}))
    marker = BENCH_DIR / "demo-built"
    if not marker.exists():
        settings, _ = build_demo(base, base.demo.seed, base.demo.days)
        marker.write_text("built\n")
    else:
        from app import demo_settings
        settings = demo_settings(base, BENCH_DIR / "demo")
    _run_jobs_once(settings, BENCH_DIR / "demo" / "jobs-run")
    return settings


def scale_dataset(folder: Path):
    import importlib.util
    # bench/scale.py's own config for the load (loaded by path: bench/ is no package, and a "pages" on
    # sys.path before the app's would hide the app's pages package).
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "scale.py")
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    bench_settings = scale.bench_settings
    if not (folder / "result.json").exists():
        raise SystemExit(f"no finished scale load in {folder}: run bench/scale.py first")
    settings = bench_settings(folder)
    _run_jobs_once(settings, folder / "jobs-run")
    return settings


# ---- HTTP --------------------------------------------------------------------------------------------
class Client:
    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.cookie = ""

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        hdrs = {**({"Cookie": self.cookie} if self.cookie else {}), **(headers or {})}
        self.conn.request(method, path, body=body, headers=hdrs)
        r = self.conn.getresponse()
        return r.status, r.getheaders(), r.read()

    def post_json(self, path: str, payload: dict):
        return self.request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def sign_in(self, username: str, password: str) -> None:
        from tests.auth_helpers import csrf_from
        _, headers, body = self.request("GET", "/login")
        self.cookie = next(v for k, v in headers if k.lower() == "set-cookie").split(";")[0]
        form = urllib.parse.urlencode({"csrf": csrf_from(body.decode()), "username": username,
                                       "password": password, "next": "/"}).encode()
        status, headers, _ = self.request("POST", "/login", form,
                                          {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303, f"sign-in failed ({status})"
        self.cookie = "; ".join(v.split(";")[0] for k, v in headers
                                if k.lower() == "set-cookie" and v.startswith("pheoc_session="))


# ---- what the browser sends -------------------------------------------------------------------------
def components_of(tree) -> list[tuple]:
    """(id, props) of every component with an id in a layout as Dash serialises it."""
    found = []

    def walk(node):
        if isinstance(node, list):
            for n in node:
                walk(n)
        elif isinstance(node, dict) and "props" in node and "type" in node:
            props = node["props"]
            if props.get("id") is not None:
                found.append((props["id"], props))
            for value in props.values():
                walk(value)
    walk(tree)
    return found


def _id_key(cid) -> str:
    return json.dumps(cid, sort_keys=True, separators=(",", ":")) if isinstance(cid, dict) else cid


def _dependency(components, cid, prop: str, with_value: bool):
    """One dependency as the browser sends it: an item, or a list for an ALL pattern; None if absent."""
    def item(concrete, props):
        entry = {"id": concrete, "property": prop}
        if with_value:
            value = props.get(prop)
            entry["value"] = 0 if value is None and prop == "n_intervals" else value
        return entry
    if isinstance(cid, dict) and any(isinstance(v, list) for v in cid.values()):
        matches = [(i, p) for i, p in components if isinstance(i, dict) and set(i) == set(cid)
                   and all(isinstance(cid[k], list) or cid[k] == i[k] for k in cid)]
        if not matches:
            return None
        wildcard = next(v[0] for v in cid.values() if isinstance(v, list))
        items = [item(i, p) for i, p in matches]
        return items if wildcard in ("ALL", "ALLSMALLER") else items[0]
    props = next((p for i, p in components if i == cid), None)
    return None if props is None else item(cid, props)


def _parse_id(text: str):
    return json.loads(text) if text.startswith("{") else text


def _outputs(dep: dict) -> list[tuple]:
    out = dep["output"]
    parts = out[2:-2].split("...") if out.startswith("..") else [out]
    return [(_parse_id(p.rsplit(".", 1)[0]), p.rsplit(".", 1)[1]) for p in parts]


def body_for(dep: dict, components) -> dict | None:
    """The request the browser sends for ``dep`` on this page, or None if an input is not on it."""
    inputs = [_dependency(components, _parse_id(_id_key(d["id"])), d["property"], True) for d in dep["inputs"]]
    if any(i is None for i in inputs):
        return None
    outputs = [_dependency(components, i, p, False) for i, p in _outputs(dep)]
    if any(o is None for o in outputs):
        return None
    state = [_dependency(components, _parse_id(_id_key(d["id"])), d["property"], True) for d in dep["state"]]
    if any(s is None for s in state):
        return None
    changed = []
    for i in inputs:
        first = i[0] if isinstance(i, list) and i else i
        if isinstance(first, dict) and first.get("property") == "n_intervals":
            first["value"] = 1  # a refresh tick
            changed = [f"{_id_key(first['id'])}.n_intervals"]
            break
    return {"output": dep["output"], "outputs": outputs if dep["output"].startswith("..") else outputs[0],
            "inputs": inputs, "state": state, "changedPropIds": changed}


# The controls through which a page looks at one place, and how the first place it offers is found
# (the area view): a dropdown's options, or the customdata of the page's map as its refresh answered it.
PLACE_DROPDOWNS = ("ew-area", "alerts-area", "capacity-facility-select", "sensors-pick")
PLACE_STORES = {  # store id -> (the map whose answer names places, the store's value for one of them)
    "clusters-selected": ("clusters-map", lambda d: {"kind": "cell", "key": str(d[1])}
                          if isinstance(d, list) and len(d) >= 2 and d[0] == "cell" else None),
    "precincts-selected": ("precincts-map", lambda d: d if isinstance(d, str) and d else None),
    "sensors-selected": ("sensors-map", lambda d: {"sensor": d} if isinstance(d, str) and d else None),
}


def apply_response(components, raw: bytes) -> None:
    """Put what a callback answered into the page's components (options a refresh fills, a map's figure)."""
    try:
        response = json.loads(raw).get("response") or {}
    except (ValueError, AttributeError):
        return
    by_id = {_id_key(i): props for i, props in components}
    for cid, props in response.items():
        if cid in by_id and isinstance(props, dict):
            by_id[cid].update(props)


def _first_customdata(figure, pick):
    """The first of a figure's customdata entries that ``pick`` turns into a value, or None."""
    for trace in (figure or {}).get("data", []) if isinstance(figure, dict) else []:
        for d in trace.get("customdata") or [] if isinstance(trace.get("customdata"), list) else []:
            value = pick(d)
            if value is not None:
                return value
    return None


def area_overrides(components) -> dict[tuple[str, str], object]:
    """(id, property) -> value: the first place this page offers, in each control that picks one."""
    by_id = {_id_key(i): props for i, props in components}
    chosen = {}
    for cid in PLACE_DROPDOWNS:
        props = by_id.get(cid)
        if props is None:
            continue
        options = [o.get("value") if isinstance(o, dict) else o for o in props.get("options") or []]
        other = next((v for v in options if v not in (None, props.get("value"))), None)
        if other is not None:
            chosen[(cid, "value")] = other
    for cid, (map_id, pick) in PLACE_STORES.items():
        if cid in by_id and map_id in by_id:
            value = _first_customdata(by_id[map_id].get("figure"), pick)
            if value is not None:
                chosen[(cid, "data")] = value
    return chosen


def area_body(body: dict, chosen: dict) -> dict | None:
    """``body`` with the area view's places put in; None if the callback reads none of them."""
    body = json.loads(json.dumps(body))
    touched = []
    for entry in body["inputs"] + body["state"]:
        for e in entry if isinstance(entry, list) else [entry]:
            key = (_id_key(e["id"]), e["property"])
            if key in chosen:
                e["value"] = chosen[key]
                touched.append(f"{key[0]}.{key[1]}")
    if not touched:
        return None
    if not body["changedPropIds"]:  # no refresh tick: the place just picked is what fired it
        body["changedPropIds"] = touched[:1]
    return body


def page_paths(shell) -> list[str]:
    paths = []
    for props in _all_props(shell):  # the shell's navigation links
        href = props.get("href")
        if isinstance(href, str) and href.startswith("/") and not href.startswith(("/logout", "/api", "/login")):
            paths.append(href.split("?")[0])
    return list(dict.fromkeys(paths))


def _all_props(tree):
    if isinstance(tree, list):
        for n in tree:
            yield from _all_props(n)
    elif isinstance(tree, dict) and "props" in tree:
        yield tree["props"]
        for v in tree["props"].values():
            yield from _all_props(v)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


# Until every graph on the page holds a figure a callback gave it and no component is loading: polled on
# each animation frame, so the time is the browser's own (performance.now(), from navigation start).
DRAWN_JS = """
const done = arguments[arguments.length - 1];
const limit = performance.now() + 60000;
function drawn() {
  const graphs = [...document.querySelectorAll('.dash-graph')];
  if (!document.querySelector('#_pages_content') || !document.querySelector('#_pages_content').children.length) return false;
  if (document.querySelector('[data-dash-is-loading="true"]')) return false;
  return graphs.every(g => { const gd = g.querySelector('.js-plotly-plot');
                            return gd && gd.layout && Object.keys(gd.layout).length > 0; });
}
(function poll() {
  if (drawn()) return done({ms: performance.now(), graphs: document.querySelectorAll('.dash-graph').length});
  if (performance.now() > limit) return done({ms: null, graphs: -1});
  requestAnimationFrame(poll);
})();
"""
RENDER_TARGET_MS = 1000.0  # issue 16: a page's first full render, warm
RENDERS = 5  # warm renders per page (after one cold one), the median reported


def first_renders(url: str, paths: list[str], dataset: str) -> list[dict]:
    """Per page, the median over RENDERS warm loads of navigation start until every graph has drawn."""
    from tests.auth_helpers import TEST_PASSWORD, sign_in_browser
    from tests.browser import chromium_driver
    driver = chromium_driver()
    driver.set_script_timeout(90)
    lines = []
    try:
        sign_in_browser(driver, url, USER, TEST_PASSWORD)
        for path in paths:
            samples, graphs = [], 0
            for attempt in range(RENDERS + 1):  # the first load fills the browser's caches: not counted
                driver.get(url + path)
                found = driver.execute_async_script(DRAWN_JS)
                graphs = found["graphs"]
                if attempt and found["ms"] is not None:
                    samples.append(found["ms"])
            median = round(statistics.median(samples), 1) if samples else None
            lines.append({"bench": "pages", "page": path, "first_render_ms": median, "graphs": graphs,
                          "renders": len(samples), "dataset": dataset, "target_ms": RENDER_TARGET_MS,
                          "over_target": median is None or median > RENDER_TARGET_MS})
    finally:
        driver.quit()
    return lines


def replay(client, server, path: str, dep: dict, body: dict, view: str, args) -> bytes:
    """Post ``body`` ``args.calls`` times and print its line; the last answer back."""
    times, size, status, raw = [], 0, None, b""
    for _ in range(args.calls):
        t0 = time.perf_counter()
        status, _, raw = client.post_json(UPDATE, body)
        times.append((time.perf_counter() - t0) * 1000)
        size = len(raw)
    first_ms = times[0]  # nothing cached yet for this body: what a refresh after new data costs
    times.sort()
    if status >= 500:  # a server error is a finding, not a timing: show the server's account of it
        print(server.log_path.read_text()[-3000:], file=sys.stderr)
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    refresh = any(c.endswith(".n_intervals") for c in body["changedPropIds"])
    # A refresh tick, or a place picked (the area view): both are what a user waits for on screen.
    timed = bool(body["changedPropIds"])
    print(json.dumps({
        "bench": "pages", "page": path, "view": view, "callback": dep["output"], "refresh": refresh,
        "status": status, "p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
        "first_ms": round(first_ms, 1), "bytes": size, "calls": len(times), "dataset": args.dataset,
        "over_target": bool(timed and p95 > TARGET_P95_MS)}), flush=True)
    return raw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=("demo", "scale"), default="demo")
    ap.add_argument("--scale-dir", type=Path, default=BENCH_DIR / "scale-p1000000-d365-r10000000",
                    help="the bench/scale.py load to serve with --dataset scale")
    ap.add_argument("--calls", type=int, default=40, help="calls per callback (p50/p95 over these)")
    ap.add_argument("--pages", default="", help="only these pages (comma-separated paths)")
    ap.add_argument("--no-render", dest="render", action="store_false",
                    help="skip first_render_ms (headless Chromium)")
    args = ap.parse_args()
    settings = demo_dataset() if args.dataset == "demo" else scale_dataset(args.scale_dir)

    import tests.conftest  # noqa: F401  first: tests.auth_helpers and tests.browser import each other through it
    from tests.auth_helpers import TEST_PASSWORD
    from tests.browser import city_of, serve_database_copy
    folder = Path(tempfile.mkdtemp(prefix="pheoc-bench-pages-"))
    server = serve_database_copy(settings.path(settings.store.path), folder, city=city_of(settings),
                                 users=((USER, "operator"),), refresh_s=30)
    try:
        client = Client(server.url)
        client.sign_in(USER, TEST_PASSWORD)
        deps = json.loads(client.request("GET", "/_dash-dependencies")[2])
        shell = json.loads(client.request("GET", "/_dash-layout")[2])
        router = next(d for d in deps if ROUTER_OUTPUT in d["output"])
        server_deps = [d for d in deps if not d.get("clientside_function") and d is not router]
        for path in page_paths(shell):
            if args.pages and path not in args.pages.split(","):
                continue
            comps = components_of(shell)
            route = body_for(router, comps + [("_pages_location", {"pathname": path, "search": ""})])
            if route is None:
                continue
            for i in route["inputs"]:
                if i["property"] == "pathname":
                    i["value"] = path
            status, _, raw = client.post_json(UPDATE, route)
            if status != 200:
                print(json.dumps({"bench": "pages", "page": path, "error": f"router answered {status}"}), flush=True)
                continue
            layout = json.loads(raw)["response"]["_pages_content"]["children"]
            page_comps = components_of(layout)
            page_ids = {_id_key(i) for i, _ in page_comps}
            bodies = []
            for dep in server_deps:
                body = body_for(dep, comps + page_comps)
                if body is None or not any(_id_key(_parse_id(_id_key(d["id"]))) in page_ids for d in dep["inputs"]):
                    continue
                bodies.append((dep, body))
                raw = replay(client, server, path, dep, body, "citywide", args)
                apply_response(page_comps, raw)
            chosen = area_overrides(page_comps)
            for dep, body in bodies:
                placed = area_body(body, chosen)
                if placed is not None:
                    replay(client, server, path, dep, placed, "area", args)
        if args.render:
            for line in first_renders(server.url, [p for p in page_paths(shell)
                                                   if not args.pages or p in args.pages.split(",")], args.dataset):
                print(json.dumps(line), flush=True)
        print(json.dumps({"bench": "pages", "dataset": args.dataset, "rss_mb": _rss_mb(server.proc.pid)}), flush=True)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
