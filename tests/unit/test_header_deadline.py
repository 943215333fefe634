"""router.server's header deadline, in process, on real loopback sockets.

A request's head must arrive within the entry point's header timeout of the connection (or of the next
request's first byte); a connection waiting for its client between requests, or busy with a request
whose body or tunnel takes longer, is never cut by it. The timer may fire as the connection goes away:
that must stay quiet (it once raised AttributeError from the loop's callback, logged as a traceback).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from router import server as server_module

DEADLINE = 0.3


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Everything the event loop's exception handler is given (an exception in a timer callback)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(previous)


async def _slow_reader(request: Any) -> web.Response:
    body = await request.content.read()
    return web.Response(text=f"got {len(body)}")


@pytest.fixture
async def served() -> AsyncIterator[tuple[server_module._Server, int]]:
    """A hardened aiohttp server (router.server's) with a short header deadline."""
    srv = server_module._Server(
        _slow_reader,
        header_timeout=DEADLINE,
        handler_cancellation=True,
        access_log=None,
        keepalive_timeout=30,
    )
    listener = await asyncio.get_running_loop().create_server(srv, "127.0.0.1", 0)
    yield srv, listener.sockets[0].getsockname()[1]
    listener.close()
    await srv.shutdown(0.5)
    await listener.wait_closed()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True when the server closes the connection within ``seconds`` (reads until EOF)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(1024):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def test_stalled_head_is_cut_at_the_deadline_quietly(served, loop_errors, caplog):
    _, port = served
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Part")  # and nothing more
    await writer.drain()
    assert await _closed_within(reader, DEADLINE + 2)
    writer.close()
    await asyncio.sleep(0)  # let the closing callbacks run before looking at what they logged
    assert loop_errors == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "request headers not received in time" in caplog.text


async def test_idle_keep_alive_is_not_cut_but_the_next_stalled_head_is(served, loop_errors):
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    assert b"got 2" in await _answer(reader)
    assert not await _closed_within(reader, DEADLINE * 3)  # idle between requests: not a late head
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
    assert b"got 1" in await _answer(reader)
    writer.write(b"GET / HTTP/1.1\r\n")  # the next head starts, then stalls
    await writer.drain()
    assert await _closed_within(reader, DEADLINE + 2)
    writer.close()
    assert loop_errors == []


async def test_a_body_slower_than_the_deadline_is_not_cut(served, loop_errors):
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
    for piece in (b"a", b"b", b"c", b"d"):  # 4 x DEADLINE: the handler is busy reading it all along
        await asyncio.sleep(DEADLINE)
        writer.write(piece)
        await writer.drain()
    assert b"got 4" in await _answer(reader)
    writer.close()
    assert loop_errors == []


@pytest.mark.parametrize("lost", [False, True], ids=["closing", "lost"])
async def test_deadline_firing_as_the_connection_closes_is_quiet(served, loop_errors, lost):
    """The timer and the connection's end in the same loop turn: the transport is closing (or already
    gone, which force_close() also causes) when the deadline runs."""
    srv, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\n")
    await writer.drain()
    for _ in range(100):
        if srv.connections and srv.connections[0].header_handle is not None:
            break
        await asyncio.sleep(0.01)
    (proto,) = srv.connections
    transport = proto.transport
    proto.header_handle.cancel()
    proto.head_since = asyncio.get_running_loop().time() - DEADLINE  # the head is overdue
    transport.close()  # connection_lost is now scheduled, not yet run
    if lost:
        proto.connection_lost(None)
    proto._header_deadline()  # what the timer would run in this very turn
    assert proto.header_handle is None
    assert await _closed_within(reader, 2)
    writer.close()
    await asyncio.sleep(0)
    assert loop_errors == []
