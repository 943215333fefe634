"""Typed readers for configuration dicts: where a value sits, and what it must be.

A dynamic configuration arrives as plain data (what ``yaml.safe_load`` or ``tomllib`` give, or what Docker
labels are turned into). Like Traefik's decoder (paerser), keys are matched case-insensitively, scalars
may be given as strings (``"10"``, ``"true"``: what labels carry) and a list of strings may be given as one
comma-separated string. These readers enforce that once, for every section parser in :mod:`discover.parse`,
and report problems as :class:`ConfigError` with the canonical camelCase path plus the keys as written,
so that a provider can point at the file line or the label.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from discover.values import BOOL_WORDS, find_key, parse_bool

__all__ = [
    "At",
    "ConfigError",
    "Fields",
    "Key",
    "as_bool",
    "as_int",
    "as_list",
    "as_str",
    "describe",
    "duration",
    "freeze",
    "named",
    "opt_str",
    "parse_duration",
    "str_list",
]

Key = str | int


class ConfigError(ValueError):
    """A problem in a dynamic configuration.

    ``path`` is the canonical key path (``http.routers.app.rule``, ``tls.certificates[0].certFile``; empty
    for the document itself), ``message`` the reason. ``keys`` is the same path with the keys as they were
    written (list positions as ints), for locating it in a source file. ``file`` and ``line`` are set by a
    provider that knows them (1-based line; ``None`` when unknown).
    """

    def __init__(
        self,
        path: str,
        message: str,
        line: int | None = None,
        *,
        file: str | None = None,
        keys: Sequence[Key] = (),
    ) -> None:
        super().__init__(path, message)
        self.path = path
        self.message = message
        self.line = line
        self.file = file
        self.keys: tuple[Key, ...] = tuple(keys)

    @property
    def reason(self) -> str:
        """``path: message`` (the message alone for the whole document)."""
        return f"{self.path}: {self.message}" if self.path else self.message

    @property
    def location(self) -> str:
        """``file:line``, ``file``, ``line N`` or empty, as far as known."""
        if self.file is not None:
            return f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"line {self.line}" if self.line is not None else ""

    def located(self, file: str | None, line: int | None) -> ConfigError:
        """The same error, placed in ``file`` at ``line``."""
        return ConfigError(self.path, self.message, line, file=file, keys=self.keys)

    def __str__(self) -> str:
        loc = self.location
        return f"{loc}: {self.reason}" if loc else self.reason

    def __reduce__(self) -> Any:
        return (_rebuild_error, (self.path, self.message, self.line, self.file, self.keys))


def _rebuild_error(path: str, message: str, line: int | None, file: str | None, keys: tuple[Key, ...]):
    return ConfigError(path, message, line, file=file, keys=keys)


# -- walking ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class At:
    """Where a value sits: canonical path for messages, raw keys for locating it."""

    path: str = ""
    keys: tuple[Key, ...] = ()

    def key(self, canonical: str, raw: Key) -> At:
        return At(f"{self.path}.{canonical}" if self.path else canonical, (*self.keys, raw))

    def index(self, i: int) -> At:
        return At(f"{self.path}[{i}]", (*self.keys, i))

    def error(self, message: str) -> ConfigError:
        return ConfigError(self.path, message, keys=self.keys)


def describe(value: Any) -> str:
    """What ``value`` is, for an error message (``a string ('x')``, ``a mapping``)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


class Fields:
    """The keys of one mapping, matched case-insensitively (:func:`~discover.values.find_key`) against the
    names it may hold; an unknown key or one given twice is an error naming it."""

    def __init__(self, value: Any, at: At, names: Sequence[str]) -> None:
        self.at = at
        self.values: dict[str, tuple[Any, At]] = {}
        if value is None:
            return
        if not isinstance(value, Mapping):
            raise at.error(f"expected a mapping, got {describe(value)}")
        for raw, v in value.items():
            canonical = find_key(names, raw) if isinstance(raw, str) else None
            if canonical is None:
                raise at.key(str(raw), raw).error(f"unknown key {raw!r}; expected one of {', '.join(names)}")
            if canonical in self.values:
                raise at.key(canonical, raw).error("given twice (keys are case-insensitive)")
            self.values[canonical] = (v, at.key(canonical, raw))

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> tuple[Any, At]:
        """The value (``None`` when absent) and where it is."""
        return self.values.get(name, (None, self.at.key(name, name)))

    def present(self, name: str) -> bool:
        return name in self.values and self.values[name][0] is not None

    def required(self, name: str) -> tuple[Any, At]:
        v, at = self.get(name)
        if v is None:
            raise at.error("required")
        return v, at


def named(value: Any, at: At, what: str) -> Iterator[tuple[str, Any, At]]:
    """The entries of ``routers``/``services``/``middlewares``: user-chosen names, kept as written."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise at.error(f"expected a mapping of {what} names, got {describe(value)}")
    for raw, v in value.items():
        name = str(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else None
        if not name:
            raise at.key(str(raw), raw).error(f"invalid {what} name {raw!r}")
        if "@" in name:
            raise at.key(name, raw).error(
                f"a {what} name defined here cannot contain '@' (it is added when providers are merged)"
            )
        yield name, v, at.key(name, raw)


# -- scalars ------------------------------------------------------------------------------------------


def as_str(value: Any, at: At, *, empty: bool = False) -> str:
    if isinstance(value, bool) or value is None or not isinstance(value, str | int | float):
        raise at.error(f"expected a string, got {describe(value)}")
    s = value if isinstance(value, str) else str(value)
    if not s and not empty:
        raise at.error("must not be empty")
    return s


def opt_str(value: Any, at: At) -> str | None:
    return None if value is None else as_str(value, at)


def one_of(value: Any, at: At, choices: tuple[str, ...]) -> str:
    """A word among ``choices`` (given in lower case), in any case, returned lower-cased: the one reader
    of Traefik's enumerated keys (``scheme``, ``sameSite``, ``ruleSyntax``...). ``""`` among the choices
    lets the key be empty; the error lists the others."""
    word = as_str(value, at, empty="" in choices).lower()
    if word not in choices:
        named = [c for c in choices if c]
        listed = f"{', '.join(named[:-1])} or {named[-1]}" if len(named) > 1 else named[0]
        raise at.error(f"must be {listed}, got {value!r}")
    return word


_INT = re.compile(r"[+-]?\d+")


def as_int(value: Any, at: At, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):
        n = int(value.strip())
    else:
        raise at.error(f"expected an integer, got {describe(value)}")
    if minimum is not None and n < minimum:
        raise at.error(f"must be at least {minimum}, got {n}")
    if maximum is not None and n > maximum:
        raise at.error(f"must be at most {maximum}, got {n}")
    return n


def as_bool(value: Any, at: At) -> bool:
    """A boolean in Go's ``strconv.ParseBool`` words (:func:`~discover.values.parse_bool`, which also reads
    a YAML/TOML integer as its text, as Traefik's decoder does)."""
    b = parse_bool(value)
    if b is None:
        raise at.error(f"expected {BOOL_WORDS}, got {describe(value)}")
    return b


def str_list(value: Any, at: At) -> tuple[str, ...]:
    """A list of non-empty strings; one string is split on commas, as Traefik does for labels."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if not isinstance(value, list | tuple):
        raise at.error(f"expected a list of strings, got {describe(value)}")
    return tuple(as_str(v, at.index(i)) for i, v in enumerate(value))


def as_list(value: Any, at: At) -> list[tuple[Any, At]]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise at.error(f"expected a list, got {describe(value)}")
    return [(v, at.index(i)) for i, v in enumerate(value)]


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """A Traefik duration in seconds: a number of seconds (``10``, ``"10"``, ``1.5``) or Go's format
    (``"10s"``, ``"500ms"``, ``"1m30s"``, ``"1h"``). Raises ``ValueError`` for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {describe(value)}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_duration_text(value)
    else:
        raise ValueError(f"expected a duration, got {describe(value)}")
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {value!r}")
    return seconds


def _parse_duration_text(value: str) -> float:
    s = value.strip()
    if _NUMBER.fullmatch(s):
        return float(s)
    sign = -1.0 if s.startswith("-") else 1.0
    body = s.lstrip("+-")
    pos, seconds = 0, 0.0
    for m in _DURATION_PART.finditer(body):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f"invalid duration {value!r} (use e.g. 10s, 500ms, 1m30s or a number of seconds)")
    return seconds * sign


def duration(value: Any, at: At, *, positive: bool = True) -> float:
    """A duration in seconds (:func:`parse_duration`); ``positive`` refuses zero and negative ones."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise at.error(str(exc)) from None
    if positive and seconds <= 0:
        raise at.error(f"must be a positive duration, got {value!r}")
    return seconds


def freeze(value: Any) -> Any:
    """Dicts → read-only mappings, lists → tuples, all the way down."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value
