"""Request-bound access checks: the current principal, require(), refusals, and the audit of access.

Every Dash callback and every API endpoint is a public HTTP endpoint, so each checks permission
itself: pages register callbacks through pages._secure.secure_callback (which calls require()
before the body runs), API handlers call require() first, and auth.web checks every callback POST
against the registry before Dash dispatches it.

The principal of a request is put on flask.g by auth.web's before_request hook, from the session
cookie or a bearer token; a request without valid credentials acts as the ``public`` role. Code
outside a web request (jobs, the CLI, tests of services) acts as ``system``.
"""
from __future__ import annotations

import logging
from typing import Any, NoReturn

from flask import current_app, g, has_request_context, request
from werkzeug.exceptions import Forbidden

from auth.principal import PERMISSIONS, Principal, public_principal, system_principal

log = logging.getLogger(__name__)

PRINCIPAL_KEY = "pheoc_principal"  # flask.g attribute set by auth.web's before_request hook
AUDIT_BUFFER_KEY = "pheoc.audit_buffer"
DENIALS_KEY = "pheoc.denials"  # the app's auth.denials.DenialLog (set by auth.web.install_auth)


def current_principal() -> Principal:
    """The caller: from the session or token inside a web request (public without one), `system` outside."""
    if not has_request_context():
        return system_principal()
    principal = g.get(PRINCIPAL_KEY)
    return principal if principal is not None else public_principal()


class PolicyDenied(Forbidden):
    """HTTP 403 for a request the permission table does not allow; recorded in the audit log."""

    def __init__(self, principal: Principal, target: str, reason: str):
        super().__init__(f"{principal.role} may not {target}")
        self.principal, self.target, self.reason = principal, target, reason


def deny(principal: Principal, target: str, reason: str = "missing_permission", **detail: Any) -> NoReturn:
    """Record a policy denial in the audit log and refuse the request with HTTP 403.

    Inside the running app, denials go through its DenialLog: the first of a kind per window is
    written at once, repeats are counted into one record (see auth.denials).
    """
    try:
        denials = current_app.extensions.get(DENIALS_KEY) if has_request_context() else None
        if denials is not None:
            denials.record(principal.user, target, _context(principal, {"reason": reason, **detail}),
                           signed_in=principal.signed_in)
        else:
            audit("policy_denied", target, principal=principal, reason=reason, **detail)
    except Exception:  # the request is refused whether or not the log write went through
        log.exception("could not record a policy denial of %s for %s", target, principal.user)
    raise PolicyDenied(principal, target, reason)


def require(permission: str) -> Principal:
    """Return the caller if allowed; otherwise log the denial and refuse the request with HTTP 403."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    principal = current_principal()
    if permission not in principal.permissions:
        deny(principal, permission)
    return principal


def _context(principal: Principal, detail: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {"role": principal.role, "via": principal.via, **detail}
    if has_request_context():
        info.setdefault("addr", request.remote_addr)
    return info


def audit(action: str, target: str | None = None, *, principal: Principal | None = None, wait: bool = False,
          **detail: Any) -> None:
    """Append to the audit log as the caller (inside a request of the running app).

    ``wait`` blocks until the record is committed: use it before handing out case-level data, so
    nothing is shown that the log does not hold.
    """
    from auth.runtime import current_runtime
    from store.queries_access import submit_audit

    principal = principal or current_principal()
    future = submit_audit(current_runtime().store, principal.user, action, target, _context(principal, detail))
    if wait:
        future.result(timeout=30)


def record_data_access(resource: str, level: str, rows: int, principal: Principal | None = None,
                       **parameters: Any) -> None:
    """Audit a response that carries cell- or case-level data to a signed-in caller.

    One ``data_access`` record per response: user, resource, parameters, rows. Case-level
    ("points") reads are committed before the call returns; cell-level reads go through the
    AuditBuffer and are committed within seconds, in one writer transaction with their neighbours.
    """
    principal = principal or current_principal()
    if not principal.signed_in or rows <= 0:
        return  # the public never receives cell- or case-level data; an empty answer reveals nothing
    detail = {"level": level, "rows": int(rows), "params": parameters}
    buffer = current_app.extensions.get(AUDIT_BUFFER_KEY) if has_request_context() else None
    if level == "points" or buffer is None:
        audit("data_access", resource, principal=principal, wait=level == "points", **detail)
        return
    buffer.add(principal.user, "data_access", resource, _context(principal, detail))
