"""The lean upstream client against real loopback sockets speaking raw HTTP."""

import asyncio
import logging
import ssl

import pytest
import trustme

from router.settings import Transport
from router.upstream import ConnectFailed, Pool, TransportUnavailable, UpstreamBroken
from tests.unit.test_transports import server_context, tls_server


async def serve(responses: list[bytes], close_after: bool = False):
    """A raw TCP server answering each request with the next canned response."""
    seen: list[bytes] = []
    conns = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        while responses:
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head)
            writer.write(responses.pop(0))
            await writer.drain()
            if close_after:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, seen, lambda: conns


async def roundtrip(pool: Pool, port: int, head_request: bool = False):
    conn, reused = await pool.acquire(("http", "127.0.0.1", port, ""))
    conn.begin(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", head_request, asyncio.get_running_loop())
    await conn.headers_done
    body = b""
    while True:
        chunk = await conn.read()
        if not chunk:
            break
        body += chunk
    return conn, reused, body


async def test_keep_alive_connection_is_reused():
    server, port, seen, conns = await serve(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyou",
        ]
    )
    pool = Pool(Transport())
    conn, reused, body = await roundtrip(pool, port)
    assert (conn.status, body, reused) == (200, b"hi", False)
    pool.release(conn)
    assert pool.idle_count() == 1
    conn2, reused2, body2 = await roundtrip(pool, port)
    assert (body2, reused2) == (b"you", True)
    assert conns() == 1
    pool.close()
    server.close()


async def test_chunked_and_interim_responses_are_parsed():
    server, port, _, _ = await serve(
        [
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        ]
    )
    pool = Pool(Transport())
    conn, _, body = await roundtrip(pool, port)
    assert conn.status == 201 and body == b"abcde"
    assert (b"X-A", b"1") in conn.headers
    assert conn.reusable
    pool.close()
    server.close()


async def test_body_until_close_and_not_reused():
    server, port, _, _ = await serve(
        [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"], close_after=True
    )
    pool = Pool(Transport())
    conn, _, body = await roundtrip(pool, port)
    assert body == b"all of it"
    pool.release(conn)
    assert pool.idle_count() == 0
    server.close()


async def test_head_response_is_complete_without_body_and_not_reused():
    server, port, _, _ = await serve([b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"])
    pool = Pool(Transport())
    conn, _, body = await roundtrip(pool, port, head_request=True)
    assert conn.status == 200 and body == b"" and not conn.reusable
    pool.close()
    server.close()


async def test_refused_connection_raises_connect_failed():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    pool = Pool(Transport())
    with pytest.raises(ConnectFailed):
        await pool.acquire(("http", "127.0.0.1", port, ""))


async def test_close_before_response_is_broken():
    server, port, _, _ = await serve([b""], close_after=True)
    pool = Pool(Transport())
    conn, _ = await pool.acquire(("http", "127.0.0.1", port, ""))
    conn.begin(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, asyncio.get_running_loop())
    with pytest.raises(UpstreamBroken):
        await conn.headers_done
    server.close()


async def test_garbage_response_is_broken():
    server, port, _, _ = await serve([b"NOT HTTP AT ALL\r\n\r\n"])
    pool = Pool(Transport())
    conn, _ = await pool.acquire(("http", "127.0.0.1", port, ""))
    conn.begin(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, asyncio.get_running_loop())
    with pytest.raises(UpstreamBroken):
        await conn.headers_done
    server.close()


async def test_idle_connections_expire():
    now = [0.0]
    server, port, _, _ = await serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"] * 2)
    pool = Pool(Transport(idle_conn_timeout=5), clock=lambda: now[0])
    conn, _, _ = await roundtrip(pool, port)
    pool.release(conn)
    now[0] = 10.0
    _, reused = await pool.acquire(("http", "127.0.0.1", port, ""))
    assert not reused
    assert conn.closed
    pool.close()
    server.close()


async def test_max_idle_per_host():
    server, port, _, _ = await serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"] * 4)
    pool = Pool(Transport(max_idle_conns_per_host=1))
    c1, _, _ = await roundtrip(pool, port)
    c2 = await pool.connect(("http", "127.0.0.1", port, ""))
    c2.begin(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, asyncio.get_running_loop())
    await c2.headers_done
    await c2.read()
    pool.release(c1)
    pool.release(c2)
    assert pool.idle_count() == 1 and c2.closed
    pool.close()
    server.close()


async def test_retain_abandons_a_hanging_connect_to_a_removed_server():
    """A listener whose accept queue is full drops SYNs: connects to it hang, like one to a stopped
    container's address. Dropping that server from the configuration fails the attempt at once."""
    import socket

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the accept queue (never accepted)
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    pool = Pool(Transport(dial_timeout=20))
    attempt = asyncio.create_task(pool.connect(("http", "127.0.0.1", port, "")))
    await asyncio.sleep(0.3)  # give the SYN time to be dropped: the attempt must still be pending
    if attempt.done():
        pytest.skip("this kernel accepted the connection; cannot simulate a hanging connect")
    pool.retain(set())
    with pytest.raises(ConnectFailed, match="left the configuration"):
        await asyncio.wait_for(attempt, 2)
    for s in fillers:
        s.close()
    lsock.close()


# -- per-service serversTransports ---------------------------------------------------------------------


async def https_roundtrip(pool: Pool, key: tuple[str, str, int, str]):
    conn, reused = await pool.acquire(key)
    conn.begin(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, asyncio.get_running_loop())
    await conn.headers_done
    while await conn.read():
        pass
    return conn, reused


async def test_each_transport_has_its_own_context_and_server_name():
    pool = Pool(Transport())
    pool.set_transports(
        pool.build_transports(
            {
                "skip@file": Transport(insecure_skip_verify=True),
                "named@file": Transport(server_name="b.internal"),
            }
        )
    )
    default_ctx, default_name = pool.tls_for(None)
    skip_ctx, skip_name = pool.tls_for("skip@file")
    named_ctx, named_name = pool.tls_for("named@file")
    assert len({id(default_ctx), id(skip_ctx), id(named_ctx)}) == 3
    assert (default_name, skip_name, named_name) == (None, None, "b.internal")
    assert skip_ctx.verify_mode == ssl.CERT_NONE and default_ctx.verify_mode == ssl.CERT_REQUIRED
    assert pool.tls_for("default@internal")[0] is default_ctx
    assert pool.settings_for("named@file").server_name == "b.internal"


async def test_two_transports_to_one_backend_never_share_a_connection():
    ca = trustme.CA()
    server, port, seen = await tls_server(server_context(ca, "127.0.0.1"))
    pool = Pool(Transport())
    pool.set_transports(
        pool.build_transports(
            {
                "skip@file": Transport(insecure_skip_verify=True),
                "ca@file": Transport(root_cas=(ca.cert_pem.bytes().decode(),)),
            }
        )
    )
    skip_key, ca_key = ("https", "127.0.0.1", port, "skip@file"), ("https", "127.0.0.1", port, "ca@file")
    c1, _ = await https_roundtrip(pool, skip_key)
    pool.release(c1)
    assert pool.idle_count(skip_key) == 1
    c2, reused = await https_roundtrip(pool, ca_key)
    assert not reused and c2 is not c1 and len(seen) == 2
    pool.release(c2)
    c3, reused = await https_roundtrip(pool, skip_key)
    assert reused and c3 is c1
    # The default transport (system roots) does not trust this backend, whatever the others hold idle.
    with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
        await pool.acquire(("https", "127.0.0.1", port, ""))
    pool.close()
    server.close()


async def test_a_changed_transport_drops_its_idle_connections_an_unchanged_one_keeps_them():
    server, port, _ = await tls_server(server_context(trustme.CA(), "127.0.0.1"))
    pool = Pool(Transport())
    pool.set_transports(
        pool.build_transports(
            {"a@file": Transport(insecure_skip_verify=True), "b@file": Transport(insecure_skip_verify=True)}
        )
    )
    a_key, b_key = ("https", "127.0.0.1", port, "a@file"), ("https", "127.0.0.1", port, "b@file")
    a, _ = await https_roundtrip(pool, a_key)
    b, _ = await https_roundtrip(pool, b_key)
    in_flight, _ = await https_roundtrip(
        pool, b_key
    )  # made under b's old settings, released after the change
    pool.release(a)
    pool.release(b)
    ctx_a = pool.tls_for("a@file")[0]
    table = pool.build_transports(
        {
            "a@file": Transport(insecure_skip_verify=True),
            "b@file": Transport(insecure_skip_verify=True, dial_timeout=5),
        }
    )
    pool.set_transports(table)
    assert pool.tls_for("a@file")[0] is ctx_a
    assert pool.idle_count(a_key) == 1 and not a.closed
    assert pool.idle_count(b_key) == 0 and b.closed
    pool.release(in_flight)
    assert pool.idle_count(b_key) == 0 and in_flight.closed
    pool.close()
    server.close()


async def test_unreadable_ca_refuses_the_transport_and_never_connects(tmp_path, caplog):
    server, port, seen = await tls_server(server_context(trustme.CA(), "127.0.0.1"))
    pool = Pool(Transport())
    with caplog.at_level(logging.ERROR, logger="dockroute.transport"):
        pool.set_transports(
            pool.build_transports(
                {"broken@file": Transport(insecure_skip_verify=True, root_cas=(str(tmp_path / "ca.pem"),))}
            )
        )
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.name.startswith("dockroute")] == [
        "serversTransport broken@file is unusable, its services get no connection"
    ]
    for scheme in ("https", "http"):  # never falls back to the default transport, plain HTTP included
        with pytest.raises(TransportUnavailable, match="serversTransport broken@file is unusable"):
            await pool.acquire((scheme, "127.0.0.1", port, "broken@file"))
    with pytest.raises(TransportUnavailable, match="serversTransport gone@file does not exist"):
        await pool.acquire(("https", "127.0.0.1", port, "gone@file"))
    # Health checks get a context that fails the handshake naming the transport, never a laxer one.
    ctx, _ = pool.tls_for("broken@file")
    with pytest.raises(ssl.SSLError, match="broken@file"):
        await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
    assert seen == []  # no TLS connection was ever completed
    pool.close()
    server.close()


async def test_server_name_is_sent_and_verified():
    ca = trustme.CA()
    server, port, _ = await tls_server(server_context(ca, "backend.internal"))
    pool = Pool(Transport())
    roots = (ca.cert_pem.bytes().decode(),)
    pool.set_transports(
        pool.build_transports(
            {
                "ca@file": Transport(root_cas=roots),
                "named@file": Transport(root_cas=roots, server_name="backend.internal"),
            }
        )
    )
    with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
        await pool.acquire(("https", "127.0.0.1", port, "ca@file"))
    conn, _ = await https_roundtrip(pool, ("https", "127.0.0.1", port, "named@file"))
    assert conn.status == 200
    pool.close()
    server.close()


async def test_timeouts_and_idle_limits_are_per_transport():
    server, port, _, _ = await serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"] * 8)
    now = [0.0]
    pool = Pool(Transport(), clock=lambda: now[0])
    pool.set_transports(
        pool.build_transports(
            {
                "short@file": Transport(idle_conn_timeout=5),
                "two@file": Transport(max_idle_conns_per_host=2),
                "none@file": Transport(max_idle_conns_per_host=0),
            }
        )
    )
    short, two, none = (("http", "127.0.0.1", port, name) for name in ("short@file", "two@file", "none@file"))
    conns = []
    for key in (short, two, two, two, none):
        c, _ = await pool.acquire(key)
        c.begin(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, asyncio.get_running_loop())
        await c.headers_done
        await c.read()
        conns.append(c)
    for c in conns:
        pool.release(c)
    assert (pool.idle_count(two), pool.idle_count(none)) == (2, 0)
    now[0] = 10.0
    assert (await pool.acquire(two))[1] is True  # the default 90 s idle timeout
    assert (await pool.acquire(short))[1] is False  # its own 5 s one
    pool.close()
    server.close()
