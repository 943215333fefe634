"""The internal provider (dockroute.internal): Traefik's routers for api/dashboard/debug/ping/prometheus from
the static configuration, compiled with their handlers; and the ping handler (router.ping)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from multidict import CIMultiDict

from discover.middlewares.paths import RedirectRegex, StripPrefix
from discover.model import DynamicConfig, Router, merge
from dockroute.internal import (
    DASHBOARD_REDIRECT,
    InternalServices,
    internal_config,
    internal_handlers,
)
from dockroute.static import load_static
from router.compile import MAX_PRIORITY, compile_config
from router.internal import noop
from router.ping import PingHandler, status_text
from router.rules import RequestInfo
from router.settings import PingSettings
from tests.exchange_fakes import Recorder, fake_exchange


def static(*flags: str):
    return load_static(list(flags), {}, search_dirs=())


def routers(*flags: str) -> dict:
    merged = merge({"internal": internal_config(static(*flags))})
    return {
        name: (r.rule, r.service, r.entry_points, r.priority, r.middlewares)
        for name, r in merged.routers.items()
    }


def test_nothing_without_the_sections():
    cfg = internal_config(static())
    assert dict(cfg.routers) == {} and dict(cfg.middlewares) == {}
    assert internal_handlers(static()) == {"noop@internal": noop}


def test_api_without_insecure_has_no_router():
    # only a user's router reaches api@internal (Traefik defines the service, not a router)
    assert routers("--api", "--api.debug") == {}


def test_insecure_api_dashboard_and_debug_routers():
    got = routers("--api.insecure", "--api.debug")
    dash_mws = ("dashboard_redirect@internal", "dashboard_stripprefix@internal")
    assert got == {
        "api@internal": ("PathPrefix(`/api`)", "api@internal", ("traefik",), MAX_PRIORITY - 1, ()),
        "dashboard@internal": (
            "PathPrefix(`/`)",
            "dashboard@internal",
            ("traefik",),
            MAX_PRIORITY - 2,
            dash_mws,
        ),
        "debug@internal": ("PathPrefix(`/debug`)", "api@internal", ("traefik",), MAX_PRIORITY - 1, ()),
    }
    mws = merge({"internal": internal_config(static("--api.insecure"))}).middlewares
    assert mws["dashboard_redirect@internal"].type == "redirectRegex"
    assert mws["dashboard_redirect@internal"].options == RedirectRegex(
        regex=r"^(http:\/\/(\[[\w:.]+\]|[\w\._-]+)(:\d+)?)\/$", replacement="${1}/dashboard/", permanent=True
    )
    assert mws["dashboard_stripprefix@internal"].options == StripPrefix(
        prefixes=("/dashboard/", "/dashboard")
    )
    assert mws["dashboard_redirect@internal"].options.regex == DASHBOARD_REDIRECT


def test_insecure_without_dashboard_has_only_the_api_router():
    assert set(routers("--api.insecure", "--api.dashboard=false")) == {"api@internal"}


def test_ping_and_prometheus_routers_follow_entry_point_and_manual_routing():
    got = routers(
        "--entrypoints.web.address=:80",
        "--entrypoints.ops.address=:9000",
        "--ping.entrypoint=web",
        "--metrics.prometheus.entrypoint=OPS",
    )
    assert got == {
        "ping@internal": ("PathPrefix(`/ping`)", "ping@internal", ("web",), MAX_PRIORITY, ()),
        "prometheus@internal": ("PathPrefix(`/metrics`)", "prometheus@internal", ("ops",), MAX_PRIORITY, ()),
    }
    assert routers("--ping.manualrouting", "--metrics.prometheus.manualrouting") == {}


def test_handlers_only_for_services_turned_on():
    api, dash, ping, prom = (SimpleNamespace(name=n) for n in ("api", "dash", "ping", "prom"))
    s = static("--api", "--api.dashboard=false")
    assert internal_handlers(s, api=api, dashboard=dash, ping=ping, prometheus=prom) == {
        "noop@internal": noop,
        "api@internal": api,
    }
    s = static("--api", "--ping", "--metrics.prometheus")
    assert set(internal_handlers(s, api=api, dashboard=dash, ping=ping, prometheus=prom)) == {
        "noop@internal",
        "api@internal",
        "dashboard@internal",
        "ping@internal",
        "prometheus@internal",
    }


def test_compiled_with_the_app_handlers():
    s = static("--entrypoints.traefik.address=127.0.0.1:0", "--api.insecure", "--ping")
    services = InternalServices(s)
    assert services.names == ("api@internal", "dashboard@internal", "noop@internal", "ping@internal")
    compiled = compile_config(
        merge({"internal": internal_config(s)}), s.entry_points, internal=services.handlers
    )
    assert compiled.errors == {}
    table = compiled.tables["traefik"]

    def route(path: str) -> str:
        found = table.lookup(RequestInfo("GET", "x.test", path, "", CIMultiDict(), "127.0.0.1"))
        return found.name if found is not None else ""

    assert route("/ping") == "ping@internal"
    assert route("/api/version") == "api@internal"
    assert route("/") == route("/dashboard/app.js") == "dashboard@internal"


def test_without_ping_a_router_to_it_is_left_out():
    s = static("--entrypoints.web.address=:80")
    user = DynamicConfig(
        routers={"health": Router(name="health", rule="Path(`/h`)", service="ping@internal")}
    )
    cfg = merge({"internal": internal_config(s), "file": user})
    compiled = compile_config(cfg, s.entry_points, internal=InternalServices(s).handlers)
    assert "health@file" not in compiled.entry_points and "health@file" in compiled.errors


# -- ping ------------------------------------------------------------------------------------------------


async def _ping(handler: PingHandler, method: str = "GET") -> Recorder:
    ex = fake_exchange(method, "/ping")
    ex.sink = rec = Recorder()
    await handler(ex)
    return rec


async def test_ping_ok_then_terminating_status():
    handler = PingHandler(PingSettings())
    rec = await _ping(handler)
    assert (rec.status, rec.body) == (200, b"OK")
    assert rec.headers["Content-Type"] == "text/plain; charset=utf-8"
    handler.terminate()
    rec = await _ping(handler)
    assert (rec.status, rec.body) == (503, b"Service Unavailable")


async def test_terminating_status_code_and_go_status_text():
    handler = PingHandler(PingSettings(terminating_status_code=204))
    handler.terminate()
    assert (await _ping(handler)).status == 204
    assert status_text(418) == "I'm a Teapot" or status_text(418) == "I'm a teapot"
    assert status_text(599) == ""  # Go's StatusText of a code it does not know


@pytest.mark.parametrize("flag", ["--ping", "--api"])
def test_internal_services_terminate_is_safe_without_ping(flag):
    services = InternalServices(static(flag))
    services.terminate()
    assert (services.ping is not None) == (flag == "--ping")
    assert services.ping is None or services.ping.terminating


def test_an_internal_entry_point_spelled_otherwise_serves_the_api_and_no_default_router(tmp_path):
    # Entry point names are case-insensitive: the user's "Traefik" is the internal entry point (no second
    # one is added on :8080), so the API's routers are on it and routers naming none are not.
    (tmp_path / "dockroute.yml").write_text(
        "entryPoints:\n  web:\n    address: 127.0.0.1:0\n"
        "  Traefik:\n    address: 127.0.0.1:0\n"
        "api:\n  insecure: true\n"
    )
    s = load_static([], {}, search_dirs=(str(tmp_path),))
    assert [ep.name for ep in s.entry_points] == ["web", "Traefik"]
    user = DynamicConfig(routers={"app": Router(name="app", rule="Host(`a.test`)", service="noop@internal")})
    cfg = merge({"internal": internal_config(s), "file": user})
    compiled = compile_config(cfg, s.entry_points, internal=InternalServices(s).handlers)
    assert compiled.errors == {}
    assert compiled.entry_points["api@internal"] == ("Traefik",)
    assert compiled.entry_points["app@file"] == ("web",)
