"""``mirroring`` services through the real process: who gets what, and a bad mirror changes nothing."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import pytest

from tests.integration.harness import routers
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def _mirrored(main: str, mirrors: list[tuple[str, int]], **options: Any) -> dict[str, Any]:
    """Router ``r`` (any host) → mirroring service ``m`` over ``main`` with ``mirrors`` (url, percent)."""
    cfg = routers(("r", "PathPrefix(`/`)", "m"), services={"main": [main]})
    services = cfg["http"]["services"]
    refs = []
    for i, (url, percent) in enumerate(mirrors):
        services[f"mirror{i}"] = {"loadBalancer": {"servers": [{"url": url}]}}
        refs.append({"name": f"mirror{i}", "percent": percent})
    services["m"] = {"mirroring": {"service": "main", "mirrors": refs, **options}}
    return cfg


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_half_the_requests_are_copied_to_a_50_percent_mirror(backends, proxy):
    main, mirror = await backends("main", "mirror")
    cfg = _mirrored(main.url, [(mirror.url, 50)])
    cfg["http"]["routers"]["r"]["middlewares"] = ["tag"]
    tag = {"headers": {"customRequestHeaders": {"X-Tag": "set-by-middleware"}}}
    cfg["http"]["middlewares"] = {"tag": tag}
    d = await proxy(cfg)
    async with aiohttp.ClientSession() as s:
        for i in range(200):
            async with s.post(d.url(f"/item/{i}?q={i}"), data=b"x" * i) as r:
                assert r.status == 200
                assert r.headers["X-Backend"] == "main"
                assert (await r.json())["body_len"] == i
    await wait_for(lambda: mirror.hits >= 100)
    assert main.hits == 200
    assert mirror.hits == 100  # Traefik counts: requests 1, 3, 5... are copied, exactly half
    # The copies are the requests the main service got: method, path and query, the middleware's
    # header, the body.
    by_path = {rec["raw_path"]: rec for rec in main.requests}
    for rec in mirror.requests:
        got = by_path[rec["raw_path"]]
        assert rec["method"] == got["method"] == "POST"
        assert rec["body_len"] == got["body_len"]
        assert rec["headers"]["X-Tag"] == "set-by-middleware"
        assert rec["headers"]["X-Forwarded-For"] == got["headers"]["X-Forwarded-For"]
    assert sorted(int(r["raw_path"].split("=")[1]) for r in mirror.requests) == list(range(0, 200, 2))


async def test_a_dead_or_hanging_mirror_changes_nothing_for_the_client(backends, proxy):
    (main,) = await backends("main")
    hung: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)  # reads nothing, answers nothing, never closes
        await asyncio.Event().wait()

    hanging = await asyncio.start_server(hang, "127.0.0.1", 0)
    hang_url = f"http://127.0.0.1:{hanging.sockets[0].getsockname()[1]}"
    dead_url = f"http://127.0.0.1:{_closed_port()}"
    d = await proxy(_mirrored(main.url, [(dead_url, 100), (hang_url, 100)]))
    try:
        async with aiohttp.ClientSession() as s:
            for i in range(300):
                started = time.monotonic()
                async with s.get(d.url(f"/n/{i}")) as r:
                    assert r.status == 200
                    assert r.headers["X-Backend"] == "main"
                    await r.read()
                assert (
                    time.monotonic() - started < 3.0
                )  # the hanging mirror (it never answers) holds nothing up
        await wait_for(lambda: len(hung) >= 10)  # the copies did go out, past the dead mirror
        assert main.hits == 300
        # 300 copies waiting on a mirror that never answers: at most 256 held, the rest dropped, said once
        await wait_for(lambda: "service m@file: 256 mirrored requests still in flight" in d.log())
        assert len(hung) <= 256
        assert d.log().count("copies are dropped") == 1
        assert "Traceback" not in d.log()
    finally:
        for w in hung:
            w.close()
        hanging.close()


async def test_mirror_body_false_sends_the_copy_without_its_body(backends, proxy):
    main, mirror = await backends("main", "mirror")
    d = await proxy(_mirrored(main.url, [(mirror.url, 100)], mirrorBody=False))
    async with aiohttp.ClientSession() as s, s.post(d.url("/upload-ish"), data=b"y" * 5000) as r:
        assert (await r.json())["body_len"] == 5000
    await wait_for(lambda: mirror.hits == 1)
    copy = mirror.requests[0]
    assert (copy["method"], copy["raw_path"], copy["body_len"]) == ("POST", "/upload-ish", 0)


async def test_a_body_over_max_body_size_is_not_mirrored(backends, proxy):
    main, mirror = await backends("main", "mirror")
    d = await proxy(_mirrored(main.url, [(mirror.url, 100)], maxBodySize=100))

    async def chunked(n: int) -> Any:
        yield b"z" * n

    async with aiohttp.ClientSession() as s:
        async with s.post(d.url("/big"), data=b"b" * 101) as r:  # Content-Length over the limit
            assert (await r.json())["body_len"] == 101
        async with s.post(d.url("/big-chunked"), data=chunked(5000)) as r:  # no length: measured
            assert (await r.json())["body_len"] == 5000
        async with s.post(d.url("/small"), data=b"s" * 100) as r:  # at the limit: mirrored
            assert (await r.json())["body_len"] == 100
    await wait_for(lambda: mirror.hits >= 1)
    assert main.hits == 3
    assert [(rec["raw_path"], rec["body_len"]) for rec in mirror.requests] == [("/small", 100)]


async def test_a_mirroring_service_with_a_missing_mirror_is_left_out_by_name(backends, proxy):
    (main,) = await backends("main")
    cfg = _mirrored(main.url, [])
    cfg["http"]["services"]["m"]["mirroring"]["mirrors"] = [{"name": "ghost", "percent": 10}]
    cfg["http"]["routers"]["ok"] = {"rule": "Path(`/ok`)", "service": "main"}
    d = await proxy(cfg)
    await wait_for(lambda: "service m@file is left out: its mirror ghost@file does not exist" in d.log())
    async with aiohttp.ClientSession() as s:
        async with s.get(d.url("/ok")) as r:
            assert r.status == 200  # the other router keeps working
        async with s.get(d.url("/else")) as r:
            assert r.status == 404
