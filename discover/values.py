"""Scalar vocabularies shared by every configuration source: labels, files, flags and environment.

Traefik reads every source through one decoder (paerser), so a word that means ``true`` in a label means
``true`` in a file, a flag or an environment variable. dockroute keeps that promise by having exactly one
boolean parser and one case-insensitive key lookup, both here; every reader of configuration calls them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["BOOL_WORDS", "find_key", "fold_key", "parse_bool"]

# Go's strconv.ParseBool, word for word (it is case-sensitive: "tRUE" is not a boolean).
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
BOOL_WORDS = "true or false (also 1, t, T, TRUE, True, 0, f, F, FALSE, False)"


def parse_bool(value: Any) -> bool | None:
    """``value`` as a boolean the way Traefik reads one (Go's ``strconv.ParseBool``), or ``None`` when it is
    not one. Real booleans (YAML/TOML) pass through; surrounding blanks are ignored. A YAML/TOML integer is
    read as its text, as Traefik's file decoder does: ``1`` and ``0`` are booleans, ``2`` (or a float) is
    not."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        word = value.strip()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return None


def fold_key(key: Any) -> Any:
    """The form in which option names compare equal (case folded; list indexes and other non-strings as
    they are). :func:`find_key` compares with it; a reader that indexes many keys at once (the Docker label
    tree) keys its dict with it, so both follow one rule."""
    return key.lower() if isinstance(key, str) else key


def find_key(keys: Iterable[Any], wanted: str) -> Any | None:
    """The key among ``keys`` that ``wanted`` names, compared case-insensitively as Traefik does for every
    option name; ``None`` when there is none. Returns the key as it is spelled in ``keys``."""
    low = fold_key(wanted)
    for key in keys:
        if isinstance(key, str) and fold_key(key) == low:
            return key
    return None
