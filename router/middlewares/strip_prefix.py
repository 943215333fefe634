"""``stripPrefix``: the first of ``prefixes`` (in the order given) that the path starts with is removed,
and the service learns it from ``X-Forwarded-Prefix`` (Traefik's ``stripprefix``).

Prefixes are compared with the decoded path (``/a b`` strips ``/a%20b``), as a plain string prefix
(``/api`` also strips ``/apix`` to ``/x``); the escaped path loses as many characters as spell the prefix.
A result that is empty is asked as ``/``. A result Go's ``path.Join`` would change (``//x``, ``/../x``)
is answered 400, as Traefik does, so that a stripped path never becomes a network-path reference.
``forceSlash`` is deprecated in Traefik v3: it is read, changes nothing on the wire (an empty path is
sent as ``/`` either way), and is warned about.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from discover.middlewares.paths import StripPrefix
from router.exchange import Exchange, answer
from router.middlewares import Before, BuildContext
from router.middlewares.paths_common import (
    encoded_prefix_len,
    ensure_leading_slash,
    escape_path,
    is_clean,
    path_unescape,
    wire_path,
)

log = logging.getLogger("dockroute.router")

FORWARDED_PREFIX = "X-Forwarded-Prefix"


def stripped(raw: str, decoded: str, prefix: str, force_slash: bool = False) -> str | None:
    """The escaped path once ``prefix`` (a prefix of the decoded path ``decoded``) is removed from
    ``raw``; "" for nothing left; None when the result is not clean (a 400)."""
    cut = len(prefix) if raw is decoded else encoded_prefix_len(raw, prefix)
    rest_path, rest_raw = decoded[len(prefix) :], raw[cut:]
    if force_slash:
        new_path, new_raw = "/" + rest_path.removeprefix("/"), "/" + rest_raw.removeprefix("/")
    else:
        new_path, new_raw = ensure_leading_slash(rest_path), ensure_leading_slash(rest_raw)
    wire = new_raw if wire_path(new_raw) == new_raw and path_unescape(new_raw) == new_path else None
    if wire is None:
        wire = escape_path(new_path)
    if new_path and not is_clean(wire):
        return None
    return wire


def decoded_path(raw: str) -> str:
    """Go's ``URL.Path`` for the escaped ``ex.path`` (the proxy has checked its escapes); ``raw`` itself,
    the same object, when it has none."""
    if "%" not in raw:
        return raw
    decoded = path_unescape(raw)
    return raw if decoded is None else decoded


async def bad_path(ex: Exchange, why: str) -> None:
    await answer(ex, 400, "Bad Request\n", reason=why)


def strip_with(find: Callable[[str], tuple[str, str] | None], kind: str, force_slash: bool = False) -> Before:
    """The step of stripPrefix and stripPrefixRegex: ``find(decoded path)`` gives the prefix to strip and
    what found it (a prefix or a regex, named in the 400's reason), or None to pass the path unchanged."""

    def strip(ex: Exchange) -> Awaitable[None] | None:
        raw = ex.path
        decoded = decoded_path(raw)
        found = find(decoded)
        if found is not None:
            prefix, by = found
            wire = stripped(raw, decoded, prefix, force_slash)
            if wire is None:
                return bad_path(ex, f"{kind} {by!r} leaves a path that is not clean")
            ex.set_header(FORWARDED_PREFIX, prefix)
            ex.path = wire or "/"
        return None

    return Before(strip)


def build(options: StripPrefix, ctx: BuildContext) -> object:
    prefixes = tuple(p.strip() for p in options.prefixes)
    force_slash = bool(options.forceSlash)
    if options.forceSlash is not None:
        log.warning(
            "middleware %s (stripPrefix): forceSlash is deprecated (as in Traefik v3) and changes nothing;"
            " remove it",
            ctx.name,
        )

    def find(decoded: str) -> tuple[str, str] | None:
        for prefix in prefixes:
            if decoded.startswith(prefix):
                return prefix, prefix
        return None

    return strip_with(find, "stripPrefix", force_slash)
