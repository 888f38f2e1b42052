"""The address check before entering a house: the one function the /precincts page and
GET /api/v1/address-check both call.

An officer gives an address (or a point) and the purpose of the visit. The answer has exactly five
keys (ANSWER_KEYS): the precinct at that point, the containment-zone tier there, whether a counted
case reported within ``police.isolation_days`` is at that address, the sentence to act on, and when
the check was made. Nothing else about any case leaves this module: no name, age, sex, case id,
date, diagnosis, nor even how many cases.

Who learns what:
* the zone tier is answered anywhere in the city (a zone is a public order);
* the active-case flag only inside the caller's precincts when it is bound to precincts
  (services.privacy.point_in_scope); elsewhere it is null with "Not available outside your precincts.";
* every check is rate-limited per user and per address (auth.address_check_rate_per_min, one token
  bucket each) and written to the audit log (action ``address_check``: user, time, query, purpose,
  precinct, whether the flag was shown) before the answer is returned, so nothing is shown that the
  log lacks.

A case is "at" an address when its reported point lies within CASE_MATCH_M of the address's point.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from auth.principal import Principal
from auth.ratelimit import RateLimiter
from geo.cells import latlng_to_cell
from rulebooks import load_zone_rulebook
from services.address_search import address_by_id, find_address, suggest_addresses
from services.precincts import precinct_index
from services.privacy import jurisdiction, point_in_scope
from settings import Settings
from store import Store
from store import queries_addresses as qa
from store import queries_clusters as qc
from store.definitions import as_of_day
from store.queries_access import submit_audit

ANSWER_KEYS = ("precinct", "zone_tier", "active_case_at_address", "precautions", "checked_at")
AUDIT_ACTION = "address_check"
RATE_KIND = "address_check"
# Two geocodes of one address agree to within a few metres; neighbouring door points of a terrace are
# 6-8 m apart. 5 m finds the address's own cases and not the neighbours'.
CASE_MATCH_M = 5.0
# A purpose says why the officer is there ("domestic call, 14 Jalan Melati 3"): a word or two at least,
# a short note at most (the audit record keeps it whole).
PURPOSE_MIN_CHARS, PURPOSE_MAX_CHARS = 3, 200
NOT_AVAILABLE = "Not available outside your precincts."
_POINT = re.compile(r"^\s*(-?\d{1,2}(?:\.\d+)?)\s*[,;\s]\s*(-?\d{1,3}(?:\.\d+)?)\s*$")


class AddressCheckRefused(ValueError):
    """The check was not made: ``status`` is the HTTP status the API answers, ``parameter`` the one at fault."""

    def __init__(self, status: int, code: str, message: str, parameter: str | None = None,
                 suggestions: tuple[dict, ...] = ()):
        super().__init__(message)
        self.status, self.code, self.message, self.parameter = status, code, message, parameter
        self.suggestions = suggestions


@dataclass(frozen=True)
class Place:
    """Where the check looks: a gazetteer address or a bare point."""
    lat: float
    lng: float
    query: str  # what was asked, as the audit log keeps it
    address_id: str | None = None
    text: str | None = None

    @property
    def rate_key(self) -> str:
        # ~10 m squares for a bare point: checking a house by coordinates is checking that house.
        return f"address:{self.address_id}" if self.address_id else f"point:{self.lat:.4f},{self.lng:.4f}"


def point_of_text(text: str) -> tuple[float, float] | None:
    """"2.9312, 101.6874" (lat, lng) typed into the address box, or None if the text is not a point."""
    m = _POINT.match(text or "")
    if not m:
        return None
    lat, lng = float(m.group(1)), float(m.group(2))
    return (lat, lng) if -90 <= lat <= 90 and -180 <= lng <= 180 else None


def checked_purpose(purpose: str | None) -> str:
    text = " ".join((purpose or "").split())
    if len(text) < PURPOSE_MIN_CHARS:
        raise AddressCheckRefused(400, "purpose_required", "say why you are checking this address (purpose)",
                                  "purpose")
    if len(text) > PURPOSE_MAX_CHARS:
        raise AddressCheckRefused(400, "bad_parameter", f"purpose is longer than {PURPOSE_MAX_CHARS} characters",
                                  "purpose")
    return text


def resolve_place(store: Store, *, address: str | None = None, address_id: str | None = None,
                  lat: float | None = None, lng: float | None = None) -> Place:
    """The place asked about: exactly one of an address text, a gazetteer id, or lat with lng."""
    given = [name for name, v in (("address", address), ("address_id", address_id), ("lat", lat), ("lng", lng))
             if v is not None]
    if address_id is not None and len(given) == 1:
        found = address_by_id(store, address_id)
        if found is None:
            raise AddressCheckRefused(404, "unknown_address", f"no address with id {address_id!r:.60}", "address_id")
        return Place(found.lat, found.lng, f"id:{address_id}", found.address_id, found.text)
    if address is not None and len(given) == 1:
        matches = find_address(store, address)
        if len(matches) == 1:
            return Place(matches[0].lat, matches[0].lng, address, matches[0].address_id, matches[0].text)
        options = tuple({"id": m.address_id, "text": m.text} for m in (matches or suggest_addresses(store, address, 5)))
        if matches:
            raise AddressCheckRefused(409, "ambiguous_address", f"{len(matches)} addresses read {address!r:.80}; "
                                      "check one by its id", "address", options)
        raise AddressCheckRefused(404, "unknown_address", f"no address {address!r:.80} in the gazetteer", "address",
                                  options)
    if lat is not None and lng is not None and len(given) == 2:
        if not (math.isfinite(lat) and math.isfinite(lng) and -90 <= lat <= 90 and -180 <= lng <= 180):
            raise AddressCheckRefused(400, "bad_parameter", "lat must be in -90..90 and lng in -180..180", "lat")
        return Place(lat, lng, f"point:{lat:.6f},{lng:.6f}")
    raise AddressCheckRefused(400, "bad_parameter", "give address=TEXT, or lat and lng (one of them, not both)",
                              "address" if not given else given[-1])


def zone_tier_at(store: Store, settings: Settings, lat: float, lng: float) -> str | None:
    """The most restrictive tier of the zones in force holding the point's cell (None: in no zone)."""
    rulebook = load_zone_rulebook(settings)
    cell = latlng_to_cell(lat, lng, settings.clusters.resolution)
    tiers = list(qc.zones_holding_cell(store, cell)["tier"])
    return max(tiers, key=rulebook.rank) if tiers else None


def _active_case(store: Store, settings: Settings, place: Place, today: date) -> bool:
    as_of = as_of_day(store, today, settings.city.timezone)
    if as_of is None:
        return False  # no case data at all: no case reported here
    since = as_of - timedelta(days=settings.police.isolation_days - 1)
    return qa.counted_cases_near(store, place.lat, place.lng, CASE_MATCH_M, since, as_of) > 0


def precautions_text(settings: Settings, flag: bool | None) -> str:
    """The sentence the officer acts on: the same words on the page and in the API."""
    if flag is None:
        return NOT_AVAILABLE
    if flag:
        return f"Active case at this address: take precautions. {settings.police.precautions}"
    return f"No active case reported at this address in the last {settings.police.isolation_days} days."


def check_address(store: Store, settings: Settings, principal: Principal, limiter: RateLimiter, *,
                  purpose: str | None, address: str | None = None, address_id: str | None = None,
                  lat: float | None = None, lng: float | None = None, now: datetime | None = None) -> dict:
    """Check one place for ``principal``; return the answer (ANSWER_KEYS) or raise AddressCheckRefused."""
    principal.require("check_address")
    purpose = checked_purpose(purpose)
    if not limiter.allow(RATE_KIND, f"user:{principal.user}"):
        raise AddressCheckRefused(429, "rate_limited", "too many address checks; wait a minute")
    place = resolve_place(store, address=address, address_id=address_id, lat=lat, lng=lng)
    if not limiter.allow(RATE_KIND, place.rate_key):
        raise AddressCheckRefused(429, "rate_limited", "this address was checked too often; wait a minute")
    now = now or datetime.now(timezone.utc)
    tz = ZoneInfo(settings.city.timezone)
    index = precinct_index(store)
    precinct_id = index.locate_one(place.lat, place.lng)
    precinct = None if precinct_id is None else {"id": precinct_id, "name": index.name(precinct_id)}
    flag = None
    if point_in_scope(principal, place.lat, place.lng, jurisdiction(store)):
        flag = _active_case(store, settings, place, now.astimezone(tz).date())
    answer = {"precinct": precinct, "zone_tier": zone_tier_at(store, settings, place.lat, place.lng),
              "active_case_at_address": flag, "precautions": precautions_text(settings, flag),
              "checked_at": now.astimezone(tz).isoformat(timespec="seconds")}
    detail = {"role": principal.role, "via": principal.via, "query": place.query[:200], "purpose": purpose,
              "address_id": place.address_id, "precinct": precinct_id, "zone_tier": answer["zone_tier"],
              "flag_available": flag is not None, "flag_shown": flag is True}
    # Committed before the answer leaves: the log holds every check whose answer anyone saw.
    submit_audit(store, principal.user, AUDIT_ACTION, place.address_id or place.query[:200], detail).result(timeout=30)
    return answer
