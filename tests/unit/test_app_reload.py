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
from tests.polling import until


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
    real = app_module.build_store

    def flaky_store(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("store build failed once")
        return real(*args, **kw)

    monkeypatch.setattr(app_module, "build_store", flaky_store)
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


# -- issue 9: entry-point TLS, resolvers, TLS options, the route log ------------------------------------


def _app(*flags: str) -> App:
    static = load_static(
        ["--entrypoints.web.address=127.0.0.1:0", "--providers.providersThrottleDuration=0", *flags],
        {},
        search_dirs=(),
    )
    return App(static)


def _svc() -> Service:
    return Service("svc", load_balancer=LoadBalancer(servers=(Server("http://127.0.0.1:9"),)))


async def test_routers_without_tls_want_the_certificates_of_their_entry_points_resolver(tmp_path):
    from discover.model import Domain, RouterTLS

    app = _app(
        "--entrypoints.websecure.address=127.0.0.1:0",
        "--entrypoints.websecure.http.tls.certresolver=le",
        "--certificatesresolvers.le.acme.email=a@example.com",
        f"--certificatesresolvers.le.acme.storage={tmp_path / 'acme.json'}",
        "--certificatesresolvers.le.acme.caserver=https://127.0.0.1:1/dir",
        "--certificatesresolvers.le.acme.tlschallenge",
    )
    wanted: list[list[tuple[str, ...]]] = []
    app.resolvers["le"].want = lambda sets: wanted.append(list(sets))
    both = RouterTLS(cert_resolver="le", domains=(Domain("main.test", ("san.test",)),))
    cfg = DynamicConfig(
        routers={
            "a": Router("a", "Host(`a.test`) || Host(`b.test`)", "svc"),  # websecure's resolver there
            "dup": Router("dup", "Host(`b.test`) || Host(`a.test`)", "svc", entry_points=("websecure",)),
            "own": Router("own", "Host(`x.test`)", "svc", entry_points=("web",), tls=both),
            "plain": Router("plain", "Host(`p.test`)", "svc", entry_points=("web",)),  # plain HTTP: none
            "lost": Router("lost", "Host(`l.test`)", "svc", entry_points=("nope",)),  # not routed: none
        },
        services={"svc": _svc()},
    )
    try:
        app.publish("file", cfg)
        await until(lambda: wanted)
        # main and sans make ONE certificate; the same host set twice is asked for once
        assert wanted[-1] == [("a.test", "b.test"), ("main.test", "san.test")]
        assert app.compiled.errors.keys() == {"lost@file"}
    finally:
        await app.shutdown()


async def test_resolvers_are_built_from_the_typed_settings_and_an_internal_ca_answers_no_challenge(tmp_path):
    from acme_client.internal_ca import InternalCA
    from acme_client.resolver import AcmeResolver

    app = _app(
        "--certificatesresolvers.le.acme.email=a@example.com",
        f"--certificatesresolvers.le.acme.storage={tmp_path / 'acme.json'}",
        "--certificatesresolvers.le.acme.caserver=https://127.0.0.1:1/dir",
        "--certificatesresolvers.le.acme.tlschallenge=true",
        f"--certificatesresolvers.home.internalca.storage={tmp_path / 'ca'}",
    )
    only_ca = _app(f"--certificatesresolvers.home.internalca.storage={tmp_path / 'ca'}")
    try:
        assert isinstance(app.resolvers["le"], AcmeResolver)
        assert isinstance(app.resolvers["home"], InternalCA)
        alpn = app.servers[0].alpn_challenges
        assert alpn is not None and alpn._resolvers == [app.resolvers["le"]]
        assert only_ca.servers[0].alpn_challenges is None and not only_ca._http_challenges
    finally:
        await app.shutdown()
        await only_ca.shutdown()


async def test_the_store_gets_the_tls_options_and_is_rebuilt_when_only_the_host_map_changes():
    from discover.model import RouterTLS, TLSConfig, TLSOptions

    app = _app()
    options = TLSConfig(options={"mtls": TLSOptions(sni_strict=True)})

    def config(host: str) -> DynamicConfig:
        return DynamicConfig(
            routers={"r": Router("r", f"Host(`{host}`)", "svc", tls=RouterTLS(options="mtls"))},
            services={"svc": _svc()},
            tls=options,
        )

    try:
        app.publish("file", config("one.test"))
        await until(lambda: routers(app) == {"r@file"})
        first = app.tls_store
        assert first is not None and set(first.options) == {"mtls@file"}
        assert first.host_options == {"one.test": "mtls@file"}
        assert app.servers[0].host_options == {"one.test": "mtls@file"}
        app.publish("file", config("two.test"))  # tls section unchanged, the host map is not
        await until(lambda: app.servers[0].host_options == {"two.test": "mtls@file"})
        assert app.tls_store is not first and app.tls_store.host_options == {"two.test": "mtls@file"}
        # Each entry point's own map reaches the store too (it builds contexts per entry point's options).
        assert app.tls_store.entry_point_options == {app.servers[0].name: {"two.test": "mtls@file"}}
    finally:
        await app.shutdown()


async def test_each_routed_hostname_is_logged_once_with_its_router_and_origin(tmp_path, caplog):
    from discover.file_provider import FileProvider

    dynamic = tmp_path / "dynamic.yml"
    dynamic.write_text(
        "http:\n  routers:\n"
        "    app: {rule: 'Host(`app.test`) || Host(`www.test`)', service: svc}\n"
        "    api: {rule: 'PathPrefix(`/api`)', service: svc}\n"
        "  services:\n    svc: {loadBalancer: {servers: [{url: 'http://127.0.0.1:9'}]}}\n"
    )
    app = _app()
    try:
        with caplog.at_level(logging.INFO, logger="dockroute"):
            app.publish("file", FileProvider(filename=str(dynamic)).load())
            await until(lambda: routers(app) == {"app@file", "api@file"})
            lines = [r.getMessage() for r in caplog.records if "routing" in r.getMessage()]
            assert lines == [
                f"routing PathPrefix(`/api`) → router api@file (file {dynamic}), entry points web",
                f"routing app.test → router app@file (file {dynamic}), entry points web",
                f"routing www.test → router app@file (file {dynamic}), entry points web",
            ]
            caplog.clear()
            app.publish("file", DynamicConfig(routers={"app": Router("app", "Host(`app.test`)", "svc")},
                                              services={"svc": _svc()}))  # fmt: skip
            await until(lambda: routers(app) == {"app@file"})
            lines = [r.getMessage() for r in caplog.records if "routing" in r.getMessage()]
            assert lines == [
                f"no longer routing PathPrefix(`/api`) (router api@file, file {dynamic})",
                f"no longer routing www.test (router app@file, file {dynamic})",
                "routing app.test → router app@file, entry points web",  # origin changed: named again
            ]
    finally:
        await app.shutdown()


def test_the_route_log_never_writes_the_whole_table():
    from dockroute.route_log import MAX_LINES, route_changes

    new = {(f"h{i}.test", f"r{i}@file"): ("file x.yml", ("web",)) for i in range(MAX_LINES + 50)}
    lines = route_changes({}, new)
    assert len(lines) == MAX_LINES + 1
    assert lines[-1] == "… and 50 more routed, 0 more no longer routed (not listed)"
    assert route_changes(new, new) == []


def test_a_host_with_other_options_on_another_entry_point_keeps_the_non_default_ones(caplog):
    """The union the store's guard reads keeps a host's non-default options whichever entry point comes
    first; each entry point still applies its own map (no warning: that is a valid configuration)."""
    from router.compile import Compiled
    from router.tls_options import union_host_options

    for order in (("web", "secure"), ("secure", "web")):
        per_ep = {
            "web": {"a.test": "default", "b.test": "default"},
            "secure": {"a.test": "mtls@file", "c.test": "mtls@file"},
        }
        compiled = Compiled(tables={}, balancers={}, tls_options={ep: per_ep[ep] for ep in order})
        with caplog.at_level(logging.WARNING, logger="dockroute"):
            merged = union_host_options(compiled.tls_options)
        assert merged == {"a.test": "mtls@file", "b.test": "default", "c.test": "mtls@file"}
    assert caplog.records == []


def _with(extra: str, router: Router) -> DynamicConfig:
    """``router`` (whose trouble is logged) beside an unrelated router ``extra`` that changes."""
    return DynamicConfig(
        routers={extra: Router(extra, f"Host(`{extra}.test`)", "svc"), router.name: router},
        services={"svc": _svc()},
    )


async def test_a_router_left_out_is_logged_once_across_builds_of_unrelated_changes(caplog):
    app = _app()
    lost = Router("lost", "Host(`l.test`)", "svc", entry_points=("nope",))
    caplog.set_level(logging.ERROR)
    try:
        for extra in ("one", "two", "three"):  # every build compiles again: an unrelated router changed
            app.publish("file", _with(extra, lost))
            await until(lambda extra=extra: f"{extra}@file" in routers(app))
        assert caplog.text.count("router lost@file is not routed") == 1
    finally:
        await app.shutdown()


async def test_a_missing_certificate_resolver_is_logged_once_across_builds_and_again_when_it_changes(caplog):
    from discover.model import RouterTLS

    app = _app()
    caplog.set_level(logging.ERROR)
    try:
        for extra in ("one", "two", "three"):
            app.publish("file", _with(extra, Router("s", "Host(`s.test`)", "svc", tls=RouterTLS("nope"))))
            await until(lambda extra=extra: f"{extra}@file" in routers(app))
        assert caplog.text.count("certificate resolver nope does not exist") == 1
        app.publish("file", _with("four", Router("s", "Host(`s.test`)", "svc", tls=RouterTLS("other"))))
        await until(lambda: "four@file" in routers(app))
        assert caplog.text.count("certificate resolver other does not exist") == 1
    finally:
        await app.shutdown()
