"""Figures built once per input: a page asks for a figure with the same (already disclosed) data on every
refresh, and building it again gives the same figure.

The key is a digest of every argument the builder gets — the read model's frames as cut for the caller,
and the options — so a cached figure can only be served to a caller who would have been given exactly
these inputs, whoever they are: the key carries the privacy view because the inputs do. A figure is kept
as a plain dict ({"data": [...], "layout": {...}}, what Dash sends), so a hit costs neither Plotly's
validators nor its conversion of a go.Figure for JSON.
"""
from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable

from bounded_cache import BoundedCache
from components.figdict import from_go

# A few figures per page, times the areas and views being looked at.
MAX_FIGURES = 128

_figures: BoundedCache[object] = BoundedCache(MAX_FIGURES)


def digest(*args, **kwargs) -> bytes:
    """A digest of the arguments' pickle: equal pickles are equal inputs (a frame whose memory is laid out
    differently pickles differently: a miss, never a wrong hit)."""
    return hashlib.blake2b(pickle.dumps((args, sorted(kwargs.items())), protocol=5), digest_size=20).digest()


def as_dict(figure) -> dict:
    """A go.Figure (or a dict figure) as the dict Dash serialises."""
    return figure if isinstance(figure, dict) else from_go(figure)


def cached_figure(builder: Callable, *args, **kwargs) -> dict:
    """``builder(*args, **kwargs)`` as a dict figure, built once per distinct input.

    The figure is shared between requests: callers must not modify it.
    """
    return _cached(builder, as_dict, args, kwargs)


def cached_component(builder: Callable, *args, **kwargs):
    """``builder(*args, **kwargs)`` (a pure builder of Dash components: a table, a row of cards), built once
    per distinct input. Shared between requests like a figure: callers must not modify it."""
    return _cached(builder, lambda built: built, args, kwargs)


def _cached(builder: Callable, convert: Callable, args: tuple, kwargs: dict):
    code = getattr(builder, "__code__", None)  # two lambdas of one function share a name, not a line
    key = digest(f"{builder.__module__}.{builder.__qualname__}:{code.co_firstlineno if code else ''}", *args,
                 **kwargs)
    hit = _figures.get(key)
    if hit is not None:
        return hit
    built = convert(builder(*args, **kwargs))
    _figures.put(key, built)
    return built
