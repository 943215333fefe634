"""loadBalancer.strategy and passiveHealthCheck through the real process and real sockets: p2c keeps load
off a slow server, hrw keeps each client IP on one server and moves about 1/n of them when a server is
added, passiveHealthCheck takes a failing server out and brings it back (seen in traffic and in /api)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import socket

import aiohttp
import pytest
from aiohttp import web

from tests.integration.harness import Backend, raw_exchange, wait_for

pytestmark = pytest.mark.integration


class Named:
    """A loopback server answering ``status`` with its name after ``delay`` seconds, counting hits;
    ``/health`` (the active check's path) always answers 200, counted apart."""

    def __init__(self, name: str, delay: float = 0.0) -> None:
        self.name, self.delay, self.status, self.hits, self.probes = name, delay, 200, 0, 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> Named:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path == "/health":
            self.probes += 1
            return web.Response(text="ok")
        self.hits += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text=self.name)


@pytest.fixture
async def named():
    started: list[Named] = []

    async def make(*specs: tuple[str, float]) -> list[Named]:
        out = [await Named(n, d).start() for n, d in specs]
        started.extend(out)
        return out

    yield make
    for s in started:
        if s.runner is not None:
            await s.runner.cleanup()


def service(urls: list[str], **lb) -> dict:
    return {
        "http": {
            "routers": {"app": {"rule": "PathPrefix(`/`)", "service": "app", "entryPoints": ["web"]}},
            "services": {"app": {"loadBalancer": {"servers": [{"url": u} for u in urls], **lb}}},
        }
    }


async def get_name(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as r:
        return r.status, await r.text()


async def test_p2c_sends_most_requests_away_from_a_slow_server(proxy, named):
    fast, slow = await named(("fast", 0.0), ("slow", 0.3))
    dr = await proxy(service([fast.url, slow.url], strategy="p2c"))
    got: collections.Counter[str] = collections.Counter()

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in range(20):
            status, name = await get_name(session, dr.url("/"))
            assert status == 200
            got[name] += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(worker(session) for _ in range(8)))
    # wrr would send half (80) to the slow server; p2c sends a request there only when it has no more in
    # flight than the fast one
    assert got["fast"] + got["slow"] == 160
    assert got["slow"] < 160 * 0.2, got


async def test_leasttime_sends_requests_to_the_server_that_answers_fastest(proxy, named):
    fast, slow = await named(("fast", 0.0), ("slow", 0.15))
    dr = await proxy(service([slow.url, fast.url], strategy="leasttime"))
    async with aiohttp.ClientSession() as session:
        names = [(await get_name(session, dr.url("/")))[1] for _ in range(30)]
    # no samples yet: one each in turn; then the measured times decide (wrr would give slow 15)
    assert names.count("slow") <= 2, names


async def client_server(port: int, ip: str) -> list[str]:
    """The server names three requests from client address ``ip`` (a 127.x loopback address) reached."""
    names = []
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(ip, 0), force_close=True)
    ) as s:
        for _ in range(3):
            status, name = await get_name(s, f"http://127.0.0.1:{port}/")
            assert status == 200
            names.append(name)
    return names


CLIENT_IPS = [f"127.0.{i // 200}.{2 + i % 200}" for i in range(80)]


async def test_hrw_keeps_each_client_ip_on_one_server_and_moves_about_1_in_n_when_one_is_added(proxy, named):
    servers = await named(("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 0.0))
    dr = await proxy(service([s.url for s in servers[:3]], strategy="hrw"))
    before = {}
    for ip in CLIENT_IPS:
        names = await client_server(dr.port, ip)
        assert len(set(names)) == 1, (ip, names)  # one client IP, one server
        before[ip] = names[0]
    assert len(set(before.values())) == 3  # and the clients are spread over all three
    applied = dr.log().count("configuration applied")
    dr.write_dynamic(service([s.url for s in servers], strategy="hrw"))
    await wait_for(lambda: dr.log().count("configuration applied") > applied, timeout=10)
    after = {ip: set(await client_server(dr.port, ip)) for ip in CLIENT_IPS}
    assert all(len(names) == 1 for names in after.values()), after
    moved = [ip for ip in CLIENT_IPS if after[ip] != {before[ip]}]
    assert all(after[ip] == {"d"} for ip in moved)  # only to the new server
    assert 0.08 < len(moved) / len(CLIENT_IPS) < 0.45, len(moved)  # about 1/4


def api_static(tmp_path) -> dict:
    return {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}, "traefik": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "api": {"insecure": True},
        "log": {"level": "DEBUG"},
    }


async def test_passive_health_check_takes_a_failing_server_out_and_brings_it_back(proxy, named, tmp_path):
    good, bad = await named(("good", 0.0), ("bad", 0.0))
    bad.status = 503
    passive = {"failureWindow": "5s", "maxFailedAttempts": 3}  # wide: a loaded box may stall a while
    dr = await proxy(service([good.url, bad.url], passiveHealthCheck=passive), static=api_static(tmp_path))
    api = dr.url("/api/http/services/app@file", ep="traefik")
    async with aiohttp.ClientSession() as s:
        statuses = [(await get_name(s, dr.url("/")))[0] for _ in range(6)]
        assert statuses.count(503) == 3 and bad.hits == 3  # round robin: every other one, three failures
        async with s.get(api) as r:
            svc = await r.json()
        assert svc["serverStatus"] == {good.url: "UP", bad.url: "DOWN"}
        state = svc["serverStates"][bad.url]
        assert state.startswith("DOWN: passive: 3 failures in 5s, last: status 503, back at "), state
        assert svc["loadBalancer"]["passiveHealthCheck"] == {"failureWindow": "5s", "maxFailedAttempts": 3}
        # out: every request goes to the good server
        assert [await get_name(s, dr.url("/")) for _ in range(10)] == [(200, "good")] * 10
        assert bad.hits == 3
        bad.status = 200  # healed; after failureWindow it is back in rotation

        async def bad_serves_again() -> bool:
            return (await get_name(s, dr.url("/")))[1] == "bad"

        await wait_for(bad_serves_again, timeout=20, interval=0.1)
        async with s.get(api) as r:
            svc = await r.json()
        assert svc["serverStatus"] == {good.url: "UP", bad.url: "UP"}
        assert svc["serverStates"] == {good.url: "UP", bad.url: "UP"}


async def test_in_flight_counts_come_back_down_on_every_way_a_request_ends(proxy, backends):
    """p2c reads in-flight counts: a request that ends any way but a plain answer (a client giving up
    before the answer or in the middle of the body, a WebSocket closed) must not leave its server looking
    busy, or p2c would stop sending it anything. Server a takes them all (a sticky cookie), then plain
    requests without the cookie must still reach it about half the time."""
    a, b = await backends("a", "b")
    sticky = {"cookie": {"name": "s"}}
    dr = await proxy(service([a.url, b.url], strategy="p2c", sticky=sticky))
    to_a = {"s": hashlib.sha256(a.url.encode()).hexdigest()[:16]}
    async with aiohttp.ClientSession(cookies=to_a) as s:
        for _ in range(4):  # the client gives up before the response head
            with contextlib.suppress(TimeoutError):
                await s.get(dr.url("/slow?delay=5"), timeout=aiohttp.ClientTimeout(total=0.2))
        for _ in range(3):  # ... and in the middle of a large body
            async with s.get(dr.url("/download?size=50000000")) as r:
                await r.content.read(65536)
                r.close()
        for _ in range(3):  # a WebSocket tunnel, closed
            async with s.ws_connect(dr.url("/ws")) as ws:
                await ws.send_str("hi")
                assert (await ws.receive()).data == "a:hi"
        async with s.get(dr.url("/")) as r:
            assert (await r.json())["server"] == "a"
    got: collections.Counter[str] = collections.Counter()
    async with aiohttp.ClientSession() as s:
        for _ in range(60):
            async with s.get(dr.url("/")) as r:
                got[(await r.json())["server"]] += 1
    assert got["a"] > 60 * 0.2, got  # a leaked count would keep a at 0


@pytest.mark.timing  # the 4 s probe interval must not pass while the test shows the server still out
async def test_with_an_active_check_passive_failures_last_until_the_check_passes(proxy, named, tmp_path):
    """Active and passive combine as in Traefik: a server taken out by passive failures stays out past
    failureWindow when the service has a healthCheck, and is back once the next probe passes."""
    good, bad = await named(("good", 0.0), ("bad", 0.0))
    bad.status = 500
    lb = {
        "passiveHealthCheck": {"failureWindow": "200ms", "maxFailedAttempts": 2},
        "healthCheck": {"path": "/health", "interval": "4s", "timeout": "1s"},
    }
    dr = await proxy(service([good.url, bad.url], **lb), static=api_static(tmp_path))
    api = dr.url("/api/http/services/app@file", ep="traefik")
    async with aiohttp.ClientSession() as s:
        # the first probes (at start) found both servers healthy: the bad one fails only real requests
        await wait_for(lambda: bad.probes and good.probes, timeout=5)
        statuses = [(await get_name(s, dr.url("/")))[0] for _ in range(4)]
        assert statuses.count(500) == 2 and bad.hits == 2
        async with s.get(api) as r:
            state = (await r.json())["serverStates"][bad.url]
        assert state.endswith("back when the active check passes"), state
        await asyncio.sleep(0.5)  # past failureWindow: still out (a probe is 3 s away)
        assert [(await get_name(s, dr.url("/")))[1] for _ in range(6)] == ["good"] * 6
        bad.status = 200

        async def bad_serves_again() -> bool:
            return (await get_name(s, dr.url("/")))[1] == "bad"

        await wait_for(bad_serves_again, timeout=10, interval=0.1)  # after the next probe


async def test_a_client_stalling_its_upload_is_not_counted_against_the_server(proxy, backends, tmp_path):
    """A body cut by readTimeout is the client's doing: answered 408 (the connection closed), and no
    passive failure counted against the server that was waiting for it, so stalled uploads cannot take
    a service out (one failure is enough here)."""
    a, b = await backends("a", "b")
    static = api_static(tmp_path)
    static["entryPoints"]["web"]["transport"] = {"respondingTimeouts": {"readTimeout": "1s"}}
    passive = {"failureWindow": "10s", "maxFailedAttempts": 1}
    dr = await proxy(service([a.url, b.url], passiveHealthCheck=passive), static=static)
    stalled = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
    answers = await asyncio.gather(*(raw_exchange(dr.port, stalled, timeout=8) for _ in range(4)))
    for got in answers:
        assert got.startswith(b"HTTP/1.1 408 "), got
    assert a.hits and b.hits  # both servers were waiting for a body that never came
    async with aiohttp.ClientSession() as s:
        async with s.get(dr.url("/api/http/services/app@file", ep="traefik")) as r:
            svc = await r.json()
        assert svc["serverStatus"] == {a.url: "UP", b.url: "UP"}, svc["serverStates"]
        servers = set()
        for _ in range(4):
            async with s.get(dr.url("/")) as r:
                assert r.status == 200
                servers.add((await r.json())["server"])
        assert servers == {"a", "b"}
    await wait_for(lambda: "request body not read within readTimeout" in dr.log())


async def test_in_flight_counts_come_back_down_through_middlewares_and_a_failed_first_server(
    proxy, backends, tmp_path
):
    """The two other ways a request leaves a server's in-flight count: a route with middlewares
    (headers, retry) answering through the exchange, and a connection refused by the first server tried
    (its count moves to the server tried next). A count left behind makes p2c, whose two draws are both
    servers here, send every request to the other one."""
    blocker = socket.socket()  # bound, not listening: connections to its port are refused
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    dead_url = f"http://127.0.0.1:{port}"
    (a,) = await backends("a")
    dynamic = service([dead_url, a.url], strategy="p2c", sticky={"cookie": {"name": "s"}})
    dynamic["http"]["services"]["app"]["loadBalancer"]["passiveHealthCheck"] = {"failureWindow": "1s"}
    dynamic["http"]["routers"]["mw"] = {
        "rule": "PathPrefix(`/mw`)",
        "service": "app",
        "entryPoints": ["web"],
        "middlewares": ["hdr", "again"],
    }
    dynamic["http"]["middlewares"] = {
        "hdr": {"headers": {"customRequestHeaders": {"X-Through": "mw"}}},
        "again": {"retry": {"attempts": 2}},
    }
    dr = await proxy(dynamic, static=api_static(tmp_path))
    to = {u: {"s": hashlib.sha256(u.encode()).hexdigest()[:16]} for u in (dead_url, a.url)}
    async with aiohttp.ClientSession(cookies=to[dead_url]) as s, s.get(dr.url("/mw/first")) as r:
        assert r.status == 200 and (await r.json())["server"] == "a"  # the refusing server tried first
    async with aiohttp.ClientSession(cookies=to[a.url]) as s:  # through the middlewares, to a
        for _ in range(5):
            async with s.get(dr.url("/mw/x")) as r:
                body = await r.json()
                assert r.status == 200 and body["server"] == "a"
                assert body["headers"]["X-Through"] == "mw"
    blocker.close()
    (revived,) = [await Backend("dead").start(port=port)]
    try:
        api = dr.url("/api/http/services/app@file", ep="traefik")
        async with aiohttp.ClientSession() as s:

            async def both_up() -> bool:
                async with s.get(api) as r:
                    return set((await r.json())["serverStatus"].values()) == {"UP"}

            await wait_for(both_up, timeout=10, interval=0.1)
            got: collections.Counter[str] = collections.Counter()
            for _ in range(60):
                async with s.get(dr.url("/")) as r:
                    got[(await r.json())["server"]] += 1
        # a leaked count on either server sends every request to the other
        assert got["a"] > 60 * 0.2 and got["dead"] > 60 * 0.2, got
    finally:
        await revived.stop()


async def _no_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A backend that reads the request and never sends a response head."""
    with contextlib.suppress(ConnectionError):
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()  # until the proxy gives up and closes
    writer.close()


async def _closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A backend that reads the request and closes the connection without answering."""
    with contextlib.suppress(ConnectionError):
        await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def test_the_proxys_own_502_and_504_are_passive_failures(proxy, tmp_path):
    """Traefik's passive checker counts the status its proxy answers: a server that sends no response head
    within responseHeaderTimeout (504) or breaks the connection (502) is taken out, and with every server
    out the service answers 503 for the window, as Traefik's, rather than trying the down server again."""
    silent = await asyncio.start_server(_no_head, "127.0.0.1", 0)
    closing = await asyncio.start_server(_closes, "127.0.0.1", 0)
    urls = {
        n: f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
        for n, srv in (("silent", silent), ("closing", closing))
    }
    passive = {"failureWindow": "10s", "maxFailedAttempts": 1}
    dynamic = {
        "http": {
            "routers": {
                n: {"rule": f"PathPrefix(`/{n}`)", "service": n, "entryPoints": ["web"]} for n in urls
            },
            "services": {
                n: {
                    "loadBalancer": {
                        "servers": [{"url": u}],
                        "passiveHealthCheck": passive,
                        "serversTransport": "quick",
                    }
                }
                for n, u in urls.items()
            },
            "serversTransports": {"quick": {"forwardingTimeouts": {"responseHeaderTimeout": "300ms"}}},
        }
    }
    try:
        dr = await proxy(dynamic, static=api_static(tmp_path))
        async with aiohttp.ClientSession() as s:
            for name, status, why in (
                ("silent", 504, "no response headers in 0.3s"),
                ("closing", 502, "backend closed the connection before responding"),
            ):
                async with s.get(dr.url(f"/{name}")) as r:
                    assert r.status == status, name
                async with s.get(dr.url(f"/api/http/services/{name}@file", ep="traefik")) as r:
                    svc = await r.json()
                assert svc["serverStatus"] == {urls[name]: "DOWN"}, svc
                assert f"1 failures in 10s, last: {why}" in svc["serverStates"][urls[name]], svc
                async with s.get(dr.url(f"/{name}")) as r:  # the only server is out: 503, not tried
                    assert r.status == 503, name
    finally:
        for srv in (silent, closing):
            srv.close()
