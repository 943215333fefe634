"""Request-target normalisation, done once per request.

The proxy routes and forwards one and the same string: the raw path with percent-escapes of unreserved
characters decoded, the remaining escapes upper-cased, and dot segments removed (also the encoded ones,
``%2e%2e``). ``%2F`` stays encoded, so ``/a%2Fb`` is never confused with ``/a/b``. Nothing downstream
re-normalises it (no URL library on the way out), so what a rule checked is exactly what the backend gets.
"""

from __future__ import annotations

_HEX = "0123456789ABCDEFabcdef"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class BadTarget(ValueError):
    """The request target cannot be normalised (bad escape, not origin- or absolute-form)."""


def split_target(target: str) -> tuple[str | None, str, str]:
    """Split a request target into (authority or None, raw path, raw query).

    Absolute-form (``GET http://a.test/x``) carries its own authority, which RFC 9112 says wins over
    the Host header. Fragments never belong in a request target and are dropped.
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
    hash_at = target.find("#")
    if hash_at >= 0:
        target = target[:hash_at]
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


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 section 5.2.4, on "/"-separated segments.
    segments = path.split("/")
    out: list[str] = []
    for seg in segments[1:]:
        if seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    result = "/" + "/".join(out)
    # A trailing "." or ".." names a directory: keep the trailing slash.
    if segments[-1] in (".", "..") and not result.endswith("/"):
        result += "/"
    return result


def normalize_path(path: str) -> str:
    """Normalise a raw path; the fast path (nothing to do) costs two substring searches."""
    if not path:
        return "/"
    if path == "*":
        return path
    if "%" in path:
        path = _unescape_unreserved(path)
    if "/." in path:
        path = _remove_dot_segments(path)
    if not path.startswith("/"):
        path = "/" + path
    return path


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
