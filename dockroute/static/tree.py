"""The merged tree every source is turned into, and how messages name what is in it.

Leaves are :class:`Val` (a value and where it was set), a section switched off is :data:`OFF`, list items
given one by one are an :class:`Indexed`. Keys are matched with :func:`discover.values.find_key`, the one
case-insensitive lookup every configuration reader uses.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from discover.values import find_key
from dockroute.static.schema import NAMED_TRANSPORT_ONLY
from dockroute.static.settings import StaticConfigError

__all__ = ["OFF", "Indexed", "Val", "get", "got", "join", "merge", "unknown", "where"]


@dataclass(frozen=True)
class Val:
    """A leaf value and where it was set (for messages)."""

    value: Any
    origin: str


class _Off:
    """A section switched off (``--providers.docker=false``)."""

    def __repr__(self) -> str:
        return "<off>"


OFF = _Off()


class Indexed(dict):
    """List items given one by one (``trustedips[0]=…``, ``…_TRUSTEDIPS_1=…``), index -> item."""


def merge(low: Any, high: Any) -> Any:
    """``high`` over ``low``: dicts merge key by key (case-insensitively), anything else replaces."""
    if isinstance(low, dict) and isinstance(high, dict):
        out = dict(low)
        for k, v in high.items():
            existing = find_key(out, k)
            if existing is None:
                out[k] = v
            else:
                out[existing] = merge(out[existing], v)
        return out
    return high


def get(tree: Any, *keys: str) -> Any:
    """The node at ``keys`` (any case), or None."""
    for k in keys:
        if not isinstance(tree, dict):
            return None
        found = find_key(tree, k)
        if found is None:
            return None
        tree = tree[found]
    return tree


def got(value: Any) -> str:
    """How a message shows a value the user gave."""
    if isinstance(value, Indexed):
        value = [value[i] for i in sorted(value)]
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


def where(origin: str) -> str:
    return f" ({origin})" if origin else ""


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _suggest(key: str, choices: Sequence[str]) -> str:
    low = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(key.lower(), list(low), n=1, cutoff=0.6)
    return f" (did you mean '{low[close[0]]}'?)" if close else ""


def unknown(path: str, key: str, choices: Sequence[str], origin: str) -> StaticConfigError:
    """The error for a key the schema does not have at ``path``, with a hint when one helps."""
    named_only = find_key(NAMED_TRANSPORT_ONLY.get(path, ()), key)
    if named_only is not None:
        below = path.removeprefix("serversTransport").lstrip(".")  # "" or "forwardingTimeouts"
        dynamic = ".".join(filter(None, ("http.serversTransports.<name>", below, named_only)))
        hint = f": {named_only} belongs to a named transport ({dynamic}, dynamic configuration)"
    else:
        hint = _suggest(key, choices)
    return StaticConfigError(join(path, key), f"unknown key{hint}{where(origin)}")
