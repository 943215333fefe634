"""Failure modes found in review, each against the real process and a raw-socket backend that misbehaves
on purpose: abandoned requests, replays, truncation, early answers, tunnels without backpressure,
out-of-step backends, shutdown with open tunnels."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import aiohttp
import pytest

from tests.integration.harness import raw_exchange, routers, wait_for

pytestmark = pytest.mark.integration


class RawBackend:
    """An asyncio TCP server whose per-connection behaviour is the coroutine given."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.open = 0
        self.requests: list[bytes] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> RawBackend:
        async def wrapped(reader, writer):
            self.open += 1
            task = asyncio.current_task()
            self.tasks.add(task)
            try:
                await self.handler(self, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                self.open -= 1
                self.tasks.discard(task)
                writer.close()

        self.server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        """Stop listening and end the connections still being served, before the test's loop closes."""
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def read_request(self, reader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head.split(b"\r\n", 1)[0])
        return head


@pytest.fixture
async def raw_backend():
    started = []

    async def make(handler):
        b = await RawBackend(handler).start()
        started.append(b)
        return b

    yield make
    for b in started:
        await b.stop()


def one_route(url: str) -> dict:
    return routers(("r", "PathPrefix(`/`)", "s"), services={"s": [url]})


async def send(port: int, data: bytes, timeout: float = 3.0) -> bytes:
    return await raw_exchange(port, data, timeout=timeout)


async def test_client_leaving_abandons_the_backend_request(raw_backend, proxy):
    async def longpoll(b, reader, writer):
        await b.read_request(reader)
        await reader.read()  # never answers; returns when the proxy closes the connection

    b = await raw_backend(longpoll)
    dr = await proxy(one_route(b.url))
    clients = []
    for _ in range(20):
        r, w = await asyncio.open_connection("127.0.0.1", dr.port)
        w.write(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
        clients.append(w)
    await wait_for(lambda: b.open == 20, timeout=5)
    for w in clients:
        w.close()
    await wait_for(lambda: b.open == 0, timeout=3)  # the proxy let go of every backend connection


async def test_non_idempotent_request_is_not_replayed_on_a_stale_connection(raw_backend, proxy):
    async def answer_once_then_close(b, reader, writer):
        await b.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await b.read_request(reader)  # the next request on this kept-alive connection: drop it unanswered

    b = await raw_backend(answer_once_then_close)
    dr = await proxy(one_route(b.url))
    async with aiohttp.ClientSession() as s:
        async with s.post(dr.url("/pay?order=1"), headers={"Host": "x"}) as r:
            assert r.status == 200
        async with s.post(dr.url("/pay?order=2"), headers={"Host": "x"}) as r:
            assert r.status == 502
    assert b.requests.count(b"POST /pay?order=2 HTTP/1.1") == 1
    # a GET in the same situation is retried on a fresh connection and succeeds
    b.requests.clear()
    async with aiohttp.ClientSession() as s:
        for i in range(2):
            async with s.get(dr.url(f"/get{i}"), headers={"Host": "x"}) as r:
                assert r.status == 200


async def test_backend_reset_mid_body_is_not_passed_on_as_complete(raw_backend, proxy):
    """A body of unknown length that the backend cuts with a reset, after part of it reached the client,
    is not passed on as whole: no final chunk, and the client's connection is reset too.

    The reset is sent only once the client has the first part, so it reaches the proxy in a read of its
    own. (A reset arriving in the same wake-up as the last data is reported by libuv as a plain end of
    stream: the proxy cannot tell it from a clean close without asking the socket for its error.)"""
    cut = asyncio.Event()

    async def reset_midway(b, reader, writer):
        await b.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"a" * 800)
        await writer.drain()
        await cut.wait()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # with linger 0: a RST, the body was cut, not finished

    b = await raw_backend(reset_midway)
    dr = await proxy(one_route(b.url))
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = b""
    try:
        async with asyncio.timeout(5):
            while resp.count(b"a") < 800:  # the first part has reached the client
                chunk = await reader.read(65536)
                assert chunk, resp
                resp += chunk
            cut.set()
            while chunk := await reader.read(65536):
                resp += chunk
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    assert resp.startswith(b"HTTP/1.1 200")
    assert not resp.endswith(b"0\r\n\r\n"), "a cut body was framed as complete"


async def test_early_answer_during_upload_says_connection_close(raw_backend, proxy):
    async def refuse_upload(b, reader, writer):
        await b.read_request(reader)
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\ntoo large")
        await writer.drain()
        await asyncio.sleep(2)

    b = await raw_backend(refuse_upload)
    dr = await proxy(one_route(b.url))
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" + b"z" * 65536)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in head.lower()


async def test_backend_out_of_step_bytes_never_reach_the_client(raw_backend, proxy):
    async def too_much(b, reader, writer):
        await b.read_request(reader)
        # Content-Length says 2, but a whole second response follows in the same packet.
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\noneHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"
        )
        await writer.drain()
        await asyncio.sleep(1)

    b = await raw_backend(too_much)
    dr = await proxy(one_route(b.url))
    resp = await send(dr.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    assert b"content-length: 2" in head.lower() and body == b"on"
    assert resp.count(b"HTTP/1.1") == 1


async def test_unrequested_or_odd_upgrades_are_safe(raw_backend, proxy):
    async def switch_anyway(b, reader, writer):
        await b.read_request(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n" + b"x" * 10**6
        )
        await writer.drain()
        await asyncio.sleep(1)

    b = await raw_backend(switch_anyway)
    dr = await proxy(one_route(b.url))
    resp = await send(
        dr.port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: \xe2\x82\xac\r\n\r\n",
        timeout=2,
    )
    assert resp.startswith(b"HTTP/1.1 502")
    assert "Traceback" not in dr.log() and " ERROR " not in dr.log()


async def test_websocket_tunnel_has_backpressure_and_shutdown_respects_grace(raw_backend, proxy, tmp_path):
    async def firehose(b, reader, writer):
        await b.read_request(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        )
        block = b"x" * (1 << 20)
        for _ in range(200):
            writer.write(block)
            await writer.drain()
        await asyncio.sleep(30)

    b = await raw_backend(firehose)
    static = {
        "entryPoints": {
            "web": {"address": "127.0.0.1:0", "transport": {"lifeCycle": {"graceTimeOut": "1s"}}},
        },
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
    }
    dr = await proxy(one_route(b.url), static=static)
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await reader.readuntil(b"\r\n\r\n")
    rss0 = dr.rss_kib()
    # The client reads nothing for a while: the 200 MiB firehose must stay in the backend, not the proxy.
    await wait_for(lambda: b.open == 1, timeout=3)
    await asyncio.sleep(2)  # the measured interval itself: no condition to poll, the point is time passing
    growth = (dr.rss_kib() - rss0) / 1024
    assert growth < 32, f"proxy buffered {growth:.0f} MiB for a client that does not read"
    t0 = time.monotonic()
    dr.terminate()
    await wait_for(lambda: dr.proc.poll() is not None, timeout=6)
    assert time.monotonic() - t0 < 3.5, "graceTimeOut 1s, yet shutdown took longer"
    assert dr.proc.returncode == 0
    writer.close()
