"""The TCP relay under uvloop (what dockroute runs): a client socket gets no HTTP send-stall bound, and a
backend gone while the client side was being connected takes the client with it."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import ssl
import struct
import threading

import pytest
import trustme

from router.proxy_protocol import ClientAddress
from router.tcp.relay import join
from router.tcp.rules import parse_tcp_rule
from router.tcp.serve import serve
from router.tcp.service import Server, TCPBalancer
from router.tcp.table import TCPRoute
from tests.polling import wait_for

uvloop = pytest.importorskip("uvloop")
USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", None)


def run(coro_fn) -> None:  # noqa: ANN001 - a coroutine function
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro_fn())


async def accepted_pair() -> tuple[socket.socket, socket.socket]:
    """(client socket, the proxy's accepted socket for it), both non-blocking."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    client = socket.socket()
    client.setblocking(False)
    await loop.sock_connect(client, listener.getsockname())
    conn, _ = await loop.sock_accept(listener)
    listener.close()
    conn.setblocking(False)
    return client, conn


@pytest.mark.skipif(USER_TIMEOUT is None, reason="no TCP_USER_TIMEOUT here")
def test_a_relayed_client_socket_has_no_user_timeout():
    async def main() -> None:
        backend = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = backend.sockets[0].getsockname()[1]
        client, conn = await accepted_pair()
        conn.setsockopt(socket.IPPROTO_TCP, USER_TIMEOUT, 60_000)  # as the entry point sets on accept
        probe = conn.dup()  # the same socket: its options are read after serve() owns conn
        server = Server(f"127.0.0.1:{port}", "127.0.0.1", port, 5.0, -1, 0.1, 0, None, None)
        route = TCPRoute("r", 0, parse_tcp_rule("HostSNI(`*`)"), TCPBalancer("s", servers=(server,)))
        relays: set = set()
        await serve(route, conn, ClientAddress("127.0.0.1", 1), None, relays, 5.0)
        assert relays, "not relayed"
        assert probe.getsockopt(socket.IPPROTO_TCP, USER_TIMEOUT) == 0  # Traefik sets none on TCP
        for relay in list(relays):
            relay.close()
        probe.close()
        client.close()
        backend.close()

    run(main)


def _tls_backend_that_resets(ctx: ssl.SSLContext) -> tuple[int, threading.Event]:
    """A TLS server (a thread, blocking sockets): one handshake, then a reset; the event once it is gone."""
    listener = socket.create_server(("127.0.0.1", 0))
    gone = threading.Event()

    def serve_one() -> None:
        conn, _ = listener.accept()
        listener.close()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.set()

    threading.Thread(target=serve_one, daemon=True).start()
    return listener.getsockname()[1], gone


def test_a_backend_gone_while_the_client_handshakes_closes_the_client():
    async def main() -> None:
        ca = trustme.CA()
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("relay.test").configure_cert(server_ctx)
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        backend_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("relay.test").configure_cert(backend_ctx)
        backend_ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # its handshake ends on its own Finished
        port, gone = _tls_backend_that_resets(backend_ctx)
        client, conn = await accepted_pair()
        backend = socket.create_connection(("127.0.0.1", port))
        backend.setblocking(False)
        joining = asyncio.ensure_future(
            join(
                conn,
                backend,
                0.1,
                client_tls=server_ctx,
                backend_tls=client_ctx,
                server_hostname="relay.test",
            )
        )
        await wait_for(gone.is_set)
        await asyncio.sleep(0.2)  # the reset reaches the relay's backend side before the client handshakes
        reader, writer = await asyncio.open_connection(
            sock=client, ssl=client_ctx, server_hostname="relay.test"
        )
        relay = await asyncio.wait_for(joining, 5)
        async with asyncio.timeout(5):  # before the fix: open for ever, though relay.done is long set
            assert await reader.read() == b""
        assert relay.done.done()
        writer.close()

    run(main)


def test_a_pipe_whose_resize_is_refused_is_used_at_the_size_it_has(monkeypatch):
    """Over the user's pipe quota (pipe-user-pages-soft) Linux refuses F_SETPIPE_SZ and new pipes hold one
    page: the size is read back (F_GETPIPE_SZ), not assumed to be 64 KiB."""
    from router.tcp import splice

    real = fcntl.fcntl

    def quota(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == splice._F_SETPIPE_SZ:
            raise PermissionError(1, "Operation not permitted")
        if cmd == getattr(fcntl, "F_GETPIPE_SZ", 1032):
            return 4096
        return real(fd, cmd, arg)

    monkeypatch.setattr(splice.fcntl, "fcntl", quota)
    a, b = socket.socketpair()
    direction = splice._Direction(None, a, b)  # type: ignore[arg-type] # the relay is not used here
    try:
        assert direction.size == 4096
    finally:
        os.close(direction.r)
        os.close(direction.w)
        a.close()
        b.close()
