"""What a Dash callback request must look like before Dash runs it: its shape and each input's JSON type.

Dash hands ``inputs`` and ``state`` of a POST to /_dash-update-component to the callback by
position: item i is the value of the callback's i-th Input (its ``callback_map`` entry). Anyone can
POST there, so a request may put another property at a position, leave items out, or carry a JSON
object where the component always sends a string or a number; the callback body would then fail
(HTTP 500 and a traceback in the log) or, for Dash's page router, read a different path than the
one authorised. Here each item is checked against the dependency at its position (id and
property) and its value against the JSON types that property holds; any mismatch is HTTP 400 with
a JSON body, before the callback body runs.

Types are JSON Schema type names: string, number, integer, boolean, object, array, null. They are
inferred from the property name for the properties this app's callbacks read from Dash's core
components (PROPERTY_TYPES, from the dcc and html component reference); a callback declares any
other, e.g. a dcc.Store's ``data`` or a multi-select's ``value``, with
``pages._secure.secure_callback(..., types={"<id>.<property>": "object"})``. Nested shapes are the
callback's to check: only the top-level type is enforced here.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Response
from werkzeug.exceptions import BadRequest

JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
# The JSON types each property can hold, as the Dash component reference documents them
# (dash.plotly.com/dash-core-components, dash-html-components): n_clicks and n_intervals count,
# dcc.Location's pathname and search are strings, a single-valued dcc.Dropdown/RadioItems value is
# a string or number, dcc.Graph's clickData is an object, dcc.Dropdown options a list or a dict.
# Every one may be null before the component first sets it.
PROPERTY_TYPES: dict[str, frozenset[str]] = {
    "n_clicks": frozenset({"integer", "null"}),
    "n_intervals": frozenset({"integer", "null"}),
    "pathname": frozenset({"string", "null"}),
    "search": frozenset({"string", "null"}),
    "value": frozenset({"string", "number", "boolean", "null"}),
    "clickData": frozenset({"object", "null"}),
    "options": frozenset({"array", "object", "null"}),
}
# A pattern-matching input (ALL) sends one item per matching component; a page has tens of them.
MAX_PATTERN_ITEMS = 10_000
WILDCARDS = ("ALL", "ALLSMALLER", "MATCH")


class BadCallbackRequest(BadRequest):
    """HTTP 400 for a callback request whose shape or input types do not match the callback."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem

    def get_response(self, environ=None, scope=None) -> Response:
        body = json.dumps({"error": "bad_request", "detail": self.problem})
        return Response(body, status=400, mimetype="application/json")


def type_spec(spec: str | Iterable[str], where: str) -> frozenset[str]:
    """A declared type ("object", or several: ("object", "null")) as a set of JSON type names."""
    names = frozenset([spec] if isinstance(spec, str) else spec)
    unknown = names - JSON_TYPES
    if not names or unknown:
        raise ValueError(f"{where}: unknown JSON type(s) {sorted(unknown) or '(none)'}; use {sorted(JSON_TYPES)}")
    return names


def json_type(value: Any) -> str:
    """The JSON Schema type of a parsed JSON value (integers are numbers too; see matches())."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def matches(value: Any, allowed: frozenset[str]) -> bool:
    kind = json_type(value)
    return kind in allowed or (kind == "integer" and "number" in allowed)


def prop_id(dependency: Mapping[str, Any]) -> str:
    """A dependency as Dash names it: "<id>.<property>" (a pattern id as its JSON string)."""
    return f"{dependency['id']}.{dependency['property']}"


def expected_types(dependency: Mapping[str, Any], declared: Mapping[str, frozenset[str]]) -> frozenset[str] | None:
    return declared.get(prop_id(dependency)) or PROPERTY_TYPES.get(dependency["property"])


def _pattern(component_id: str) -> dict | None:
    if component_id.startswith("{"):
        return json.loads(component_id)
    return None


def _is_multi(pattern: dict | None) -> bool:
    """ALL and ALLSMALLER send a list of items; MATCH sends one."""
    return pattern is not None and any(isinstance(v, list) and v and v[0] in ("ALL", "ALLSMALLER")
                                       for v in pattern.values())


def _id_matches(sent: Any, component_id: str, pattern: dict | None) -> bool:
    if pattern is None:
        return sent == component_id
    if not isinstance(sent, dict) or set(sent) != set(pattern):
        return False
    for key, want in pattern.items():
        value = sent[key]
        if isinstance(want, list) and want and want[0] in WILDCARDS:
            if not isinstance(value, (str, int, float, bool)) or value is None:
                return False
        elif value != want:
            return False
    return True


def _item(sent: Any, component_id: str, prop: str, pattern: dict | None, where: str) -> None:
    if not isinstance(sent, dict):
        raise BadCallbackRequest(f"{where}: expected an object with id and property")
    if sent.get("property") != prop or not _id_matches(sent.get("id"), component_id, pattern):
        raise BadCallbackRequest(f"{where}: expected {component_id}.{prop}")


def _items(sent: Any, dependency: Mapping[str, Any], where: str) -> list[dict]:
    """The request's item(s) for one dependency, checked against its id and property."""
    component_id, prop = str(dependency["id"]), dependency["property"]
    pattern = _pattern(component_id)
    if _is_multi(pattern):
        if not isinstance(sent, list) or len(sent) > MAX_PATTERN_ITEMS:
            raise BadCallbackRequest(f"{where}: expected a list of {component_id}.{prop} items")
        for j, one in enumerate(sent):
            _item(one, component_id, prop, pattern, f"{where}[{j}]")
        return list(sent)
    _item(sent, component_id, prop, pattern, where)
    return [sent]


@dataclass(frozen=True, slots=True)
class CheckedCall:
    """The values of a checked request by position (a list of values for a pattern-matching input)."""
    inputs: tuple[Any, ...]
    state: tuple[Any, ...]


def _dependencies(sent: Any, dependencies: list[Mapping[str, Any]], declared: Mapping[str, frozenset[str]],
                  section: str) -> tuple[Any, ...]:
    if not isinstance(sent, list) or len(sent) != len(dependencies):
        raise BadCallbackRequest(f"{section}: expected a list of {len(dependencies)} item(s)")
    values = []
    for i, (one, dependency) in enumerate(zip(sent, dependencies)):
        where = f"{section}[{i}] ({prop_id(dependency)})"
        items = _items(one, dependency, where)
        allowed = expected_types(dependency, declared)
        if allowed is None:  # secure_callback refuses untyped inputs; this is Dash's router or a stray callback
            raise BadCallbackRequest(f"{where}: the callback declares no type for this input")
        for item in items:
            if not matches(item.get("value"), allowed):
                raise BadCallbackRequest(f"{where}: expected {' or '.join(sorted(allowed))}, "
                                         f"got {json_type(item.get('value'))}")
        values.append([item.get("value") for item in items] if isinstance(one, list) else items[0].get("value"))
    return tuple(values)


def check_request(body: Mapping[str, Any], entry: Mapping[str, Any],
                  declared: Mapping[str, frozenset[str]]) -> CheckedCall:
    """Check a callback request against its callback_map entry; raise BadCallbackRequest on any mismatch."""
    outputs = entry["output"]
    output_deps = outputs if isinstance(outputs, list) else [outputs]
    sent_outputs = body.get("outputs")
    if not isinstance(outputs, list):
        sent_outputs = [sent_outputs]
    if not isinstance(sent_outputs, list) or len(sent_outputs) != len(output_deps):
        raise BadCallbackRequest(f"outputs: expected {len(output_deps)} item(s)")
    for i, (one, dep) in enumerate(zip(sent_outputs, output_deps)):
        dependency = {"id": dep.component_id_str(), "property": dep.component_property}
        _items(one, dependency, f"outputs[{i}] ({prop_id(dependency)})")
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        raise BadCallbackRequest("changedPropIds: expected a list of strings")
    inputs = _dependencies(body.get("inputs"), entry["inputs"], declared, "inputs")
    state = _dependencies(body.get("state", []), entry.get("state", []), declared, "state")
    return CheckedCall(inputs, state)


def check_declarations(key: str, inputs: list, states: list,
                       declared: Mapping[str, str | Iterable[str]] | None) -> dict[str, frozenset[str]]:
    """At registration: every Input and State has a known type, and every declaration names one of them."""
    declared = {name: type_spec(spec, f"{key}: types[{name!r}]") for name, spec in (declared or {}).items()}
    names = set()
    for dep in [*inputs, *states]:
        dependency = {"id": dep.component_id_str(), "property": dep.component_property}
        names.add(prop_id(dependency))
        if expected_types(dependency, declared) is None:
            raise ValueError(f"{key}: no JSON type is known for {prop_id(dependency)}; declare it, e.g. "
                             f"secure_callback(..., types={{{prop_id(dependency)!r}: 'object'}})")
    stray = set(declared) - names
    if stray:
        raise ValueError(f"{key}: types declared for {sorted(stray)}, which are not inputs or state of it")
    return declared
