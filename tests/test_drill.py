"""Drill mode: a drill database cannot emit an Actual warning (enforced where CAP is built, whatever the
API, the page or a rule asked for), its CAP documents validate with status Exercise, every page shows
the EXERCISE banner and every API answer says so; `app.py drill` builds its own database file."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.app_helpers import app_on_copy, close_app
from tests.auth_helpers import sign_in_client
from tests.test_cap import NS, check_document, declare_zone, xsd  # noqa: F401  (xsd: a fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def drill_app(demo_city, tmp_path_factory):
    from store.queries_warnings import mark_exercise_in

    settings, _ = demo_city
    app, store, settings = app_on_copy(settings, tmp_path_factory.mktemp("drill"), (("drill-op", "operator"),))
    store.submit(lambda con: mark_exercise_in(con, "test scenario", datetime.now(timezone.utc))).result()
    yield app, store, settings
    close_app(app, store)


def test_the_builder_refuses_anything_but_exercise_in_a_drill(xsd):  # noqa: F811
    import xml.etree.ElementTree as ET

    from cap.message import CapInfo, CapMessage, ExerciseOnly, to_xml

    info = CapInfo("Drill", "Expected", "Minor", "Likely", "pheoc", "headline", "description")
    for status in ("Actual", "Test", "System", "Draft"):
        with pytest.raises(ExerciseOnly):
            to_xml(CapMessage("d-1", "a@b", datetime.now(timezone.utc), status, "Alert", "Public", (info,)),
                   exercise=True)
    xml = to_xml(CapMessage("d-1", "a@b", datetime.now(timezone.utc), "Exercise", "Alert", "Public", (info,)),
                 exercise=True)
    xsd.validate(xml)
    assert ET.fromstring(xml).find("cap:status", NS).text == "Exercise"


def test_a_drill_cannot_emit_an_actual_warning(drill_app, xsd):  # noqa: F811
    from jobs import warnings as warning_job

    app, store, settings = drill_app
    client = app.server.test_client()
    assert sign_in_client(client, "drill-op").status_code == 303
    areas = [a["id"] for a in client.get("/api/v1/areas").get_json()["areas"] if a["kind"] == "community"][:1]
    refused = client.post("/api/v1/warnings", json={"headline": "h", "description": "d", "areas": areas,
                                                    "status": "Actual"})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "exercise_only"
    # A proposal stored as Actual anyway (a rule's bug, a hand-edited row): approving it builds nothing.
    store.write("""INSERT INTO warnings (identifier, series_id, msg_type, status, approval, rule, proposed_at,
                   proposed_by, event, urgency, severity, certainty, headline, description, areas)
                   VALUES ('smuggled-1', 'smuggled-1', 'Alert', 'Actual', 'proposed', 'manual', now(), 'x', 'e',
                   'Expected', 'Minor', 'Likely', 'Actual in a drill', 'd', '[]')""")
    smuggled = int(store.scalar("SELECT warning_id FROM warnings WHERE identifier = 'smuggled-1'"))
    response = client.post(f"/api/v1/warnings/{smuggled}/approve", json={})
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "exercise_only"
    assert store.scalar("SELECT approval FROM warnings WHERE warning_id = ?", [smuggled]) == "proposed"
    assert store.scalar("SELECT count(*) FROM delivery_outbox WHERE ref = ?", [str(smuggled)]) == 0
    # What the rules and the page propose in a drill has status Exercise, and is sent so.
    declare_zone(store, "D-1")
    assert warning_job.run(store, settings, datetime.now(timezone.utc).date())["proposed"] == 1
    made = client.post("/api/v1/warnings", json={"headline": "Drill: stay home", "description": "d", "areas": areas})
    for warning_id in (int(store.scalar("SELECT max(warning_id) FROM warnings WHERE rule = 'zone_declared'")),
                       made.get_json()["warning"]["id"]):
        assert client.post(f"/api/v1/warnings/{warning_id}/approve", json={}).status_code == 200
        root = check_document(xsd, client.get(f"/api/v1/warnings/{warning_id}/cap.xml").get_data(as_text=True))
        assert root.find("cap:status", NS).text == "Exercise" and "EXERCISE" in root.find("cap:note", NS).text
    assert store.scalar("""SELECT count(*) FROM warnings WHERE approval = 'approved' AND status <> 'Exercise'
                           AND decided_at > (SELECT set_at FROM store_mode)""") == 0


def test_every_page_and_api_answer_of_a_drill_says_exercise(drill_app, computed_city, tmp_path):
    app, store, _ = drill_app
    client = app.server.test_client()
    assert sign_in_client(client, "drill-op").status_code == 303
    layout = client.get("/_dash-layout").get_data(as_text=True)
    assert "exercise-banner" in layout and "EXERCISE" in layout
    for path in ("/api/v1/areas", "/api/v1/alerts", "/api/v1/warnings"):
        response = client.get(path)
        assert response.headers["X-Pheoc-Exercise"] == "EXERCISE" and response.get_json()["exercise"], path
    assert client.get("/alerts").headers["X-Pheoc-Exercise"] == "EXERCISE"
    real_settings, _, _ = computed_city
    real, real_store, _ = app_on_copy(real_settings, tmp_path)
    try:
        response = real.server.test_client().get("/api/v1/areas")
        assert "X-Pheoc-Exercise" not in response.headers and "exercise" not in response.get_json()
        assert "exercise-banner" not in real.server.test_client().get("/_dash-layout").get_data(as_text=True)
    finally:
        close_app(real, real_store)


def test_the_drill_command_builds_its_own_marked_database(tmp_path, xsd):  # noqa: F811
    from app import build_demo
    from settings import load_settings
    from store import Store
    from tests.conftest import write_config

    settings = load_settings(write_config(tmp_path))
    drill = settings.with_overrides(demo=settings.demo.model_copy(update={"workdir": tmp_path / "drill"}))
    dsettings, _ = build_demo(drill, seed=5, days=14, exercise="test outbreak")
    db = dsettings.path(dsettings.store.path)
    assert db.name == "pheoc-drill.duckdb" and db.parent == tmp_path / "drill" and db != settings.store.path
    with Store(db) as store:
        assert store.scalar("SELECT scenario FROM store_mode WHERE mode = 'exercise'") == "test outbreak"
        assert store.scalar("SELECT count(*) FROM warnings WHERE status <> 'Exercise'") == 0
    inbound = list((tmp_path / "drill" / "cap-inbox").glob("*.xml"))  # the neighbour's alert the demo writes
    assert inbound and "<status>Exercise</status>" in inbound[0].read_text()
    xsd.validate(inbound[0].read_text())
