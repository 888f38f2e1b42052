"""The only way pages register callbacks: each one declares a permission, checked on every call.

Each Input and State also has a JSON type, checked on every request before the body runs
(auth.callback_inputs): inferred from the property (n_intervals, pathname, value, ...) or declared
with ``types={"<id>.<property>": "object"}`` where the property does not tell (a dcc.Store's data).
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

import dash
from dash.dependencies import handle_callback_args

from auth.callbacks import register_callback
from auth.policy import require


def _flat(dependencies) -> list:
    """Dependencies given positionally, as a list, or as a dict of named ones (Dash accepts all three)."""
    if isinstance(dependencies, dict):
        return [d for value in dependencies.values() for d in _flat(value)]
    if isinstance(dependencies, (list, tuple)):
        return [d for value in dependencies for d in _flat(value)]
    return [dependencies]


def secure_callback(permission: str, *args, types: Mapping[str, str | Iterable[str]] | None = None, **kwargs):
    """Like dash.callback, but the request is authorised server-side and its input types checked first."""
    def decorate(fn):
        @functools.wraps(fn)
        def guarded(*a, **k):
            require(permission)
            return fn(*a, **k)
        _, inputs, states, _ = handle_callback_args(list(args), dict(kwargs))
        register_callback(fn, permission, _flat(inputs), _flat(states), types)
        return dash.callback(*args, **kwargs)(guarded)
    return decorate


def clicked_pattern_id() -> dict | None:
    """The pattern-matching id of the button a person clicked in this callback, or None.

    Buttons drawn anew (a table or list re-rendered on refresh) fire their n_clicks Input with 0: that
    is not a click, and a callback that acted on it would act for nobody.
    """
    clicked = dash.ctx.triggered_id
    if not isinstance(clicked, dict) or not any(t.get("value") for t in dash.ctx.triggered):
        return None
    return clicked
