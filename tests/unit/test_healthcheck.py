import asyncio
import logging
import ssl

import pytest
from aiohttp import web

from discover.model import HealthCheck, LoadBalancer, Server, Service
from router.balancer import Upstream, build_balancers
from router.healthcheck import HealthChecker, is_healthy, probe_url


class Backend:
    """A real HTTP server on 127.0.0.1 whose answer the test changes while the checker runs."""

    def __init__(self) -> None:
        self.status = 200
        self.delay: asyncio.Event | None = None
        self.requests: list[web.Request] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        if self.delay is not None:
            await self.delay.wait()
        return web.Response(status=self.status, headers={"Location": "/elsewhere"})

    async def start(self) -> None:
        server = web.Server(self.handle)
        self.runner = web.ServerRunner(server)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.delay is not None:
            self.delay.set()
        assert self.runner is not None
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def backend():
    b = Backend()
    await b.start()
    yield b
    await b.stop()


async def until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def checked(url: str, hc: HealthCheck, **kw):
    services = {
        "s@file": Service("s@file", load_balancer=LoadBalancer(servers=(Server(url),), health_check=hc))
    }
    bals = build_balancers(services)
    checker = HealthChecker(**kw)
    checker.start = lambda: checker.update(bals, services)  # type: ignore[attr-defined]
    return bals["s@file"].servers[0], checker


async def test_failing_server_goes_out_and_comes_back(backend, caplog):
    backend.status = 500
    up, checker = await checked(backend.url, HealthCheck(path="/health", interval=0.05, timeout=2))
    with caplog.at_level(logging.INFO, logger="dockroute.healthcheck"):
        checker.start()
        try:
            await until(lambda: not up.healthy)
            backend.status = 200
            await until(lambda: up.healthy)
            seen = len(backend.requests)
            await until(lambda: len(backend.requests) >= seen + 3)  # more rounds: no more transition lines
        finally:
            await checker.stop()
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(messages) == 2
    assert messages[0][0] == logging.WARNING
    assert messages[0][1].startswith(f"service s@file: server {backend.url} is unhealthy")
    assert "status 500" in messages[0][1]
    assert messages[1] == (logging.INFO, f"service s@file: server {backend.url} is healthy again")
    assert all(r.path == "/health" and r.method == "GET" for r in backend.requests)


async def test_first_check_runs_at_once(backend):
    backend.status = 503
    up, checker = await checked(backend.url, HealthCheck(interval=3600))
    checker.start()
    try:
        await until(lambda: not up.healthy, timeout=3)
    finally:
        await checker.stop()


async def test_expected_status(backend):
    backend.status = 200
    up, checker = await checked(backend.url, HealthCheck(interval=0.05, status=204))
    checker.start()
    try:
        await until(lambda: not up.healthy)  # 200 is not the 204 asked for
        backend.status = 204
        await until(lambda: up.healthy)
    finally:
        await checker.stop()


async def test_redirect_counts_as_healthy_when_not_followed(backend):
    backend.status = 302
    up, checker = await checked(backend.url, HealthCheck(interval=0.05, follow_redirects=False))
    up.healthy = False
    checker.start()
    try:
        await until(lambda: up.healthy)
        assert {r.path for r in backend.requests} == {"/"}  # the Location was not followed
        backend.status = 404
        await until(lambda: not up.healthy)
    finally:
        await checker.stop()


async def test_hostname_headers_method_and_query_reach_the_backend(backend):
    hc = HealthCheck(
        path="/ping?deep=1",
        interval=0.05,
        hostname="app.example.com",
        headers={"X-Probe": "yes"},
        method="HEAD",
    )
    up, checker = await checked(backend.url, hc)
    checker.start()
    try:
        await until(lambda: len(backend.requests) >= 1)
    finally:
        await checker.stop()
    req = backend.requests[0]
    assert req.headers["Host"] == "app.example.com"
    assert req.headers["X-Probe"] == "yes"
    assert req.method == "HEAD"
    assert req.path_qs == "/ping?deep=1"
    assert "Cookie" not in req.headers


async def test_timeout_marks_unhealthy(backend):
    backend.delay = asyncio.Event()
    up, checker = await checked(backend.url, HealthCheck(interval=0.05, timeout=0.1))
    checker.start()
    try:
        await until(lambda: not up.healthy, timeout=3)
        backend.delay.set()  # answers in time again
        backend.delay = None
        await until(lambda: up.healthy)
    finally:
        await checker.stop()


async def test_refused_connection_marks_unhealthy():
    b = Backend()
    await b.start()
    url = b.url
    await b.stop()  # nothing listens there any more
    up, checker = await checked(url, HealthCheck(interval=0.05, timeout=1))
    checker.start()
    try:
        await until(lambda: not up.healthy)
    finally:
        await checker.stop()
    # What /api shows as the reason: the OS error, not aiohttp's text with the SSL context's repr in it.
    assert up.why.startswith("cannot connect: ") and "object at 0x" not in up.why, up.why


async def test_health_check_port_is_used(backend):
    b = Backend()
    await b.start()
    dead_url = b.url
    await b.stop()
    # the server's own port is dead; healthCheck.port points at the live backend
    up, checker = await checked(dead_url, HealthCheck(interval=0.05, port=backend.port))
    up.healthy = False
    checker.start()
    try:
        await until(lambda: up.healthy)
    finally:
        await checker.stop()


async def test_stop_ends_the_checks(backend):
    up, checker = await checked(backend.url, HealthCheck(interval=0.02))
    checker.start()
    await until(lambda: len(backend.requests) >= 2)
    tasks = list(checker._tasks)
    session = checker._session
    await checker.stop()
    assert tasks and all(t.cancelled() for t in tasks)
    assert session is not None and session.closed
    assert checker._session is None and not checker._tasks


async def test_services_without_health_check_are_not_probed(backend):
    services = {"s": Service("s", load_balancer=LoadBalancer(servers=(Server(backend.url),)))}
    checker = HealthChecker()
    checker.update(build_balancers(services), services)
    assert checker._session is None and not checker._tasks
    await checker.stop()


def test_healthy_rule_is_traefiks():
    assert is_healthy(200, None) and is_healthy(399, None)
    assert not is_healthy(199, None) and not is_healthy(400, None) and not is_healthy(500, None)
    assert is_healthy(503, 503) and not is_healthy(200, 503)


def test_probe_url():
    up = Upstream("http://h:8080")
    assert probe_url(HealthCheck(path="/hc"), up) == "http://h:8080/hc"
    assert probe_url(HealthCheck(path="hc", port=9000), up) == "http://h:9000/hc"
    # a port implied by the scheme follows a changed scheme, as in Traefik
    assert probe_url(HealthCheck(scheme="https"), Upstream("http://h")) == "https://h/"
    assert probe_url(HealthCheck(scheme="https"), up) == "https://h:8080/"
    assert probe_url(HealthCheck(), Upstream("http://[::1]:81")) == "http://[::1]:81/"


# -- reloads ------------------------------------------------------------------------------------------


def lb_service(name: str, url: str, hc: HealthCheck, transport: str | None = None) -> Service:
    return Service(
        name, load_balancer=LoadBalancer(servers=(Server(url),), health_check=hc, servers_transport=transport)
    )


async def test_unchanged_service_keeps_its_checker_across_a_reload(backend):
    """Same service, same balancer: no new immediate probe, the task and the up/down state carry on."""
    backend.status = 500
    hc = HealthCheck(interval=3600)  # after the first round, only a new job would probe again
    services = {"s": lb_service("s", backend.url, hc)}
    bals = build_balancers(services)
    checker = HealthChecker()
    try:
        assert checker.update(bals, services) == (0, 1)
        up = bals["s"].servers[0]
        await until(lambda: not up.healthy)
        task = checker._jobs["s"].task
        probes = len(backend.requests)
        # a reload: another service appears, "s" is unchanged
        services2 = {**services, "t": lb_service("t", backend.url + "/", hc)}
        bals2 = build_balancers(services2, previous=bals)
        assert bals2["s"] is bals["s"]
        assert checker.update(bals2, services2) == (1, 1)
        assert checker._jobs["s"].task is task and not task.done()
        await until(lambda: len(backend.requests) >= probes + 1)  # t's first probe
        await asyncio.sleep(0)  # let any (wrong) extra probe of s start
        assert len(backend.requests) == probes + 1
        assert not bals2["s"].servers[0].healthy  # the state is kept
    finally:
        await checker.stop()


async def test_changed_service_gets_a_new_checker_and_removed_one_stops(backend):
    services = {"s": lb_service("s", backend.url, HealthCheck(interval=3600))}
    bals = build_balancers(services)
    checker = HealthChecker()
    try:
        checker.update(bals, services)
        await until(lambda: len(backend.requests) == 1)
        old_task = checker._jobs["s"].task
        services2 = {"s": lb_service("s", backend.url, HealthCheck(interval=3600, path="/other"))}
        bals2 = build_balancers(services2, previous=bals)
        assert checker.update(bals2, services2) == (0, 1)
        await until(lambda: len(backend.requests) == 2)  # the new definition is probed at once
        assert backend.requests[-1].path == "/other"
        await until(lambda: old_task.done())
        new_task = checker._jobs["s"].task
        assert checker.update({}, {}) == (0, 0)
        await until(lambda: new_task.done())
        assert not checker._jobs
    finally:
        await checker.stop()


async def test_a_changed_named_transport_restarts_the_check(backend):
    from discover.model import ServersTransport

    services = {"s": lb_service("s", backend.url, HealthCheck(interval=3600), transport="tr@file")}
    bals = build_balancers(services)
    asked: list[str | None] = []

    def tls_for(name):
        asked.append(name)
        return ssl.create_default_context(), None

    checker = HealthChecker(tls_for=tls_for)
    try:
        checker.update(bals, services, {"tr@file": ServersTransport()})
        assert checker.update(bals, services, {"tr@file": ServersTransport()}) == (1, 0)
        assert checker.update(bals, services, {"tr@file": ServersTransport(insecure_skip_verify=True)}) == (
            0,
            1,
        )
        assert asked == ["tr@file", "tr@file"]
    finally:
        await checker.stop()


async def test_https_probe_uses_the_services_transport(tmp_path):
    """The probe connects with the (context, server name) ``tls_for`` gives for the service's transport:
    a self-signed backend is healthy with a context that trusts it, and unhealthy with the system roots."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("backend.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)

    async def ok(request: web.BaseRequest) -> web.Response:
        return web.Response(text="ok")

    server = web.Server(ok)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        hc = HealthCheck(interval=0.05, timeout=2)
        # the URL's host is an IP; the certificate names backend.test: the server name must be sent
        services = {"s": lb_service("s", f"https://127.0.0.1:{port}", hc, transport="tr@file")}
        bals = build_balancers(services)
        up = bals["s"].servers[0]
        up.healthy = False
        seen: list[str | None] = []

        def tls_for(name):
            seen.append(name)
            return trusting, "backend.test"

        good = HealthChecker(tls_for=tls_for)
        good.update(bals, services)
        try:
            await until(lambda: up.healthy)
        finally:
            await good.stop()
        assert seen == ["tr@file"]
        bad = HealthChecker(tls_for=lambda name: (ssl.create_default_context(), None))
        bad.update(bals, services)
        try:
            await until(lambda: not up.healthy)
        finally:
            await bad.stop()
    finally:
        await runner.cleanup()
