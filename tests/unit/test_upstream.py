"""The lean upstream client against real loopback sockets speaking raw HTTP."""

import asyncio

import pytest

from router.settings import Transport
from router.upstream import ConnectFailed, Pool, UpstreamBroken


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
    conn, reused = await pool.acquire(("http", "127.0.0.1", port))
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
        await pool.acquire(("http", "127.0.0.1", port))


async def test_close_before_response_is_broken():
    server, port, _, _ = await serve([b""], close_after=True)
    pool = Pool(Transport())
    conn, _ = await pool.acquire(("http", "127.0.0.1", port))
    conn.begin(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, asyncio.get_running_loop())
    with pytest.raises(UpstreamBroken):
        await conn.headers_done
    server.close()


async def test_garbage_response_is_broken():
    server, port, _, _ = await serve([b"NOT HTTP AT ALL\r\n\r\n"])
    pool = Pool(Transport())
    conn, _ = await pool.acquire(("http", "127.0.0.1", port))
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
    _, reused = await pool.acquire(("http", "127.0.0.1", port))
    assert not reused
    assert conn.closed
    pool.close()
    server.close()


async def test_max_idle_per_host():
    server, port, _, _ = await serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"] * 4)
    pool = Pool(Transport(max_idle_conns_per_host=1))
    c1, _, _ = await roundtrip(pool, port)
    c2 = await pool.connect(("http", "127.0.0.1", port))
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
    attempt = asyncio.create_task(pool.connect(("http", "127.0.0.1", port)))
    await asyncio.sleep(0.3)  # give the SYN time to be dropped: the attempt must still be pending
    if attempt.done():
        pytest.skip("this kernel accepted the connection; cannot simulate a hanging connect")
    pool.retain(set())
    with pytest.raises(ConnectFailed, match="left the configuration"):
        await asyncio.wait_for(attempt, 2)
    for s in fillers:
        s.close()
    lsock.close()
