"""pheoc: command-centre dashboard for public-health emergencies. The one place that wires things together.

    python app.py serve  [--config PATH]            serve the dashboard with the configured ingestors
    python app.py demo   [--seed N] [--days N]      build the demo city, ingest it, serve with a live simulator
    python app.py ingest PATH [PATH ...]            one-shot ingest of files or folders
    python app.py drill  [--no-serve]               a drill: scripted outbreak in its own database, EXERCISE only

One process owns the DuckDB file: the web server and the ingestors run here as threads.
"""
from __future__ import annotations

import argparse
import functools
import logging
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dash
from flask import jsonify, request

from settings import PROJECT_ROOT, ConfigError, Settings, load_settings
from store import Store
from store import queries as q

log = logging.getLogger("pheoc")
# HSTS for one year (the OWASP HTTP Headers Cheat Sheet's value). Without includeSubDomains: pheoc
# cannot know what else the command centre serves under its domain over plain HTTP.
HSTS = "max-age=31536000"
MAX_REQUEST_BYTES = 1_048_576


# ---- the Dash app ------------------------------------------------------------------------------
def _security_headers(app: dash.Dash, settings: Settings):
    """Only this origin may serve scripts, styles, images and data; nobody may frame the app."""
    img_src = "'self' data: blob:"
    connect_src = "'self'"
    if settings.map.basemap == "tiles" and settings.map.tile_url:
        from urllib.parse import urlsplit
        parts = urlsplit(settings.map.tile_url)
        # The configured tile server is the one outside origin allowed: images, and MapLibre's fetch().
        img_src += f" {parts.scheme}://{parts.netloc}"
        connect_src += f" {parts.scheme}://{parts.netloc}"
    csp_rest = (
           # Dash and Plotly set inline styles on elements; style attributes are not script.
           "style-src 'self' 'unsafe-inline'; "
           f"img-src {img_src}; font-src 'self' data:; connect-src {connect_src}; worker-src 'self' blob:; "
           "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")

    from auth.caching import cache_control

    def add_headers(response):
        # Dash's few inline scripts are allowed by their hashes; they are known only once Dash has set
        # up its routes (first request), so they are read here rather than at start-up.
        hashes = " ".join(app.csp_hashes())
        response.headers["Content-Security-Policy"] = f"default-src 'self'; script-src 'self' {hashes}; {csp_rest}"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        # Pages and data never stored; static code by its versioned URL (auth/caching.py).
        response.headers["Cache-Control"] = cache_control(request.path, request.args, response.status_code,
                                                          response.headers.get("Cache-Control"))
        if request.is_secure:
            # Over TLS only: browsers ignore HSTS on plain HTTP (RFC 6797 §8.1). is_secure honours
            # X-Forwarded-Proto when auth.trusted_proxies says a TLS proxy is in front.
            response.headers["Strict-Transport-Security"] = HSTS
        return response
    return add_headers


def create_app(settings: Settings, store: Store, components: dict[str, Any] | None = None) -> dash.Dash:
    """Build the Dash app around an open store. ``components`` (ingestors, broker) are shown in /healthz."""
    from auth.runtime import Runtime

    app = dash.Dash(
        __name__, use_pages=True, pages_folder=str(PROJECT_ROOT / "pages"),
        assets_folder=str(PROJECT_ROOT / "assets"), title=f"pheoc · {settings.city.name}",
        suppress_callback_exceptions=True, serve_locally=True, update_title=None,
    )
    # Screen readers pick their voice by the page's language (WCAG 3.1.1); Dash's page template names none.
    app.index_string = app.index_string.replace("<html>", '<html lang="en">', 1)
    runtime = Runtime(settings=settings, store=store, started_at=datetime.now(timezone.utc),
                      components=components or {})
    app.server.extensions["pheoc"] = runtime
    # A callback's request is a few kilobytes and the login form less; anything far larger is refused
    # (HTTP 413) before it is read, instead of waitress's 1 GiB default reaching the app.
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    from pages._shell import shell_layout
    app.layout = functools.partial(shell_layout, settings)  # per request: the top bar shows who is signed in
    from auth.web import install_auth  # sessions, per-callback authorisation, /login (auth/, docs/security.md)
    install_auth(app, runtime)
    from auth.audit_buffer import AuditBuffer
    from auth.policy import AUDIT_BUFFER_KEY
    # Read access and API token use are audited per response, committed together every few seconds.
    app.server.extensions[AUDIT_BUFFER_KEY] = AuditBuffer(store)
    from auth.read_audit import install_read_audit
    install_read_audit(app.server)
    from api import install_api  # the JSON API under /api/v1 over the same read models as the pages
    install_api(app.server, store)

    @app.server.get("/healthz")
    def healthz():
        """For monitoring: counts and times only, nothing personal; reachable without a login."""
        fresh = q.ingest_freshness(store)
        sources = [{"channel": r.channel, "kind": r.kind,
                    "last_record_at": None if r.last_record_at is None else str(r.last_record_at),
                    "last_commit_at": None if r.last_commit_at is None else str(r.last_commit_at),
                    "accepted": int(r.accepted), "rejected": int(r.rejected), "duplicate": int(r.duplicate),
                    "conflicting": int(r.conflicting)} for r in fresh.itertuples(index=False)]
        status = {name: c.health() if hasattr(c, "health") else asdict(c.stats())
                  for name, c in runtime.components.items() if hasattr(c, "health") or hasattr(c, "stats")}
        return jsonify({
            "status": "ok" if all(s.get("ok", True) for s in status.values()) else "degraded",
            "time": datetime.now(timezone.utc).isoformat(),
            "uptime_s": round((datetime.now(timezone.utc) - runtime.started_at).total_seconds(), 1),
            "tables": store.table_counts(),
            "sources": sources,
            "components": status,
        })

    _install_basemap(app, settings)
    app.server.after_request(_security_headers(app, settings))
    return app


def _install_basemap(app: dash.Dash, settings: Settings) -> None:
    """Check the offline basemap's files at start (a bad one stops it, naming its key); with map.basemap
    "mbtiles", serve that file's tiles from this origin (base-map tiles are not personal: no login needed)."""
    from services.basemap import MBTILES_ROUTE, check_context_layers

    check_context_layers(settings)
    if settings.map.basemap != "mbtiles":
        return
    from flask import Response

    from geo.mbtiles import MEDIA_TYPES, MbtilesError, read_tile, tile_format

    path = settings.path(settings.map.tile_file)
    try:
        media_type = MEDIA_TYPES[tile_format(path)]
    except MbtilesError as exc:
        raise ConfigError(f"config 'map.tile_file': {exc}") from None

    @app.server.get(MBTILES_ROUTE)
    def basemap_tile(z: int, x: int, y: int):
        data = read_tile(path, z, x, y)
        if data is None:
            return Response(status=204)  # no tile here: MapLibre draws nothing, without an error
        # Tiles do not change while serving: the browser may keep them for an hour.
        return Response(data, mimetype=media_type, headers={"Cache-Control": "private, max-age=3600"})


# ---- running -----------------------------------------------------------------------------------
@dataclass
class Services:
    """Everything started for `serve`/`demo`, stopped in reverse order."""
    store: Store
    started: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for part in reversed(self.started):
            try:
                part.stop()
            except Exception:  # stopping must go on for the rest
                log.exception("stopping %s failed", part)
        self.store.close()


def _progress(prefix: str):
    last = {"t": 0.0}

    def report(step: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last["t"] > 0.5:
            last["t"] = now
            pct = f"{done / total:4.0%}" if total else ""
            print(f"[{prefix}] {step}: {done:,}/{total:,} {pct}", file=sys.stderr, flush=True)
    return report


def ingest_city_layers(settings: Settings, ingestor) -> None:
    """Load the configured boundary and area layers through the file ingest path (idempotent)."""
    layers = []
    if settings.city.boundary_file:
        layers.append((settings.path(settings.city.boundary_file), "boundary", None, "city.boundary_file"))
    for i, layer in enumerate(settings.city.area_layers):
        if layer.file:
            layers.append((settings.path(layer.file), layer.kind, layer, f"city.area_layers[{i}].file"))
    for path, kind, layer, key in layers:
        if not path.exists():
            raise ConfigError(f"config '{key}': file {path} does not exist "
                              "(run `python app.py demo` for the demo city, or point it at your GeoJSON)")
        result = ingestor.ingest_file(path, area_kind=kind, layer=layer)
        if result.error:
            raise ConfigError(f"config '{key}': {path} was rejected: {result.error}")
        if layer is not None and result.result.rejected:
            log.warning("config '%s': %d features of %s were quarantined (see /rejected); check the layer's "
                        "id_property/name_property", key, result.result.rejected, path.name)


def _start_jobs(settings: Settings, store: Store, run_now: bool):
    """Periodic analytics (cluster scan, zones, early warning) on one thread in this process."""
    from jobs.scheduler import JobScheduler, registered_jobs, today_in

    scheduler = JobScheduler()
    for name, run, section in registered_jobs():
        every = getattr(settings, section).run_every_s
        scheduler.add(name, lambda run=run: run(store, settings, today_in(settings.city.timezone)), every)
    from operator import attrgetter

    from jobs.scheduler import registered_sensor_jobs
    from jobs.sensor_alerts import check_config
    check_config(settings)  # a missing or malformed sensors thresholds file stops the start, naming its key
    for name, run, interval_key, lane in registered_sensor_jobs():
        scheduler.add(name, lambda run=run: run(store, settings, today_in(settings.city.timezone)),
                      attrgetter(interval_key)(settings), lane=lane)
    if run_now:
        scheduler.run_all_now()
    return scheduler.start()


def start_services(settings: Settings, *, simulator_manifest=None, run_jobs_now: bool = False) -> Services:
    from ingest.context import ContextProvider
    from ingest.files import FileIngestor, InboxWatcher

    store = Store(settings.path(settings.store.path), queue_size=settings.store.queue_size)
    services = Services(store)
    try:
        contexts = ContextProvider(store, settings)
        files = FileIngestor(store, contexts, batch_rows=settings.ingest.batch_max_rows)
        ingest_city_layers(settings, files)
        services.started.append(InboxWatcher(files, settings.path(settings.ingest.inbox),
                                             settings.ingest.watch_interval_s).start())
        mqtt_broker = None
        if settings.mqtt.mode != "off":
            mqtt_broker = _start_mqtt(settings, store, contexts, services, simulator_manifest)
        from delivery.worker import start_delivery  # sends the outbox: CAP warnings, briefings (delivery/)
        services.started.append(start_delivery(store, settings, mqtt_broker))
        services.started.append(_start_jobs(settings, store, run_now=run_jobs_now))
        if settings.briefing.scheduled:
            from reports.outbox import BriefingOutbox  # the day's briefing, PDF + JSON, to briefing.outbox
            services.started.append(BriefingOutbox(store, settings).start())
    except BaseException:
        services.stop()
        raise
    return services


def _start_mqtt(settings: Settings, store: Store, contexts, services: Services, simulator_manifest) -> dict | None:
    """The MQTT ingestor; in embedded mode also the broker, whose logins the clients are given. Returns
    the embedded broker's address and publisher login for warning delivery (None: external broker)."""
    from ingest.broker import EmbeddedBroker
    from ingest.mqtt import MqttIngestor, MqttPublisher, installation_client_id

    db = settings.path(settings.store.path)
    mqtt = settings.mqtt.with_paths_under(settings.base_dir)
    # Kept beside the database: the broker's persistent session for this store is found by this id.
    client_id = installation_client_id(mqtt.client_id, db.with_name(db.name + ".mqtt-client-id"))
    mqtt = mqtt.model_copy(update={"client_id": client_id})
    ingest_login = publisher_login = None  # external mode: the credentials named by mqtt.*_env
    protocol_v5 = True
    if mqtt.mode == "embedded":
        broker = EmbeddedBroker(db.parent / "broker", topic_prefix=mqtt.topic_prefix, host="127.0.0.1",
                                port=mqtt.port, warnings_topic=settings.warnings.mqtt_topic)
        broker.start()
        services.started.append(broker)
        mqtt = mqtt.model_copy(update={"host": broker.host, "port": broker.port})
        ingest_login, publisher_login = broker.ingest_login, broker.publisher_login
        protocol_v5 = broker.mqtt_v5  # amqtt (the fallback when Mosquitto is not installed) speaks 3.1.1 only
    ingestor = MqttIngestor(store, contexts, mqtt, settings.ingest, protocol_v5=protocol_v5, login=ingest_login)
    ingestor.start()
    services.started.append(ingestor)
    if simulator_manifest is not None:
        from demo.simulator import LiveSimulator
        publisher = MqttPublisher(mqtt.host, mqtt.port, mqtt=mqtt, login=publisher_login,
                                  client_id=f"{client_id}-simulator", protocol_v5=protocol_v5).connect()
        services.started.append(_Stopper(publisher.close))
        simulator = LiveSimulator(simulator_manifest, publisher.publish, mqtt.topic_prefix, seed=settings.demo.seed,
                                  case_rate_multiplier=settings.demo.live_case_speedup)
        services.started.append(_Loop(simulator, settings.demo.simulator_interval_s))
    if mqtt.mode != "embedded":
        return None
    return {"host": mqtt.host, "port": mqtt.port, "login": publisher_login, "protocol_v5": protocol_v5}


class _Stopper:
    """Gives a part whose shutdown method is not called stop() the interface Services expects."""

    def __init__(self, stop):
        self.stop = stop


class _Loop:
    """Runs a simulator's run(stop_event, interval) in a thread, with a stop() like the other parts."""

    def __init__(self, simulator, interval_s: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=simulator.run, args=(self._stop, interval_s),
                                        name="simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def wsgi_server(settings: Settings, wsgi_app):
    """A waitress server bound to server.host:server.port: one process, server.threads threads.

    One process, several threads: DuckDB allows one read-write process (see ARCHITECTURE.md), so
    the server never forks workers. ``ident=""`` sends no Server header (waitress would name itself),
    and the error pages waitress writes itself say "generated by server".
    """
    from waitress import create_server

    # X-Forwarded-* are believed by auth.web's ProxyFix when auth.trusted_proxies says a proxy is in
    # front; waitress must pass them on then (by default it drops them), and may drop them otherwise.
    return create_server(wsgi_app, host=settings.server.host, port=settings.server.port,
                         threads=settings.server.threads, ident="",
                         clear_untrusted_proxy_headers=settings.auth.trusted_proxies == 0)


def _stop_on_signals() -> None:
    """SIGTERM (service managers, `docker stop`) ends the server as Ctrl-C does, so the store closes cleanly."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; callers elsewhere stop it themselves

    def stop(signum, _frame):
        # A second signal must not cut the shutdown short (the store is being closed).
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        log.info("signal %s: stopping", signal.Signals(signum).name)
        raise SystemExit(0)  # waitress's run() catches it and stops its threads
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)


def serve(settings: Settings, services: Services) -> None:
    _stop_on_signals()
    app = None
    try:
        app = create_app(settings, services.store, {type(p).__name__: p for p in services.started})
        server = wsgi_server(settings, app.server)
        print(f"pheoc serving {settings.city.name} at http://{settings.server.host}:{settings.server.port} "
              f"(waitress, {settings.server.threads} threads)", file=sys.stderr, flush=True)
        try:
            server.run()  # returns after SIGTERM/SIGINT, in-flight requests given up to 5 s
        finally:
            server.close()
    finally:
        if app is not None:
            from auth.web import stop_auth  # buffered audit records reach the store before it closes
            stop_auth(app)
        services.stop()
        print("pheoc stopped", file=sys.stderr, flush=True)


# ---- commands ----------------------------------------------------------------------------------
def cmd_serve(args) -> int:
    settings = _load(args)
    serve(settings, start_services(settings))
    return 0


def demo_settings(settings: Settings, workdir: Path, database: str = "pheoc-demo.duckdb") -> Settings:
    """The demo keeps its own database and inbox under demo.workdir, so it never touches real data."""
    city = settings.city.model_dump()
    city["boundary_file"] = workdir / "city" / "boundary.geojson"
    city["area_layers"] = [
        {"kind": "community", "label": "Community area", "file": workdir / "city" / "communities.geojson"},
        {"kind": "precinct", "label": "Police precinct", "file": workdir / "city" / "precincts.geojson"}]
    store = settings.store.model_copy(update={"path": workdir / database})
    ingest = settings.ingest.model_copy(update={"inbox": workdir / "inbox"})
    warnings = settings.warnings.model_copy(update={"inbound_dir": workdir / "cap-inbox"})
    # The demo city's own basemap layers and footfall capacities (demo/context.py, demo/sensors.py).
    from demo.context import CONTEXT_FILES
    from demo.sensors import CAPACITY_FILE
    labels = {"water": "Water", "roads": "Main roads", "landmarks": "Landmarks"}
    from settings import ContextLayer
    map_ = settings.map.model_copy(update={"context_layers": tuple(
        ContextLayer(id=k, label=labels[k], file=workdir / f) for k, f in CONTEXT_FILES.items())})
    kinds = dict(settings.sensors.kinds)
    if "footfall" in kinds:
        kinds["footfall"] = kinds["footfall"].model_copy(update={"thresholds_file": workdir / CAPACITY_FILE})
    sensors = settings.sensors.model_copy(update={"kinds": kinds})
    return settings.with_overrides(city=city, store=store, ingest=ingest, warnings=warnings, map=map_,
                                   sensors=sensors)


def build_demo(settings: Settings, seed: int, days: int, *, exercise: str | None = None) -> tuple[Settings, Any]:
    """Write the demo city as files, then load them through the real file ingest path. ``exercise`` names a
    drill scenario: the database is marked as a drill's before anything is proposed (services.drill)."""
    from demo.files import write_demo
    from ingest.context import ContextProvider
    from ingest.files import FileIngestor

    workdir = settings.path(settings.demo.workdir)
    if workdir.exists():
        shutil.rmtree(workdir)  # the demo is rebuilt from its seed every time
    tz = ZoneInfo(settings.city.timezone)
    now = datetime.now(tz)
    manifest = write_demo(workdir, seed=seed, days=days, end_date=now.date(), now=now,
                          h3_resolution=settings.map.h3_resolution, progress=_progress("demo"))
    dsettings = demo_settings(settings, workdir, "pheoc-drill.duckdb" if exercise else "pheoc-demo.duckdb")
    with Store(dsettings.path(dsettings.store.path), queue_size=dsettings.store.queue_size) as store:
        if exercise:
            from store.queries_warnings import mark_exercise_in
            store.submit(lambda con: mark_exercise_in(con, exercise, datetime.now(timezone.utc))).result()
        contexts = ContextProvider(store, dsettings)
        files = FileIngestor(store, contexts, batch_rows=dsettings.ingest.batch_max_rows)
        ingest_city_layers(dsettings, files)
        results = files.ingest_paths([workdir / "inbox"], progress=_progress("ingest"))
        for r in results:
            print(f"[ingest] {r.path.name}: {r.result.accepted:,} stored, {r.result.rejected:,} rejected"
                  + (f" ({r.error})" if r.error else ""), file=sys.stderr)
        from auth.demo import create_demo_users  # one user per role, passwords printed
        create_demo_users(store, dsettings)
        from demo.warnings import issue_demo_warnings, write_neighbour_alert  # issued CAP warnings from the start
        issued = issue_demo_warnings(store, dsettings, now.date())
        write_neighbour_alert(dsettings.path(dsettings.warnings.inbound_dir), dsettings, exercise=bool(exercise))
        print(f"[demo] {issued} zone warning(s) proposed and approved by the demo operator", file=sys.stderr)
        counts = store.table_counts()
    print("[demo] rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v), file=sys.stderr)
    # Move the loaded files out of the inbox, as the watcher would have.
    processed = workdir / "inbox" / "processed"
    processed.mkdir(exist_ok=True)
    for f in (workdir / "inbox").iterdir():
        if f.is_file():
            shutil.move(str(f), processed / f.name)
    return dsettings, manifest


def cmd_demo(args) -> int:
    settings = _load(args)
    t0 = time.monotonic()
    dsettings, manifest = build_demo(settings, args.seed if args.seed is not None else settings.demo.seed,
                                     args.days if args.days is not None else settings.demo.days)
    print(f"[demo] built and ingested in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    if args.no_serve:
        return 0
    serve(dsettings, start_services(dsettings, simulator_manifest=manifest, run_jobs_now=True))
    return 0


def cmd_drill(args) -> int:
    """Drill mode: the scripted outbreak on synthetic data in its own database under drill.workdir, marked
    as an exercise (every page shows EXERCISE, every warning has status Exercise), served like the demo."""
    settings = _load(args)
    drill = settings.drill
    base = settings.with_overrides(demo=settings.demo.model_copy(update={"workdir": drill.workdir}))
    dsettings, manifest = build_demo(base, drill.seed, drill.days,
                                     exercise=f"synthetic outbreak (seed {drill.seed}, {drill.days} days)")
    print(f"[drill] exercise database {dsettings.path(dsettings.store.path)}", file=sys.stderr)
    if args.no_serve:
        return 0
    serve(dsettings, start_services(dsettings, simulator_manifest=manifest, run_jobs_now=True))
    return 0


def cmd_replay_moh(args) -> int:
    """Replay a Malaysian state's real 2020–2023 epidemic from the MoH open-data CSV files."""
    from auth.demo import create_demo_users
    from ingest.moh_malaysia import MohDataError, replay_moh

    settings = _load(args)
    try:
        summary = replay_moh(settings, args.data, args.state, _progress("replay"), boundary_file=args.boundary)
    except MohDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in summary.lines():
        print(line)
    if args.no_serve:
        return 0
    rsettings = summary.settings
    with Store(rsettings.path(rsettings.store.path)) as store:
        create_demo_users(store, rsettings)
    serve(rsettings, start_services(rsettings, run_jobs_now=True))
    return 0


def cmd_ingest(args) -> int:
    from ingest.context import ContextProvider
    from ingest.files import FileIngestor

    settings = _load(args)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    with Store(settings.path(settings.store.path), queue_size=settings.store.queue_size) as store:
        contexts = ContextProvider(store, settings)
        files = FileIngestor(store, contexts, batch_rows=settings.ingest.batch_max_rows)
        results = files.ingest_paths([Path(p) for p in args.paths], progress=_progress("ingest"))
    failed = 0
    for r in results:
        res = r.result
        state = "already ingested" if res.skipped_file else (
            f"{res.accepted:,} stored, {res.duplicate:,} duplicate, {res.conflicting:,} conflicting, "
            f"{res.rejected:,} rejected")
        print(f"{r.path}: {r.error or state}")
        failed += bool(r.error)
    return 1 if failed else 0


def _load(args) -> Settings:
    try:
        return load_settings(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p):
        p.add_argument("--config", type=Path, default=None, help="config file (default: config.yaml)")
        return p

    p = with_config(sub.add_parser("serve", help="serve the dashboard with the configured ingestors",
                                   description="Serve the dashboard at server.host:server.port with the inbox "
                                   "watcher and the MQTT ingestor from the config."))
    p.set_defaults(func=cmd_serve)
    p = with_config(sub.add_parser("demo", help="build the demo city, ingest it and serve it with a live simulator",
                                   description="Generate a Putrajaya-like demo city deterministically from a seed, "
                                   "write it as ingest files, load them through the file ingest path into its own "
                                   "database under demo.workdir, then serve it with a live MQTT simulator."))
    p.add_argument("--seed", type=int, default=None, help="random seed (default: demo.seed)")
    p.add_argument("--days", type=int, default=None, help="days of epidemic history (default: demo.days)")
    p.add_argument("--no-serve", action="store_true", help="build and ingest only")
    p.set_defaults(func=cmd_demo)
    p = with_config(sub.add_parser("drill", help="run a drill: a scripted outbreak on synthetic data, EXERCISE only",
                                   description="Build the drill scenario (synthetic city and outbreak from "
                                   "drill.seed) into its own database under drill.workdir, marked as an exercise: "
                                   "every page shows EXERCISE and every CAP warning has status Exercise. Then serve it."))
    p.add_argument("--no-serve", action="store_true", help="build only")
    p.set_defaults(func=cmd_drill)
    p = with_config(sub.add_parser("ingest", help="one-shot ingest of files or folders",
                                   description="Validate and store CSV/JSON/NDJSON/GeoJSON files (see "
                                   "docs/ingest.md). Invalid records go to the quarantine table with a reason "
                                   "code. Exit code 1 if a whole file was rejected."))
    p.add_argument("paths", nargs="+", help="files or folders")
    p.set_defaults(func=cmd_ingest)
    p = with_config(sub.add_parser("replay-moh", help="replay a Malaysian state's real epidemic from MoH open data",
                                   description="Load cases_state, tests_state, hospital, icu and pkrc from a copy "
                                   "of the MoH-Malaysia covid19-public data for one state into a fresh database "
                                   "under var/replay/, then serve it."))
    p.add_argument("--data", type=Path, required=True, help="folder holding the MoH CSV files")
    p.add_argument("--state", default="W.P. Putrajaya", help="state name as in the files (default: W.P. Putrajaya)")
    p.add_argument("--boundary", type=Path, default=None, help="GeoJSON boundary of the state (optional)")
    p.add_argument("--no-serve", action="store_true", help="load only")
    p.set_defaults(func=cmd_replay_moh)
    from auth.cli import register_commands  # users add|disable|enable|reset-password|list, audit verify, erase case
    register_commands(sub, with_config, for_demo=lambda s: demo_settings(s, s.path(s.demo.workdir)))
    from reports.cli import register_commands as register_report_commands  # briefing, export-open-data
    register_report_commands(sub, with_config, for_demo=lambda s: demo_settings(s, s.path(s.demo.workdir)))
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
