"""Record formats and their validation: one mapping in, one typed row or one Reject out.

Both the file and the MQTT ingestors call :func:`validate_record`, so a record is judged the same
way whichever way it arrived. Formats are documented in docs/ingest.md; the JSON Schemas in
schemas/ are generated from FIELD_SPECS below (``python -m ingest.schemas``).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import shapely

from geo.areas import PointLocator, contains_lat_lng, geometry_from_geojson
from geo.cells import is_valid_cell, latlng_to_cell
from ingest.reasons import REASONS


class Reject(Exception):
    """A record failed validation; ``code`` is one of ingest.reasons.REASONS."""

    def __init__(self, code: str, detail: str):
        assert code in REASONS, code
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ValidationContext:
    """What validation needs to know about the city and its registries, as of one moment."""
    now: datetime
    h3_resolution: int = 9
    boundary: shapely.Geometry | None = None
    community_locator: PointLocator | None = None
    sensor_ids: frozenset[str] = frozenset()
    facility_ids: frozenset[str] = frozenset()
    area_ids: frozenset[str] = frozenset()
    max_future_skew: timedelta = timedelta(minutes=5)
    check_registries: bool = True


# ---- field parsers: value (from JSON, or text from CSV) -> typed value, or Reject ----------------
Parser = Callable[[Any, str, bool], Any]


def _text(value, name, from_text):
    if isinstance(value, str):
        return value.strip()
    if from_text:
        return str(value)
    raise Reject("wrong_type", f"{name} must be text, got {type(value).__name__}")


def _number(value, name, from_text) -> float:
    if isinstance(value, bool):
        raise Reject("wrong_type", f"{name} must be a number, got a boolean")
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # a 400-digit JSON integer
            raise Reject("invalid_value", f"{name} is too large") from None
    if from_text and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise Reject("wrong_type", f"{name} must be a number, got {value!r:.40}")


def _finite(value, name, from_text) -> float:
    v = _number(value, name, from_text)
    if not math.isfinite(v):
        raise Reject("invalid_value", f"{name} must be finite, got {v}")
    return v


def _count(value, name, from_text) -> int:
    v = _number(value, name, from_text)
    if not math.isfinite(v) or v != int(v):
        raise Reject("wrong_type", f"{name} must be a whole number, got {value!r:.40}")
    if v < 0:
        raise Reject("negative_count", f"{name} is {int(v)}")
    return int(v)


def _nonneg_float(value, name, from_text) -> float:
    v = _finite(value, name, from_text)
    if v < 0:
        raise Reject("negative_count", f"{name} is {v}")
    return v


def _bool(value, name, from_text) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise Reject("wrong_type", f"{name} must be true or false, got {value!r:.40}")


def _date(value, name, from_text) -> date:
    if not isinstance(value, str):
        raise Reject("wrong_type", f"{name} must be a date string YYYY-MM-DD")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Reject("invalid_date", f"{name} {value!r:.40} is not YYYY-MM-DD") from None


def _timestamp(value, name, from_text) -> datetime:
    if not isinstance(value, str):
        raise Reject("wrong_type", f"{name} must be an ISO 8601 timestamp string")
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Reject("invalid_timestamp", f"{name} {value!r:.40} is not ISO 8601") from None
    if ts.tzinfo is None:
        # A time without an offset is ambiguous by hours in a city; refuse rather than guess.
        raise Reject("timestamp_without_timezone", f"{name} {value!r:.40} has no UTC offset")
    return ts.astimezone(timezone.utc)


def _one_of(*allowed: str) -> Parser:
    def parse(value, name, from_text):
        v = _text(value, name, from_text)
        if v not in allowed:
            raise Reject("invalid_value", f"{name} {v!r:.40} is not one of {', '.join(allowed)}")
        return v
    parse.allowed = allowed  # read by ingest.schemas to publish the enum
    return parse


def _geometry(value, name, from_text):
    try:
        return geometry_from_geojson(value)
    except (ValueError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise Reject("invalid_geometry", f"{name}: {exc}") from None


STATUSES = ("suspected", "confirmed", "recovered", "deceased")
SEVERITIES = ("asymptomatic", "mild", "moderate", "severe", "critical")
AGE_BANDS = ("0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+", "unknown")
SENSOR_KINDS = ("wastewater", "footfall", "fever_kiosk", "panic_button", "air_quality")
FACILITY_KINDS = ("hospital", "icu", "temporary_hospital", "quarantine_centre", "potential_site")
AREA_KINDS = ("boundary", "community", "precinct", "district")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    parse: Parser
    required: bool = True
    doc: str = ""


F = FieldSpec
FIELD_SPECS: dict[str, dict[str, FieldSpec]] = {
    "area": {
        "area_id": F(_text, doc="stable id"), "name": F(_text), "kind": F(_one_of(*AREA_KINDS)),
        "population": F(_count, required=False), "geometry": F(_geometry, doc="GeoJSON Polygon/MultiPolygon, lng,lat"),
    },
    "sensor": {
        "sensor_id": F(_text), "kind": F(_one_of(*SENSOR_KINDS)), "name": F(_text, required=False),
        "lat": F(_number), "lng": F(_number),
    },
    "facility": {
        "facility_id": F(_text), "name": F(_text), "kind": F(_one_of(*FACILITY_KINDS)),
        "owner": F(_text, required=False), "lat": F(_number), "lng": F(_number),
        "beds": F(_count, required=False), "icu_beds": F(_count, required=False),
    },
    "case": {
        "case_id": F(_text), "reported_date": F(_date), "onset_date": F(_date, required=False),
        "lat": F(_number, required=False), "lng": F(_number, required=False),
        "h3_cell": F(_text, required=False, doc="used when no lat/lng is given"),
        "status": F(_one_of(*STATUSES)), "severity": F(_one_of(*SEVERITIES), required=False),
        "age_band": F(_one_of(*AGE_BANDS), required=False), "imported": F(_bool, required=False),
    },
    "test": {
        "test_date": F(_date), "area_id": F(_text, required=False), "h3_cell": F(_text, required=False),
        "tested": F(_count), "positive": F(_count),
    },
    "reading": {
        "sensor_id": F(_text), "seq": F(_count, doc="per-sensor sequence number; with sensor_id the natural key"),
        "ts": F(_timestamp, doc="ISO 8601 with UTC offset"), "metric": F(_text), "value": F(_finite),
        "unit": F(_text, required=False),
    },
    "capacity": {
        "facility_id": F(_text), "reported_at": F(_timestamp), "beds_total": F(_count), "beds_occupied": F(_count),
        "icu_total": F(_count, required=False), "icu_occupied": F(_count, required=False),
        "ventilators_total": F(_count, required=False), "ventilators_in_use": F(_count, required=False),
        "staff_on_duty": F(_count, required=False), "covid_patients": F(_count, required=False),
    },
    "supply": {
        "facility_id": F(_text), "reported_at": F(_timestamp), "item": F(_text), "stock": F(_nonneg_float),
        "daily_use": F(_nonneg_float, required=False), "unit": F(_text, required=False),
    },
    "admission": {
        "admission_id": F(_text), "case_id": F(_text, required=False), "facility_id": F(_text),
        "admitted_on": F(_date), "icu": F(_bool, required=False), "discharged_on": F(_date, required=False),
        "outcome": F(_one_of("recovered", "deceased", "transferred"), required=False),
    },
}

# Plural names used in file names and MQTT topics.
KIND_BY_PLURAL = {"areas": "area", "sensors": "sensor", "facilities": "facility", "cases": "case", "tests": "test",
                  "readings": "reading", "capacity": "capacity", "supplies": "supply", "admissions": "admission"}
# Registries first, so the records that refer to them validate in the same ingest run.
KIND_ORDER = ("area", "sensor", "facility", "case", "test", "reading", "capacity", "supply", "admission")


def _parse_fields(kind: str, record: Mapping[str, Any], from_text: bool) -> dict[str, Any]:
    specs = FIELD_SPECS[kind]
    unknown = [k for k in record if k not in specs]
    if unknown:
        raise Reject("unknown_field", f"{kind} has unknown field(s) {', '.join(map(str, unknown[:5]))}")
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        value = record.get(name)
        if value is None or (isinstance(value, str) and value.strip() == ""):
            if spec.required:
                raise Reject("missing_field", f"{kind} needs {name}")
            out[name] = None
            continue
        out[name] = spec.parse(value, name, from_text)
    return out


def _check_point(lat: float, lng: float, ctx: ValidationContext) -> None:
    if not (math.isfinite(lat) and math.isfinite(lng)):
        raise Reject("non_finite_coordinate", f"lat={lat}, lng={lng}")
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise Reject("coordinate_out_of_range", f"lat={lat}, lng={lng}")
    if not contains_lat_lng(ctx.boundary, lat, lng):
        raise Reject("outside_city", f"lat={lat:.5f}, lng={lng:.5f} is outside the city boundary")


def _check_not_future_ts(ts: datetime, name: str, ctx: ValidationContext) -> None:
    if ts > ctx.now + ctx.max_future_skew:
        raise Reject("future_timestamp", f"{name} {ts.isoformat()} is after now ({ctx.now.isoformat()})")


def _check_not_future_date(d: date | None, name: str, ctx: ValidationContext) -> None:
    # Dates are local to the city; allow one day for time zones ahead of UTC.
    if d is not None and d > (ctx.now + timedelta(days=1)).date():
        raise Reject("future_timestamp", f"{name} {d.isoformat()} is in the future")


def _check_known(value: str | None, known: frozenset[str], code: str, what: str, ctx: ValidationContext) -> None:
    if value is not None and ctx.check_registries and value not in known:
        raise Reject(code, f"{what} {value!r:.60} is not registered")


def _locate(row: dict, ctx: ValidationContext) -> None:
    row["h3_cell"] = latlng_to_cell(row["lat"], row["lng"], ctx.h3_resolution)
    row["area_id"] = ctx.community_locator.locate_one(row["lat"], row["lng"]) if ctx.community_locator else None


def _check_area(row: dict, ctx: ValidationContext) -> None:
    geom = row["geometry"]
    row["geometry"] = json.dumps(shapely.geometry.mapping(geom), separators=(",", ":"))
    c = geom.representative_point()  # inside the polygon even for crescent-shaped areas
    row["centroid_lat"], row["centroid_lng"] = c.y, c.x


def _check_sensor_or_facility(row: dict, ctx: ValidationContext) -> None:
    _check_point(row["lat"], row["lng"], ctx)
    _locate(row, ctx)


def _check_case(row: dict, ctx: ValidationContext) -> None:
    _check_not_future_date(row["reported_date"], "reported_date", ctx)
    _check_not_future_date(row["onset_date"], "onset_date", ctx)
    if (row["lat"] is None) != (row["lng"] is None):
        raise Reject("missing_field", "case needs both lat and lng, or neither")
    if row["lat"] is not None:
        _check_point(row["lat"], row["lng"], ctx)
        given_cell = row["h3_cell"]
        _locate(row, ctx)
        if given_cell is not None and not is_valid_cell(given_cell):
            raise Reject("invalid_h3", f"h3_cell {given_cell!r:.40}")
    else:
        row["area_id"] = None
        if row["h3_cell"] is not None and not is_valid_cell(row["h3_cell"]):
            raise Reject("invalid_h3", f"h3_cell {row['h3_cell']!r:.40}")
    if row["imported"] is None:
        row["imported"] = False


def _check_test(row: dict, ctx: ValidationContext) -> None:
    _check_not_future_date(row["test_date"], "test_date", ctx)
    if row["positive"] > row["tested"]:
        raise Reject("positive_exceeds_tested", f"positive {row['positive']} > tested {row['tested']}")
    if row["area_id"] is None and row["h3_cell"] is None:
        raise Reject("missing_field", "test needs area_id or h3_cell")
    if row["h3_cell"] is not None and not is_valid_cell(row["h3_cell"]):
        raise Reject("invalid_h3", f"h3_cell {row['h3_cell']!r:.40}")
    _check_known(row["area_id"], ctx.area_ids, "unknown_area", "area", ctx)
    row["unit_id"] = f"area:{row['area_id']}" if row["area_id"] else f"cell:{row['h3_cell']}"


def _check_reading(row: dict, ctx: ValidationContext) -> None:
    _check_not_future_ts(row["ts"], "ts", ctx)
    _check_known(row["sensor_id"], ctx.sensor_ids, "unknown_sensor", "sensor", ctx)


def _check_capacity(row: dict, ctx: ValidationContext) -> None:
    _check_not_future_ts(row["reported_at"], "reported_at", ctx)
    _check_known(row["facility_id"], ctx.facility_ids, "unknown_facility", "facility", ctx)
    for occupied, total in (("beds_occupied", "beds_total"), ("icu_occupied", "icu_total"),
                            ("ventilators_in_use", "ventilators_total")):
        if row[occupied] is not None and row[total] is not None and row[occupied] > row[total]:
            raise Reject("occupied_exceeds_total", f"{occupied} {row[occupied]} > {total} {row[total]}")
    if row["icu_total"] is not None and row["icu_total"] > row["beds_total"]:
        raise Reject("subtotal_exceeds_total", f"icu_total {row['icu_total']} > beds_total {row['beds_total']}")
    if row["covid_patients"] is not None and row["covid_patients"] > row["beds_occupied"]:
        raise Reject("subtotal_exceeds_total",
                     f"covid_patients {row['covid_patients']} > beds_occupied {row['beds_occupied']}")


def _check_supply(row: dict, ctx: ValidationContext) -> None:
    _check_not_future_ts(row["reported_at"], "reported_at", ctx)
    _check_known(row["facility_id"], ctx.facility_ids, "unknown_facility", "facility", ctx)


def _check_admission(row: dict, ctx: ValidationContext) -> None:
    _check_not_future_date(row["admitted_on"], "admitted_on", ctx)
    _check_known(row["facility_id"], ctx.facility_ids, "unknown_facility", "facility", ctx)
    if row["discharged_on"] is not None and row["discharged_on"] < row["admitted_on"]:
        raise Reject("invalid_value", "discharged_on is before admitted_on")
    if row["icu"] is None:
        row["icu"] = False


CHECKS: dict[str, Callable[[dict, ValidationContext], None]] = {
    "area": _check_area, "sensor": _check_sensor_or_facility, "facility": _check_sensor_or_facility,
    "case": _check_case, "test": _check_test, "reading": _check_reading, "capacity": _check_capacity,
    "supply": _check_supply, "admission": _check_admission,
}


def content_hash(row: Mapping[str, Any], columns: tuple[str, ...]) -> str:
    """A short digest of a row's stored content, to tell a replay from a conflicting record."""
    parts = []
    for c in columns:
        v = row.get(c)
        parts.append(v.isoformat() if isinstance(v, (date, datetime)) else repr(v))
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()


def validate_record(kind: str, record: Any, ctx: ValidationContext, *, from_text: bool = False) -> dict[str, Any]:
    """Validate one record of ``kind``; return its row (typed, with derived fields) or raise Reject."""
    if kind not in FIELD_SPECS:
        raise Reject("unknown_kind", f"no record kind {kind!r:.40}")
    if not isinstance(record, Mapping):
        raise Reject("not_an_object", f"a {kind} record must be an object, got {type(record).__name__}")
    row = _parse_fields(kind, record, from_text)
    CHECKS[kind](row, ctx)
    return row
