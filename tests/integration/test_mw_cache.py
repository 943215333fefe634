"""The ``cache`` middleware through the real process, in front of a small backend of the test's own whose
query says which caching headers to send (``?cc=max-age=60``) and which counts the requests it gets: a
HIT is an answer the backend never saw."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections import Counter

import aiohttp
import pytest
from aiohttp import web

from tests.integration.harness import raw_exchange, routers, wait_for

pytestmark = pytest.mark.integration

HOST = {"Host": "app.test"}


class CachingBackend:
    """Answers ``/<anything>?cc=...&vary=...&cookie=1&status=..&size=..&chunked=1&expires=<s>&age=<s>``
    with those headers, counting requests per path+query (``hits``) in ``hits``."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> CachingBackend:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path_qs] += 1
        q = request.query
        n = self.hits[request.path_qs]
        headers = {"Date": email.utils.formatdate(usegmt=True)}
        for name, arg in (("Cache-Control", "cc"), ("Vary", "vary"), ("Age", "age")):
            if arg in q:
                headers[name] = q[arg]
        if "expires" in q:
            headers["Expires"] = email.utils.formatdate(time.time() + float(q["expires"]), usegmt=True)
        if "cookie" in q:
            headers["Set-Cookie"] = "session=1"
        size = int(q.get("size", "0"))
        lang = request.headers.get("Accept-Language", "")
        body = f"{request.method} {request.path_qs} #{n} {lang}\n".encode()
        if size:
            body = (body + b"x" * size)[:size]
        resp = web.StreamResponse(status=int(q.get("status", "200")), headers=headers)
        if "chunked" not in q:
            resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body)
        await resp.write_eof()
        return resp


@pytest.fixture
async def origin():
    b = await CachingBackend().start()
    yield b
    await b.stop()


def _cfg(origin: CachingBackend, middlewares: dict | None = None) -> dict:
    cfg = routers(
        ("app", "Host(`app.test`)", "svc"),
        ("ttl", "Host(`ttl.test`)", "svc"),
        ("small", "Host(`small.test`)", "svc"),
        services={"svc": [origin.url]},
    )
    r = cfg["http"]["routers"]
    r["app"]["middlewares"] = ["cache"]
    r["ttl"]["middlewares"] = ["cache-ttl"]
    r["small"]["middlewares"] = ["cache-small"]
    cfg["http"]["middlewares"] = middlewares or {
        "cache": {"cache": {}},
        "cache-ttl": {"cache": {"defaultTtl": "60s"}},
        "cache-small": {"cache": {"maxSizeBytes": 10_000, "maxEntryBytes": 4_000}},
    }
    return cfg


async def _get(http: aiohttp.ClientSession, url: str, method: str = "GET", **headers: str):
    async with http.request(method, url, headers={**HOST, **headers}) as resp:
        return resp.status, resp.headers.get("X-Cache"), resp.headers, await resp.read()


async def test_a_max_age_answer_is_served_from_the_cache_without_the_backend(proxy, origin):
    dr = await proxy(_cfg(origin))
    url = dr.url("/page?cc=max-age=60")
    async with aiohttp.ClientSession() as http:
        status, xc, _, first = await _get(http, url)
        assert (status, xc) == (200, "MISS")
        for _ in range(3):
            status, xc, headers, again = await _get(http, url)
            assert (status, xc, again) == (200, "HIT", first)
            assert int(headers["Age"]) >= 0 and headers["Cache-Control"] == "max-age=60"
        # HEAD is answered from the GET's entry: same head, no body, still no backend
        status, xc, headers, body = await _get(http, url, "HEAD")
        assert (status, xc, body, headers["Content-Length"]) == (200, "HIT", b"", str(len(first)))
        # a HEAD answer has no body to store: the GET after it is a MISS and gets the whole body
        head_first = dr.url("/head-first?cc=max-age=60")
        assert (await _get(http, head_first, "HEAD"))[1] == "MISS"
        status, xc, _, body = await _get(http, head_first)
        assert (status, xc) == (200, "MISS") and body.startswith(b"GET /head-first")
        assert (await _get(http, head_first))[1:4:2] == ("HIT", body)
        # another query is another entry
        assert (await _get(http, dr.url("/page?cc=max-age=60&x=1")))[1] == "MISS"
    assert origin.hits["/page?cc=max-age=60"] == 1
    # an HTTP/1.0 client gets the HIT through the general path (its own framing)
    raw = await raw_exchange(dr.port, b"GET /page?cc=max-age=60 HTTP/1.0\r\nHost: app.test\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ") and b"\r\nX-Cache: HIT\r\n" in raw and raw.endswith(first)
    assert origin.hits["/page?cc=max-age=60"] == 1


async def test_answers_that_must_not_be_stored_never_are(proxy, origin):
    dr = await proxy(_cfg(origin))
    never = [
        "/a?cc=no-store",
        "/b?cc=max-age=60,%20no-store",
        "/c?cc=private,%20max-age=60",
        "/d?cc=no-cache,%20max-age=60",
        "/e?cc=max-age=60&cookie=1",  # Set-Cookie
        "/f?cc=max-age=60&status=500",  # only 200, 301, 404
        "/g?cc=max-age=60&vary=*",
        "/h",  # no lifetime at all (and no defaultTtl)
        "/i?cc=max-age=0",
        "/j?expires=-60",  # Expires before Date
        "/k?cc=max-age=60&age=60",  # already as old as its lifetime
    ]
    async with aiohttp.ClientSession() as http:
        for path in never:
            for _ in range(2):
                assert (await _get(http, dr.url(path)))[1] == "MISS", path
            assert origin.hits[path] == 2, path
        # other methods go through untouched and are not stored
        for _ in range(2):
            async with http.post(dr.url("/p?cc=max-age=60"), headers=HOST) as resp:
                assert resp.status == 200 and "X-Cache" not in resp.headers
        assert origin.hits["/p?cc=max-age=60"] == 2
        # statuses 301 and 404 are stored, and so is s-maxage with max-age=0 (a shared cache takes s-maxage)
        for path in ("/m?cc=max-age=60&status=404", "/n?cc=max-age=0,%20s-maxage=60", "/o?expires=60"):
            xcs = [(await _get(http, dr.url(path)))[1] for _ in range(2)]
            assert xcs == ["MISS", "HIT"], path


async def test_vary_keys_the_entry_by_the_request_headers(proxy, origin):
    dr = await proxy(_cfg(origin))
    url = dr.url("/v?cc=max-age=60&vary=Accept-Language")
    async with aiohttp.ClientSession() as http:
        en = [await _get(http, url, **{"Accept-Language": "en"}) for _ in range(2)]
        fr = [await _get(http, url, **{"Accept-Language": "fr"}) for _ in range(2)]
        assert [r[1] for r in en] == ["MISS", "HIT"] and [r[1] for r in fr] == ["MISS", "HIT"]
        assert en[1][3].endswith(b" en\n") and fr[1][3].endswith(b" fr\n")
        assert (await _get(http, url, **{"Accept-Language": "en"}))[3] == en[0][3]
    assert origin.hits["/v?cc=max-age=60&vary=Accept-Language"] == 2


async def test_credentials_bypass_the_cache_unless_the_answer_is_public(proxy, origin):
    dr = await proxy(_cfg(origin))
    async with aiohttp.ClientSession() as http:
        shared = dr.url("/s?cc=max-age=60")
        await _get(http, shared)  # stored for anonymous clients
        for creds in ({"Authorization": "Basic dTpw"}, {"Cookie": "session=alice"}):
            # neither served another's entry nor stored for others
            assert (await _get(http, shared, **creds))[1] == "MISS"
            mine = dr.url(f"/u?cc=max-age=60&who={next(iter(creds))}")
            await _get(http, mine, **creds)
            assert (await _get(http, mine))[1] == "MISS"
        public = dr.url("/pub?cc=public,%20max-age=60")
        assert (await _get(http, public, Authorization="Basic dTpw"))[1] == "MISS"
        assert (await _get(http, public))[1] == "HIT"
        assert (await _get(http, public, Cookie="a=b"))[1] == "HIT"
    assert origin.hits["/s?cc=max-age=60"] == 3


async def test_credentials_added_by_an_earlier_middleware_count(proxy, origin):
    cfg = _cfg(origin)
    cfg["http"]["routers"]["app"]["middlewares"] = ["login", "cache"]
    cfg["http"]["middlewares"]["login"] = {"headers": {"customRequestHeaders": {"Cookie": "session=svc"}}}
    dr = await proxy(cfg)
    async with aiohttp.ClientSession() as http:
        xcs = [(await _get(http, dr.url("/edited?cc=max-age=60")))[1] for _ in range(2)]
    assert xcs == ["MISS", "MISS"] and origin.hits["/edited?cc=max-age=60"] == 2


async def test_entries_are_never_served_past_their_age(proxy, origin):
    dr = await proxy(_cfg(origin))
    url = dr.url("/old?cc=max-age=60&age=59")  # one second of life left when it arrives
    async with aiohttp.ClientSession() as http:
        assert (await _get(http, url))[1] == "MISS"
        status, xc, headers, _ = await _get(http, url)
        if xc == "HIT":  # unless that second already passed on a busy machine
            assert 59 <= int(headers["Age"]) < 60

        async def stale_refetched() -> bool:
            return (await _get(http, url))[1] == "MISS"

        await wait_for(stale_refetched, timeout=5.0, interval=0.1)
    assert origin.hits["/old?cc=max-age=60&age=59"] >= 2


async def test_the_client_can_bypass_and_refresh_the_entry(proxy, origin):
    dr = await proxy(_cfg(origin))
    url = dr.url("/r?cc=max-age=60")
    async with aiohttp.ClientSession() as http:
        first = await _get(http, url)
        fresh = await _get(http, url, **{"Cache-Control": "no-cache"})
        assert fresh[1] == "MISS" and fresh[3] != first[3]
        assert (await _get(http, url, Pragma="no-cache"))[1] == "MISS"
        # the refreshed answer is what later requests get
        again = await _get(http, url)
        assert again[1] == "HIT" and b"#3" in again[3]
        assert (await _get(http, dr.url("/none"), **{"Cache-Control": "only-if-cached"}))[0] == 504
    assert origin.hits["/r?cc=max-age=60"] == 3 and origin.hits["/none"] == 0


async def test_size_limits_and_default_ttl(proxy, origin):
    dr = await proxy(_cfg(origin))
    async with aiohttp.ClientSession() as http:

        async def get(path: str, host: str) -> tuple:
            async with http.get(dr.url(path), headers={"Host": host}) as resp:
                return resp.headers["X-Cache"], await resp.read()

        # too large for maxEntryBytes (4000): passed whole, never stored, with a length or chunked
        for path in ("/big?cc=max-age=60&size=5000", "/big?cc=max-age=60&size=5000&chunked=1"):
            bodies = [await get(path, "small.test") for _ in range(2)]
            assert [b[0] for b in bodies] == ["MISS", "MISS"] and len(bodies[1][1]) == 5000
        # 3 entries of ~3 KB do not fit in 10 000 bytes: the least recently used goes
        for name in ("a", "b"):
            await get(f"/{name}?cc=max-age=60&size=3000", "small.test")
        assert (await get("/a?cc=max-age=60&size=3000", "small.test"))[0] == "HIT"  # a is now the newest
        await get("/c?cc=max-age=60&size=3000", "small.test")
        assert (await get("/a?cc=max-age=60&size=3000", "small.test"))[0] == "HIT"
        assert (await get("/c?cc=max-age=60&size=3000", "small.test"))[0] == "HIT"
        assert (await get("/b?cc=max-age=60&size=3000", "small.test"))[0] == "MISS"  # b was dropped
        # defaultTtl gives a lifetime to an answer that states none
        assert [(await get("/plain", "ttl.test"))[0] for _ in range(2)] == ["MISS", "HIT"]
        assert [(await get("/plain2", "app.test"))[0] for _ in range(2)] == ["MISS", "MISS"]


async def test_a_bad_option_refuses_the_router_by_name(proxy, origin):
    mws = {
        "cache": {"cache": {"maxEntryBytes": 2_000_000, "maxSizeBytes": 1_000_000}},
        "cache-ttl": {"cache": {"defaultTtl": "60s", "nosuch": 1}},
        "cache-small": {"cache": {}},
    }
    dr = await proxy(_cfg(origin, mws))
    async with aiohttp.ClientSession() as http:
        assert (await _get(http, dr.url("/x?cc=max-age=60")))[0] == 404
        async with http.get(dr.url("/x?cc=max-age=60"), headers={"Host": "small.test"}) as resp:
            assert resp.status == 200
    await wait_for(lambda: "maxEntryBytes" in dr.log() and "nosuch" in dr.log())
    assert "router app@file is not routed: middleware cache@file (cache) is unusable" in dr.log()


async def test_many_concurrent_hits_and_misses_stay_whole(proxy, origin):
    dr = await proxy(_cfg(origin))
    async with aiohttp.ClientSession() as http:
        paths = [f"/c{i % 5}?cc=max-age=60&size={1000 * (i % 5)}" for i in range(100)]
        results = await asyncio.gather(*(_get(http, dr.url(p)) for p in paths))
        for path, (status, _, headers, body) in zip(paths, results, strict=True):
            assert status == 200 and len(body) == int(headers["Content-Length"]), path
        again = await asyncio.gather(*(_get(http, dr.url(p)) for p in paths))
        assert all(r[1] == "HIT" and len(r[3]) == int(r[2]["Content-Length"]) for r in again)
        assert sum(origin.hits.values()) <= 100


async def test_cache_as_an_entry_point_middleware(proxy, origin, tmp_path):
    cfg = routers(("plain", "Host(`plain.test`)", "svc"), services={"svc": [origin.url]})
    cfg["http"]["middlewares"] = {"edge": {"cache": {"maxSizeBytes": "1000000"}}}
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0", "http": {"middlewares": ["edge@file"]}}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
    }
    dr = await proxy(cfg, static=static)
    async with aiohttp.ClientSession() as http:
        url = dr.url("/ep?cc=max-age=60")
        got = [await _get(http, url, Host="plain.test") for _ in range(3)]
        xcs = [g[1] for g in got]
    assert xcs == ["MISS", "HIT", "HIT"] and origin.hits["/ep?cc=max-age=60"] == 1


async def test_cache_control_with_thousands_of_digits_is_a_hit_not_a_500(proxy, origin):
    """int() refuses more than 4300 digits: ``Cache-Control: max-age=999...`` from a client used to give
    a 500 and a traceback per request. It now reads as 2^31 seconds (RFC 9111), which any entry meets."""
    dr = await proxy(_cfg(origin))
    url, huge = dr.url("/digits?cc=max-age=60"), "9" * 5000
    async with aiohttp.ClientSession() as http:
        assert (await _get(http, url))[:2] == (200, "MISS")
        cc = f"max-age={huge}, min-fresh=1"
        assert (await _get(http, url, **{"Cache-Control": cc}))[:2] == (200, "HIT")
        # fresh for 2^31 more seconds: no entry is; the backend is asked
        assert (await _get(http, url, **{"Cache-Control": f"min-fresh={huge}"}))[:2] == (200, "MISS")
    assert "Traceback" not in dr.log()
