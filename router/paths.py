"""Request-target normalisation, done once per request.

The proxy routes and forwards one and the same string: the raw path with percent-escapes of unreserved
characters decoded, the remaining escapes upper-cased, then dot segments (also the encoded ones,
``%2e%2e``) and duplicate slashes removed: Traefik v3.6+'s normalizePath and sanitizePath, in that order.
``%2F`` stays encoded, so ``/a%2Fb`` is never confused with ``/a/b``. Nothing downstream re-normalises it
(no URL library on the way out), so what a rule checked is exactly what the backend gets.

Encoded characters a backend may read as structure (``%2F`` ``%5C`` ``%00`` ``%3B`` ``%25`` ``%3F``
``%23``) are what Traefik's ``encodedCharacters`` options allow or refuse; :func:`denied_escape` finds the
first refused one in a normalised path (its escapes are upper case by then).
"""

from __future__ import annotations

from collections.abc import Iterable

_HEX = "0123456789ABCDEFabcdef"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


# Traefik's ``encodedCharacters`` keys and the escape each one allows, as :func:`normalize_path` spells it.
ENCODED_ESCAPES = {
    "allowEncodedSlash": "%2F",
    "allowEncodedBackSlash": "%5C",
    "allowEncodedNullCharacter": "%00",
    "allowEncodedSemicolon": "%3B",
    "allowEncodedPercent": "%25",
    "allowEncodedQuestionMark": "%3F",
    "allowEncodedHash": "%23",
}


class BadTarget(ValueError):
    """The request target cannot be normalised (bad escape, a fragment, not origin- or absolute-form)."""


def split_target(target: str) -> tuple[str | None, str, str]:
    """Split a request target into (authority or None, raw path, raw query).

    Absolute-form (``GET http://a.test/x``) carries its own authority, which RFC 9112 says wins over
    the Host header. A fragment never belongs in a request target: one is refused (Traefik's denyFragment),
    as the proxy and the backend could cut the path in different places.
    """
    authority = None
    if not target.startswith("/"):
        low = target[:8].lower()
        if low.startswith("http://") or low.startswith("https://"):
            rest = target[target.index("//") + 2 :]
            slash = rest.find("/")
            qmark = rest.find("?")
            cut = min(i for i in (slash, qmark, len(rest)) if i >= 0)
            authority = rest[:cut].rpartition("@")[2]  # userinfo never reaches Host
            target = rest[cut:] or "/"
            if target.startswith("?"):
                target = "/" + target
        elif target == "*":
            return None, "*", ""
        else:
            raise BadTarget("request target must be a path or an absolute URL")
    if "#" in target:
        raise BadTarget("a fragment in the request target")
    q = target.find("?")
    if q < 0:
        return authority, target, ""
    return authority, target[:q], target[q + 1 :]


def _unescape_unreserved(path: str) -> str:
    out: list[str] = []
    start = 0
    while True:
        i = path.find("%", start)
        if i < 0:
            out.append(path[start:])
            break
        h1, h2 = path[i + 1 : i + 2], path[i + 2 : i + 3]
        if not h1 or not h2 or h1 not in _HEX or h2 not in _HEX:
            raise BadTarget("invalid percent-escape in path")
        out.append(path[start:i])
        ch = chr(int(h1 + h2, 16))
        out.append(ch if ch in _UNRESERVED else "%" + (h1 + h2).upper())
        start = i + 3
    return "".join(out)


def _clean(path: str) -> str:
    """Go's ``URL.JoinPath()`` (Traefik's sanitizePath): dot segments (RFC 3986 section 5.2.4) and empty
    ones (duplicate slashes) removed, ``..`` never climbing above the root, and a trailing slash kept only
    if the path ended with one (``/a/b/..`` is ``/a``, ``/./foo/../bar//`` is ``/bar/``)."""
    out: list[str] = []
    for seg in path.split("/"):
        if seg == "" or seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    result = "/" + "/".join(out)
    if path.endswith("/") and len(result) > 1:
        result += "/"
    return result


def normalize_path(path: str, sanitize: bool = True) -> str:
    """Normalise a raw path; the fast path (nothing to do) costs three substring searches. ``sanitize``
    false (``entryPoints.<ep>.http.sanitizePath: false``, as in Traefik) keeps dot segments and duplicate
    slashes: only the escapes are normalised."""
    if not path:
        return "/"
    if path == "*":
        return path
    if "%" in path:
        path = _unescape_unreserved(path)
    if sanitize and ("/." in path or "//" in path):
        path = _clean(path)
    if not path.startswith("/"):
        path = "/" + path
    return path


def denied_escape(path: str, denied: frozenset[str]) -> str | None:
    """The first escape of ``path`` (normalised: escapes upper case) that is in ``denied``, or None. A
    literal backslash counts as ``%5C``: Go sends it on as ``%5C`` (Traefik then refuses it), and a
    backend that reads ``\\`` as ``/`` (IIS, Windows stacks) would otherwise see ``/public\\..\\admin``
    as ``/admin``."""
    if "%" not in path and "\\" not in path:  # nearly every path: two C-level scans, nothing more
        return None
    if "\\" in path and "%5C" in denied:
        return "\\"
    i = path.find("%")
    while i >= 0:
        esc = path[i : i + 3]
        if esc in denied:
            return esc
        i = path.find("%", i + 3)
    return None


def denied_escapes(allowed: Iterable[str], both_cases: bool = False) -> frozenset[str]:
    """The escapes refused when only the ``encodedCharacters`` keys in ``allowed`` are true, upper case
    (a normalised path's), or in both cases with ``both_cases`` (a path a middleware rewrote may hold
    ``%2f``)."""
    allowed = frozenset(allowed)
    refused = [esc for key, esc in ENCODED_ESCAPES.items() if key not in allowed]
    if both_cases:
        refused += [esc.lower() for esc in refused]
    return frozenset(refused)


def normalize_host(host: str) -> str:
    """Lower-case, strip the port and a trailing dot: ``Example.COM.:8080`` → ``example.com``."""
    if not host:
        return ""
    if host[0] == "[":  # IPv6 literal
        end = host.find("]")
        return host[: end + 1].lower() if end > 0 else host.lower()
    colon = host.rfind(":")
    if colon >= 0:
        host = host[:colon]
    if host.endswith("."):
        host = host[:-1]
    return host.lower()
