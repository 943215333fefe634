"""Header work done once per request: hop-by-hop filtering, the X-Forwarded-* set (trusted peers only,
every ``_`` spelling), the checked lines of headers middlewares set (:func:`edit_line`), and the entry
point's ``underscoreHeadersStrategy`` (:func:`underscore_guard`, decided when the server is built).

Everything here works on aiohttp's raw header pairs (``bytes``) and returns bytes ready to be written, so
the request head for the backend is one ``b"".join``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

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

# Headers a client may only set when it is trusted (Traefik's forwardedheaders strips the same set from
# others); the proxy itself writes REWRITTEN's (see router.forward._forwarded).
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
        b"x-forwarded-scheme",
        b"x-scheme",
        b"x-real-ip",
    }
)
REWRITTEN = frozenset(  # of FORWARDED, those the proxy writes itself (from a trusted peer's values)
    {b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port"}
    | {b"x-forwarded-server", b"x-real-ip"}
)


def _spellings(name: bytes) -> set[bytes]:
    """``name`` with each ``-`` written as ``-`` or ``_``: CGI, WSGI and PHP read them all as one header."""
    out = {b""}
    for part in name.split(b"-"):
        out = {f + sep + part for f in out for sep in ((b"-", b"_") if f else (b"",))}
    return out


# Every spelling of the managed headers (X_Forwarded_For is X-Forwarded-For to a CGI backend).
MANAGED = frozenset(s for name in FORWARDED for s in _spellings(name))

# Dropped from every request and then set by the proxy itself. HTTP2-Settings belongs to an h2c upgrade,
# which is never forwarded (RFC 9113 3.2.1: connection-specific, whether or not Connection lists it).
# ``Proxy`` is httpoxy (CVE-2016-5385): a CGI backend reads it as HTTP_PROXY, its outgoing proxy.
REQUEST_DROP = HOP_BY_HOP | {b"host", b"content-length", b"expect", b"http2-settings", b"proxy"}
RESPONSE_DROP = HOP_BY_HOP | {b"content-length"}

# What the request head copies from a client, decided by one set lookup per header: a trusted peer's
# X-Forwarded-* pass (those the proxy rewrites are rebuilt from them); an untrusted peer's go in every
# spelling, with ``Forwarded`` (RFC 7239, which Traefik passes: a backend reading it would take the
# client's word for its address).
TRUSTED_DROP = REQUEST_DROP | REWRITTEN
UNTRUSTED_DROP = REQUEST_DROP | MANAGED | {b"forwarded"}


def connection_tokens(raw_headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in ``Connection`` (they are hop-by-hop too), lower-cased, but never the
    X-Forwarded-* set (Traefik's removeConnectionHeaders, after CVE-2024-45410): a trusted peer's are
    passed on, and the proxy's own are added after this filter in any case."""
    tokens: set[bytes] = set()
    for name, value in raw_headers:
        if len(name) == 10 and name.lower() == b"connection":
            for tok in value.split(b","):
                tok = tok.strip().lower()
                if tok and tok not in MANAGED:
                    tokens.add(tok)
    return frozenset(tokens)


class TrustedNetworks:
    """``forwardedHeaders.trustedIPs``: which clients may pass their X-Forwarded-* on."""

    __slots__ = ("_nets", "insecure", "_cache")

    def __init__(self, entries: Iterable[str], insecure: bool = False) -> None:
        self._nets = tuple(
            _unmapped(ipaddress.ip_network(e.strip(), strict=False)) for e in entries if e.strip()
        )
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


def _unmapped(
    net: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IPv4-mapped network (``::ffff:10.0.0.0/104``) as the IPv4 network it holds (10.0.0.0/8), as Go's
    ``IPNet.Contains`` reads it; peers are unmapped too, so either spelling on either side matches."""
    mapped = net.network_address.ipv4_mapped if net.version == 6 and net.prefixlen >= 96 else None
    return net if mapped is None else ipaddress.IPv4Network((mapped, net.prefixlen - 96))


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


Handler = Callable[[Any], Awaitable[Any]]


def underscore_guard(handler: Any) -> Handler:
    """The entry point's request handler under Traefik's ``http.underscoreHeadersStrategy``, applied before
    routing as Traefik does: ``keep`` (the default) is ``handler`` itself, so it costs nothing per request;
    ``delete`` hands on the request without its headers whose names hold ``_``, ``reject`` answers them
    400. CGI, WSGI and PHP read ``X_Auth_User`` as ``X-Auth-User``: a client could otherwise set an identity
    header that forwardAuth or a headers middleware only manages in its dash spelling."""
    strategy = handler.entry_point.underscore_headers
    if strategy == "delete":

        async def delete(request: Any) -> Any:
            msg = request._message
            if any(b"_" in name for name, _ in msg.raw_headers):
                headers = CIMultiDictProxy(
                    CIMultiDict((k, v) for k, v in msg.headers.items() if "_" not in k)
                )
                raw = tuple(pair for pair in msg.raw_headers if b"_" not in pair[0])
                request._message = msg._replace(headers=headers, raw_headers=raw)
                request._headers = headers
            return await handler(request)

        return delete
    if strategy == "reject":

        async def reject(request: Any) -> Any:
            msg = request._message
            transport = request.transport
            if transport is not None and any(b"_" in name for name, _ in msg.raw_headers):
                why = "a request header name holds an underscore (underscoreHeadersStrategy: reject)"
                return handler.reply(request, transport, 400, msg.should_close, None, why)
            return await handler(request)

        return reject
    return handler  # type: ignore[no-any-return]
