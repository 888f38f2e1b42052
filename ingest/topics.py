"""MQTT topic layout under the configured prefix, and topic -> record kind.

    <prefix>/sensors/<sensor_id>/readings   one reading object, or a JSON array of them
    <prefix>/cases                          case reports
    <prefix>/tests                          test counts
    <prefix>/capacity/<facility_id>         facility capacity reports
    <prefix>/supplies/<facility_id>         supply stock reports

An id in the topic is implied for every record of the payload: a record may leave it out (it is
then taken from the topic); a record that names a different one is rejected with
``topic_mismatch``, because a sensor publishing under another sensor's topic is a wiring fault
or a spoof, and either way its numbers must not be filed under the wrong id.
"""
from __future__ import annotations

from dataclasses import dataclass

# Topics repeat (one per sensor or facility), so parsed routes are cached; the bound keeps a
# flood of distinct junk topics from growing memory.
ROUTE_CACHE_SIZE = 50_000


@dataclass(frozen=True, slots=True)
class TopicRoute:
    """What a topic says about its payload: the record kind and an id implied for every record."""
    kind: str | None  # None: the topic is not part of the layout (quarantined as unknown_kind)
    id_field: str | None = None
    id_value: str | None = None


UNKNOWN = TopicRoute(None)

# Topics without an id segment: <prefix>/<plural>
_FLAT = {"cases": "case", "tests": "test"}
# Topics with an id segment: <prefix>/<plural>/<id>  -> (kind, field the id fills)
_BY_FACILITY = {"capacity": ("capacity", "facility_id"), "supplies": ("supply", "facility_id")}


class TopicLayout:
    """Parses topics under one prefix (``mqtt.topic_prefix``, e.g. ``pheoc/putrajaya``)."""

    def __init__(self, prefix: str):
        self.prefix = prefix.strip("/")
        self._head = self.prefix + "/"
        self._cache: dict[str, TopicRoute] = {}

    @property
    def subscription(self) -> str:
        """One wildcard for everything under the prefix: topics outside the layout are not
        ignored but quarantined as ``unknown_kind``, so a misconfigured sender is visible."""
        return f"{self.prefix}/#"

    # ---- building topics (publishers, tests, the demo simulator) --------------------------------
    def readings(self, sensor_id: str) -> str:
        return f"{self.prefix}/sensors/{sensor_id}/readings"

    def cases(self) -> str:
        return f"{self.prefix}/cases"

    def tests(self) -> str:
        return f"{self.prefix}/tests"

    def capacity(self, facility_id: str) -> str:
        return f"{self.prefix}/capacity/{facility_id}"

    def supplies(self, facility_id: str) -> str:
        return f"{self.prefix}/supplies/{facility_id}"

    @property
    def publish_filters(self) -> tuple[str, ...]:
        """The layout as MQTT topic filters, ``+`` standing for an id: what a publisher may write to
        (the embedded broker's ACL). A topic outside these is refused by the broker."""
        return (self.readings("+"), self.cases(), self.tests(), self.capacity("+"), self.supplies("+"))

    # ---- parsing -------------------------------------------------------------------------------
    def route(self, topic: str) -> TopicRoute:
        """The route of a topic (cached); ``UNKNOWN`` when it is not part of the layout."""
        found = self._cache.get(topic)
        if found is None:
            found = self._parse(topic)
            if len(self._cache) >= ROUTE_CACHE_SIZE:
                self._cache.clear()
            self._cache[topic] = found
        return found

    def _parse(self, topic: str) -> TopicRoute:
        if not topic.startswith(self._head):
            return UNKNOWN
        parts = topic[len(self._head):].split("/")
        if len(parts) == 1 and parts[0] in _FLAT:
            return TopicRoute(_FLAT[parts[0]])
        if len(parts) == 2 and parts[0] in _BY_FACILITY and parts[1]:
            kind, field = _BY_FACILITY[parts[0]]
            return TopicRoute(kind, field, parts[1])
        if len(parts) == 3 and parts[0] == "sensors" and parts[1] and parts[2] == "readings":
            return TopicRoute("reading", "sensor_id", parts[1])
        return UNKNOWN
