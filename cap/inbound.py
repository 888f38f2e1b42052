"""Read CAP 1.2 alerts of other agencies (files dropped in warnings.inbound_dir).

Only what /alerts shows is taken: the message's identity and status, and its first <info> in
English (or its first at all): event, category, urgency, severity, certainty, headline, texts,
expiry and area descriptions with their polygons (turned back into (lat, lng) rings).

Untrusted input: a document with a DOCTYPE is refused outright (no entity may expand: "billion
laughs", external entities), so is anything over ``max_bytes``, anything not in the CAP 1.2
namespace (CAP 1.1 feeds, Atom indexes), and an alert missing a required element (§3.2.1).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from cap.message import CAP_NAMESPACE

MAX_CAP_BYTES = 1_048_576  # a CAP message with polygons is kilobytes; a megabyte is already suspicious
_NS = {"cap": CAP_NAMESPACE}
REQUIRED = ("identifier", "sender", "sent", "status", "msgType", "scope")
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


class InvalidCap(ValueError):
    """The bytes are not a CAP 1.2 alert pheoc can show; the message says why."""


@dataclass(frozen=True, slots=True)
class InboundAlert:
    identifier: str
    sender: str
    sent: str
    status: str
    msg_type: str
    scope: str
    references: str | None
    sender_name: str | None
    event: str | None
    category: str | None
    urgency: str | None
    severity: str | None
    certainty: str | None
    headline: str | None
    description: str | None
    instruction: str | None
    expires: str | None
    area_desc: str | None
    polygons_lat_lng: tuple[tuple[tuple[float, float], ...], ...]


def _text(element: ET.Element | None, tag: str) -> str | None:
    found = None if element is None else element.find(f"cap:{tag}", _NS)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def _polygon(text: str) -> tuple[tuple[float, float], ...]:
    points = []
    for pair in text.split():
        try:
            lat_text, lng_text = pair.split(",")
            lat, lng = float(lat_text), float(lng_text)
        except ValueError:
            raise InvalidCap(f"polygon point {pair[:40]!r} is not 'lat,lon'") from None
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            raise InvalidCap(f"polygon point {pair[:40]!r} is outside WGS 84 ranges")
        points.append((lat, lng))
    if len(points) < 4 or points[0] != points[-1]:
        raise InvalidCap("a polygon needs four or more points, the first equal to the last")
    return tuple(points)


def parse_cap(data: bytes, *, max_bytes: int = MAX_CAP_BYTES) -> InboundAlert:
    """Parse one CAP 1.2 <alert> document, or raise InvalidCap."""
    if len(data) > max_bytes:
        raise InvalidCap(f"larger than {max_bytes} bytes")
    if _DOCTYPE.search(data):
        raise InvalidCap("a DOCTYPE or entity declaration (refused: entities could expand)")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InvalidCap(f"not well-formed XML: {exc}") from None
    if root.tag != f"{{{CAP_NAMESPACE}}}alert":
        raise InvalidCap(f"the root element is {root.tag[:80]!r}, not a CAP 1.2 alert")
    values = {tag: _text(root, tag) for tag in REQUIRED}
    missing = [tag for tag, value in values.items() if value is None]
    if missing:
        raise InvalidCap(f"required element(s) missing: {', '.join(missing)}")
    infos = root.findall("cap:info", _NS)
    info = next((i for i in infos if (_text(i, "language") or "en-US").lower().startswith("en")),
                infos[0] if infos else None)
    areas = [] if info is None else info.findall("cap:area", _NS)
    polygons = tuple(_polygon(p.text or "") for a in areas for p in a.findall("cap:polygon", _NS))
    descriptions = [d for d in (_text(a, "areaDesc") for a in areas) if d]
    return InboundAlert(
        identifier=values["identifier"], sender=values["sender"], sent=values["sent"], status=values["status"],
        msg_type=values["msgType"], scope=values["scope"], references=_text(root, "references"),
        sender_name=_text(info, "senderName"), event=_text(info, "event"), category=_text(info, "category"),
        urgency=_text(info, "urgency"), severity=_text(info, "severity"), certainty=_text(info, "certainty"),
        headline=_text(info, "headline"), description=_text(info, "description"),
        instruction=_text(info, "instruction"), expires=_text(info, "expires"),
        area_desc="; ".join(descriptions) or None, polygons_lat_lng=polygons)
