"""Record formats and their validation: one mapping in, one typed row or one Reject out.

Both the file and the MQTT ingestors call :func:`validate_record`, so a record is judged the same
way whichever way it arrived. Formats are documented in docs/ingest.md; the JSON Schemas in
schemas/ are generated from FIELD_SPECS below (``python -m ingest.schemas``).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import shapely

from geo.addresses import address_key
from geo.areas import PointLocator, contains_lat_lng, geometry_from_geojson
from geo.cells import cell_resolution, cell_to_latlng, is_valid_cell, latlng_to_cell
from ingest.reasons import REASONS

# The largest values the store's integer columns hold (store/schema.py): a larger count would make
# DuckDB refuse the whole batch at insert, so it is refused here, as one record, with its reason.
INT32_MAX = 2**31 - 1  # DuckDB INTEGER: tests, capacity counts, facility beds
INT64_MAX = 2**63 - 1  # DuckDB BIGINT: areas.population, readings.seq
# The default of ingest.earliest_date (settings.py says why), for contexts built without settings.
DEFAULT_EARLIEST_DATE = date(2000, 1, 1)


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
    earliest_date: date = DEFAULT_EARLIEST_DATE  # ingest.earliest_date


# ---- field parsers: value (from JSON, or text from CSV) -> typed value, or Reject ----------------
Parser = Callable[[Any, str, bool], Any]


def _text(value, name, from_text):
    if isinstance(value, str):
        if not from_text and not value.isascii():
            _check_encodable(value, name)
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


def _check_encodable(value: str, name: str) -> None:
    # JSON may escape a lone UTF-16 surrogate ("\\ud800"): valid JSON, but not text that UTF-8 (and so
    # the store) can hold; left in, it fails the whole batch when the batch is built.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Reject("not_utf8", f"{name} holds a lone surrogate escape, which is not text") from None


_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")


def _whole_number(value, name, from_text) -> int:
    """An exact integer: a JSON integer as it is, a whole float (``3.0``), or decimal text from CSV.

    Not through float(): a float holds integers exactly only up to 2**53, and readings.seq is 64-bit.
    """
    if isinstance(value, bool):
        raise Reject("wrong_type", f"{name} must be a whole number, got a boolean")
    if isinstance(value, int):
        return value
    if from_text and isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        try:
            return int(value.strip())
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise Reject("value_out_of_range", f"{name} has {len(value.strip())} digits") from None
    v = _number(value, name, from_text)  # 3.0, or "1e3" in a CSV cell
    if not math.isfinite(v) or v != int(v):
        raise Reject("wrong_type", f"{name} must be a whole number, got {value!r:.40}")
    return int(v)


def _count(value, name, from_text) -> int:
    v = _whole_number(value, name, from_text)
    if v < 0:
        raise Reject("negative_count", f"{name} is {v}")
    return v


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
    try:
        return ts.astimezone(timezone.utc)
    except OverflowError:
        # 0001-01-01T00:00+08:00 is in year 0 in UTC (and 9999-12-31T23:00-05:00 in year 10000),
        # which Python's datetime cannot hold.
        code = "date_too_old" if ts.year == 1 else "future_timestamp"
        raise Reject(code, f"{name} {value!r:.40} is outside the years 1 to 9999 in UTC") from None


def _one_of(*allowed: str) -> Parser:
    def parse(value, name, from_text):
        v = _text(value, name, from_text)
        if v not in allowed:
            raise Reject("invalid_value", f"{name} {v!r:.40} is not one of {', '.join(allowed)}")
        return v
    parse.allowed = allowed  # read by ingest.schemas to publish the enum
    return parse


def _geometry(value, name, from_text):
    """An area's polygon; an invalid one that can be repaired without losing ground is repaired (a
    published precinct file's sliver or degenerate ring should not leave its ground in no area)."""
    try:
        return geometry_from_geojson(value, repair=True)
    # shapely reports a malformed GeoJSON geometry in many ways: KeyError for a Polygon without
    # "coordinates", TypeError/IndexError/ValueError for coordinates of the wrong shape.
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, shapely.errors.ShapelyError) as exc:
        raise Reject("invalid_geometry", f"{name}: {type(exc).__name__}: {exc}"[:300]) from None


def _point(value, name, from_text) -> tuple[float, float]:
    """A GeoJSON Point (an address feature's geometry) as (lat, lng)."""
    if not isinstance(value, Mapping) or value.get("type") != "Point":
        raise Reject("invalid_geometry", f"{name} must be a GeoJSON Point")
    coords = value.get("coordinates")
    if not isinstance(coords, list) or len(coords) < 2:
        raise Reject("invalid_geometry", f"{name}: a Point needs [lng, lat]")
    return _number(coords[1], f"{name} latitude", False), _number(coords[0], f"{name} longitude", False)


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
    maximum: int | None = None  # for integers: the largest value the store's column holds


F = FieldSpec
FIELD_SPECS: dict[str, dict[str, FieldSpec]] = {
    "area": {
        "area_id": F(_text, doc="stable id"), "name": F(_text), "kind": F(_one_of(*AREA_KINDS)),
        "population": F(_count, required=False, maximum=INT64_MAX),
        "geometry": F(_geometry, doc="GeoJSON Polygon/MultiPolygon, lng,lat"),
    },
    "sensor": {
        "sensor_id": F(_text), "kind": F(_one_of(*SENSOR_KINDS)), "name": F(_text, required=False),
        "lat": F(_number), "lng": F(_number),
    },
    "facility": {
        "facility_id": F(_text), "name": F(_text), "kind": F(_one_of(*FACILITY_KINDS)),
        "owner": F(_text, required=False), "lat": F(_number), "lng": F(_number),
        "beds": F(_count, required=False, maximum=INT32_MAX),
        "icu_beds": F(_count, required=False, maximum=INT32_MAX),
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
        "tested": F(_count, maximum=INT32_MAX), "positive": F(_count, maximum=INT32_MAX),
    },
    "reading": {
        "sensor_id": F(_text), "seq": F(_count, doc="per-sensor sequence number; with sensor_id the natural key",
                                      maximum=INT64_MAX),
        "ts": F(_timestamp, doc="ISO 8601 with UTC offset"), "metric": F(_text), "value": F(_finite),
        "unit": F(_text, required=False),
    },
    "capacity": {
        "facility_id": F(_text), "reported_at": F(_timestamp),
        "beds_total": F(_count, maximum=INT32_MAX), "beds_occupied": F(_count, maximum=INT32_MAX),
        "icu_total": F(_count, required=False, maximum=INT32_MAX),
        "icu_occupied": F(_count, required=False, maximum=INT32_MAX),
        "ventilators_total": F(_count, required=False, maximum=INT32_MAX),
        "ventilators_in_use": F(_count, required=False, maximum=INT32_MAX),
        "staff_on_duty": F(_count, required=False, maximum=INT32_MAX),
        "covid_patients": F(_count, required=False, maximum=INT32_MAX),
    },
    "supply": {
        "facility_id": F(_text), "reported_at": F(_timestamp), "item": F(_text), "stock": F(_nonneg_float),
        "daily_use": F(_nonneg_float, required=False), "unit": F(_text, required=False),
    },
    "address": {
        "address_id": F(_text, doc="stable id of the address in the gazetteer"),
        "text": F(_text, doc="the address as written, e.g. 12 Jalan Melati 3"),
        "lat": F(_number, required=False), "lng": F(_number, required=False),
        "geometry": F(_point, required=False, doc="GeoJSON Point (lng, lat); instead of lat and lng"),
    },
    "admission": {
        "admission_id": F(_text), "case_id": F(_text, required=False), "facility_id": F(_text),
        "admitted_on": F(_date), "icu": F(_bool, required=False), "discharged_on": F(_date, required=False),
        "outcome": F(_one_of("recovered", "deceased", "transferred"), required=False),
    },
}

# Plural names used in file names and MQTT topics.
KIND_BY_PLURAL = {"areas": "area", "sensors": "sensor", "facilities": "facility", "cases": "case", "tests": "test",
                  "readings": "reading", "capacity": "capacity", "supplies": "supply", "admissions": "admission",
                  "addresses": "address"}
# Registries first, so the records that refer to them validate in the same ingest run.
KIND_ORDER = ("area", "address", "sensor", "facility", "case", "test", "reading", "capacity", "supply", "admission")


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
        if spec.maximum is not None and out[name] > spec.maximum:
            raise Reject("value_out_of_range", f"{kind} {name} {_brief_int(out[name])} is above "
                         f"{spec.maximum:,}, the largest value the store holds")
    return out


def _brief_int(v: int) -> str:
    # str() of an integer of more than 4,300 digits raises (CVE-2020-10735 limit); say its size instead.
    return f"{v:,}" if v.bit_length() <= 128 else f"(a {v.bit_length()}-bit number)"


_TIME_PARSERS = (_date, _timestamp)


def _check_not_too_old(kind: str, row: dict, ctx: ValidationContext) -> None:
    """Every date and time of the record is on or after ingest.earliest_date."""
    for name, spec in FIELD_SPECS[kind].items():
        value = row[name]
        if value is None or spec.parse not in _TIME_PARSERS:
            continue
        day = value.date() if isinstance(value, datetime) else value
        if day < ctx.earliest_date:
            raise Reject("date_too_old", f"{name} {value.isoformat()} is before ingest.earliest_date "
                         f"({ctx.earliest_date.isoformat()})")


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


def _check_cell(cell: str, name: str, ctx: ValidationContext) -> None:
    """A given H3 cell is valid, at the city's resolution (map.h3_resolution) and inside the city.

    A cell of another resolution is refused rather than converted: a resolution-0 cell is a
    continent, and the wall map would draw it.
    """
    if not is_valid_cell(cell):
        raise Reject("invalid_h3", f"{name} {cell!r:.40}")
    resolution = cell_resolution(cell)
    if resolution != ctx.h3_resolution:
        raise Reject("wrong_h3_resolution", f"{name} {cell} is at resolution {resolution}; this city uses "
                     f"{ctx.h3_resolution} (map.h3_resolution)")
    lat, lng = cell_to_latlng(cell)
    if not contains_lat_lng(ctx.boundary, lat, lng):  # no boundary loaded: not checked
        raise Reject("outside_city", f"{name} {cell} (centre {lat:.5f}, {lng:.5f}) is outside the city boundary")


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
        if row["h3_cell"] is not None:
            _check_cell(row["h3_cell"], "h3_cell", ctx)
    if row["imported"] is None:
        row["imported"] = False


def _check_test(row: dict, ctx: ValidationContext) -> None:
    _check_not_future_date(row["test_date"], "test_date", ctx)
    if row["positive"] > row["tested"]:
        raise Reject("positive_exceeds_tested", f"positive {row['positive']} > tested {row['tested']}")
    if row["area_id"] is None and row["h3_cell"] is None:
        raise Reject("missing_field", "test needs area_id or h3_cell")
    if row["h3_cell"] is not None:
        _check_cell(row["h3_cell"], "h3_cell", ctx)
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


def _check_address(row: dict, ctx: ValidationContext) -> None:
    point = row.pop("geometry")
    if point is not None and row["lat"] is not None:
        raise Reject("invalid_value", "address has both lat/lng and a geometry; give one")
    if point is not None:
        row["lat"], row["lng"] = point
    if row["lat"] is None or row["lng"] is None:
        raise Reject("missing_field", "address needs lat and lng (or a Point geometry)")
    _check_point(row["lat"], row["lng"], ctx)
    row["search_key"] = address_key(row["text"])
    if not row["search_key"]:
        raise Reject("invalid_value", f"address text {row['text']!r:.40} has no letters or digits")


CHECKS: dict[str, Callable[[dict, ValidationContext], None]] = {
    "area": _check_area, "sensor": _check_sensor_or_facility, "facility": _check_sensor_or_facility,
    "case": _check_case, "test": _check_test, "reading": _check_reading, "capacity": _check_capacity,
    "supply": _check_supply, "admission": _check_admission, "address": _check_address,
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
    _check_not_too_old(kind, row, ctx)
    CHECKS[kind](row, ctx)
    return row
