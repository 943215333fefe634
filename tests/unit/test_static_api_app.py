"""The app's API state: a new ApiState per applied configuration (references to what was applied), and a
change of the providers' ``discovered`` records alone updates it without a recompile."""

from __future__ import annotations

from dataclasses import replace

from discover.model import Discovered, DynamicConfig, LoadBalancer, Router, Server, Service
from dockroute import app as app_module
from dockroute.app import App
from dockroute.static import load_static
from tests.polling import until


def config(tag: str, seen: tuple[Discovered, ...] = ()) -> DynamicConfig:
    return DynamicConfig(
        routers={tag: Router(tag, f"Host(`{tag}.test`)", "svc")},
        services={"svc": Service("svc", load_balancer=LoadBalancer(servers=(Server("http://127.0.0.1:9"),)))},
        discovered=seen,
    )


def make_app(*flags: str) -> App:
    argv = ["--entrypoints.web.address=127.0.0.1:0", "--providers.providersThrottleDuration=0", *flags]
    return App(load_static(argv, {}, search_dirs=()))


async def test_no_state_without_the_api_section():
    app = make_app()
    try:
        app.publish("file", config("a"))
        await until(lambda: app.current is not None and "a@file" in app.current.routers)
        assert app.internal.state is None and app.internal.latest() is None
    finally:
        await app.shutdown()


async def test_a_new_state_per_applied_configuration(monkeypatch):
    app = make_app("--api")
    compiles: list[int] = []
    real = app_module.compile_config

    def counting(*args, **kw):
        compiles.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(app_module, "compile_config", counting)
    try:
        app.publish("file", config("a"))
        await until(lambda: app.internal.state is not None and "a@file" in app.internal.state.config.routers)
        first = app.internal.latest()
        assert first is not None and first.config is app.current and first.balancers is app.compiled.balancers
        assert first.errors is app.compiled.errors and first.routed_on == {"a@file": ("web",)}
        assert first.internal_services == ("api@internal", "dashboard@internal", "noop@internal")
        assert set(first.providers) == {"file", "internal"} and first.settings == app.static.api
        n = len(compiles)

        # only what the provider saw changes: a new state, the same tables, no compile
        seen = (Discovered(provider="docker", kind="container", name="db", reason="no port"),)
        app.publish("file", config("a", seen))
        await until(lambda: app.internal.state is not first)
        second = app.internal.latest()
        assert second is not None and second.config.discovered == seen
        assert len(compiles) == n and second.balancers is first.balancers

        app.publish("file", config("b", seen))
        await until(lambda: "b@file" in app.internal.state.config.routers)  # type: ignore[union-attr]
        assert len(compiles) == n + 1 and app.internal.state is not second
        assert replace(app.current, discovered=()) != replace(second.config, discovered=())
    finally:
        await app.shutdown()
