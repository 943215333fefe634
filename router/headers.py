"""Header work done once per request: hop-by-hop filtering, the X-Forwarded-* set, and the checked
lines of headers middlewares set (:func:`edit_line`).

Everything here works on aiohttp's raw header pairs (``bytes``) and returns bytes ready to be written, so
the request head for the backend is one ``b"".join``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from discover.middlewares.headers import bad_header_value, is_token

# RFC 9110 section 7.6.1 plus the de-facto ones (Keep-Alive, Proxy-Connection).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Headers a client may only set when it is trusted (Traefik strips the same set from others).
FORWARDED = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-forwarded-server",
        b"x-forwarded-uri",
        b"x-forwarded-method",
        b"x-forwarded-prefix",
        b"x-forwarded-tls-client-cert",
        b"x-forwarded-tls-client-cert-info",
        b"x-real-ip",
    }
)

# Dropped from every request and then set by the proxy itself.
REQUEST_DROP = HOP_BY_HOP | {b"host", b"content-length", b"expect"}
RESPONSE_DROP = HOP_BY_HOP | {b"content-length"}


def connection_tokens(raw_headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in ``Connection`` (they are hop-by-hop too), lower-cased."""
    tokens: set[bytes] = set()
    for name, value in raw_headers:
        if len(name) == 10 and name.lower() == b"connection":
            for tok in value.split(b","):
                tok = tok.strip().lower()
                if tok:
                    tokens.add(tok)
    return frozenset(tokens)


class TrustedNetworks:
    """``forwardedHeaders.trustedIPs``: which clients may pass their X-Forwarded-* on."""

    __slots__ = ("_nets", "insecure", "_cache")

    def __init__(self, entries: Iterable[str], insecure: bool = False) -> None:
        self._nets = tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())
        self.insecure = insecure
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return self.insecure or bool(self._nets)

    def trusts(self, ip: str) -> bool:
        if self.insecure:
            return True
        if not self._nets:
            return False
        hit = self._cache.get(ip)
        if hit is None:
            try:
                addr = ipaddress.ip_address(ip.split("%", 1)[0])
            except ValueError:
                hit = False
            else:
                if addr.version == 6 and addr.ipv4_mapped is not None:
                    addr = addr.ipv4_mapped
                hit = any(addr in net for net in self._nets)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[ip] = hit
        return hit


class Memo(dict):  # type: ignore[type-arg]
    """What header edits work out once per distinct input (encoded lines, drop sets): a plain dict, so
    that a hit is one C-level ``get`` on the request path, emptied when it passes ``limit`` entries so
    that per-request values (an auth server's user, a CSP nonce) cannot grow it. A cachetools cache
    would bound it more finely at a Python-level call per lookup."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: object, value: object) -> object:
        """Store ``value`` under ``key`` (emptying the memo first when full) and return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


class BadEdit(ValueError):
    """A middleware asked for a header that cannot be sent as it is (a line break, an invalid name)."""


def edit_line(name: str, value: str) -> bytes:
    """One header line a middleware set, on a request or an answer. A value with CR, LF or NUL (a
    decoded ``%0D%0A`` a regex captured, a header an auth server answered) would start another header,
    or another request: refused (:class:`BadEdit`), as Go refuses to send it. Values go out as UTF-8, as
    Go sends a string's bytes. The lines of fixed edits (a configuration's custom headers) are checked
    and encoded once."""
    line = _EDIT_LINES.get((name, value))
    if line is not None:
        return line
    if not is_token(name) or bad_header_value(value):
        raise BadEdit(f"header {name!r} set by a middleware holds a line break or an invalid name")
    line = f"{name}: {value}\r\n".encode("utf-8", "surrogateescape")
    _EDIT_LINES.keep((name, value), line)
    return line


_EDIT_LINES = Memo(1024)
