"""router.server.EntryPointServer._dispatch on a real accepted TCP socket: one header deadline covers a
PROXY header and the first byte after it, and a TLS TCP router is served with the certificates the
connection found before its awaits (a reload meanwhile cannot hand it the next configuration's)."""

from __future__ import annotations

import asyncio
import socket
import time
from types import SimpleNamespace

import pytest

from router import server as server_module
from router.clienthello import ClientHello
from router.proxy import EntryPointHandler
from router.server import EntryPointServer
from router.settings import EntryPoint, ProxyProtocolIn, Transport
from router.upstream import Pool


@pytest.fixture
def accepted():
    """(accepted socket, its peer, the client socket) of a loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        conn, peer = listener.accept()
    conn.setblocking(False)
    yield conn, peer, client
    conn.close()
    client.close()


def entry_point(**kw) -> EntryPointServer:
    ep = EntryPoint(name="web", address="127.0.0.1:0", **kw)
    return EntryPointServer(
        EntryPointHandler(ep, Pool(Transport())), EntryPointHandler(ep, Pool(Transport()))
    )


@pytest.mark.timing
async def test_the_proxy_header_and_the_first_byte_share_one_deadline(accepted):
    conn, peer, client = accepted
    server = entry_point(read_timeout=1.0, proxy_protocol=ProxyProtocolIn(insecure=True))
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    dispatch = loop.create_task(server._dispatch(conn, None, peer))
    await asyncio.sleep(0.7)
    client.sendall(b"PROXY TCP4 198.51.100.7 192.0.2.1 56324 80\r\n")  # in time; then nothing
    await asyncio.wait_for(dispatch, 5)
    # dropped at the 1 s deadline, not 1 s after the header (1.7 s) as with a fresh one for the peek
    assert time.monotonic() - started < 1.4
    assert conn.fileno() == -1  # closed


async def test_a_tls_tcp_router_is_served_with_the_store_found_before_the_awaits(accepted, monkeypatch):
    conn, peer, client = accepted
    server = entry_point()
    found, reloaded = (SimpleNamespace(default_context=None, name=name) for name in ("found", "reloaded"))
    server.tls_store = found
    route = object()
    server.tcp_table = SimpleNamespace(
        server_first=False, match_tls=lambda info: route, match_plain=lambda info: None
    )

    async def peek_hello_during_a_reload(self, conn, loop):
        self.tls_store = reloaded  # a configuration applied while the ClientHello was awaited
        return ClientHello("db.example", ())

    served = []

    async def serve(route_, conn_, client_, store, *args, **kw):
        served.append((route_, store, client_.ip))
        conn_.close()

    monkeypatch.setattr(EntryPointServer, "_peek_hello", peek_hello_during_a_reload)
    monkeypatch.setattr(server_module, "serve", serve)
    client.sendall(b"\x16\x03\x01")  # a TLS record begins
    await server._dispatch(conn, b"\x16", peer)
    assert served == [(route, found, "127.0.0.1")] and served[0][1].name == "found"
