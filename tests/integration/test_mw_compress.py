"""``compress`` through the real process: a 100 KB JSON answer comes back gzip, brotli or zstd by the
client's ``Accept-Encoding`` (plain without) and decodes to the backend's bytes; what must not be compressed
is not; a 1 GiB streamed body is compressed with flat memory; and the same from Docker labels."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import zlib

import aiohttp
import brotli
import pytest
import zstandard
from aiohttp import web

from tests.integration import docker_env
from tests.integration.harness import docker_static, expected_sha256, routers, wait_for

pytestmark = pytest.mark.integration

JSON = json.dumps(
    [{"id": i, "name": f"item {i}", "tags": ["alpha", "beta"], "score": i * 0.37} for i in range(1400)]
).encode()
assert 95_000 < len(JSON) < 110_000


def decode(coding: str | None, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return brotli.decompress(data)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    assert coding is None, coding
    return data


@pytest.fixture
async def app_backend():
    """A backend with the answers compress has to tell apart."""

    async def doc(request: web.Request) -> web.StreamResponse:
        if request.query.get("chunked") == "1":
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            for i in range(0, len(JSON), 10_000):
                await resp.write(JSON[i : i + 10_000])
            await resp.write_eof()
            return resp
        return web.Response(body=JSON, content_type="application/json")

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=b"s" * 500, content_type="text/plain")

    async def encoded(request: web.Request) -> web.Response:
        return web.Response(
            body=brotli.compress(JSON), headers={"Content-Type": "application/json", "Content-Encoding": "br"}
        )

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=JSON, content_type="image/png")

    async def partial(request: web.Request) -> web.Response:
        headers = {"Content-Type": "application/json", "Content-Range": f"bytes 0-4999/{len(JSON)}"}
        return web.Response(status=206, body=JSON[:5000], headers=headers)

    app = web.Application()
    for path, h in (("/doc", doc), ("/small", small), ("/encoded", encoded), ("/image", image)):
        app.router.add_route("*", path, h)
    app.router.add_get("/partial", partial)
    runner = web.AppRunner(app, access_log=None, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _cfg(url: str, options: dict | None = None) -> dict:
    cfg = routers(("app", "Host(`app.test`)", "svc"), services={"svc": [url]})
    cfg["http"]["routers"]["app"]["middlewares"] = ["gz"]
    cfg["http"]["middlewares"] = {"gz": {"compress": options or {}}}
    return cfg


async def _get(s: aiohttp.ClientSession, url: str, accept: str | None, method: str = "GET", host="app.test"):
    headers = {"Host": host}
    if accept is not None:
        headers["Accept-Encoding"] = accept
    async with s.request(method, url, headers=headers) as r:
        return r.status, r.headers, await r.read()


def _session() -> aiohttp.ClientSession:
    # raw bytes, and no Accept-Encoding unless a test sends one
    return aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=("Accept-Encoding",))


@pytest.mark.parametrize("chunked", ["0", "1"])
async def test_a_100kb_json_comes_back_in_the_accepted_coding(proxy, app_backend, chunked):
    dr = await proxy(_cfg(app_backend))
    async with _session() as s:
        for accept, coding in (
            ("gzip", "gzip"),
            ("br", "br"),
            ("zstd", "zstd"),
            (None, None),
            ("gzip, deflate, br, zstd", "zstd"),  # browsers' list: Traefik's order prefers zstd
            ("gzip;q=1, br;q=0.5", "gzip"),
            ("br;q=0, gzip;q=0", None),
        ):
            status, headers, body = await _get(s, dr.url(f"/doc?chunked={chunked}"), accept)
            assert status == 200, accept
            assert headers.get("Content-Encoding") == coding, accept
            # as Traefik: a client accepting no coding gets the answer untouched, without Vary
            assert headers.get("Vary") == ("Accept-Encoding" if coding else None), accept
            assert decode(coding, body) == JSON, accept
            if coding:
                assert "Content-Length" not in headers and len(body) < len(JSON) // 4
            elif chunked == "0":
                assert headers["Content-Length"] == str(len(JSON))


async def test_what_must_not_be_compressed_is_not(proxy, app_backend):
    dr = await proxy(_cfg(app_backend, {"excludedContentTypes": ["image/png"]}))
    async with _session() as s:
        status, headers, body = await _get(s, dr.url("/small"), "gzip")
        assert (status, headers.get("Content-Encoding"), body) == (200, None, b"s" * 500)
        status, headers, body = await _get(s, dr.url("/encoded"), "gzip, br")
        assert headers["Content-Encoding"] == "br" and brotli.decompress(body) == JSON  # never twice
        status, headers, body = await _get(s, dr.url("/image"), "gzip")
        assert headers.get("Content-Encoding") is None and body == JSON
        status, headers, body = await _get(s, dr.url("/partial"), "gzip")
        assert status == 206 and headers.get("Content-Encoding") is None and body == JSON[:5000]
        status, headers, body = await _get(s, dr.url("/doc"), "gzip", method="HEAD")
        assert status == 200 and headers.get("Content-Encoding") is None and body == b""
        assert headers["Content-Length"] == str(len(JSON))


async def test_options_change_the_choice_and_a_bad_one_refuses_the_router(proxy, app_backend):
    cfg = _cfg(
        app_backend, {"encodings": ["gzip", "br"], "defaultEncoding": "br", "minResponseBodyBytes": 100}
    )
    cfg["http"]["routers"]["bad"] = {"rule": "Host(`bad.test`)", "service": "svc", "middlewares": ["worse"]}
    cfg["http"]["middlewares"]["worse"] = {
        "compress": {"excludedContentTypes": ["text/html"], "includedContentTypes": ["text/css"]}
    }
    dr = await proxy(cfg)
    async with _session() as s:
        _, headers, body = await _get(s, dr.url("/doc"), None)  # no header: the default encoding
        assert headers["Content-Encoding"] == "br" and brotli.decompress(body) == JSON
        _, headers, _ = await _get(s, dr.url("/doc"), "zstd, gzip")  # zstd is not among the encodings
        assert headers["Content-Encoding"] == "gzip"
        _, headers, body = await _get(s, dr.url("/small"), "gzip")  # 500 bytes >= 100
        assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == b"s" * 500
        status, _, _ = await _get(s, dr.url("/doc"), "gzip", host="bad.test")
        assert status == 404
    assert "router bad@file is not routed: middleware worse@file (compress) is unusable" in dr.log()
    assert "includedContentTypes: is mutually exclusive with excludedContentTypes" in dr.log()


async def test_a_1gib_stream_is_compressed_with_flat_memory(proxy, backends):
    """The harness backend streams 1 GiB chunked; the proxy gzips it on the way; the client decodes and
    hashes it as it arrives. The proxy's peak RSS must not follow the body."""
    (b,) = await backends("big")
    dr = await proxy(_cfg(b.url))
    size = 1 << 30
    rss_before = dr.rss_kib("VmRSS")
    h = hashlib.sha256()
    d = zlib.decompressobj(31)
    n = wire = 0
    async with _session() as s:
        url = dr.url(f"/download?size={size}&chunked=1")
        async with s.get(url, headers={"Host": "app.test", "Accept-Encoding": "gzip"}) as r:
            assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
            async for chunk in r.content.iter_chunked(1 << 20):
                wire += len(chunk)
                out = d.decompress(chunk)
                h.update(out)
                n += len(out)
    out = d.flush()
    h.update(out)
    n += len(out)
    assert d.eof and n == size and h.hexdigest() == expected_sha256(size)
    assert wire < size // 20  # it really was compressed (the pattern compresses very well)
    growth_mib = (dr.rss_kib("VmHWM") - rss_before) / 1024
    assert growth_mib < 64, f"proxy RSS grew by {growth_mib:.1f} MiB"


async def test_compress_from_docker_labels(client, containers, proxy, tmp_path):
    """A labelled busybox container serving a 100 KB JSON file, with compress from its own labels."""
    name = containers(docker_env.unique("gz"))
    host = f"{name}.test"
    cmd = [
        "/bin/sh",
        "-c",
        '/bin/busybox yes \'{"name": "item", "tags": ["alpha", "beta"]},\' | /bin/busybox head -c 102400'
        " > /www/data.json; exec /bin/busybox httpd -f -p 80 -h /www",
    ]
    labels = {
        f"traefik.http.routers.{name}.rule": f"Host(`{host}`)",
        f"traefik.http.routers.{name}.middlewares": "gz",
        "traefik.http.middlewares.gz.compress.encodings": "gzip,br",
    }
    dr = await proxy(static=docker_static())
    await asyncio.to_thread(docker_env.run, client, name, labels, command=cmd)
    async with _session() as s:

        async def served() -> bool:
            status, _, _ = await _get(s, dr.url("/data.json"), None, host=host)
            return status == 200

        await wait_for(served, timeout=10)
        _, _, plain = await _get(s, dr.url("/data.json"), None, host=host)
        assert len(plain) == 102400 and plain.startswith(b'{"name": "item"')
        for accept, coding in (("gzip", "gzip"), ("br", "br"), ("zstd, br", "br"), ("zstd", None)):
            _, headers, body = await _get(s, dr.url("/data.json"), accept, host=host)
            assert headers.get("Content-Encoding") == coding, accept
            assert decode(coding, body) == plain, accept
