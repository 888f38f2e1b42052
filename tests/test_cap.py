"""CAP 1.2 warnings: every document pheoc produces validates against the OASIS XSD (../shared/data), with
"lat,lon" polygons, closed rings, offsets on every time and references on Update and Cancel; the
demo ships warnings its operator approved; GET /api/v1/warnings links each CAP document; the OASIS
example alerts are read as other agencies' alerts (and a CAP 1.1 feed or an entity bomb is not)."""
from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from tests.app_helpers import app_on_copy, close_app
from tests.auth_helpers import sign_in_client
from tests.conftest import shared_data

pytestmark = pytest.mark.slow
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
EXAMPLES = ("oasis_example1.xml", "oasis_example2.xml", "oasis_example3.xml", "oasis_example4.xml",
            "ibm_cap_amber_alert_example.xml")


@pytest.fixture(scope="module")
def xsd():
    import xmlschema
    return xmlschema.XMLSchema(str(shared_data("oasis-cap-1.2", "CAP-v1.2.xsd")))


def declare_zone(store, cluster_id: str = "T-1") -> None:
    """A red core zone and its orange ring declared the day after the demo's last zone decisions, on cells
    where the demo city's cases are (as the cluster job writes them; the scan itself is tested elsewhere)."""
    cells = [r[0] for r in store.read_rows(
        "SELECT h3_cell FROM cases WHERE h3_cell IS NOT NULL GROUP BY h3_cell ORDER BY count(*) DESC LIMIT 12")]
    day = (store.scalar("SELECT max(as_of) FROM cluster_runs") or datetime.now(timezone.utc).date()) + timedelta(days=1)
    now = datetime.now(timezone.utc)
    for role, tier, part in (("core", "red", cells[:5]), ("ring1", "orange", cells[5:])):
        zone_id = f"{cluster_id}:{role}"
        store.write("""INSERT INTO zone_events (as_of, kind, zone_id, cluster_id, role, tier, previous_tier, cells,
                       reason, rule_id, rule_version, run_id, recorded_at)
                       VALUES (?, 'entered', ?, ?, ?, ?, NULL, ?, ?, 'nys-cai-2020', '2020-10-21', 'test', ?)""",
                    [day, zone_id, cluster_id, role, tier, part, f"{tier} (test)", now])
        store.write("""INSERT INTO zones VALUES (?, ?, ?, ?, ?, ?, 'nys-cai-2020', '2020-10-21', ?, ?, NULL, NULL, ?)""",
                    [zone_id, cluster_id, role, tier, part, f"{tier} (test)", day, day, day])


@pytest.fixture(scope="module")
def cap_app(demo_city, tmp_path_factory):
    """The demo city with a zone declared, its warning proposed and approved as the demo build does it."""
    from demo.warnings import issue_demo_warnings

    settings, _ = demo_city
    app, store, settings = app_on_copy(settings, tmp_path_factory.mktemp("cap"),
                                       (("cap-op", "operator"), ("cap-cop", "police"), ("cap-admin", "admin")))
    declare_zone(store)
    issue_demo_warnings(store, settings, datetime.now(timezone.utc).date())
    yield app, store, settings
    close_app(app, store)


def check_document(xsd, xml: str, *, city_lat=(2.8, 3.05), city_lng=(101.55, 101.85)) -> ET.Element:
    """Valid against the XSD, and the rules the XSD leaves to prose (CAP-v1.2-os §3.3.1, §3.3.2)."""
    xsd.validate(xml)
    root = ET.fromstring(xml.encode())
    for tag in ("sent", "info/cap:expires", "info/cap:effective"):
        for element in root.findall(f"cap:{tag}", NS):
            assert CAP_TIME.match(element.text), element.text
    for polygon in root.findall(".//cap:polygon", NS):
        points = [tuple(float(v) for v in pair.split(",")) for pair in polygon.text.split()]
        assert len(points) >= 4 and points[0] == points[-1], "closed ring of four or more points"
        for lat, lng in points:  # "lat,lon": the city's latitude comes first, never GeoJSON's lng,lat
            assert city_lat[0] <= lat <= city_lat[1] and city_lng[0] <= lng <= city_lng[1], (lat, lng)
    return root


def _issued(store):
    return store.read("SELECT * FROM warnings WHERE approval = 'approved' ORDER BY warning_id")


def test_the_demo_ships_warnings_its_operator_approved_and_the_api_links_them(cap_app, xsd):
    app, store, _ = cap_app
    issued = _issued(store)
    assert len(issued) >= 1 and set(issued["decided_by"]) == {"demo-operator"}
    assert set(issued["rule"]) == {"zone_declared"} and set(issued["status"]) == {"Actual"}
    client = app.server.test_client()
    assert client.get("/api/v1/warnings").status_code == 401
    assert sign_in_client(client, "cap-cop").status_code == 303
    listed = client.get("/api/v1/warnings").get_json()["warnings"]
    first = next(w for w in listed if w["id"] == int(issued.iloc[0]["warning_id"]))
    assert first["status"] == "Actual" and first["msg_type"] == "Alert" and CAP_TIME.match(first["sent"])
    assert first["cap_url"] == f"/api/v1/warnings/{first['id']}/cap.xml"
    document = client.get(first["cap_url"])
    assert document.status_code == 200 and document.mimetype == "application/cap+xml"
    root = check_document(xsd, document.get_data(as_text=True))
    assert root.find("cap:identifier", NS).text == first["identifier"]
    assert root.find("cap:info/cap:category", NS).text == "Health"
    assert root.find("cap:info/cap:senderName", NS).text
    assert len(root.findall("cap:info/cap:area", NS)) >= 2  # the red core and its buffer rings
    assert client.get("/api/v1/warnings/999999/cap.xml").status_code == 404
    admin = app.server.test_client()
    sign_in_client(admin, "cap-admin")
    assert admin.get("/api/v1/warnings").status_code == 403



def test_the_demo_drops_a_neighbours_alert_that_validates(demo_city, xsd):
    settings, _ = demo_city
    [neighbour] = settings.path(settings.warnings.inbound_dir).glob("*.xml")
    root = check_document(xsd, neighbour.read_text(), city_lat=(2.6, 2.9), city_lng=(101.5, 101.8))
    assert root.find("cap:status", NS).text == "Actual" and root.find("cap:sender", NS).text.endswith(".demo")


def test_escalation_and_lifting_propose_update_and_cancel_that_validate(cap_app, xsd):
    """Zone decisions on later days, through the warnings job: an Update, then a Cancel, each referencing
    the message it replaces; approved through the API."""
    from jobs import warnings as warning_job

    app, store, settings = cap_app
    first = _issued(store).iloc[0]
    core = store.read("SELECT * FROM zones WHERE role = 'core' ORDER BY zone_id LIMIT 1").iloc[0]
    client = app.server.test_client()
    assert sign_in_client(client, "cap-op").status_code == 303
    day = store.scalar("SELECT max(as_of) FROM zone_events")
    previous = first
    for offset, kind in ((1, "escalated"), (2, "lifted")):
        store.write("""INSERT INTO zone_events (as_of, kind, zone_id, cluster_id, role, tier, previous_tier, cells,
                       reason, rule_id, rule_version, run_id, recorded_at) VALUES (?, ?, ?, ?, 'core', ?, ?, ?, ?, ?,
                       ?, ?, ?)""",
                    [day + timedelta(days=offset), kind, core["zone_id"], core["cluster_id"], core["tier"],
                     core["tier"], list(core["cells"]), f"test: {kind}", core["rule_id"], core["rule_version"],
                     "test", datetime.now(timezone.utc)])
        assert warning_job.run(store, settings, day)["proposed"] == 1
        assert warning_job.run(store, settings, day)["proposed"] == 0  # a rerun proposes nothing twice
        proposal = store.read("SELECT * FROM warnings WHERE approval = 'proposed'").iloc[0]
        assert proposal["msg_type"] == ("Update" if kind == "escalated" else "Cancel")
        approved = client.post(f"/api/v1/warnings/{int(proposal['warning_id'])}/approve", json={"note": "ok"})
        assert approved.status_code == 200, approved.get_data(as_text=True)
        root = check_document(xsd, client.get(approved.get_json()["warning"]["cap_url"]).get_data(as_text=True))
        assert root.find("cap:msgType", NS).text == proposal["msg_type"]
        assert root.find("cap:references", NS).text == (
            f"{previous['sender']},{previous['identifier']},{previous['sent']}")
        assert root.find("cap:incidents", NS).text == first["identifier"]  # one series
        previous = store.read("SELECT * FROM warnings WHERE warning_id = ?", [int(proposal["warning_id"])]).iloc[0]
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'warning_issued' AND actor = 'cap-op'") == 2


def test_composed_warnings_wait_for_approval_and_a_cancel_references_them(cap_app, xsd):
    app, store, _ = cap_app
    client = app.server.test_client()
    assert sign_in_client(client, "cap-op").status_code == 303
    areas = [a["id"] for a in client.get("/api/v1/areas").get_json()["areas"] if a["kind"] == "community"][:2]
    made = client.post("/api/v1/warnings", json={
        "headline": "Water & soap: wash your hands <now>", "description": "Cases rise in two areas.",
        "instruction": "Wash hands; stay home when ill.", "areas": areas, "severity": "Moderate"})
    assert made.status_code == 201
    warning_id = made.get_json()["warning"]["id"]
    row = next(w for w in client.get("/api/v1/warnings").get_json()["warnings"] if w["id"] == warning_id)
    assert row["approval"] == "proposed" and row["cap_url"] is None  # nothing is sent before approval
    assert store.scalar("SELECT count(*) FROM delivery_outbox WHERE ref = ?", [str(warning_id)]) == 0
    cop = app.server.test_client()
    sign_in_client(cop, "cap-cop")
    assert cop.post(f"/api/v1/warnings/{warning_id}/approve", json={}).status_code == 403
    assert client.post(f"/api/v1/warnings/{warning_id}/approve", json={}).status_code == 200
    assert client.post(f"/api/v1/warnings/{warning_id}/approve", json={}).status_code == 409
    root = check_document(xsd, client.get(f"/api/v1/warnings/{warning_id}/cap.xml").get_data(as_text=True))
    assert root.find("cap:info/cap:headline", NS).text == "Water & soap: wash your hands <now>"
    assert len(root.findall("cap:info/cap:area", NS)) == 2
    cancel = client.post(f"/api/v1/warnings/{warning_id}/cancel", json={"note": "cases fell"})
    assert cancel.status_code == 201
    cancel_id = cancel.get_json()["warning"]["id"]
    assert client.post(f"/api/v1/warnings/{cancel_id}/approve", json={}).status_code == 200
    root = check_document(xsd, client.get(f"/api/v1/warnings/{cancel_id}/cap.xml").get_data(as_text=True))
    assert root.find("cap:msgType", NS).text == "Cancel"
    issued = store.read("SELECT sender, identifier, sent FROM warnings WHERE warning_id = ?", [warning_id]).iloc[0]
    assert root.find("cap:references", NS).text == f"{issued['sender']},{issued['identifier']},{issued['sent']}"
    for bad, field in (({"headline": "x", "description": "y", "areas": ["nowhere"]}, "areas"),
                       ({"headline": "", "description": "y", "areas": areas}, "headline"),
                       ({"headline": "x", "description": "y", "areas": areas, "severity": "Huge"}, "severity")):
        response = client.post("/api/v1/warnings", json=bad)
        assert response.status_code == 400 and response.get_json()["error"]["parameter"] == field


def test_the_oasis_examples_are_read_as_other_agencies_alerts(cap_app, tmp_path):
    from delivery.inbound import read_inbound_folder
    from pages import _ids as ids
    from tests.test_callback_authz import _body, _components

    app, store, _ = cap_app
    inbox = tmp_path / "cap-inbox"
    inbox.mkdir()
    for name in EXAMPLES + ("nws_atom_feed_cap1.1_example.xml",):
        shutil.copy(shared_data("oasis-cap-1.2", "examples", name), inbox / name)
    (inbox / "bomb.xml").write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>')
    old = datetime.now().timestamp() - 10  # settled files (the reader skips one still being written)
    import os
    for f in inbox.iterdir():
        os.utime(f, (old, old))
    counts = read_inbound_folder(store, inbox)
    # The IBM file is the fourth OASIS example again (same identifier, sender and sent): stored once.
    assert counts == {"stored": 4, "repeated": 1, "rejected": 2}
    assert sorted(p.name for p in (inbox / "rejected").iterdir()) == ["bomb.xml", "nws_atom_feed_cap1.1_example.xml"]
    reasons = store.read("SELECT reason_code, record_key FROM quarantine WHERE kind = 'cap' ORDER BY record_key")
    assert list(reasons["reason_code"]) == ["invalid_cap", "invalid_cap"]
    stored = store.read("SELECT * FROM inbound_alerts").set_index("identifier")
    assert set(stored.index) == {"43b080713727", "KSTO1055887203", "TRI13970876.2", "KAR0-0306112239-SW"}
    assert stored.loc["TRI13970876.2", "msg_type"] == "Update" and stored.loc["TRI13970876.2", "references_text"]
    assert stored.loc["KSTO1055887203", "severity"] == "Severe"
    from cap.inbound import parse_cap
    storm = parse_cap(shared_data("oasis-cap-1.2", "examples", "oasis_example2.xml").read_bytes())
    assert storm.polygons_lat_lng[0][0] == (38.47, -120.14) and storm.polygons_lat_lng[0][-1] == (38.47, -120.14)
    client = app.server.test_client()
    sign_in_client(client, "cap-cop")
    key = next(k for k in app.callback_map if ids.ALERTS_INBOUND in k)
    text = client.post("/_dash-update-component", json=_body(key, app.callback_map[key], _components(app))) \
        .get_data(as_text=True)
    for identifier in stored.index:
        assert identifier in text, identifier


def test_builder_rules_the_schema_does_not_check():
    from cap.message import (CapInfo, CapMessage, CapReference, InvalidMessage, cap_time, polygon_text, to_xml)
    from zoneinfo import ZoneInfo

    assert cap_time(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=timezone.utc)) == "2026-01-02T03:04:05+00:00"
    assert cap_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=ZoneInfo("America/St_Johns"))).endswith("-03:30")
    with pytest.raises(InvalidMessage):
        cap_time(datetime(2026, 1, 2))
    assert polygon_text([(1.0, 2.0), (1.0, 3.0), (2.0, 3.0)]) == "1,2 1,3 2,3 1,2"  # closed
    for ring in ([(1, 2), (1, 3)], [(91, 2), (1, 3), (2, 3)], [(1, 181), (1, 3), (2, 3)]):
        with pytest.raises(InvalidMessage):
            polygon_text(ring)
    info = CapInfo("Test", "Expected", "Minor", "Likely", "pheoc", "h", "d")
    now = datetime.now(timezone.utc)
    good = CapMessage("id-1", "a@b", now, "Actual", "Alert", "Public", (info,))
    assert "<identifier>id-1</identifier>" in to_xml(good, exercise=False)
    bad = (CapMessage("id 1", "a@b", now, "Actual", "Alert", "Public", (info,)),
           CapMessage("id-1", "a@b", now, "Actual", "Update", "Public", (info,)),
           CapMessage("id-1", "a@b", now, "Actual", "Alert", "Public", (info,), (CapReference("a", "b", "c"),)),
           CapMessage("id-1", "a@b", now, "Actual", "Alert", "Restricted", (info,)),
           CapMessage("id-1", "a@b", now, "Rumour", "Alert", "Public", (info,)))
    for message in bad:
        with pytest.raises(InvalidMessage):
            to_xml(message, exercise=False)


def test_agencies_acknowledge_on_the_page_or_by_signed_link_and_the_page_shows_who_has_not(cap_app):
    from urllib.parse import parse_qs, urlsplit

    from delivery.warnings import ack_link
    from pages import _ids as ids
    from tests.test_callback_authz import _body, _components

    app, store, settings = cap_app
    warning_id = int(_issued(store).iloc[0]["warning_id"])
    asked = {r.id for r in settings.warnings.recipients if r.acknowledges}
    assert asked == {"police", "hospitals", "fire"}
    cop = app.server.test_client()
    sign_in_client(cop, "cap-cop")
    row = next(w for w in cop.get("/api/v1/warnings").get_json()["warnings"] if w["id"] == warning_id)
    assert set(row["not_acknowledged"]) == asked
    # Police acknowledge for the police, not for the hospitals.
    assert cop.post(f"/api/v1/warnings/{warning_id}/acknowledge", json={"recipient": "hospitals"}).status_code == 400
    assert cop.post(f"/api/v1/warnings/{warning_id}/acknowledge", json={"recipient": "police"}).status_code == 200
    # The hospitals by the signed link they were sent: a GET changes nothing, the page's button posts.
    link = ack_link(settings, store.path, warning_id, "hospitals", datetime.now(timezone.utc))
    path = urlsplit(link).path + "?" + urlsplit(link).query
    anonymous = app.server.test_client()
    page = anonymous.get(path)
    assert page.status_code == 200 and "<form method='post'" in page.get_data(as_text=True)
    assert store.scalar("SELECT count(*) FROM warning_acks WHERE recipient_id = 'hospitals'") == 0
    assert anonymous.post(path).status_code == 200
    query = parse_qs(urlsplit(link).query)
    forged = path.replace(f"r=hospitals", "r=fire")
    assert anonymous.post(forged).status_code == 403  # the signature names the recipient
    expired = ack_link(settings, store.path, warning_id, "fire", datetime.now(timezone.utc) - timedelta(days=30))
    assert anonymous.post(urlsplit(expired).path + "?" + urlsplit(expired).query).status_code == 403
    assert query["w"] == [str(warning_id)]
    acks = store.read("SELECT recipient_id, via, actor FROM warning_acks WHERE warning_id = ? ORDER BY recipient_id",
                      [warning_id])
    assert list(acks.itertuples(index=False, name=None)) == [("hospitals", "link", "link:hospitals"),
                                                             ("police", "ui", "cap-cop")]
    audited = store.read("SELECT actor FROM audit_log WHERE action = 'warning_acknowledged' ORDER BY seq")
    assert list(audited["actor"]) == ["cap-cop", "link:hospitals"]
    # The page shows who has not acknowledged, and since when the warning went out.
    key = next(k for k in app.callback_map if ids.ALERTS_WARNINGS in k)
    text = cop.post("/_dash-update-component", json=_body(key, app.callback_map[key], _components(app))) \
        .get_data(as_text=True)
    assert "Not acknowledged yet: fire (sent" in text and "Acknowledged by police" in text
