"""retry, circuitBreaker, buffering and errors through the real process (file provider)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import aiohttp
import pytest

from tests.integration.harness import Backend, routers, wait_for

pytestmark = pytest.mark.integration

DEAD = "http://127.0.0.1:1"  # nothing listens there: connection refused


def _cfg(services, middlewares, *specs):
    """Routers ``(name, host, service, [middlewares])`` on ``Host(`<host>`)``."""
    cfg = routers(*((name, f"Host(`{host}`)", svc) for name, host, svc, _ in specs), services=services)
    for name, _, _, mws in specs:
        if mws:
            cfg["http"]["routers"][name]["middlewares"] = list(mws)
    cfg["http"]["middlewares"] = middlewares
    return cfg


class Closer:
    """A server that reads a request and closes the connection without answering (a crash mid-request:
    the proxy itself does not retry it, since the request was sent)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> Closer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class Counted(Backend):
    """A backend whose ``/health`` (answering ``health_status``) counts its calls."""

    health_hits = 0

    async def _health(self, request):
        self.health_hits += 1
        return await super()._health(request)


async def _get(http, url, host, **kw):
    async with http.request(kw.pop("method", "GET"), url, headers={"Host": host}, **kw) as resp:
        return resp.status, await resp.read(), resp.headers


async def test_retry_reaches_the_second_server_for_idempotent_requests_only(proxy, backends):
    (b,) = await backends("b")
    closer = await Closer().start()
    try:
        mws = {"retry": {"retry": {"attempts": 3}}}
        cfg = _cfg(
            {"svc": [closer.url, b.url]},
            mws,
            ("app", "app.test", "svc", ["retry"]),
            ("plain", "plain.test", "svc", None),
        )
        dr = await proxy(cfg)
        async with aiohttp.ClientSession() as http:
            plain = [(await _get(http, dr.url("/x"), "plain.test"))[0] for _ in range(4)]
            assert 502 in plain  # the control: the closing server fails half the requests
            before = closer.connections
            for _ in range(6):
                status, body, _ = await _get(http, dr.url("/x"), "app.test")
                assert status == 200 and json.loads(body)["server"] == "b"
            assert closer.connections > before  # the failing server was tried, and retried past
            posts = [
                (await _get(http, dr.url("/x"), "app.test", method="POST", data=b"x"))[0] for _ in range(4)
            ]
            assert 502 in posts  # POST is not idempotent: never sent twice
    finally:
        await closer.stop()


async def test_retry_waits_for_a_restarting_server(proxy, backends):
    (b,) = await backends("b")
    port = b.port
    await b.stop()
    mws = {"retry": {"retry": {"attempts": 30, "initialInterval": "100ms"}}}
    dr = await proxy(_cfg({"svc": [b.url]}, mws, ("app", "app.test", "svc", ["retry"])))
    async with aiohttp.ClientSession() as http:
        request = asyncio.ensure_future(_get(http, dr.url("/x"), "app.test"))
        await wait_for(lambda: "failed to connect" in dr.log())  # at least one attempt failed
        assert not request.done()
        await b.start(port=port)
        status, body, _ = await asyncio.wait_for(request, 20)
        assert status == 200 and json.loads(body)["server"] == "b"


async def test_retry_on_status(proxy, backends):
    b1, b2 = await backends("b1", "b2")
    b1.health_status = 500
    mws = {"retry": {"retry": {"attempts": 2, "status": ["500-599"]}}}
    dr = await proxy(_cfg({"svc": [b1.url, b2.url]}, mws, ("app", "app.test", "svc", ["retry"])))
    async with aiohttp.ClientSession() as http:
        for _ in range(4):
            assert (await _get(http, dr.url("/health"), "app.test"))[0] == 200


async def test_circuit_breaker_trips_answers_its_code_and_recovers(proxy):
    b = await Counted("b").start()
    try:
        await _breaker(proxy, b)
    finally:
        await b.stop()


async def _breaker(proxy, b):
    mws = {
        "cb": {
            "circuitBreaker": {
                "expression": "ResponseCodeRatio(500, 600, 0, 600) > 0.5",
                "checkPeriod": "50ms",
                "fallbackDuration": "1s",
                "recoveryDuration": "1s",
            }
        },
        "cbnet": {"circuitBreaker": {"expression": "NetworkErrorRatio() > 0.5", "responseCode": 418}},
    }
    cfg = _cfg(
        {"svc": [b.url], "dead": [DEAD]},
        mws,
        ("app", "app.test", "svc", ["cb"]),
        ("net", "net.test", "dead", ["cbnet"]),
    )
    dr = await proxy(cfg)
    async with aiohttp.ClientSession() as http:
        b.health_status = 500

        async def tripped():
            status, body, _ = await _get(http, dr.url("/health"), "app.test")
            return status == 503 and body == b"Service Unavailable"

        await wait_for(tripped)
        hits = b.health_hits
        for _ in range(10):  # open: answered without calling the service
            assert (await _get(http, dr.url("/health"), "app.test"))[0] == 503
        assert b.health_hits == hits
        b.health_status = 200

        async def recovered():
            return all([(await _get(http, dr.url("/health"), "app.test"))[0] == 200 for _ in range(5)])

        await wait_for(recovered, timeout=10, interval=0.1)
        assert b.health_hits > hits

        async def net_tripped():
            return (await _get(http, dr.url("/x"), "net.test"))[0] == 418

        await wait_for(net_tripped)  # 502s from the dead server, then the breaker's own code
    assert "circuit breaker cbnet@file (router net@file): tripped" in dr.log()


async def test_buffering_limits_requests_413_and_responses_500(proxy, backends):
    (b,) = await backends("b")
    mws = {"buf": {"buffering": {"maxRequestBodyBytes": 1000, "maxResponseBodyBytes": 4000}}}
    dr = await proxy(_cfg({"svc": [b.url]}, mws, ("app", "app.test", "svc", ["buf"])))
    async with aiohttp.ClientSession() as http:
        status, body, _ = await _get(http, dr.url("/x"), "app.test", method="POST", data=b"a" * 1000)
        assert status == 200 and json.loads(body)["body_len"] == 1000
        assert (await _get(http, dr.url("/x"), "app.test", method="POST", data=b"a" * 1001))[0] == 413

        async def chunks():
            yield b"a" * 600
            yield b"a" * 600

        assert (await _get(http, dr.url("/x"), "app.test", method="POST", data=chunks()))[0] == 413
        assert b.hits == 1  # refused bodies never reached the service
        for chunked in ("0", "1"):
            status, body, headers = await _get(
                http, dr.url(f"/download?size=4000&chunked={chunked}"), "app.test"
            )
            assert status == 200 and len(body) == 4000
            assert headers["Content-Length"] == "4000"  # held whole: its length is known
            status, body, _ = await _get(http, dr.url(f"/download?size=4001&chunked={chunked}"), "app.test")
            assert status == 500 and body == b"Internal Server Error"


async def test_buffering_without_maxima_streams_what_passes_the_memory_thresholds(proxy, backends):
    (b,) = await backends("b")
    mws = {"buf": {"buffering": {"memRequestBodyBytes": 1000, "memResponseBodyBytes": 1000}}}
    dr = await proxy(_cfg({"svc": [b.url]}, mws, ("app", "app.test", "svc", ["buf"])))
    body = bytes(range(256)) * 40  # 10240 bytes, over the threshold: streamed on whole

    async def chunks(data):
        for i in range(0, len(data), 700):
            yield data[i : i + 700]

    async with aiohttp.ClientSession() as http:
        # with a length, chunked over the threshold (read part put back in front), chunked under it
        for data, sent in ((body, body), (chunks(body), body), (chunks(body[:900]), body[:900])):
            status, got, _ = await _get(http, dr.url("/upload"), "app.test", method="POST", data=data)
            assert status == 200
            assert json.loads(got) == {
                "sha256": hashlib.sha256(sent).hexdigest(),
                "length": len(sent),
                "server": "b",
            }
        # big enough never to arrive whole with its head (a whole answer gets its length from the proxy)
        status, got, headers = await _get(http, dr.url("/download?size=3000000&chunked=1"), "app.test")
        assert status == 200 and len(got) == 3000000 and "Content-Length" not in headers  # streamed on
        status, got, headers = await _get(http, dr.url("/download?size=900&chunked=1"), "app.test")
        assert status == 200 and headers["Content-Length"] == "900"  # held whole


async def test_errors_serves_another_services_page_with_the_original_status(proxy, backends):
    b, pages = await backends("b", "pages")
    mws = {
        "err": {
            "errors": {
                "status": ["500-599", "404"],
                "service": "pages",
                "query": "/err/{status}?was={originalStatus}&u={url}",
                "statusRewrites": {"404": 410},
                "errorRequestHeaders": ["X-Keep"],
            }
        },
        "broken": {"errors": {"status": ["500"], "service": "nope"}},
    }
    cfg = _cfg(
        {"svc": [b.url], "pages": [pages.url]},
        mws,
        ("app", "app.test", "svc", ["err"]),
        ("bad", "bad.test", "svc", ["broken"]),
    )
    dr = await proxy(cfg)
    async with aiohttp.ClientSession() as http:
        assert (await _get(http, dr.url("/health"), "app.test"))[0] == 200  # not in the ranges: untouched
        assert pages.hits == 0
        b.health_status = 502
        headers = {"Host": "app.test", "X-Keep": "1", "X-Drop": "1"}
        async with http.get(dr.url("/health?q=1"), headers=headers) as resp:
            assert resp.status == 502
            assert resp.headers["Content-Type"].startswith("application/json")
            page = await resp.json()
        assert page["server"] == "pages" and page["method"] == "GET"
        assert page["raw_path"] == "/err/502?was=502&u=http%3A%2F%2Fapp.test%2Fhealth%3Fq%3D1"
        assert page["headers"].get("X-Keep") == "1" and "X-Drop" not in page["headers"]
        b.health_status = 404
        status, body, _ = await _get(http, dr.url("/health"), "app.test")
        assert status == 410 and json.loads(body)["raw_path"].startswith("/err/410?was=404&")
        assert (await _get(http, dr.url("/health"), "bad.test"))[0] == 404
    assert "middleware broken@file (errors): option service: service nope@file does not exist" in dr.log()
