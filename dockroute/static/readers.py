"""Typed reads of the merged tree: one place that checks every value, whichever source set it.

Booleans are read with :func:`discover.values.parse_bool` (Go's ``strconv.ParseBool`` words, as Traefik
reads them from labels, files, flags and environment alike); option words and keys are matched with
:func:`discover.values.find_key`. Every error names the key path and the flag, variable or file that set it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from discover.parse import parse_duration
from discover.values import BOOL_WORDS, find_key, parse_bool
from dockroute.static.settings import StaticConfigError
from dockroute.static.tree import OFF, Indexed, Val, get, got, join, where

__all__ = ["Reader", "check_address"]

_WHOLE_NUMBER = re.compile(r"\s*[+-]?\d{1,18}\s*")  # bounded: no 10,000-digit int() on a typo


class Reader:
    """Typed access to one section of the merged tree, with errors naming the key path."""

    def __init__(self, tree: Any, path: str) -> None:
        self.tree = tree if isinstance(tree, dict) else {}
        self.path = path

    def sub(self, *keys: str) -> Reader:
        return Reader(get(self.tree, *keys), ".".join([self.path, *keys]))

    def has(self, *keys: str) -> bool:
        return get(self.tree, *keys) is not None

    def sections(self, key: str) -> list[Reader]:
        """The items of a list of sections (:class:`~dockroute.static.schema.ListOf`), in index order;
        an item switched off (``--….domains[1]=false``) is left out."""
        node = get(self.tree, key)
        if not isinstance(node, dict):
            return []
        path = join(self.path, key)
        return [Reader(node[i], f"{path}[{i}]") for i in sorted(node, key=int) if node[i] is not OFF]

    def leaf(self, key: str) -> tuple[str, Any, str] | None:
        """(key path, value, origin) of a leaf that was set, or None."""
        v = get(self.tree, key)
        if not isinstance(v, Val) or v.value is None:
            return None
        return join(self.path, key), v.value, v.origin

    def origin(self, key: str) -> str:
        found = self.leaf(key)
        return found[2] if found else ""

    def text(self, key: str, default: str | None = None, *, choices: Sequence[str] = ()) -> Any:
        """A non-empty string; with ``choices``, one of them (any case), returned as spelled there."""
        found = self.leaf(key)
        if found is None:
            return default
        path, value, origin = found
        if not isinstance(value, str) or not value.strip():
            raise StaticConfigError(path, f"expected a non-empty string, got {got(value)}{where(origin)}")
        if choices:
            choice = find_key(choices, value.strip())
            if choice is None:
                raise StaticConfigError(
                    path, f"expected one of {', '.join(choices)}, got {got(value)}{where(origin)}"
                )
            return choice
        return value

    def flag(self, key: str, default: bool) -> bool:
        found = self.leaf(key)
        if found is None:
            return default
        path, value, origin = found
        b = parse_bool(value)
        if b is None:
            raise StaticConfigError(path, f"expected {BOOL_WORDS}, got {got(value)}{where(origin)}")
        return b

    def integer(self, key: str, default: int, *, minimum: int | None = 0) -> int:
        found = self.leaf(key)
        if found is None:
            return default
        path, value, origin = found
        n: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        elif isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value):
            n = int(value)
        if n is None:
            raise StaticConfigError(path, f"expected a whole number, got {got(value)}{where(origin)}")
        if minimum is not None and n < minimum:
            raise StaticConfigError(path, f"must be at least {minimum}, got {n}{where(origin)}")
        return n

    def duration(self, key: str, default: float, *, signed: bool = False) -> float:
        """Seconds; ``signed`` keeps Go's negative durations (they mean "never" or "off" for some keys)."""
        found = self.leaf(key)
        if found is None:
            return default
        path, value, origin = found
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise StaticConfigError(
                path,
                f"expected a duration like '10s', '1m30s', '500ms' or a number of seconds, got {got(value)}"
                f"{where(origin)}",
            ) from None
        if seconds < 0 and not signed:
            raise StaticConfigError(path, f"must not be a negative duration, got {got(value)}{where(origin)}")
        return seconds

    def items(self, key: str) -> tuple[tuple[str, str], ...]:
        """(item, its key path) pairs; a string is split on commas."""
        found = self.leaf(key)
        if found is None:
            return ()
        path, value, origin = found
        if isinstance(value, Indexed):
            value = [value[i] for i in sorted(value)]
        elif isinstance(value, str):
            value = [s for s in (p.strip() for p in value.split(",")) if s]
        if not isinstance(value, list | tuple):
            raise StaticConfigError(path, f"expected a list of strings, got {got(value)}{where(origin)}")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise StaticConfigError(f"{path}[{i}]", f"expected a string, got {got(item)}{where(origin)}")
            out.append((item.strip(), f"{path}[{i}]"))
        return tuple(out)

    def reference(self, key: str, known: Sequence[str], noun: str) -> str | None:
        """A name that must be one of ``known`` (any case), returned as spelled there; an unknown one is
        refused with the list of known names (``noun``: "entry point", "certificate resolver")."""
        name = self.text(key)
        if name is None:
            return None
        found = find_key(known, name.strip())
        if found is None:
            raise StaticConfigError(
                join(self.path, key),
                f"no {noun} named {name!r} (known: {', '.join(known) or 'none'}){where(self.origin(key))}",
            )
        return found

    def address(self, key: str = "address") -> tuple[str, bool] | None:
        """An entry point's ``[host]:port`` and whether it is a UDP one: Traefik's optional protocol suffix
        (``/tcp``, ``/udp``, any case) is taken off the address; any other suffix is refused."""
        found = self.leaf(key)
        if found is None:
            return None
        path, value, origin = found
        udp = isinstance(value, str) and value.strip().lower().endswith("/udp")
        base = value.strip()[:-4] if udp else value
        checked = check_address(base) if isinstance(base, str) and not (udp and "/" in base) else None
        if checked is None:
            raise StaticConfigError(
                path,
                f"expected a string like ':80', '127.0.0.1:8080' or ':53/udp', got {got(value)}"
                f"{where(origin)}",
            )
        return checked, udp


_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


def check_address(address: str) -> str | None:
    """``[host]:port`` (Traefik's entry point address, optionally ``/tcp``) → the address, or None if bad."""
    addr = address.strip()
    if addr.lower().endswith("/tcp"):
        addr = addr[:-4]
    host, colon, port = addr.rpartition(":")
    if not colon or not (port.isascii() and port.isdigit() and len(port) <= 5) or int(port) > 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1].split("%")[0])
        except ValueError:
            return None
    elif host and (":" in host or not _HOSTNAME.match(host)):
        return None
    return addr
