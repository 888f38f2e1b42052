"""The published JSON Schemas match the validator, and documented examples validate."""
from __future__ import annotations

import json

from ingest.schemas import OUT, render_all


def test_published_schemas_are_current():
    for name, text in render_all().items():
        assert (OUT / name).read_text() == text, f"schemas/{name} is stale: run python -m ingest.schemas"


def test_schemas_agree_with_validator_on_required_fields():
    from ingest.records import FIELD_SPECS
    for kind, specs in FIELD_SPECS.items():
        schema = json.loads((OUT / f"{kind}.schema.json").read_text())
        assert set(schema["required"]) == {n for n, s in specs.items() if s.required}
        assert set(schema["properties"]) == set(specs)


def test_docs_name_every_kind_and_reason_code():
    from pathlib import Path

    from ingest.reasons import REASONS
    from ingest.records import FIELD_SPECS
    doc = (Path(__file__).resolve().parents[1] / "docs" / "ingest.md").read_text()
    for kind in FIELD_SPECS:
        assert f"#### `{kind}`" in doc
    for code in REASONS:
        assert f"`{code}`" in doc
