"""``mirroring`` services through the real process: who gets what, and a bad mirror changes nothing."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.integration.harness import expected_sha256, pattern_block, routers, served
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
        await wait_for(
            lambda: "service m@file: 256 mirrored requests (0 bytes of bodies) still in" in d.log()
        )
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


class _Hanging:
    """A mirror that accepts connections and never answers: the connections it holds are the copies in
    flight."""

    def __init__(self) -> None:
        self.open: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._hang, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _hang(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open.add(writer)
        try:
            while await reader.read(65536):  # reads the copy, answers nothing
                pass
        finally:
            self.open.discard(writer)  # the proxy closed it
            writer.close()

    def close(self) -> None:
        for w in list(self.open):
            w.close()
        if self.server is not None:
            self.server.close()


async def _get_many(d: Any, n: int) -> None:
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            async with s.get(d.url(f"/n/{i}")) as r:
                assert r.status == 200
                await r.read()


async def test_reloads_with_a_hanging_mirror_never_hold_more_copies_than_the_bound(backends, proxy):
    """The copies in flight are counted across reloads: a new configuration does not start a fresh count
    while the previous one's copies still wait on the mirror (they would pile up by 256 per reload)."""
    (main,) = await backends("main")
    hanging = _Hanging()
    cfg = _mirrored(main.url, [(await hanging.start(), 100)])
    d = await proxy(cfg)
    try:
        await _get_many(d, 300)
        await wait_for(lambda: len(hanging.open) >= 256)
        for n in range(3):
            applied = d.log().count("configuration applied")
            cfg["http"]["routers"][f"other{n}"] = {"rule": f"Path(`/other{n}`)", "service": "main"}
            d.write_dynamic(cfg)
            await wait_for(lambda a=applied: d.log().count("configuration applied") > a)
            await _get_many(d, 300)
            await asyncio.sleep(0.3)  # let copies launched by the last requests connect
            assert len(hanging.open) <= 256, f"after reload {n + 1}: {len(hanging.open)} copies in flight"
        assert main.hits == 1200
    finally:
        hanging.close()


async def test_a_chunked_upload_over_max_body_size_streams_without_being_held(backends, proxy):
    """maxBodySize bounds what is read to decide: a chunked body over it is not read whole into memory
    (the main service gets it streamed, the mirrors nothing)."""
    main, mirror = await backends("main", "mirror")
    d = await proxy(_mirrored(main.url, [(mirror.url, 100)], maxBodySize=1 << 20))
    size = 192 << 20
    block = pattern_block()

    async def chunked() -> Any:
        left = size
        while left > 0:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            yield piece

    hwm_before = d.rss_kib("VmHWM")
    async with aiohttp.ClientSession() as s, s.post(d.url("/upload"), data=chunked()) as r:
        got = await r.json()
    assert (got["length"], got["sha256"]) == (size, expected_sha256(size))
    growth_mib = (d.rss_kib("VmHWM") - hwm_before) / 1024
    assert growth_mib < 48, f"proxy peak RSS grew by {growth_mib:.1f} MiB"
    async with aiohttp.ClientSession() as s, s.post(d.url("/small"), data=chunked_small()) as r:
        assert (await r.json())["body_len"] == 1000  # under the limit: mirrored, body and all
    await wait_for(lambda: mirror.hits == 1)
    assert [(rec["raw_path"], rec["body_len"]) for rec in mirror.requests] == [("/small", 1000)]


async def chunked_small() -> Any:
    yield b"s" * 1000


async def test_max_body_size_holds_for_a_body_an_earlier_middleware_buffered(backends, proxy):
    main, mirror = await backends("main", "mirror")
    cfg = _mirrored(main.url, [(mirror.url, 100)], maxBodySize=100)
    cfg["http"]["middlewares"] = {"buf": {"buffering": {}}}  # buffers bodies up to 1 MiB first
    cfg["http"]["routers"]["r"]["middlewares"] = ["buf"]
    d = await proxy(cfg)
    async with aiohttp.ClientSession() as s:
        async with s.post(d.url("/big"), data=b"b" * 5000) as r:
            assert (await r.json())["body_len"] == 5000
        async with s.post(d.url("/small"), data=b"s" * 100) as r:
            assert (await r.json())["body_len"] == 100
    await wait_for(lambda: mirror.hits >= 1)
    await asyncio.sleep(0.2)  # a copy of /big would have arrived by now
    assert [(rec["raw_path"], rec["body_len"]) for rec in mirror.requests] == [("/small", 100)]


async def test_each_copy_leaves_after_the_main_service_answered(backends, proxy):
    (main,) = await backends("main")
    answered_at_copy: list[int] = []

    async def record(request: web.Request) -> web.Response:
        answered_at_copy.append(main.slow_done)  # how many main answers were over when the copy came
        await request.read()
        return web.Response(text="mirror")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with served(app) as port:
        d = await proxy(_mirrored(main.url, [(f"http://127.0.0.1:{port}", 100)]))
        async with aiohttp.ClientSession() as s:
            for _ in range(3):
                async with s.get(d.url("/slow?delay=0.3")) as r:
                    assert await r.text() == "slow from main"
                await wait_for(lambda n=main.slow_done: len(answered_at_copy) == n)
        assert answered_at_copy == [1, 2, 3]  # copy n came after main answer n, never before


async def test_websocket_upgrades_are_not_mirrored(backends, proxy):
    main, mirror = await backends("main", "mirror")
    d = await proxy(_mirrored(main.url, [(mirror.url, 100)]))
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(d.url("/ws")) as ws:
            await ws.send_str("hi")
            assert (await ws.receive()).data == "main:hi"
        async with s.get(d.url("/plain")) as r:
            assert r.status == 200
    await wait_for(lambda: mirror.hits == 1)  # the plain request was copied...
    assert [rec["raw_path"] for rec in mirror.requests] == ["/plain"]  # ...the upgrade was not
    assert main.hits == 2


async def test_a_copy_hanging_on_a_mirror_does_not_hold_up_shutdown(backends, proxy):
    (main,) = await backends("main")
    hanging = _Hanging()
    d = await proxy(_mirrored(main.url, [(await hanging.start(), 100)]))
    try:
        await _get_many(d, 3)
        await wait_for(lambda: len(hanging.open) == 3)
        started = time.monotonic()
        assert await d.stop() == 0
        assert time.monotonic() - started < 5  # grace is for clients' requests, not for copies
        await wait_for(lambda: not hanging.open, timeout=2)  # and their connections are closed
        assert "Traceback" not in d.log()
    finally:
        hanging.close()
