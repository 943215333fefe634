"""Options of the paths middlewares, declared as :mod:`discover.middlewares.fields` says.

Traefik's names and defaults: ``addPrefix``, ``stripPrefix``, ``stripPrefixRegex``, ``replacePath``,
``replacePathRegex``, ``redirectScheme``, ``redirectRegex`` and ``encodedCharacters`` (Traefik v3.7).
What can be checked without compiling anything is checked here (when the configuration is read); regexes
are compiled with RE2 by the router modules' ``build``, off the event loop, and refused there by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from discover.middlewares.fields import BOOL, LIST, STR, check, option

__all__ = [
    "AddPrefix",
    "EncodedCharacters",
    "RedirectRegex",
    "RedirectScheme",
    "ReplacePath",
    "ReplacePathRegex",
    "StripPrefix",
    "StripPrefixRegex",
    "TYPES",
]


@dataclass(frozen=True, slots=True)
class AddPrefix:
    """``addPrefix.prefix``: prepended to the request path (Traefik refuses an empty prefix; it does not
    require a leading ``/``: one is added to the result when missing)."""

    prefix: str = option("prefix", STR, "")

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from check(bool(self.prefix), "prefix", "cannot be empty")


@dataclass(frozen=True, slots=True)
class StripPrefix:
    """``stripPrefix``: the first of ``prefixes`` (in order) the path starts with is removed.

    ``forceSlash`` is deprecated in Traefik v3 but still read: ``None`` means "not set" so that the
    router can warn only when a configuration still uses it.
    """

    prefixes: tuple[str, ...] = option("prefixes", LIST)
    forceSlash: bool | None = option("forceSlash", BOOL, None)


@dataclass(frozen=True, slots=True)
class StripPrefixRegex:
    """``stripPrefixRegex.regex``: Go regexes (RE2); the first whose match is a prefix of the path is
    removed."""

    regex: tuple[str, ...] = option("regex", LIST)


@dataclass(frozen=True, slots=True)
class ReplacePath:
    """``replacePath.path``: the path the service is asked for (may hold percent-escapes)."""

    path: str = option("path", STR, "")


@dataclass(frozen=True, slots=True)
class ReplacePathRegex:
    """``replacePathRegex``: every match of ``regex`` in the (escaped) path is replaced with
    ``replacement``, where ``$1``/``${name}`` are the regex's groups (Go's ``ReplaceAllString``)."""

    regex: str = option("regex", STR, "")
    replacement: str = option("replacement", STR, "")


@dataclass(frozen=True, slots=True)
class RedirectScheme:
    """``redirectScheme``: redirect to ``scheme`` (and ``port``) when the request's URL differs."""

    scheme: str = option("scheme", STR, "")
    port: str = option("port", STR, "")
    permanent: bool = option("permanent", BOOL, False)

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from check(bool(self.scheme), "scheme", "you must provide a target scheme")
        yield from check(
            not self.port or self.port.isdigit(), "port", f"must be a port number, got {self.port!r}"
        )


@dataclass(frozen=True, slots=True)
class RedirectRegex:
    """``redirectRegex``: redirect when ``regex`` matches the request URL (``scheme://host/path?query``);
    the new URL is ``replacement`` with ``$1``/``${1}`` expanded (Go's ``ReplaceAllString``)."""

    regex: str = option("regex", STR, "")
    replacement: str = option("replacement", STR, "")
    permanent: bool = option("permanent", BOOL, False)


@dataclass(frozen=True, slots=True)
class EncodedCharacters:
    """``encodedCharacters`` (Traefik v3.7): a request path holding an encoded character whose ``allow*``
    option is not true is answered 400; each is false by default (the middleware refuses all seven)."""

    allowEncodedSlash: bool = option("allowEncodedSlash", BOOL, False)
    allowEncodedBackSlash: bool = option("allowEncodedBackSlash", BOOL, False)
    allowEncodedNullCharacter: bool = option("allowEncodedNullCharacter", BOOL, False)
    allowEncodedSemicolon: bool = option("allowEncodedSemicolon", BOOL, False)
    allowEncodedPercent: bool = option("allowEncodedPercent", BOOL, False)
    allowEncodedQuestionMark: bool = option("allowEncodedQuestionMark", BOOL, False)
    allowEncodedHash: bool = option("allowEncodedHash", BOOL, False)


# Traefik's type name → its options dataclass; collected by discover.middlewares.registry.
TYPES: dict[str, type] = {
    "addPrefix": AddPrefix,
    "stripPrefix": StripPrefix,
    "stripPrefixRegex": StripPrefixRegex,
    "replacePath": ReplacePath,
    "replacePathRegex": ReplacePathRegex,
    "redirectScheme": RedirectScheme,
    "redirectRegex": RedirectRegex,
    "encodedCharacters": EncodedCharacters,
}
