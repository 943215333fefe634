"""Middleware chains through the real process: what every middleware relies on (the exchange, the chain
composed at compile time, entry-point middlewares, refusals by name), shown with ``addPrefix``."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest

from tests.integration.harness import expected_sha256, routers, wait_for

pytestmark = pytest.mark.integration


def _cfg(backend, *, router_mw=("prefix",), extra_routers=None, middlewares=None):
    cfg = routers(("app", "Host(`app.test`)", "svc"), services={"svc": [backend.url]})
    cfg["http"]["routers"]["app"]["middlewares"] = list(router_mw)
    cfg["http"]["routers"].update(extra_routers or {})
    cfg["http"]["middlewares"] = middlewares or {"prefix": {"addPrefix": {"prefix": "/api"}}}
    return cfg


async def test_a_router_with_a_middleware_is_routed_and_the_middleware_applies(proxy, backends):
    (b,) = await backends("b")
    dr = await proxy(_cfg(b))
    async with aiohttp.ClientSession() as http:
        for _ in range(3):  # one keep-alive connection carries several exchanges
            async with http.get(dr.url("/x?q=1"), headers={"Host": "app.test"}) as resp:
                assert resp.status == 200
                assert (await resp.json())["raw_path"] == "/api/x?q=1"
        # a request body and a streamed (chunked) answer go through the exchange whole
        async with http.post(dr.url("/upload"), data=b"z" * 300_000, headers={"Host": "app.test"}) as resp:
            assert resp.status == 200  # /api/upload is the echo route: it read the body
            assert (await resp.json())["body_len"] == 300_000


async def test_a_streamed_answer_passes_a_chain_whole(proxy, backends):
    (b,) = await backends("b")
    cfg = _cfg(b, middlewares={"prefix": {"replacePath": {"path": "/download"}}})
    dr = await proxy(cfg)
    size = 5 * 1024 * 1024 + 7
    async with aiohttp.ClientSession() as http:
        for chunked in ("0", "1"):
            url = dr.url(f"/download?size={size}&chunked={chunked}")
            async with http.get(url, headers={"Host": "app.test"}) as resp:
                assert resp.status == 200
                assert hashlib.sha256(await resp.read()).hexdigest() == expected_sha256(size)


async def test_missing_broken_and_unsupported_middlewares_refuse_their_router_only(proxy, backends):
    (b,) = await backends("b")
    extra = {
        "missing": {"rule": "Host(`missing.test`)", "service": "svc", "middlewares": ["nope"]},
        "broken": {"rule": "Host(`broken.test`)", "service": "svc", "middlewares": ["bad"]},
        "grpc": {"rule": "Host(`grpc.test`)", "service": "svc", "middlewares": ["gw"]},
        "looped": {"rule": "Host(`loop.test`)", "service": "svc", "middlewares": ["loop"]},
    }
    mws = {
        "prefix": {"addPrefix": {"prefix": "/api"}},
        "bad": {"addPrefix": {"prefix": 5, "nosuch": 1}},
        "gw": {"grpcWeb": {"allowOrigins": ["*"]}},
        "loop": {"chain": {"middlewares": ["loop"]}},
    }
    dr = await proxy(_cfg(b, extra_routers=extra, middlewares=mws))
    async with aiohttp.ClientSession() as http:
        async with http.get(dr.url("/"), headers={"Host": "app.test"}) as resp:
            assert resp.status == 200
        for host in ("missing.test", "broken.test", "grpc.test", "loop.test"):
            async with http.get(dr.url("/"), headers={"Host": host}) as resp:
                assert resp.status == 404, host
    log = dr.log()
    assert "router missing@file is not routed: middleware nope@file does not exist" in log
    assert "router broken@file is not routed: middleware bad@file (addPrefix) is unusable: " in log
    assert "http.middlewares.bad.addPrefix.nosuch: unknown key 'nosuch'" in log
    assert "router grpc@file is not routed: middleware gw@file (grpcWeb) is not supported" in log
    assert "router looped@file is not routed: middleware loop@file (chain) contains itself" in log


async def test_entry_point_middlewares_run_first_and_cover_the_redirection(proxy, backends, tmp_path):
    (b,) = await backends("b")
    cfg = _cfg(
        b,
        middlewares={
            "prefix": {"addPrefix": {"prefix": "/api"}},
            "outer": {"addPrefix": {"prefix": "/outer"}},
        },
    )
    static = {
        "entryPoints": {
            "web": {"address": "127.0.0.1:0", "http": {"middlewares": ["outer@file"]}},
            "other": {
                "address": "127.0.0.1:0",
                "http": {"middlewares": ["missing@file"], "redirections": {"entryPoint": {"to": "web"}}},
            },
        },
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "log": {"level": "DEBUG"},
    }
    dr = await proxy(cfg, static=static)
    async with aiohttp.ClientSession() as http:
        async with http.get(dr.url("/x"), headers={"Host": "app.test"}) as resp:
            # the entry point's middleware runs before the router's: /outer then /api in front
            assert (await resp.json())["raw_path"] == "/api/outer/x"
        async with http.get(
            dr.url("/x", ep="other"), headers={"Host": "app.test"}, allow_redirects=False
        ) as resp:
            assert resp.status == 404  # neither the router nor the redirection is served without it
    await wait_for(
        lambda: "its redirection is not routed: middleware missing@file does not exist" in dr.log()
    )
    assert (
        "router app@file is not routed on entry points other: middleware missing@file does not exist"
        in dr.log()
    )


async def test_header_edits_give_the_same_answer_raw_or_through_other_wrappers(proxy, backends):
    """Two headers middlewares: the outer one's value wins, a removal removes, whether the answer is
    relayed as raw bytes (nothing else reads it) or passes a wrapper that reads it (compress)."""
    (b,) = await backends("b")
    mws = {
        "outer": {"headers": {"customResponseHeaders": {"X-Who": "outer", "X-Backend": ""}}},
        "inner": {"headers": {"customResponseHeaders": {"X-Who": "inner", "X-Inner": "1"}}},
        "gz": {"compress": {"minResponseBodyBytes": 1}},
    }
    dr = await proxy(_cfg(b, router_mw=("outer", "inner", "gz"), middlewares=mws))
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for accept in ("identity", "gzip"):
            headers = {"Host": "app.test", "Accept-Encoding": accept}
            async with http.get(dr.url("/x"), headers=headers) as resp:
                assert resp.status == 200
                assert resp.headers.getall("X-Who") == ["outer"], accept
                assert resp.headers["X-Inner"] == "1" and "X-Backend" not in resp.headers, accept
                assert resp.headers.get("Content-Encoding") == (None if accept == "identity" else "gzip")
