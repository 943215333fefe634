"""Options of the compress middleware, declared as :mod:`discover.middlewares.fields` says.

Media types are parsed here (and the router reuses :func:`media_type`) so that a type that does not parse
is refused when the configuration is read, as Traefik refuses it when it builds the middleware.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from discover.middlewares.fields import INT, LIST, STR, option

# What Traefik can encode, and its default preference (the first is preferred among equal q-values).
SUPPORTED = ("zstd", "br", "gzip")
DEFAULT_MIN_BYTES = 1024

_TSPECIALS = frozenset('()<>@,;:\\"/[]?= \t')


def _token(s: str) -> bool:
    return bool(s) and all(33 <= ord(c) < 127 and c not in _TSPECIALS for c in s)


def media_type(value: str) -> tuple[str, Mapping[str, str]] | None:
    """``type/subtype`` lower-case and its parameters (names lower-case, quotes removed), or None when
    ``value`` does not parse as a media type (Go's ``mime.ParseMediaType`` is the model: a type that
    does not parse is never compressed, and refused in the options)."""
    head, _, rest = value.partition(";")
    mtype = head.strip().lower()
    main, slash, sub = mtype.partition("/")
    if not _token(main) or (slash and not _token(sub)):
        return None
    params: dict[str, str] = {}
    for part in rest.split(";") if rest else ():
        part = part.strip()
        if not part:
            continue
        name, eq, val = part.partition("=")
        name, val = name.strip().lower(), val.strip()
        if not eq or not _token(name):
            return None
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        params[name] = val
    return mtype, params


@dataclass(frozen=True, slots=True)
class Compress:
    """``compress``: responses encoded with zstd, brotli or gzip by the client's ``Accept-Encoding``."""

    excludedContentTypes: tuple[str, ...] = option("excludedContentTypes", LIST)
    includedContentTypes: tuple[str, ...] = option("includedContentTypes", LIST)
    # Traefik: a value of 0 or less means the default (1024).
    minResponseBodyBytes: int = option("minResponseBodyBytes", INT, 0)
    encodings: tuple[str, ...] = option("encodings", LIST, SUPPORTED)
    defaultEncoding: str = option("defaultEncoding", STR, "")

    @property
    def min_bytes(self) -> int:
        return self.minResponseBodyBytes if self.minResponseBodyBytes > 0 else DEFAULT_MIN_BYTES

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.excludedContentTypes and self.includedContentTypes:
            yield "includedContentTypes", "is mutually exclusive with excludedContentTypes"
        for key, types in (
            ("excludedContentTypes", self.excludedContentTypes),
            ("includedContentTypes", self.includedContentTypes),
        ):
            for i, t in enumerate(types):
                if media_type(t) is None:
                    yield f"{key}[{i}]", f"{t!r} is not a media type"
        if not self.encodings:
            yield "encodings", "at least one encoding must be specified"
        for i, e in enumerate(self.encodings):
            if e not in SUPPORTED:
                yield f"encodings[{i}]", f"unsupported encoding {e!r} (supported: {', '.join(SUPPORTED)})"
        if self.defaultEncoding and self.defaultEncoding not in self.encodings:
            yield "defaultEncoding", f"{self.defaultEncoding!r} is not one of the encodings"


# Traefik's type name → its options dataclass; collected by discover.middlewares.
TYPES: dict[str, type] = {"compress": Compress}
