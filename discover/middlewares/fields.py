"""One definition per middleware type: a frozen dataclass whose fields name Traefik's options.

Each field is declared with :func:`option`, which records the option's Traefik name (``forceSlash``) and
its kind; :func:`read_options` builds the dataclass from a mapping, for files and Docker labels alike. It
goes through :mod:`discover.readers`, which take typed values (YAML, TOML) as well as the strings labels
carry (``"true"``, ``"10"``, ``"a,b"``), match option names case-insensitively and refuse unknown ones by
name. So there is one definition of what a middleware accepts, and the file parser and the label parser
cannot disagree about it.

A dataclass may add checks of its own in a ``problems()`` method yielding ``(option, message)`` pairs (a
range that does not parse, two options that exclude each other): they are reported like type errors, when
the configuration is read, never at request time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from discover.model import EMPTY, frozen_map
from discover.readers import At, Fields, as_bool, as_int, as_str, describe, duration, str_list
from discover.values import BOOL_WORDS, parse_bool

__all__ = [
    "BOOL",
    "check",
    "DURATION",
    "INT",
    "LIST",
    "MAP",
    "SECTION",
    "STR",
    "option",
    "option_keys",
    "read_options",
]

STR, BOOL, INT, DURATION, LIST, MAP, SECTION = "str", "bool", "int", "duration", "list", "map", "section"
_KINDS = frozenset({STR, BOOL, INT, DURATION, LIST, MAP, SECTION})


def option(
    key: str,
    kind: str,
    default: Any = None,
    *,
    section: type | None = None,
    minimum: int | float | None = None,
    empty: bool = True,
    reference: str | None = None,
) -> Any:
    """A field of an options dataclass: Traefik's option name ``key`` and its kind.

    Kinds: ``STR`` (``empty=False`` refuses ""), ``BOOL`` (Go's words), ``INT`` and ``DURATION`` (seconds,
    a number or Go's ``10s``/``500ms``; ``minimum`` bounds both), ``LIST`` (strings; a comma-separated
    string is split), ``MAP`` (string → string, stored read-only; the default is empty) and ``SECTION``
    (a nested options dataclass, ``section=``; absent is ``None``; a section given as ``true`` is present
    with its defaults, ``false`` is absent, as Traefik's ``allowEmpty``).

    ``reference="service"`` or ``"middleware"`` marks a ``STR`` or ``LIST`` field naming other parts of
    the configuration: :func:`discover.model.merge` qualifies them with the provider (``x`` → ``x@file``).
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown option kind {kind!r}")
    if (kind == SECTION) != (section is not None):
        raise ValueError("section= goes with the SECTION kind, and only with it")
    meta = {
        "key": key,
        "kind": kind,
        "section": section,
        "minimum": minimum,
        "empty": empty,
        "reference": reference,
    }
    if kind == MAP:
        return dataclasses.field(default_factory=lambda: EMPTY, metadata=meta)
    if kind == LIST and default is None:
        default = ()
    return dataclasses.field(default=default, metadata=meta)


def option_keys(cls: type) -> tuple[str, ...]:
    """Traefik's names of the options of ``cls``, in declaration order."""
    return tuple(f.metadata["key"] for f in dataclasses.fields(cls))


def read_options(cls: type, value: Any, at: At) -> Any:
    """An instance of the options dataclass ``cls`` from ``value`` (a mapping, nothing for all defaults,
    or a boolean word for a section); raises :class:`ConfigError` naming the option at fault."""
    if value is None or (isinstance(value, str) and parse_bool(value) is True) or value is True:
        value = {}
    elif isinstance(value, str):  # a label switching a section with a word that is not a boolean
        raise at.error(f"expected sub-options or {BOOL_WORDS}, got {describe(value)}")
    fields = dataclasses.fields(cls)
    by_key = {f.metadata["key"]: f for f in fields}
    found = Fields(value, at, tuple(by_key))
    kwargs: dict[str, Any] = {}
    for key, f in by_key.items():
        if key not in found:
            continue
        raw, where = found.get(key)
        read = _read(f.metadata, raw, where)
        if read is not _ABSENT:
            kwargs[f.name] = read
    try:
        instance = cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a __post_init__ refusing a combination
        raise at.error(str(exc)) from None
    problems = getattr(instance, "problems", None)
    if problems is not None:
        for key, message in problems():
            raise at.key(key, key).error(message)
    return instance


_ABSENT = object()


def _read(meta: Mapping[str, Any], raw: Any, at: At) -> Any:
    kind, minimum = meta["kind"], meta["minimum"]
    if kind == SECTION:
        if raw is False or (isinstance(raw, str) and parse_bool(raw) is False):
            return _ABSENT
        return read_options(meta["section"], raw, at)
    if raw is None:
        return _ABSENT
    if kind == STR:
        return as_str(raw, at, empty=meta["empty"])
    if kind == BOOL:
        return as_bool(raw, at)
    if kind == INT:
        return as_int(raw, at, minimum=minimum)
    if kind == DURATION:
        seconds = duration(raw, at, positive=False)
        if minimum is not None and seconds < minimum:
            raise at.error(f"must be at least {minimum}s, got {raw!r}")
        return seconds
    if kind == LIST:
        return str_list(raw, at)
    return _map(raw, at)


def _map(raw: Any, at: At) -> Mapping[str, str]:
    if not isinstance(raw, Mapping):
        raise at.error(f"expected a mapping of names to values, got {describe(raw)}")
    out: dict[str, str] = {}
    for k, v in raw.items():
        where = at.key(str(k), k)
        if v is None:
            v = ""
        out[str(k)] = as_str(v, where, empty=True)
    return frozen_map(out)


def check(condition: bool, key: str, message: str) -> Iterator[tuple[str, str]]:
    """For ``problems()`` methods: yield ``(key, message)`` when ``condition`` is false."""
    if not condition:
        yield key, message
