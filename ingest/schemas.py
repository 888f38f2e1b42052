"""JSON Schemas (draft 2020-12) of the record formats, generated from ingest.records.FIELD_SPECS.

`python -m ingest.schemas` rewrites schemas/*.schema.json; a test checks they are current, so the
published schemas and the validator cannot drift apart.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ingest import records as r

OUT = Path(__file__).resolve().parents[1] / "schemas"
_TIMESTAMP_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$"


def _field_schema(spec: r.FieldSpec) -> dict:
    p = spec.parse
    if hasattr(p, "allowed"):
        return {"type": "string", "enum": list(p.allowed)}
    return {
        r._text: {"type": "string"},
        r._number: {"type": "number"},
        r._finite: {"type": "number"},
        r._count: {"type": "integer", "minimum": 0},
        r._nonneg_float: {"type": "number", "minimum": 0},
        r._bool: {"type": "boolean"},
        r._date: {"type": "string", "format": "date"},
        r._timestamp: {"type": "string", "format": "date-time", "pattern": _TIMESTAMP_WITH_OFFSET},
        r._geometry: {"type": "object", "description": "GeoJSON Polygon or MultiPolygon (lng, lat)"},
        r._point: {"type": "object", "description": "GeoJSON Point (lng, lat)"},
    }[p]


def schema_for(kind: str) -> dict:
    specs = r.FIELD_SPECS[kind]
    props = {}
    for name, spec in specs.items():
        prop = _field_schema(spec)
        if spec.maximum is not None:
            prop["maximum"] = spec.maximum  # the store's column holds no more (ingest.records)
        if spec.doc:
            prop["description"] = spec.doc
        props[name] = prop if spec.required else {"anyOf": [prop, {"type": "null"}], **(
            {"description": spec.doc} if spec.doc else {})}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"pheoc/{kind}.schema.json",
        "title": f"pheoc {kind} record",
        "type": "object",
        "properties": props,
        "required": [n for n, s in specs.items() if s.required],
        "additionalProperties": False,
    }


def render_all() -> dict[str, str]:
    return {f"{kind}.schema.json": json.dumps(schema_for(kind), indent=2) + "\n" for kind in r.FIELD_SPECS}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render_all().items():
        (OUT / name).write_text(text)
    print(f"wrote {len(r.FIELD_SPECS)} schemas to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
