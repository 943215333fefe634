"""What ``Header``/``HeaderRegexp`` rules naming X-Forwarded-* or X-Real-Ip see: Traefik's view.

In Traefik the entry point's forwardedheaders handler runs before the router. For a peer outside
``forwardedHeaders.trustedIPs`` (and without ``insecure``) it deletes every X-Forwarded-*/X-Real-Ip in
every ``_`` spelling, then sets X-Real-Ip to the peer's address, X-Forwarded-Proto to http/https (ws/wss
for a WebSocket upgrade), X-Forwarded-Port, X-Forwarded-Host to the Host, and X-Forwarded-Server to its
host name; X-Forwarded-For is only appended later, by the proxy, so a rule sees none. A trusted peer's
values stay (its X-Forwarded-For lines joined into one) and only the empty ones are filled. Without this
view an "internal only" router (``HeaderRegexp(`X-Real-Ip`, `^10\\.`)``) would be reached by any client
sending ``X-Real-Ip: 10.0.0.1``, the header-spoofing family of CVE-2024-45410.

Cost: nothing for other rules. The rule compiler picks :func:`values` only for a managed header name
(:func:`is_managed`); the request carries its entry point as a class attribute of a per-entry-point
subclass of :class:`~router.rules.RequestInfo` (:func:`info_class`: no per-request store) and its raw
authority in one slot. The trust check runs only when such a matcher does.

:func:`entry_values` is the one computation of these values: rules, what :mod:`router.forward` sends the
backend, what the ``headers`` middleware reads (hostsProxyHeaders, sslProxyHeaders) and what forwardAuth
sends its auth server all come from it; the host name is the same ``socket.gethostname()`` everywhere.
"""

from __future__ import annotations

import socket
from typing import Any

from router.headers import MANAGED

HOSTNAME = socket.gethostname()  # X-Forwarded-Server, here and in router.forward
_HOSTNAME = (HOSTNAME,)
_NONE: tuple[str, ...] = ()


def is_managed(name: str) -> bool:
    """Whether a rule's header name is one the forwardedheaders handler manages (any case, any ``_``)."""
    return name.lower().encode("latin-1", "replace") in MANAGED


def info_class(handler: Any) -> type:
    """A RequestInfo class for one entry point's handler: ``via`` is the handler, a class attribute, so
    that building a request's info costs what it did. Imported late: router.rules imports the matchers,
    which import this module."""
    from router.rules import RequestInfo

    return type("RequestInfo", (RequestInfo,), {"__slots__": (), "via": handler})


def is_websocket_upgrade(headers: Any, upgrade: bool | None = None) -> bool:
    """Whether a request is a WebSocket upgrade: the one answer for what is tunnelled
    (:mod:`router.connection` reads the bytes after it as tunnel data, :mod:`router.forward` relays a 101)
    and for what is labelled X-Forwarded-Proto ``ws``/``wss``.

    It is what aiohttp's parser switches to raw bytes for: llhttp saw an upgrade (``upgrade``, its flag on
    the parsed message: a Connection header lists ``upgrade`` and an Upgrade header came; recomputed from
    ``headers`` when None, for rules) and the first Upgrade value is exactly ``websocket``, any case. Any
    other Upgrade (``foo``, ``h2c``, ``websocket, foo``) is proxied as a plain request, so it is not labelled
    ws either. Traefik's isWebsocketRequest would label ``websocket, foo`` ws (it reads "lists"): dockroute
    cannot tunnel that one, and a label saying otherwise would lie to the backend."""
    if upgrade is None:
        upgrade = "Upgrade" in headers and any(
            t.strip().lower() == "upgrade" for v in headers.getall("Connection", ()) for t in v.split(",")
        )
    if not upgrade:
        return False
    value = headers.get("Upgrade", "")
    return value.isascii() and value.lower() == "websocket"


def forwarded_proto(scheme: str, websocket: bool) -> str:
    """The X-Forwarded-Proto Traefik sets when none came (or none was trusted): the entry point's scheme
    (``http``/``https``), or ``ws``/``wss`` for a WebSocket upgrade (:func:`is_websocket_upgrade`)."""
    if websocket:
        return "wss" if scheme == "https" else "ws"
    return scheme


def forwarded_port(scheme: str, authority: str, tls: bool = False) -> str:
    """Traefik's forwardedPort: the port of the Host (or absolute-form authority) if it has one, as Go's
    ``net.SplitHostPort`` reads it; else ``443`` when ``scheme`` (the X-Forwarded-Proto in effect) is
    https or wss, or the connection is TLS; else ``80``. Never the entry point's listening port."""
    port = ""
    if authority.startswith("["):
        end = authority.find("]:")
        if end > 0:
            port = authority[end + 2 :]
    elif authority.count(":") == 1:
        port = authority.rpartition(":")[2]
    if port:
        return port
    return "443" if tls or scheme in ("https", "wss") else "80"


def entry_values(
    scheme: str, headers: Any, client_ip: str, authority: str, trusted: bool, websocket: bool
) -> tuple[str, str, str, str, str]:
    """What Traefik's forwardedheaders handler leaves on a request: (X-Forwarded-For, X-Forwarded-Host,
    X-Forwarded-Proto, X-Forwarded-Port, X-Real-Ip), "" for one it leaves unset. The one computation of
    them: rules (:func:`values`), the request to the backend (:func:`router.forward._forwarded`), the
    headers middleware and forwardAuth all read it, so that none can disagree with another.

    X-Forwarded-For is a ``trusted`` peer's lines joined into one (Traefik since 2.10), else none: the proxy
    appends the peer when it sends the request on. The others are a trusted peer's first value when not
    empty, else the handler's: the Host (``authority``); the entry point's ``scheme``, ws/wss for a
    ``websocket`` upgrade (:func:`is_websocket_upgrade`); :func:`forwarded_port` of that proto; the peer's
    address without an IPv6 zone (Traefik's removeIPv6Zone)."""
    real = client_ip if "%" not in client_ip else client_ip.partition("%")[0]
    if not trusted:
        proto = ("wss" if scheme == "https" else "ws") if websocket else scheme
        return "", authority, proto, forwarded_port(proto, authority, scheme == "https"), real
    proto = headers.get("X-Forwarded-Proto") or forwarded_proto(scheme, websocket)
    return (
        ", ".join(headers.getall("X-Forwarded-For", ())),
        headers.get("X-Forwarded-Host") or authority,
        proto,
        headers.get("X-Forwarded-Port") or forwarded_port(proto, authority, scheme == "https"),
        headers.get("X-Real-Ip") or real,
    )


def trusts(req: Any) -> bool:
    """Whether the request's peer is one its entry point's ``forwardedHeaders`` trusts (``req`` is a
    RequestInfo: without an entry point, nothing is trusted)."""
    ep = req.via
    return ep is not None and bool(ep.trusted) and ep.trusted.trusts(req.client_ip)


def request_values(req: Any, trusted: bool) -> tuple[str, str, str, str, str]:
    """:func:`entry_values` of a RequestInfo (rules, middlewares: ``ex.info``)."""
    ep = req.via
    scheme = ep.scheme if ep is not None else "http"
    headers = req.headers
    return entry_values(scheme, headers, req.client_ip, req.authority, trusted, is_websocket_upgrade(headers))


# where each header set by the handler is in entry_values' answer
_ENTRY = {
    "x-forwarded-for": 0,
    "x-forwarded-host": 1,
    "x-forwarded-proto": 2,
    "x-forwarded-port": 3,
    "x-real-ip": 4,
}


def values(req: Any, name: str) -> tuple[str, ...]:
    """The values a rule (or a middleware) sees of the managed header ``name`` (lower case, as spelt)."""
    if name == "x-forwarded-server":
        return _HOSTNAME
    trusted = trusts(req)
    own = tuple(req.headers.getall(name, ())) if trusted else _NONE
    at = _ENTRY.get(name)
    if at is None:  # an ``_`` spelling, or one the handler never sets: only a trusted client's own passes
        return own
    if at and own and own[0]:  # a trusted client's own lines stay as they came (only XFF is joined)
        return own
    value = request_values(req, trusted)[at]
    return (value,) if value else own
