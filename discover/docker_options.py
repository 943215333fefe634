"""Docker labels of the middleware types dockroute does not implement → typed values, canonical names.

An implemented type's labels are read by its options dataclass (:mod:`discover.middlewares`), the same
reader as for files. The types left (``grpcWeb``, ``passTLSClientCert``, ``plugin``) are kept as given so
that their routers can be refused by name; this schema still turns their label strings into values
(``"true"`` into a boolean, ``"a,b"`` into a list) and refuses an unknown option by name. Booleans are
Go's words (:func:`discover.values.parse_bool`), option names are matched with
:func:`discover.values.find_key`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from discover.readers import ConfigError, Key
from discover.values import BOOL_WORDS, find_key, parse_bool

__all__ = ["ANY", "MIDDLEWARE_OPTIONS", "Schema", "middleware_options"]

ANY = "any"  # options passed through as given (plugins)
_S, _B, _I, _D, _L, _M, _ANY = "string", "bool", "int", "duration", "list", "map", ANY
Schema = Mapping[str, Any]

_DN_ISSUER: Schema = {
    k: _B
    for k in (
        "country",
        "province",
        "locality",
        "organization",
        "commonName",
        "serialNumber",
        "domainComponent",
    )
}
_DN_SUBJECT: Schema = {**_DN_ISSUER, "organizationalUnit": _B}

# Only the types dockroute does not implement (their routers are refused by name): every implemented type's
# labels are read by its options dataclass (discover.middlewares), the same reader as for files.
MIDDLEWARE_OPTIONS: Mapping[str, Schema | str] = {
    "grpcWeb": {"allowOrigins": _L},
    "passTLSClientCert": {
        "pem": _B,
        "info": {
            "notAfter": _B,
            "notBefore": _B,
            "sans": _B,
            "serialNumber": _B,
            "subject": _DN_SUBJECT,
            "issuer": _DN_ISSUER,
        },
    },
    "plugin": _ANY,
}


_INT = re.compile(r"[+-]?\d+")


def middleware_options(value: Any, schema: Schema | str, keys: tuple[Key, ...], path: str) -> Any:
    """Label strings → typed middleware options, canonical names; unknown options raise ConfigError.

    A section given a boolean instead of sub-keys (``compress=true``, ``ipstrategy=true``: Traefik's
    ``allowEmpty``) is present and empty when true; a nested one that is false is left out. ``None`` is
    returned for that case only, and only below the middleware type itself (the caller refuses it there).
    """
    if schema == _ANY:
        return value
    if isinstance(schema, Mapping):
        return _section(value, schema, keys, path)
    if schema == _M:
        if not isinstance(value, Mapping) or any(not isinstance(v, str) for v in value.values()):
            raise ConfigError(path, "expected <name>=<value> sub-keys", keys=keys)
        return dict(value)
    if not isinstance(value, str):
        raise ConfigError(path, "expected a value, got sub-keys", keys=keys)
    if schema == _L:
        return [p.strip() for p in value.split(",") if p.strip()]
    if schema == _B:
        b = parse_bool(value)
        if b is None:
            raise ConfigError(path, f"expected {BOOL_WORDS}, got {value!r}", keys=keys)
        return b
    if schema == _I:
        if not _INT.fullmatch(value.strip()):
            raise ConfigError(path, f"expected an integer, got {value!r}", keys=keys)
        return int(value.strip())
    return value  # string, duration (parse_duration reads Go's format)


def _section(value: Any, schema: Schema, keys: tuple[Key, ...], path: str) -> dict[str, Any] | None:
    if isinstance(value, str):
        enabled = parse_bool(value)
        if enabled is None:
            raise ConfigError(path, f"expected sub-options or {BOOL_WORDS}, got {value!r}", keys=keys)
        return {} if enabled else None
    if not isinstance(value, Mapping):
        raise ConfigError(path, "expected sub-options", keys=keys)
    out: dict[str, Any] = {}
    for raw, v in value.items():
        canonical = find_key(schema, str(raw))
        if canonical is None:
            raise ConfigError(
                f"{path}.{raw}",
                f"unknown option {raw!r}; expected one of {', '.join(schema)}",
                keys=(*keys, raw),
            )
        option = middleware_options(v, schema[canonical], (*keys, raw), f"{path}.{canonical}")
        if option is not None or not isinstance(schema[canonical], Mapping):
            out[canonical] = option
    return out
