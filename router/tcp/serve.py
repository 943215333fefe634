"""One routed TCP connection: middlewares, a server, the dial (PROXY header first), TLS, then the relay.

Called by the entry point (:mod:`router.server`) once a TCP route matched; it owns the accepted socket
from then on and closes it on every failure. The relays still open are kept in the entry point's set so
that shutdown can close them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from router.proxy_protocol import ClientAddress, encode
from router.tcp.postgres import SSL_REQUEST, STARTTLS_REPLY
from router.tcp.relay import BackendHandshakeError, Relay, dial, join
from router.tcp.table import PASSTHROUGH, TCPRoute

log = logging.getLogger("dockroute.tcp")

_USER_TIMEOUT: int | None = getattr(socket, "TCP_USER_TIMEOUT", None)


async def _starttls_accepted(backend: socket.socket, timeout: float) -> bool:
    """The server's one-byte answer to the replayed SSLRequest is ``S`` (Traefik's postgresConn)."""
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.get_running_loop().sock_recv(backend, 1) == STARTTLS_REPLY
    except (OSError, TimeoutError):
        return False


async def serve(
    route: TCPRoute,
    conn: socket.socket,
    client: ClientAddress,
    store: Any,
    relays: set[Relay],
    handshake_timeout: float | None,
    postgres: bool = False,
) -> None:
    """Relay ``conn`` (owned from here) to a server of ``route``'s service. ``postgres``: the client's
    STARTTLS was answered (:mod:`router.tcp.postgres`); a passthrough server is asked for TLS the same way
    before the client's ClientHello reaches it."""
    releases: list[Callable[[], None]] = []
    relay = None
    try:
        if route.broken or (route.tls not in (None, PASSTHROUGH) and store is None):
            return
        for admit in route.admits:
            release = admit(client.ip)
            if release is None:
                return
            releases.append(release)
        server = route.balancer.pick()
        if server is None or server.unreachable:
            log.debug("TCP router %s: no server to send %s to", route.name, client.ip)
            return
        client_tls = store.listening_context(route.tls) if route.tls not in (None, PASSTHROUGH) else None
        header = encode(server.proxy_protocol, client, conn.getsockname()) if server.proxy_protocol else b""
        starttls = postgres and route.tls == PASSTHROUGH
        try:
            backend = await dial(
                server.host,
                server.port,
                server.dial_timeout,
                server.keep_alive,
                header + SSL_REQUEST * starttls,
            )
        except (OSError, TimeoutError) as exc:
            log.error("TCP router %s: error while dialing backend %s: %s", route.name, server.address, exc)
            return
        try:
            accepted = not starttls or await _starttls_accepted(backend, server.dial_timeout or 30.0)
        except BaseException:  # cancelled (shutdown): the backend socket is still ours
            backend.close()
            raise
        if not accepted:
            log.error("TCP router %s: %s refused PostgreSQL's STARTTLS", route.name, server.address)
            backend.close()
            return
        if _USER_TIMEOUT is not None:  # the entry point's HTTP send-stall bound: Traefik sets none on TCP
            conn.setsockopt(socket.IPPROTO_TCP, _USER_TIMEOUT, 0)
        owned, conn = conn, None  # join owns both sockets from here, and closes them if it fails
        relay = await join(
            owned,
            backend,
            server.termination_delay,
            client_tls=client_tls,
            backend_tls=server.tls,
            server_hostname=server.server_name,
            handshake_timeout=handshake_timeout or 10.0,
        )
    except BackendHandshakeError as exc:  # Traefik's "Error while dialing backend" (its dial includes TLS)
        log.error("TCP router %s: error while dialing backend %s: %s", route.name, server.address, exc)
    except (OSError, TimeoutError, ssl.SSLError, KeyError) as exc:
        log.debug("TCP router %s: connection from %s dropped: %s", route.name, client.ip, exc)
    finally:
        if conn is not None:
            conn.close()
        if relay is None:
            for release in releases:
                release()
    if relay is not None:
        _track(relay, relays, releases)


def _track(relay: Relay, relays: set[Relay], releases: list[Callable[[], None]]) -> None:
    """``relay`` is in ``relays`` (for shutdown) until it is done; its middlewares' holds end with it."""
    relays.add(relay)

    def ended(_: object) -> None:
        relays.discard(relay)
        for release in releases:
            release()

    relay.done.add_done_callback(ended)
