"""Audit of read access: one ``data_access`` record per release of cell- or case-level rows to a
signed-in caller (ISO/IEC 5153-1 §10: who saw which personal data, when).

Before each request a fresh ledger starts (auth.ledger); services.privacy notes every table of
cells or cases it hands out; when the response leaves, each release becomes a record with the
user, the resource, the request's parameters (a callback's inputs, an API call's query) and the
number of rows. Cell-level records go through the AuditBuffer (committed together within seconds);
case-level ones are committed before the response leaves, so nothing is shown that the log lacks.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, request

from auth.ledger import start_ledger, take_releases
from auth.policy import current_principal, record_data_access

log = logging.getLogger(__name__)
MAX_PARAMETER_CHARS = 400  # enough to say what was asked; a read record is not a copy of the request


def _parameters() -> dict[str, Any]:
    """What the caller asked for: a callback's output and input values, or a path and its query."""
    if request.path == "/_dash-update-component":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return {"callback": None}
        inputs = {}
        for item in (body.get("inputs") or []) + (body.get("state") or []):
            if isinstance(item, dict) and "property" in item:
                key = f"{json.dumps(item.get('id'), sort_keys=True, default=str)}.{item['property']}"
                inputs[key] = item.get("value")
        text = json.dumps(inputs, sort_keys=True, default=str)
        return {"callback": str(body.get("output"))[:200], "inputs": text[:MAX_PARAMETER_CHARS]}
    return {"path": request.path, "query": request.query_string.decode(errors="replace")[:MAX_PARAMETER_CHARS]}


def _before() -> None:
    start_ledger()


def _after(response: Response) -> Response:
    releases = take_releases()
    if not releases or response.status_code >= 400:
        return response  # a refused request released nothing
    principal = current_principal()
    if not principal.signed_in:
        return response
    parameters = _parameters()
    for release in releases:
        try:
            record_data_access(release.resource, release.level, release.rows, principal=principal, **parameters)
        except Exception:  # the log write failing must not turn into a silent read: refuse the response
            log.exception("could not audit a read of %s by %s", release.resource, principal.user)
            return Response('{"error": "the read could not be audited"}', status=503, mimetype="application/json")
    return response


def install_read_audit(server: Flask) -> None:
    server.before_request(_before)
    server.after_request(_after)
