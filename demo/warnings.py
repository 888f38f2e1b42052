"""The demo's warnings: its zone declarations proposed and approved by the demo's operator, and one
alert from a (fictional) neighbouring agency in the CAP inbox, so /alerts and GET /api/v1/warnings
show real, issued CAP documents from the first start."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from auth.principal import principal_for
from cap.message import CapArea, CapInfo, CapMessage, to_xml
from jobs import clusters
from jobs import warnings as warning_job
from services.warnings import approve_warning
from settings import Settings
from store import Store
from store import queries_warnings as qw

DEMO_OPERATOR = "demo-operator"  # auth.demo creates it
# A square around Sepang, south-west of Putrajaya (lat, lng), for the neighbour's alert.
NEIGHBOUR_RING = ((2.80, 101.60), (2.80, 101.72), (2.70, 101.72), (2.70, 101.60), (2.80, 101.60))


def issue_demo_warnings(store: Store, settings: Settings, today: date) -> int:
    """Run the cluster job, propose warnings for its zones and approve them as the demo operator."""
    clusters.run(store, settings, today)
    warning_job.propose(store, settings)
    operator = principal_for(DEMO_OPERATOR, "operator")
    proposed = qw.warnings(store, "proposed")
    for warning_id in sorted(int(w) for w in proposed["warning_id"]):
        approve_warning(store, settings, operator, warning_id, note="approved when the demo was built")
    return len(proposed)


def write_neighbour_alert(folder: Path, settings: Settings, *, exercise: bool, now: datetime | None = None) -> Path:
    """A CAP 1.2 alert of a fictional neighbouring health office, dropped in the demo's CAP inbox (in a
    drill, as the neighbour's exercise message)."""
    now = (now or datetime.now(timezone.utc)).astimezone(ZoneInfo(settings.city.timezone))
    status = "Exercise" if exercise else "Actual"
    message = CapMessage(
        identifier=f"demo-neighbour-{now:%Y%m%d}", sender="health-office@sepang.demo", sent=now - timedelta(hours=3),
        status=status, msg_type="Alert", scope="Public", infos=(CapInfo(
            event="Dengue outbreak", urgency="Expected", severity="Moderate", certainty="Likely",
            sender_name="Sepang District Health Office (demo)", headline="Dengue cases rising in Sepang district",
            description="Dengue notifications in Sepang doubled over two weeks (demo data).",
            instruction="Remove standing water around homes; see a doctor for fever with rash or joint pain.",
            expires=now + timedelta(days=7), areas=(CapArea("Sepang district", (NEIGHBOUR_RING,)),)),))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{message.identifier}.xml"
    path.write_text(to_xml(message, exercise=exercise), encoding="utf-8")
    return path
