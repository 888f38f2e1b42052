"""The daily briefing through the real app on the computed demo city: the headline is /api/v1/indicators'
figures, the PDF (real headless Chromium, read back with pdftotext/pdfimages) prints every headline
display with the map and the charts as images and makes no request off the machine, permissions hold
for the public and every role (API and callback), the CLI works on a stopped server's database, and the
outbox writes each day once."""
from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from tests.app_helpers import app_on_copy, close_app
from tests.auth_helpers import FAST_AUTH, sign_in_client
from tests.conftest import ROOT
from tests.test_callback_authz import _body, _components

pytestmark = pytest.mark.slow
BRIEFING_CALLBACK = "pages.briefing.refresh_briefing"


@pytest.fixture(scope="module")
def city(computed_city, tmp_path_factory):
    """The computed demo city with its cluster scan, served by a real app, with one user per role."""
    from auth.principal import SIGNED_IN_ROLES
    from jobs import clusters

    settings, _manifest, today = computed_city
    folder = tmp_path_factory.mktemp("briefing")
    app, store, settings = app_on_copy(settings, folder, [(f"b-{r.replace('_', '-')}", r) for r in SIGNED_IN_ROLES],
                                       clusters=settings.clusters.model_copy(update={"replications": 99}),
                                       briefing=settings.briefing.model_copy(update={"outbox": folder / "outbox"}))
    assert clusters.run(store, settings, today)["status"] in ("computed", "unchanged")
    yield app, store, settings, today, folder
    close_app(app, store)


def _client(app, role: str | None):
    client = app.server.test_client()
    if role:
        assert sign_in_client(client, f"b-{role.replace('_', '-')}").status_code == 303
    return client


def _pdf_text(pdf: bytes, folder: Path) -> tuple[str, str, int]:
    path = folder / "check.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    images = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True).stdout
    pages = next(int(line.split()[-1]) for line in subprocess.run(["pdfinfo", str(path)], capture_output=True,
                                                                   text=True, check=True).stdout.splitlines()
                 if line.startswith("Pages:"))
    return text, images, pages


def test_headline_is_the_indicators_api_and_the_default_is_the_latest_complete_day(city):
    from services.briefing import latest_complete_day

    app, store, settings, today, _ = city
    client = _client(app, "executive")
    body = client.get("/api/v1/briefing").get_json()
    assert body["date"] == latest_complete_day(store, settings).isoformat() == (today - timedelta(days=1)).isoformat()
    assert body["complete"] is True
    for day in (body["date"], today.isoformat()):
        briefing = client.get(f"/api/v1/briefing?date={day}").get_json()
        api = client.get(f"/api/v1/indicators?date={day}").get_json()["indicators"]
        assert [h["key"] for h in briefing["headline"]] == ["new_cases_24h", "new_cases_7d", "incidence_7d_per_100k",
                                                           "test_positivity_7d", "rt", "admissions_7d",
                                                           "bed_occupancy", "icu_occupancy"]
        for h in briefing["headline"]:
            assert (h["value"], h["display"]) == (api[h["key"]]["value"], api[h["key"]]["display"]), h["key"]
            assert set(h["change_day"]) == {"previous", "previous_display", "change", "text"}
        week_before = client.get(f"/api/v1/indicators?date={datetime.fromisoformat(day).date() - timedelta(days=7)}"
                                 ).get_json()["indicators"]
        cases = next(h for h in briefing["headline"] if h["key"] == "new_cases_7d")
        assert cases["change_week"]["previous_display"] == week_before["new_cases_7d"]["display"]
        assert briefing["narrative"] and all(isinstance(s, str) and s for s in briefing["narrative"])
        assert {"level", "capacity", "hot_spots", "clusters", "zones", "precinct_tiers", "alerts_24h",
                "forecast_caveats", "data"} <= set(briefing["sections"])
    assert client.get("/api/v1/briefing?date=2001-01-01").status_code == 404
    bad = client.get("/api/v1/briefing?day=2001-01-01")
    assert bad.status_code == 400 and bad.get_json()["error"]["parameter"] == "day"


def test_pdf_prints_every_headline_display_with_the_map_and_charts_as_images(city):
    from store import queries_access as qa

    app, store, settings, today, folder = city
    client = _client(app, "executive")
    day = today.isoformat()  # the as-of day: the capacity outlook and the scan are stored for it
    doc = client.get(f"/api/v1/briefing?date={day}").get_json()
    response = client.get(f"/briefing.pdf?date={day}&purpose=morning%20meeting")
    assert response.status_code == 200 and response.mimetype == "application/pdf", response.get_data(True)[:300]
    text, images, pages = _pdf_text(response.data, folder)
    assert 1 <= pages <= 2
    flat = " ".join(text.split())
    for h in doc["headline"]:
        assert h["display"] in flat, f"{h['key']} display {h['display']!r} not in the PDF"
        assert h["label"] in flat
    assert doc["narrative"][0].split(":")[0][:40] in flat
    rows = [line.split() for line in images.splitlines()[2:] if line.strip()]
    assert len(rows) >= 4, images  # the map and three charts
    assert all(r[2] == "image" and int(r[3]) >= 600 for r in rows)  # raster figures, not icons
    exports = [r for r in qa.audit_tail(store, 50, action="export") if r.target == "briefing_pdf"]
    assert exports and json.loads(exports[0].detail)["purpose"] == "morning meeting"


def test_rendering_never_lets_a_request_leave_the_machine(city, tmp_path):
    """A page that asks for outside resources (here: a loopback server standing in for the internet) gets
    nothing: the renderer refuses the requests before they are sent, and reports them."""
    from reports.chromium import find_chromium, print_to_pdf

    hits: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    page = tmp_path / "leaky.html"
    page.write_text(f"""<html><body><p>offline</p><img src="http://127.0.0.1:{port}/tile.png">
        <link rel="stylesheet" href="http://localhost:{port}/font.css">
        <script>fetch('http://127.0.0.1:{port}/beacon').catch(() => 0);</script></body></html>""")
    try:
        printed = print_to_pdf(find_chromium(), page, timeout_s=60)
    finally:
        server.shutdown()
    assert hits == []
    assert {u.split(str(port))[-1] for u in printed.blocked} == {"/tile.png", "/font.css", "/beacon"}
    assert printed.pdf.startswith(b"%PDF")


def test_without_chromium_the_pdf_says_what_is_missing(city):
    from pages.briefing import _pdf_button
    from services.briefing import daily_briefing
    from auth.principal import principal_for

    app, store, settings, today, _ = city
    missing = settings.briefing.model_copy(update={"chromium": Path("/nonexistent/chromium")})
    runtime = app.server.extensions["pheoc"]
    original = runtime.settings
    runtime.settings = original.with_overrides(briefing=missing)
    try:
        client = _client(app, "executive")
        response = client.get("/briefing.pdf")
        assert response.status_code == 503
        message = response.get_json()["error"]["message"]
        assert "chromium" in message.lower() and "make system-deps" in message
        with app.server.test_request_context("/"):
            button = _pdf_button(daily_briefing(store, runtime.settings, principal_for("x", "executive")))
        assert "PDF unavailable" in json.dumps(button.to_plotly_json(), default=str)
    finally:
        runtime.settings = original


def _allowed(role: str | None, permission: str) -> bool:
    from auth.principal import role_permissions
    return permission in role_permissions(role or "public")


def test_permissions_for_the_public_and_every_role(city):
    from auth.principal import SIGNED_IN_ROLES

    app, store, settings, today, _ = city
    day = (today - timedelta(days=1)).isoformat()
    endpoints = {f"/api/v1/briefing?date={day}": "view_briefing",
                 f"/api/v1/open-data/areas.csv?date={day}": "export_open_data",
                 f"/api/v1/open-data/cells.geojson?date={day}": "export_open_data"}
    components = _components(app)
    entry = next(e for k, e in app.callback_map.items() if "callback" in e and "briefing-kpis" in k)
    key = next(k for k, e in app.callback_map.items() if e is entry)
    for role in (None, *SIGNED_IN_ROLES):
        client = _client(app, role)
        for path, permission in endpoints.items():
            status = client.get(path).status_code
            expected = 200 if _allowed(role, permission) else (401 if role is None else 403)
            assert status == expected, (role, path, status)
        body = _body(key, entry, components)
        body["inputs"][0]["value"] = day
        status = client.post("/_dash-update-component", json=body).status_code
        assert status == (200 if _allowed(role, "view_briefing") else 403), (role, status)
    # The PDF costs a render: checked for the public and a role without the permission only.
    assert _client(app, None).get("/briefing.pdf").status_code == 401
    assert _client(app, "police").get("/briefing.pdf").status_code == 403


def test_the_public_briefing_leaves_out_cells_and_names_what_it_withheld(city):
    from auth.principal import Principal, PERMISSIONS
    from services.briefing import briefing_json, daily_briefing

    app, store, settings, today, _ = city
    # A principal at the public's detail level that may read briefings (no role has this today).
    public_level = Principal("viewer", "public", frozenset({"view_briefing", "view_overview"}), detail="aggregates")
    doc = briefing_json(daily_briefing(store, settings, public_level, today))
    assert "clusters" not in doc["sections"] and "zones" not in doc["sections"]
    assert any("clusters" in w for w in doc["withheld"]) and any("alerts" in w for w in doc["withheld"])
    assert set(PERMISSIONS) >= {"view_briefing", "export_open_data"}


def _cli_config(settings, folder: Path) -> Path:
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    db = folder / "cli.duckdb"
    shutil.copy(settings.path(settings.store.path), db)
    base["store"]["path"] = str(db)
    base["city"].update(boundary_file=None, area_layers=[])
    base["mqtt"]["mode"] = "off"
    base["clusters"]["zone_rulebook"] = str(ROOT / base["clusters"]["zone_rulebook"])
    base["clusters"]["scan_rulebook"] = str(ROOT / base["clusters"]["scan_rulebook"])
    base["early_warning"]["rulebooks"] = [str(ROOT / p) for p in base["early_warning"]["rulebooks"]]
    base["auth"].update(FAST_AUTH)
    path = folder / "cli.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_cli_briefing_and_open_data_on_a_stopped_servers_database(city, tmp_path, capsys):
    """The commands open the database file themselves (no server holds it): run through app.main as
    `python app.py ...` runs them, on a copy of the city's database."""
    from app import main
    from store import Store
    from store import queries_access as qa

    app, store, settings, today, _ = city
    config = _cli_config(settings, tmp_path)
    day = (today - timedelta(days=1)).isoformat()
    assert main(["briefing", "--config", str(config), "--date", day, "--out", str(tmp_path / "b.pdf"),
                 "--json", str(tmp_path / "b.json")]) == 0, capsys.readouterr().err[-2000:]
    assert (tmp_path / "b.pdf").read_bytes().startswith(b"%PDF")
    assert json.loads((tmp_path / "b.json").read_text())["date"] == day
    assert main(["export-open-data", "--config", str(config), "--out", str(tmp_path / "open"),
                 "--purpose", "city open-data portal"]) == 0
    assert sorted(p.name for p in (tmp_path / "open").iterdir()) == [
        "areas_daily_cases.csv", "areas_daily_cases.geojson", "cells_daily_cases.csv", "cells_daily_cases.geojson"]
    with pytest.raises(SystemExit) as bad:
        main(["briefing", "--config", str(config), "--date", "yesterday", "--out", str(tmp_path / "x.pdf")])
    assert bad.value.code == 2 and "YYYY-MM-DD" in capsys.readouterr().err
    assert main(["briefing", "--config", str(config), "--date", "2001-01-01", "--out", str(tmp_path / "x.pdf")]) == 2
    with Store(tmp_path / "cli.duckdb") as db:
        exports = {r.target: json.loads(r.detail) for r in qa.audit_tail(db, 20, action="export")}
    assert exports["open_data"]["purpose"] == "city open-data portal"
    assert exports["briefing_pdf"]["purpose"] == "daily briefing" and exports["briefing_pdf"]["date"] == day


def test_outbox_writes_each_day_once_at_the_configured_time(city):
    from reports.outbox import BriefingOutbox
    from services.briefing import latest_complete_day

    app, store, settings, today, folder = city
    outbox = BriefingOutbox(store, settings.with_overrides(
        briefing=settings.briefing.model_copy(update={"time": "07:00", "outbox": folder / "outbox-test"})))
    from zoneinfo import ZoneInfo
    tz = ZoneInfo(settings.city.timezone)
    early = datetime.combine(today, datetime.min.time(), tz).replace(hour=6, minute=59).astimezone(timezone.utc)
    assert outbox.run_once(early) is None and not outbox.folder.exists()  # before 07:00 local: nothing
    on_time = early + timedelta(minutes=1)
    written = outbox.run_once(on_time)
    day = latest_complete_day(store, settings, on_time)
    assert written == {"day": day.isoformat(), "files": [f"{day}.pdf", f"{day}.json"]}
    pdf, doc = outbox.paths(day)
    stamps = (pdf.stat().st_mtime_ns, doc.stat().st_mtime_ns)
    assert outbox.run_once(on_time + timedelta(minutes=5)) is None  # idempotent: the day is done
    assert BriefingOutbox(store, outbox._settings).run_once(on_time + timedelta(hours=3)) is None  # after a restart too
    assert (pdf.stat().st_mtime_ns, doc.stat().st_mtime_ns) == stamps
    assert json.loads(doc.read_text())["date"] == day.isoformat() and json.loads(doc.read_text())["pdf"] == pdf.name
    health = outbox.health()
    assert health["ok"] and health["last_day"] == day.isoformat() and health["pdf"].startswith("written")
    assert not list(outbox.folder.glob("*.part"))


def test_the_scheduled_briefing_is_sent_to_its_recipients_once(city, monkeypatch):
    """briefing.recipients get the day's PDF through the delivery outbox (here a signed webhook to a real
    local HTTP server); writing the day again queues nothing twice."""
    import hashlib
    import hmac

    from delivery.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER
    from delivery.worker import DeliveryWorker
    from reports.outbox import BriefingOutbox
    from store import queries_warnings as qw
    from tests.test_delivery import WEBHOOK_KEY, WEBHOOK_KEY_ENV, WebhookPeer, senders, wait_for

    app, store, settings, today, folder = city
    monkeypatch.setenv(WEBHOOK_KEY_ENV, WEBHOOK_KEY)
    peer = WebhookPeer()
    mayor = {"id": "mayors-office", "name": "Mayor's office", "agency": "emergency_management",
             "channel": "webhook", "url": peer.url, "secret_env": WEBHOOK_KEY_ENV, "acknowledges": False}
    warnings = settings.warnings.model_dump()
    warnings["recipients"] = [*warnings["recipients"], mayor]
    sending = settings.with_overrides(warnings=warnings, briefing={
        **settings.briefing.model_dump(), "time": "07:00", "outbox": folder / "outbox-sent",
        "recipients": ["mayors-office"]})
    # After the configured time of the fixture's day, whatever the clock says (before 07:00 local nothing is due).
    from zoneinfo import ZoneInfo
    on_time = datetime.combine(today, datetime.min.time(), ZoneInfo(settings.city.timezone)).replace(hour=7, minute=1)
    worker = DeliveryWorker(store, sending, senders(sending)).start()
    try:
        written = BriefingOutbox(store, sending).run_once(on_time.astimezone(timezone.utc))
        assert written is not None and "error" not in written, written
        wait_for(lambda: list(qw.deliveries(store, "briefing")["state"]) == ["delivered"],
                 message="the briefing's delivery")
        pdf = (folder / "outbox-sent" / f"{written['day']}.pdf").read_bytes()
        [request] = peer.requests
        assert request["body"] == pdf and request["headers"]["Content-Type"] == "application/pdf"
        signed = request["headers"][TIMESTAMP_HEADER].encode() + b"." + pdf
        assert hmac.compare_digest(request["headers"][SIGNATURE_HEADER],
                                   "sha256=" + hmac.new(WEBHOOK_KEY.encode(), signed, hashlib.sha256).hexdigest())
        (folder / "outbox-sent" / f"{written['day']}.json").unlink()  # the day is written again ...
        assert BriefingOutbox(store, sending).run_once(on_time.astimezone(timezone.utc)) is not None
        time.sleep(0.5)
        assert len(peer.requests) == 1  # ... and not sent again
    finally:
        worker.stop()
        peer.close()
