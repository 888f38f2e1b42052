"""The only way pages register callbacks: each one declares a permission, checked on every call."""
from __future__ import annotations

import functools

import dash

from auth.callbacks import register_callback
from auth.policy import require


def secure_callback(permission: str, *args, **kwargs):
    """Like dash.callback, but the request is authorised server-side before the body runs."""
    def decorate(fn):
        @functools.wraps(fn)
        def guarded(*a, **k):
            require(permission)
            return fn(*a, **k)
        register_callback(fn, permission)
        return dash.callback(*args, **kwargs)(guarded)
    return decorate
