"""What ``Header``/``HeaderRegexp`` rules naming X-Forwarded-* or X-Real-Ip see: Traefik's view.

In Traefik the entry point's forwardedheaders handler runs before the router. For a peer outside
``forwardedHeaders.trustedIPs`` (and without ``insecure``) it deletes every X-Forwarded-*/X-Real-Ip in
every ``_`` spelling, then sets X-Real-Ip to the peer's address, X-Forwarded-Proto to http/https (ws/wss
for a WebSocket upgrade), X-Forwarded-Port, X-Forwarded-Host to the Host, and X-Forwarded-Server to its
host name; X-Forwarded-For is only appended later, by the proxy, so a rule sees none. A trusted peer's
values stay and only the empty ones are filled. Without this view an "internal only" router
(``HeaderRegexp(`X-Real-Ip`, `^10\\.`)``) would be reached by any client sending ``X-Real-Ip: 10.0.0.1``,
the header-spoofing family of CVE-2024-45410.

Cost: nothing for other rules. The rule compiler picks :func:`values` only for a managed header name
(:func:`is_managed`); the request carries its entry point as a class attribute of a per-entry-point
subclass of :class:`~router.rules.RequestInfo` (:func:`info_class`: no per-request store) and its raw
authority in one slot. The trust check runs only when such a matcher does.

:func:`forwarded_proto` and :func:`forwarded_port` are Traefik's rules for X-Forwarded-Proto and
X-Forwarded-Port, meant to be the one computation for rules and for what :mod:`router.forward` sends the
backend; the host name is the same ``socket.gethostname()`` as there.
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


def _own(req: Any, ep: Any, name: str) -> tuple[str, ...]:
    """The proxy's value for the canonical ``name`` when the client's is absent, deleted or empty."""
    if name == "x-real-ip":  # the peer's address without an IPv6 zone (Traefik's removeIPv6Zone)
        return (req.client_ip.split("%", 1)[0],) if req.client_ip else _NONE
    scheme = ep.scheme if ep is not None else "http"
    if name == "x-forwarded-proto":
        return (forwarded_proto(scheme, is_websocket_upgrade(req.headers)),)
    if name == "x-forwarded-port":
        proto = values(req, "x-forwarded-proto")[0]
        return (forwarded_port(proto, req.authority, scheme == "https"),)
    if name == "x-forwarded-host":
        return (req.authority,) if req.authority else _NONE
    return _NONE


def values(req: Any, name: str) -> tuple[str, ...]:
    """The values a rule sees of the managed header ``name`` (lower case, as the rule spells it)."""
    ep = req.via
    headers = req.headers
    trusted = ep is not None and bool(ep.trusted) and ep.trusted.trusts(req.client_ip)
    if name == "x-forwarded-server":
        return _HOSTNAME
    if "_" in name:  # nothing sets an underscore spelling: only a trusted client's own passes
        return tuple(headers.getall(name, ())) if trusted else _NONE
    own = tuple(headers.getall(name, ())) if trusted else _NONE
    if name == "x-forwarded-for":
        return own  # each line on its own, as Go's Header matchers test them
    if own and own[0]:
        return own
    return _own(req, ep, name) or own
