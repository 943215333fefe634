"""The API's cost and caching: the view of a state is built once, in a worker thread, shared by the
requests waiting for it (a client going away does not cancel it), rebuilt for a new state only; server
health is read live on top of it."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import pytest

from discover.model import Middleware
from router.api import handler as handler_module
from router.api.handler import api_handler
from router.api.render import Runtime
from router.api.state import ApiState
from tests.api_fakes import (
    get,
    lb,
    r,
    state,
    traefik_http_conf,
)
from tests.exchange_fakes import fake_exchange, read_options


async def test_server_status_reads_active_and_passive_health_live():
    conf = {"p": {"services": {"s": lb("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")}}}
    st = state(conf)
    handler = api_handler(lambda: st)
    _, _, body = await get(st, "/api/http/services/s@p", handler=handler)
    assert set(body["serverStatus"].values()) == {"UP"}
    one, two, _ = st.balancers["s@p"].servers
    one.healthy = False  # the active check failed
    two.down_until = time.monotonic() + 60  # passively down for a minute
    _, _, body = await get(st, "/api/http/services/s@p", handler=handler)
    assert body["serverStatus"] == {
        "http://127.0.0.1:1": "DOWN",
        "http://127.0.0.1:2": "DOWN",
        "http://127.0.0.1:3": "UP",
    }
    two.down_until = time.monotonic() - 1
    _, _, body = await get(st, "/api/rawdata", handler=handler)
    assert body["services"]["s@p"]["serverStatus"]["http://127.0.0.1:2"] == "UP"


async def test_cost_of_1000_routers_and_services(capsys):
    """Measured, printed (run with -s), and bounded loosely: the view is built once per configuration in
    a worker thread; a request afterwards only filters, pages, reads health and joins cached bytes."""
    routers = {f"r{i}": r(f"r{i}", f"Host(`h{i}.test`)", f"s{i}", ("auth",)) for i in range(1000)}
    services = {
        f"s{i}": lb(f"http://10.0.{i // 250}.{i % 250}:80", "http://10.1.0.1:80") for i in range(1000)
    }
    mws = {"auth": Middleware("auth", "basicAuth", read_options("basicAuth", {"users": ["a:b"]}))}
    st = state({"file": {"routers": routers, "services": services, "middlewares": mws}})
    handler = api_handler(lambda: st)
    timings = {}
    for label, target in (
        ("first /api/http/routers (builds the view, in a thread)", "/api/http/routers"),
        ("/api/http/routers (default page of 100)", "/api/http/routers"),
        ("/api/http/routers?per_page=1000", "/api/http/routers?per_page=1000"),
        ("/api/http/services?per_page=1000 (2000 servers' health)", "/api/http/services?per_page=1000"),
        ("/api/rawdata", "/api/rawdata"),
        ("/api/overview", "/api/overview"),
    ):
        ex = fake_exchange("GET", target)
        t0 = time.perf_counter()
        await handler(ex)
        timings[label] = (time.perf_counter() - t0) * 1000
        assert ex.transport.data.startswith(b"HTTP/1.1 200 ")
    with capsys.disabled():
        for label, ms in timings.items():
            print(f"\n  api, 1000 routers + 1000 services: {label}: {ms:.2f} ms", end="")
    assert timings["first /api/http/routers (builds the view, in a thread)"] < 1000
    assert timings["/api/http/routers (default page of 100)"] < 50
    assert timings["/api/rawdata"] < 200


@pytest.mark.parametrize("kind", ["routers", "services", "middlewares"])
async def test_view_is_rebuilt_for_a_new_state_only(kind):
    conf = traefik_http_conf()
    current = [state(conf)]
    handler = api_handler(lambda: current[0])
    _, _, first = await get(None, f"/api/http/{kind}", handler=handler)
    runtime = handler._last[1]
    await get(None, f"/api/http/{kind}", handler=handler)
    assert handler._last[1] is runtime  # the same state: the same view
    conf["myprovider"][kind] = {}
    current[0] = state(conf)
    _, _, second = await get(None, f"/api/http/{kind}", handler=handler)
    assert handler._last[1] is not runtime and len(second) < len(first)


async def test_a_request_gone_away_does_not_cancel_the_build_others_wait_for(monkeypatch):
    started, release = threading.Event(), threading.Event()

    class HeldRuntime(Runtime):
        """The view's build, held in its worker thread until the test lets it go."""

        def __init__(self, st: ApiState) -> None:
            started.set()
            release.wait(10)
            super().__init__(st)

    monkeypatch.setattr(handler_module, "Runtime", HeldRuntime)
    st = state(traefik_http_conf())
    handler = api_handler(lambda: st)
    asking, second_waits = handler.runtime, asyncio.Event()

    async def runtime(state_: ApiState) -> Runtime:
        if handler._building is not None:  # the second request: the build is already under way
            second_waits.set()  # the test resumes only once this request is suspended in that wait
        return await asking(state_)

    handler.runtime = runtime
    first = asyncio.ensure_future(get(None, "/api/http/routers", handler=handler))
    assert await asyncio.to_thread(started.wait, 10)  # the first request started the build, waits for it
    second = asyncio.ensure_future(get(None, "/api/http/routers", handler=handler))
    await asyncio.wait_for(second_waits.wait(), 10)
    first.cancel()  # its client went away
    release.set()
    status, _, body = await asyncio.wait_for(second, 10)
    assert status == 200 and len(body) == 2
    assert first.cancelled()


async def test_a_failed_build_is_tried_again():
    st = state(traefik_http_conf())
    broken = dataclasses.replace(st, routed_on=None)  # a state the view cannot be built from
    current = [broken]
    handler = api_handler(lambda: current[0])
    with pytest.raises(AttributeError):
        await get(None, "/api/http/routers", handler=handler)
    current[0] = st
    status, _, _ = await get(None, "/api/http/routers", handler=handler)
    assert status == 200


async def test_discovery_and_rawdata_sections_are_built_with_the_view_off_the_loop(monkeypatch):
    """``/api/discovery`` (polled by every dashboard tab) is built and encoded once per state, in the
    worker thread that builds the view, as are rawdata's routers and middlewares; a request only sends
    the bytes."""
    calls: list[bool] = []
    real = handler_module.discovery

    def spy(runtime):
        calls.append(threading.current_thread() is threading.main_thread())
        return real(runtime)

    monkeypatch.setattr(handler_module, "discovery", spy)
    st = state(traefik_http_conf())
    handler = api_handler(lambda: st)
    for _ in range(3):
        status, _, body = await get(None, "/api/discovery", handler=handler)
        assert status == 200 and set(body) == {"containers", "routers"}
    assert calls == [False]  # once, not on the event loop's thread
    runtime = handler._last[1]
    assert {("map", "routers"), ("map", "middlewares")} <= set(runtime._encoded)  # before any rawdata
