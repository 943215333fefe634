"""PostgreSQL's STARTTLS in front of TLS TCP routers, as Traefik's ``pkg/server/router/tcp/postgres.go``.

A PostgreSQL client asks for TLS with an 8-byte SSLRequest before its ClientHello, so the SNI a
``HostSNI`` rule needs comes second. On an entry point with TCP routers, a connection that opens with that
request is answered ``S`` here, its ClientHello then read and matched against the TLS TCP routers only
(none matching: closed, as Traefik). A router terminating TLS then relays plain PostgreSQL to its server;
a passthrough one first replays the SSLRequest to the server and takes its one-byte answer (``S``, else
the connection is dropped), so the client's TLS reaches a server that expects it.
"""

from __future__ import annotations

import asyncio
import socket

__all__ = ["SSL_REQUEST", "STARTTLS_REPLY", "opens_with_ssl_request"]

SSL_REQUEST = bytes((0, 0, 0, 8, 4, 210, 22, 47))  # int32(8), int32(80877103)
STARTTLS_REPLY = b"S"


async def opens_with_ssl_request(conn: socket.socket, wait: float = 2.0) -> bool:
    """Whether the bytes waiting in ``conn`` (peeked, left there) are an SSLRequest. Bytes that cannot
    begin one answer False at once (an HTTP request's first byte already does); a partial request is
    waited for up to ``wait`` seconds, re-peeking on a timer backing off from 2 to 50 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = 0.002
    while True:
        try:
            data = conn.recv(len(SSL_REQUEST), socket.MSG_PEEK)
        except BlockingIOError:
            data = None
        if data == b"" or (data is not None and not SSL_REQUEST.startswith(data)):
            return False
        if data == SSL_REQUEST:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
