"""Build CAP 1.2 alert messages (OASIS CAP-v1.2-os, §3.2) as XML.

The element order of <alert>, <info> and <area> is the schema's sequence; the XSD checks order,
enumerations and the time pattern, and this module checks what the schema leaves to prose:

* times are ``YYYY-MM-DDThh:mm:ss`` with an explicit offset (``+08:00``); the 1.2 schema refuses
  ``Z`` (§3.3.2), so UTC is written ``+00:00``;
* polygons are WGS 84 "lat,lon" pairs separated by spaces, at least four pairs, the first and
  last equal (§3.3.1, <polygon>); GeoJSON's lng,lat order must never leak in, so rings are taken
  as (lat, lng) tuples by name;
* identifiers and senders contain no spaces, commas or the restricted characters < and & (§3.2.1);
* Update and Cancel carry <references> "sender,identifier,sent" of the messages they replace
  (§3.2.1, <references>);
* an exercise (drill) never produces anything but status Exercise: ``to_xml(..., exercise=True)``
  raises ``ExerciseOnly`` for any other status, whatever the caller asked for.
"""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE",
              "Other")
RESPONSE_TYPES = ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None")
# §3.2.1: identifier and sender "MUST NOT include spaces, commas or restricted characters (< and &)".
_TOKEN = re.compile(r"^[^\s,<&]+$")
# Six decimals of a degree are about 0.1 m: finer than any zone edge, short enough to read.
COORDINATE_DECIMALS = 6


class ExerciseOnly(ValueError):
    """A document was to be built for a drill with a status other than Exercise."""


class InvalidMessage(ValueError):
    """The message breaks a CAP 1.2 rule that the schema does not check; the text names it."""


def cap_time(moment: datetime) -> str:
    """A CAP dateTime: whole seconds and an explicit offset, never ``Z`` (the 1.2 schema's pattern)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidMessage("CAP times need a time zone (naive datetime given)")
    moment = moment.replace(microsecond=0)
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{hours:02d}:{mins:02d}"


def _number(value: float) -> str:
    text = f"{value:.{COORDINATE_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def polygon_text(ring_lat_lng: Sequence[tuple[float, float]]) -> str:
    """A closed ring of (lat, lng) vertices as CAP polygon text ("lat,lon lat,lon ..."), closed if open."""
    points = [(float(lat), float(lng)) for lat, lng in ring_lat_lng]
    for lat, lng in points:
        if not (math.isfinite(lat) and math.isfinite(lng)) or not -90 <= lat <= 90 or not -180 <= lng <= 180:
            raise InvalidMessage(f"polygon point ({lat}, {lng}) is not a WGS 84 latitude, longitude")
    if points and points[0] != points[-1]:
        points.append(points[0])
    if len(set(points)) < 3 or len(points) < 4:
        raise InvalidMessage("a CAP polygon needs at least three distinct points and must be closed (§3.3.1)")
    return " ".join(f"{_number(lat)},{_number(lng)}" for lat, lng in points)


@dataclass(frozen=True, slots=True)
class CapArea:
    """<area>: a description and the polygons (rings of (lat, lng)) it covers, plus geocodes."""
    description: str
    polygons_lat_lng: tuple[tuple[tuple[float, float], ...], ...] = ()
    geocodes: tuple[tuple[str, str], ...] = ()  # (valueName, value)


@dataclass(frozen=True, slots=True)
class CapInfo:
    """<info>, category Health unless told otherwise."""
    event: str
    urgency: str
    severity: str
    certainty: str
    sender_name: str
    headline: str
    description: str
    instruction: str | None = None
    language: str = "en-US"
    categories: tuple[str, ...] = ("Health",)
    response_types: tuple[str, ...] = ()
    effective: datetime | None = None
    expires: datetime | None = None
    web: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    areas: tuple[CapArea, ...] = ()


@dataclass(frozen=True, slots=True)
class CapReference:
    """An earlier message this one updates or cancels: <references> names it by sender, identifier, sent."""
    sender: str
    identifier: str
    sent: str  # as it was written in that message


@dataclass(frozen=True, slots=True)
class CapMessage:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    infos: tuple[CapInfo, ...]
    references: tuple[CapReference, ...] = ()
    restriction: str | None = None
    note: str | None = None
    incidents: str | None = None
    codes: tuple[str, ...] = field(default=())


def _check(message: CapMessage, exercise: bool) -> None:
    if exercise and message.status != "Exercise":
        raise ExerciseOnly(f"a drill builds CAP messages with status Exercise only, not {message.status!r}")
    for name, value in (("identifier", message.identifier), ("sender", message.sender)):
        if not _TOKEN.match(value or ""):
            raise InvalidMessage(f"CAP {name} {value!r} must not contain spaces, commas, < or & (§3.2.1)")
    for name, value, allowed in (("status", message.status, STATUSES), ("msgType", message.msg_type, MSG_TYPES),
                                 ("scope", message.scope, SCOPES)):
        if value not in allowed:
            raise InvalidMessage(f"CAP {name} must be one of {', '.join(allowed)}, not {value!r}")
    if message.scope == "Restricted" and not message.restriction:
        raise InvalidMessage("scope Restricted needs a restriction text (§3.2.1)")
    if message.msg_type in ("Update", "Cancel") and not message.references:
        raise InvalidMessage(f"a {message.msg_type} must reference the message(s) it replaces (§3.2.1)")
    if message.msg_type == "Alert" and message.references:
        raise InvalidMessage("an Alert references nothing; an Update or Cancel does")
    for ref in message.references:
        for part in (ref.sender, ref.identifier, ref.sent):
            if not _TOKEN.match(part or ""):
                raise InvalidMessage(f"reference part {part!r} must not contain spaces, commas, < or &")
    if message.msg_type != "Cancel" and not message.infos:
        raise InvalidMessage("a warning needs at least one info block")
    for info in message.infos:
        for name, value, allowed in (("urgency", info.urgency, URGENCIES), ("severity", info.severity, SEVERITIES),
                                     ("certainty", info.certainty, CERTAINTIES)):
            if value not in allowed:
                raise InvalidMessage(f"CAP {name} must be one of {', '.join(allowed)}, not {value!r}")
        bad = [c for c in info.categories if c not in CATEGORIES] + [
            r for r in info.response_types if r not in RESPONSE_TYPES]
        if bad or not info.categories:
            raise InvalidMessage(f"unknown CAP category or responseType: {bad}")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{CAP_NAMESPACE}}}{tag}")
    if text is not None:
        element.text = text
    return element


def _pair(parent: ET.Element, tag: str, name: str, value: str) -> None:
    holder = _sub(parent, tag)
    _sub(holder, "valueName", name)
    _sub(holder, "value", value)


def to_element(message: CapMessage, *, exercise: bool) -> ET.Element:
    """The <alert> element. ``exercise`` (drill mode) has no default: every caller says which it builds."""
    _check(message, exercise)
    alert = ET.Element(f"{{{CAP_NAMESPACE}}}alert")
    _sub(alert, "identifier", message.identifier)
    _sub(alert, "sender", message.sender)
    _sub(alert, "sent", cap_time(message.sent))
    _sub(alert, "status", message.status)
    _sub(alert, "msgType", message.msg_type)
    _sub(alert, "scope", message.scope)
    if message.restriction:
        _sub(alert, "restriction", message.restriction)
    for code in message.codes:
        _sub(alert, "code", code)
    if message.note:
        _sub(alert, "note", message.note)
    if message.references:
        _sub(alert, "references", " ".join(f"{r.sender},{r.identifier},{r.sent}" for r in message.references))
    if message.incidents:
        _sub(alert, "incidents", message.incidents)
    for info in message.infos:
        block = _sub(alert, "info")
        _sub(block, "language", info.language)
        for category in info.categories:
            _sub(block, "category", category)
        _sub(block, "event", info.event)
        for response in info.response_types:
            _sub(block, "responseType", response)
        _sub(block, "urgency", info.urgency)
        _sub(block, "severity", info.severity)
        _sub(block, "certainty", info.certainty)
        if info.effective is not None:
            _sub(block, "effective", cap_time(info.effective))
        if info.expires is not None:
            _sub(block, "expires", cap_time(info.expires))
        _sub(block, "senderName", info.sender_name)
        _sub(block, "headline", info.headline)
        _sub(block, "description", info.description)
        if info.instruction:
            _sub(block, "instruction", info.instruction)
        if info.web:
            _sub(block, "web", info.web)
        for name, value in info.parameters:
            _pair(block, "parameter", name, value)
        for area in info.areas:
            holder = _sub(block, "area")
            _sub(holder, "areaDesc", area.description)
            for ring in area.polygons_lat_lng:
                _sub(holder, "polygon", polygon_text(ring))
            for name, value in area.geocodes:
                _pair(holder, "geocode", name, value)
    return alert


def to_xml(message: CapMessage, *, exercise: bool) -> str:
    """The CAP 1.2 document as UTF-8 XML text with its declaration."""
    ET.register_namespace("", CAP_NAMESPACE)
    body = ET.tostring(to_element(message, exercise=exercise), encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
