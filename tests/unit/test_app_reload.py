"""The reload pipeline of :class:`dockroute.app.App`: builds run in a worker thread one at a time, the newest
configuration wins, a failing build keeps the previous configuration with one log line, and shutdown does
not wait for a build still running."""

from __future__ import annotations

import asyncio
import logging
import threading

from discover.model import DynamicConfig, LoadBalancer, Router, Server, Service
from dockroute import app as app_module
from dockroute.app import App
from dockroute.static import load_static


def config(tag: str) -> DynamicConfig:
    return DynamicConfig(
        routers={tag: Router(tag, f"Host(`{tag}.test`)", "svc")},
        services={"svc": Service("svc", load_balancer=LoadBalancer(servers=(Server("http://127.0.0.1:9"),)))},
    )


def make_app() -> App:
    static = load_static(
        ["--entrypoints.web.address=127.0.0.1:0", "--providers.providersThrottleDuration=0"],
        {},
        search_dirs=(),
    )
    return App(static)


async def until(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def routers(app: App) -> set[str]:
    return set(app.current.routers) if app.current is not None else set()


async def test_builds_run_off_the_loop_and_the_newest_configuration_wins(monkeypatch):
    app = make_app()
    gate = threading.Event()
    built: list[set[str]] = []
    threads: list[str] = []
    real = app_module.compile_config

    def slow_compile(cfg, *args, **kw):
        threads.append(threading.current_thread().name)
        built.append(set(cfg.routers))
        gate.wait(10)
        return real(cfg, *args, **kw)

    monkeypatch.setattr(app_module, "compile_config", slow_compile)
    try:
        app.publish("file", config("a"))
        await until(lambda: len(built) == 1)  # the first build runs (and waits on the gate)
        app.publish("file", config("b"))
        app.publish("file", config("c"))
        assert app.current is None  # nothing applied while the build runs: the loop is free
        gate.set()
        await until(lambda: routers(app) == {"c@file"})
        assert built == [{"a@file"}, {"c@file"}]  # "b" was superseded before its turn: never built
        assert all(t.startswith("dockroute-build") for t in threads)
    finally:
        gate.set()
        await app.shutdown()


async def test_a_failing_build_keeps_the_previous_configuration_with_one_log_line(monkeypatch, caplog):
    app = make_app()
    try:
        app.publish("file", config("a"))
        await until(lambda: routers(app) == {"a@file"})
        table = app.servers[0].handler.table

        def broken(*args, **kw):
            raise RuntimeError("boom")

        monkeypatch.setattr(app_module, "compile_config", broken)
        with caplog.at_level(logging.INFO, logger="dockroute"):
            app.publish("file", config("b"))
            await until(lambda: any("boom" in r.getMessage() for r in caplog.records))
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "keeping the previous one" in errors[0].getMessage()
        assert errors[0].exc_info is None  # one line, no traceback at ERROR
        assert routers(app) == {"a@file"} and app.servers[0].handler.table is table
        monkeypatch.undo()
        app.publish("file", config("c"))  # and the next good one is applied
        await until(lambda: routers(app) == {"c@file"})
    finally:
        await app.shutdown()


async def test_shutdown_does_not_wait_for_a_running_build(monkeypatch):
    app = make_app()
    gate = threading.Event()
    started = threading.Event()

    def stuck(*args, **kw):
        started.set()
        gate.wait(30)
        raise RuntimeError("released")

    monkeypatch.setattr(app_module, "compile_config", stuck)
    try:
        app.publish("file", config("a"))
        await until(started.is_set)
        await asyncio.wait_for(app.shutdown(), timeout=5)
        assert app.current is None
    finally:
        gate.set()


async def test_providers_throttle_duration_applies_the_first_at_once_and_the_newest_after_the_window(
    monkeypatch,
):
    static = load_static(
        ["--entrypoints.web.address=127.0.0.1:0", "--providers.providersThrottleDuration=300ms"],
        {},
        search_dirs=(),
    )
    app = App(static)
    built: list[set[str]] = []
    real = app_module.compile_config

    def recording_compile(cfg, *args, **kw):
        built.append(set(cfg.routers))
        return real(cfg, *args, **kw)

    monkeypatch.setattr(app_module, "compile_config", recording_compile)
    loop = asyncio.get_running_loop()
    try:
        app.publish("file", config("a"))
        await until(lambda: routers(app) == {"a@file"})
        t0 = loop.time()
        app.publish("file", config("b"))
        app.publish("file", config("c"))
        app.publish("docker", config("d"))  # another provider's throttle is its own: at once
        await until(lambda: "d@docker" in routers(app))
        assert "c@file" not in routers(app) and "b@file" not in routers(app)
        await until(lambda: "c@file" in routers(app))
        assert loop.time() - t0 >= 0.25  # held for (most of) the window after "a" was applied
        assert not any("b@file" in b for b in built)  # superseded within the window: never built
    finally:
        await app.shutdown()


async def test_a_failed_build_still_owes_the_store_a_resolvers_new_certificate(monkeypatch):
    app = make_app()
    calls: list[int] = []
    real = App._build_store

    def flaky_store(self, *args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("store build failed once")
        return real(self, *args, **kw)

    monkeypatch.setattr(App, "_build_store", flaky_store)
    try:
        app.publish("file", config("a"))
        await until(lambda: routers(app) == {"a@file"} and len(calls) == 1)
        app._certificates_changed()  # a resolver stored a certificate: the store must be rebuilt...
        await until(lambda: len(calls) == 2)  # ...but that build fails
        app.publish("file", config("b"))  # the next build, for anything, still brings it in
        await until(lambda: routers(app) == {"b@file"})
        assert len(calls) == 3
    finally:
        await app.shutdown()


def test_reload_work_pauses_cyclic_gc_but_never_for_a_whole_streak_of_overlapping_reloads(monkeypatch):
    import gc

    quiet = app_module._QuietGC()
    assert gc.isenabled()
    with quiet:
        assert not gc.isenabled()  # a parse or build runs: no collection stops the event loop
    assert gc.isenabled()
    monkeypatch.setattr(app_module._QuietGC, "MAX_PAUSE", 0.0)
    with quiet:
        assert not gc.isenabled()
        with quiet:  # a load overlapping a build, past the pause bound: collection runs again
            assert gc.isenabled()
    assert gc.isenabled()
