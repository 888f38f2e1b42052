"""The only way pages register callbacks: each one declares a permission, checked on every call."""
from __future__ import annotations

import functools

import dash

from services.access import require

# callback function name -> permission, so tests can check every callback declares one.
CALLBACK_PERMISSIONS: dict[str, str] = {}


def secure_callback(permission: str, *args, **kwargs):
    """Like dash.callback, but the request is authorised server-side before the body runs."""
    def decorate(fn):
        @functools.wraps(fn)
        def guarded(*a, **k):
            require(permission)
            return fn(*a, **k)
        CALLBACK_PERMISSIONS[f"{fn.__module__}.{fn.__name__}"] = permission
        return dash.callback(*args, **kwargs)(guarded)
    return decorate
