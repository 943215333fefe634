"""What a middleware hands the proxy never becomes a second header or a second request, and an answer a
middleware gives before the request body arrived never leaves the connection out of step: attacks from
the security review, through the real process."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from tests.integration.harness import raw_exchange, routers

pytestmark = pytest.mark.integration


def _cfg(backend, middlewares: dict, names: list[str]) -> dict:
    cfg = routers(("app", "Host(`app.test`)", "svc"), services={"svc": [backend.url]})
    cfg["http"]["routers"]["app"]["middlewares"] = names
    cfg["http"]["middlewares"] = middlewares
    return cfg


async def test_a_line_break_captured_into_a_header_is_never_sent(proxy, backends):
    """stripPrefixRegex sets X-Forwarded-Prefix from the decoded path: %0D%0A there would inject headers
    (or a Content-Length) into the request the service reads. The proxy refuses to send it."""
    (b,) = await backends("b")
    dr = await proxy(_cfg(b, {"strip": {"stripPrefixRegex": {"regex": ["/t/[^/]+"]}}}, ["strip"]))
    attack = (
        b"GET /t/x%0D%0AX-Injected:%20yes%0D%0AContent-Length:%2040/rest HTTP/1.1\r\nHost: app.test\r\n\r\n"
    )
    answer = await raw_exchange(dr.port, attack, until_close=False)
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert b.hits == 0
    async with (
        aiohttp.ClientSession() as http,  # a plain request still goes through
        http.get(dr.url("/t/x/rest"), headers={"Host": "app.test"}) as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["headers"]["X-Forwarded-Prefix"] == "/t/x"


async def _auth_server(handler) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def test_framing_headers_from_an_auth_server_never_reach_the_service(proxy, backends):
    """An auth server answering Content-Length (copied by authResponseHeadersRegex) must not give the
    service two lengths: the body would then carry a smuggled request."""
    (b,) = await backends("b")
    seen: list[str] = []

    async def verify(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Forwarded-Uri", ""))
        uri = request.headers.get("X-Forwarded-Uri", "")
        status = 200 if uri.startswith("/public/") else 401
        return web.Response(status=status, headers={"X-User": "alice", "Content-Type": "text/x-auth"})

    runner, port = await _auth_server(verify)
    try:
        mws = {
            "auth": {
                "forwardAuth": {
                    "address": f"http://127.0.0.1:{port}/",
                    "authResponseHeadersRegex": "^(X-|Content-)",
                }
            }
        }
        dr = await proxy(_cfg(b, mws, ["auth"]))
        body = b"0123456789" * 4
        async with aiohttp.ClientSession() as http:
            async with http.post(dr.url("/public/echo"), data=body, headers={"Host": "app.test"}) as resp:
                assert resp.status == 200
                got = await resp.json()
            assert got["body_len"] == len(body)
            names = [n.lower() for n, _ in got["header_list"]]
            assert names.count("content-length") == 1 and got["headers"]["X-User"] == "alice"
            # the auth server judges the path the service will get, never the client's raw target
            for attack in ("/public/../admin", "/public/%2e%2e/admin"):
                raw = f"GET {attack} HTTP/1.1\r\nHost: app.test\r\n\r\n".encode()
                answer = await raw_exchange(dr.port, raw, until_close=False)
                assert answer.startswith(b"HTTP/1.1 401 "), attack
            assert seen[-2:] == ["/admin", "/admin"]
    finally:
        await runner.cleanup()


async def test_an_early_answer_to_a_client_waiting_for_100_continue_closes_the_connection(proxy, backends):
    """basicAuth answers 401 before the body: the client never sends it (it waited for 100 Continue), so
    the next request on the connection would be read as that body. The answer says close, and closes."""
    (b,) = await backends("b")
    mws = {
        "auth": {"basicAuth": {"users": ["alice:{SHA}VBPuJHI7uixaa6LQGWx4s+5GKNE="]}},
        "buf": {"buffering": {"maxRequestBodyBytes": 1000}},
    }
    cfg = _cfg(b, mws, ["auth"])
    cfg["http"]["routers"]["buffered"] = {
        "rule": "Host(`buf.test`)",
        "service": "svc",
        "middlewares": ["buf"],
    }
    dr = await proxy(cfg)
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    try:
        writer.write(
            b"PUT /x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 401 ") and b"Connection: close\r\n" in head
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        await asyncio.wait_for(reader.readexactly(length), 5)
        # the client, told no, sends its next request: it must never be read as the 10-byte body
        writer.write(b"GET /y HTTP/1.1\r\nHost: app.test\r\n\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing more answered
    finally:
        writer.close()
    # a middleware that reads the body sends 100 Continue first, as Go does on the first read
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    try:
        writer.write(
            b"PUT /z HTTP/1.1\r\nHost: buf.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert final.startswith(b"HTTP/1.1 200 ")
    finally:
        writer.close()
