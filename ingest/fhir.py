"""HL7 FHIR SANER bed-capacity reports -> pheoc facility and capacity records.

SANER (Situational Awareness for Novel Epidemic Response, HL7 IG ``hl7.fhir.uv.saner``) carries a
facility's counts as a FHIR R4 ``MeasureReport`` of type ``summary``: groups (Beds, Ventilators,
Encounters, ...) hold populations whose first coding is a code of the SANER MeasuredValues code
system (``numTotBeds``, ``numBedsOcc``, ...) and whose ``count`` is the number. The report's
``subject`` (or ``reporter``) references the facility's ``Location``; its ``date`` is when it was
reported. The mapping onto pheoc's capacity format (docs/ingest.md) follows the CDC measure
``CDCPatientImpactAndHospitalCapacity``:

    numTotBeds -> beds_total          numBedsOcc   -> beds_occupied
    numICUBeds -> icu_total           numICUBedsOcc -> icu_occupied
    numVent    -> ventilators_total   numVentUse   -> ventilators_in_use
    numC19HospPats -> covid_patients

A population sent with the ``data-absent-reason`` extension on ``_count`` instead of a ``count`` is
*missing*, never zero: the field is left out and stored as NULL (or, for the two required fields,
the report is quarantined as ``missing_field``). Codes are matched without regard to case, because
the IG itself spells ``numbeds`` and its CSV ``numBeds`` for the same measure.

A ``Location`` becomes a facility registry record (id = the Location's id, name, position). Reports
of facilities that are not registered are quarantined as ``unknown_facility`` by the normal
validation (ingest.records), so SANER, CSV and MQTT reports land in ``capacity_reports`` alike.
Files: a single MeasureReport, a single Location, or a Bundle of them; FileIngestor hands any JSON
file whose ``resourceType`` is one of those to :func:`ingest_fhir_document`. Each resource is judged
on its own: one that this module fails on is quarantined (``unexpected_error``), the rest are stored.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest.batch import BatchBuilder, commit_batch, describe_exception
from ingest.context import ContextProvider
from ingest.records import Reject
from store import BatchResult, Store

MEASURED_VALUES_SYSTEM = "http://hl7.org/fhir/uv/saner/CodeSystem/MeasuredValues"
DATA_ABSENT_REASON_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
# Resource types a file may hold for this module to take it (FileIngestor sniffs for these).
FHIR_FILE_TYPES = frozenset({"MeasureReport", "Bundle", "Location"})

# SANER MeasuredValues code (lower case) -> pheoc capacity field. Lower case: see the module docstring.
CAPACITY_FIELD_BY_CODE: dict[str, str] = {
    "numtotbeds": "beds_total",
    "numbedsocc": "beds_occupied",
    "numicubeds": "icu_total",
    "numicubedsocc": "icu_occupied",
    "numvent": "ventilators_total",
    "numventuse": "ventilators_in_use",
    "numc19hosppats": "covid_patients",
}

# Location.type codes (HL7 v3 RoleCode) that say what kind of facility a Location is. Anything else
# that sends bed-capacity reports is taken for a hospital.
FACILITY_KIND_BY_ROLE_CODE = {"HOSP": "hospital", "ICU": "icu", "PEDICU": "icu", "NCCS": "icu", "PEDNICU": "icu",
                              "INFD": "quarantine_centre"}
# A MeasureReport the sender marks as an error is not a report of the facility's state.
UNUSABLE_STATUSES = frozenset({"error", "entered-in-error"})


class FhirReject(Reject):
    """A resource that cannot be turned into a record; ``code`` is one of ingest.reasons.REASONS."""


@dataclass(frozen=True, slots=True)
class Population:
    """One measured value of a report: ``count`` is None when the sender marked it data-absent."""
    code: str
    count: Any
    absent_reason: str | None = None


@dataclass(frozen=True, slots=True)
class SanerReport:
    """The parts of a SANER MeasureReport pheoc uses."""
    report_id: str | None
    measure: str | None
    status: str | None
    location_ref: str | None  # the Location's id (from subject, else reporter)
    date: str | None
    period_start: str | None
    period_end: str | None
    populations: Mapping[str, Population] = field(default_factory=dict)  # keyed by code as sent

    def count(self, code: str) -> Any:
        """The count for a code (case-insensitive); None if absent or data-absent."""
        found = self.population(code)
        return None if found is None else found.count

    def population(self, code: str) -> Population | None:
        wanted = code.lower()
        for pop in self.populations.values():
            if pop.code.lower() == wanted:
                return pop
        return None


# ---- parsing ------------------------------------------------------------------------------------
def _population_code(population: Mapping) -> str | None:
    """The MeasuredValues code of a population (its first coding when none names the system)."""
    codings = ((population.get("code") or {}).get("coding")) or []
    codings = [c for c in codings if isinstance(c, Mapping) and isinstance(c.get("code"), str)]
    for c in codings:
        if c.get("system") == MEASURED_VALUES_SYSTEM:
            return c["code"]
    return codings[0]["code"] if codings else None


def _absent_reason(population: Mapping) -> str | None:
    extensions = ((population.get("_count") or {}).get("extension")) or []
    for ext in extensions:
        if isinstance(ext, Mapping) and ext.get("url") == DATA_ABSENT_REASON_URL:
            return str(ext.get("valueCode") or "unknown")
    return None


def location_id_from_reference(reference: Any, contained: Mapping[str, Mapping] | None = None) -> str | None:
    """``Location/abc``, ``https://host/fhir/Location/abc/_history/2`` or ``#abc`` (contained) -> ``abc``."""
    if not isinstance(reference, str) or not reference.strip():
        return None
    ref = reference.strip()
    if ref.startswith("#"):
        res = (contained or {}).get(ref[1:])
        return res.get("id") if res and res.get("resourceType") == "Location" else None
    parts = ref.split("/")
    for i in range(len(parts) - 1):
        if parts[i] == "Location" and parts[i + 1]:
            return parts[i + 1]
    return None


def parse_measure_report(resource: Mapping[str, Any]) -> SanerReport:
    """Read a MeasureReport's populations by their codes; data-absent counts become None."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "MeasureReport":
        raise FhirReject("not_an_object", "not a FHIR MeasureReport")
    contained = {r.get("id"): r for r in resource.get("contained") or [] if isinstance(r, Mapping)}
    location = None
    for role in ("subject", "reporter"):
        location = location_id_from_reference((resource.get(role) or {}).get("reference"), contained)
        if location:
            break
    populations: dict[str, Population] = {}
    for group in resource.get("group") or []:
        if not isinstance(group, Mapping):
            raise FhirReject("wrong_type", "a MeasureReport group must be an object")
        for pop in group.get("population") or []:
            if not isinstance(pop, Mapping):
                raise FhirReject("wrong_type", "a MeasureReport population must be an object")
            code = _population_code(pop)
            if code is None:
                continue
            reason = _absent_reason(pop)
            parsed = Population(code, pop.get("count") if "count" in pop else None,
                                reason if "count" not in pop else None)
            earlier = populations.get(code)
            if earlier is not None and earlier.count != parsed.count:
                # The same measured value twice with different numbers: which one is true is for a person.
                raise FhirReject("invalid_value", f"population {code} appears twice with counts "
                                 f"{earlier.count!r} and {parsed.count!r}")
            populations[code] = parsed
    period = resource.get("period") or {}
    return SanerReport(report_id=resource.get("id"), measure=resource.get("measure"), status=resource.get("status"),
                       location_ref=location, date=resource.get("date"), period_start=period.get("start"),
                       period_end=period.get("end"), populations=populations)


def capacity_record(report: SanerReport) -> dict[str, Any]:
    """The pheoc capacity record (before validation) for a parsed report."""
    if report.status in UNUSABLE_STATUSES:
        raise FhirReject("invalid_value", f"MeasureReport status is {report.status!r}")
    if not report.location_ref:
        raise FhirReject("missing_field", "MeasureReport has no Location subject or reporter")
    record: dict[str, Any] = {"facility_id": report.location_ref, "reported_at": report.date}
    by_lower = {pop.code.lower(): pop for pop in report.populations.values()}
    for code, field_name in CAPACITY_FIELD_BY_CODE.items():
        pop = by_lower.get(code)
        if pop is not None and pop.count is not None:  # data-absent: leave the field out, i.e. missing
            record[field_name] = pop.count
    return record


def facility_record(location: Mapping[str, Any], organizations: Mapping[str, Mapping] | None = None
                    ) -> dict[str, Any]:
    """A Location as a facility registry record: id, name, kind, owner, position (when given)."""
    if not isinstance(location, Mapping) or location.get("resourceType") != "Location":
        raise FhirReject("not_an_object", "not a FHIR Location")
    record: dict[str, Any] = {"facility_id": location.get("id"), "name": location.get("name"),
                              "kind": _facility_kind(location)}
    position = location.get("position")
    if isinstance(position, Mapping):
        # FHIR position is longitude/latitude (WGS84); left out when absent, so validation says missing_field.
        record["lat"], record["lng"] = position.get("latitude"), position.get("longitude")
    owner = _owner(location.get("managingOrganization"), organizations or {})
    if owner:
        record["owner"] = owner
    return record


def _facility_kind(location: Mapping) -> str:
    for concept in location.get("type") or []:
        for coding in (concept or {}).get("coding") or []:
            kind = FACILITY_KIND_BY_ROLE_CODE.get(str((coding or {}).get("code", "")).upper())
            if kind:
                return kind
    return "hospital"


def _owner(managing: Any, organizations: Mapping[str, Mapping]) -> str | None:
    if not isinstance(managing, Mapping):
        return None
    if isinstance(managing.get("display"), str):
        return managing["display"]
    ref = managing.get("reference")
    org_id = ref.split("/")[-1] if isinstance(ref, str) else None
    name = (organizations.get(org_id) or {}).get("name") if org_id else None
    return name if isinstance(name, str) else None


# ---- documents ----------------------------------------------------------------------------------
def resources_in(doc: Any) -> Iterator[Mapping[str, Any]]:
    """Every resource of a document: the resource itself, or each entry of a Bundle (nested ones too)."""
    if not isinstance(doc, Mapping):
        return
    if doc.get("resourceType") == "Bundle":
        for entry in doc.get("entry") or []:
            resource = (entry or {}).get("resource") if isinstance(entry, Mapping) else None
            yield from resources_in(resource)
    else:
        yield doc


def may_be_fhir(name: str, head: bytes) -> bool:
    """Whether a file whose first bytes are ``head`` may hold a FHIR resource (worth parsing to see)."""
    return name.lower().endswith(".json") and b'"resourceType"' in head[:4096]


def is_fhir_document(doc: Any) -> bool:
    """Whether a parsed JSON document is a FHIR resource this module ingests."""
    return isinstance(doc, Mapping) and doc.get("resourceType") in FHIR_FILE_TYPES


def sniff_fhir(name: str, data: bytes) -> Any | None:
    """The parsed document if ``data`` is a JSON FHIR resource this module ingests, else None."""
    if not may_be_fhir(name, data):
        return None
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return None  # the ordinary file path reports it with its reason code
    return doc if is_fhir_document(doc) else None


def _raw(resource: Mapping) -> bytes:
    return json.dumps(resource, separators=(",", ":"), default=str).encode()


def ingest_fhir_document(doc: Any, store: Store, contexts: ContextProvider, source: str, *,
                         file_sha256: str | None = None, file_name: str | None = None) -> BatchResult:
    """Store a FHIR document's Locations (as facilities), then its MeasureReports (as capacity reports).

    Two batches, registry first, so a Bundle carrying a new facility and its report is accepted in one
    file; the file is marked as ingested with the second (last) batch.
    """
    resources = list(resources_in(doc))
    organizations = {r.get("id"): r for r in resources if r.get("resourceType") == "Organization"}
    total = BatchResult()
    locations = [r for r in resources if r.get("resourceType") == "Location"]
    if locations:
        ctx = contexts.get()
        builder = BatchBuilder(source, "file")
        for loc in locations:
            try:
                builder.add("facility", facility_record(loc, organizations), _raw(loc), ctx)
            except FhirReject as rej:
                builder.reject(rej.code, rej.detail, _raw(loc), kind="facility", record_key=_resource_id(loc))
            except Exception as exc:  # a resource shaped in a way this module does not foresee
                builder.reject("unexpected_error", describe_exception(exc), _raw(loc), kind="facility",
                               record_key=_resource_id(loc))
        total = total + commit_batch(store, builder.build())
        contexts.invalidate()
    ctx = contexts.get()
    builder = BatchBuilder(source, "file")
    for res in resources:
        if res.get("resourceType") != "MeasureReport":
            continue
        raw = _raw(res)
        try:
            record = capacity_record(parse_measure_report(res))
        except FhirReject as rej:
            builder.reject(rej.code, rej.detail, raw, kind="capacity", record_key=_resource_id(res))
            continue
        except Exception as exc:  # e.g. a subject that is a string, not a Reference object
            builder.reject("unexpected_error", describe_exception(exc), raw, kind="capacity",
                           record_key=_resource_id(res))
            continue
        builder.add("capacity", record, raw, ctx)
    return total + commit_batch(store, builder.build(file_sha256=file_sha256, file_name=file_name))


def _resource_id(resource: Mapping) -> str | None:
    rid = resource.get("id")
    return rid if isinstance(rid, str) else None
