"""Building blocks shared by the OpenAPI descriptions (api.openapi and api.openapi_alerts)."""
from __future__ import annotations


def error_response(description: str) -> dict:
    """A response documented as the API's one error body (components.schemas.Error)."""
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def query_param(name: str, description: str, schema: dict) -> dict:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
