"""The callback registry: which permission each Dash callback declared, and the JSON types of its inputs.

pages._secure.secure_callback registers every page callback here; auth.web authorises each
``/_dash-update-component`` request against it before Dash dispatches the call, refuses a
callback that is not registered (default deny), and checks the request's inputs against their
types (auth.callback_inputs). Kept in auth/ so auth never imports pages.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from auth.callback_inputs import check_declarations

# "module.function" -> permission
CALLBACK_PERMISSIONS: dict[str, str] = {}
# "module.function" -> {"<id>.<property>": JSON types} declared beyond what the property names tell
CALLBACK_INPUT_TYPES: dict[str, dict[str, frozenset[str]]] = {}


def callback_key(fn: Callable) -> str:
    """How a callback is named in the registry: module.function (Dash's wrappers keep both)."""
    return f"{fn.__module__}.{fn.__name__}"


def register_callback(fn: Callable, permission: str, inputs: list = (), states: list = (),
                      types: Mapping[str, str | Iterable[str]] | None = None) -> None:
    """Record a callback's permission and input types; a typo or an input of unknown type fails at import."""
    from auth.principal import PERMISSIONS

    key = callback_key(fn)
    if permission not in PERMISSIONS:
        raise ValueError(f"{key} declares unknown permission {permission!r}")
    CALLBACK_INPUT_TYPES[key] = check_declarations(key, list(inputs), list(states), types)
    CALLBACK_PERMISSIONS[key] = permission


def permissions_of_module(module: str | None) -> frozenset[str]:
    """Every permission the callbacks of one page module declare."""
    return frozenset(p for key, p in CALLBACK_PERMISSIONS.items() if key.rsplit(".", 1)[0] == module)
