"""UDP routing through the real process: ``/udp`` entry points, ``udp.routers`` and ``udp.services``,
sessions per client address with their idle timeout, round robin and weights, dead backends, reloads."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration


class EchoBackend(asyncio.DatagramProtocol):
    """A UDP echo server answering ``<name>:<datagram>``; it keeps the source address of every datagram
    (one per dockroute session). ``push:<n>`` asks for n answers, 0.2 s apart."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.peers: list[tuple[str, int]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> EchoBackend:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        return self

    @property
    def address(self) -> str:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.peers.append(addr)
        if data.startswith(b"push:"):
            task = asyncio.get_running_loop().create_task(self._push(int(data[5:]), addr))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        self.transport.sendto(self.name.encode() + b":" + data, addr)

    async def _push(self, n: int, addr: tuple[str, int]) -> None:
        for i in range(n):
            await asyncio.sleep(0.2)
            assert self.transport is not None
            self.transport.sendto(f"{self.name}:pushed {i}".encode(), addr)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.transport is not None:
            self.transport.close()


class Client(asyncio.DatagramProtocol):
    """A UDP client of dockroute's entry point; what it receives is queued."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def connect(cls, port: int) -> Client:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(cls, remote_addr=("127.0.0.1", port))
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)

    async def ask(self, data: bytes, timeout: float = 3.0) -> bytes:
        self.send(data)
        return await asyncio.wait_for(self.received.get(), timeout)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@pytest.fixture
async def echo():
    started: list[EchoBackend] = []

    async def make(*names: str) -> list[EchoBackend]:
        out = [await EchoBackend(n).start() for n in names]
        started.extend(out)
        return out

    yield make
    for b in started:
        b.close()


@pytest.fixture
async def clients():
    made: list[Client] = []

    async def make(port: int, n: int = 1) -> list[Client]:
        out = [await Client.connect(port) for _ in range(n)]
        made.extend(out)
        return out

    yield make
    for c in made:
        c.close()


def udp_static(tmp_path: Path, timeout: str | None = None, **extra_eps: dict) -> dict:
    """Entry points ``web`` (HTTP) and ``dns`` (UDP, with ``udp.timeout`` when given) on free ports."""
    # no grace at shutdown: the sessions would otherwise be waited for until they go idle
    dns: dict[str, Any] = {"address": "127.0.0.1:0/udp", "transport": {"lifeCycle": {"graceTimeOut": "0s"}}}
    if timeout is not None:
        dns["udp"] = {"timeout": timeout}
    return {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}, "dns": dns, **extra_eps},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "log": {"level": "DEBUG"},
    }


def udp_dynamic(services: dict[str, Any], routers: dict[str, Any] | None = None) -> dict:
    """``udp.routers`` (by default ``r`` → ``svc`` on ``dns``) and ``udp.services``: a list is a
    loadBalancer's server addresses, a dict a weighted service (name → weight)."""
    svc: dict[str, Any] = {}
    for name, spec in services.items():
        if isinstance(spec, list):
            svc[name] = {"loadBalancer": {"servers": [{"address": a} for a in spec]}}
        else:
            svc[name] = {"weighted": {"services": [{"name": n, "weight": w} for n, w in spec.items()]}}
    if routers is None:
        routers = {"r": {"entryPoints": ["dns"], "service": "svc"}}
    return {"udp": {"routers": routers, "services": svc}}


def dead_address() -> str:
    """A loopback UDP port nothing listens on (the kernel answers ICMP port unreachable)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


async def test_echo_round_trips_with_one_session_per_client(tmp_path, proxy, echo, clients):
    (b,) = await echo("b")
    # a minute: the four round trips must not outlast Traefik's 3 s default on a busy machine
    dr = await proxy(udp_dynamic({"svc": [b.address]}), static=udp_static(tmp_path, timeout="1m"))
    c1, c2 = await clients(dr.ports["dns"], 2)
    assert await c1.ask(b"hello") == b"b:hello"
    assert await c2.ask(b"world") == b"b:world"
    assert await c1.ask(b"again") == b"b:again"  # each reply reached the client that asked
    assert await c2.ask(b"more") == b"b:more"
    # the backend saw one source port per client session, kept for the session's next datagrams
    assert b.peers[0] == b.peers[2] and b.peers[1] == b.peers[3] and b.peers[0] != b.peers[1]
    assert "dns listening on 127.0.0.1" in dr.log() and "(udp" in dr.log()


async def test_idle_session_is_forgotten(tmp_path, proxy, echo, clients):
    (b,) = await echo("b")
    dr = await proxy(udp_dynamic({"svc": [b.address]}), static=udp_static(tmp_path, timeout="300ms"))
    (c,) = await clients(dr.ports["dns"])
    assert await c.ask(b"one") == b"b:one"
    await wait_for(lambda: "idle, closed" in dr.log(), timeout=5)
    assert await c.ask(b"two") == b"b:two"
    assert b.peers[0] != b.peers[1]  # a new session, so a new upstream socket


@pytest.mark.timing
async def test_backend_replies_keep_the_session_alive(tmp_path, proxy, echo, clients):
    """Traefik counts both directions: a backend that keeps talking (every 0.2 s) keeps the session open
    past ``udp.timeout`` (0.6 s) although the client sends nothing."""
    (b,) = await echo("b")
    dr = await proxy(udp_dynamic({"svc": [b.address]}), static=udp_static(tmp_path, timeout="600ms"))
    (c,) = await clients(dr.ports["dns"])
    c.send(b"push:8")  # 8 answers over 1.6 s
    got = [await asyncio.wait_for(c.received.get(), 3) for _ in range(8)]
    assert got == [f"b:pushed {i}".encode() for i in range(8)]
    assert await c.ask(b"after") == b"b:after"
    assert b.peers[0] == b.peers[1]  # the same session throughout
    assert "idle, closed" not in dr.log()


async def test_round_robin_and_weighted_services(tmp_path, proxy, echo, clients):
    a, b, w1, w2 = await echo("a", "b", "w1", "w2")
    dynamic = udp_dynamic(
        {
            "pair": [a.address, b.address],
            "one": [w1.address],
            "two": [w2.address],
            "mix": {"one": 3, "two": 1},
        },
        routers={
            "r": {"entryPoints": ["dns"], "service": "pair"},
            "w": {"entryPoints": ["weighted"], "service": "mix"},
        },
    )
    static = udp_static(
        tmp_path, weighted={"address": "127.0.0.1:0/udp", "transport": {"lifeCycle": {"graceTimeOut": "0s"}}}
    )
    dr = await proxy(dynamic, static=static)
    answers = Counter()
    for c in await clients(dr.ports["dns"], 4):
        answers[(await c.ask(b"x")).split(b":")[0]] += 1
    assert answers == {b"a": 2, b"b": 2}  # sessions alternate between the two servers
    answers.clear()
    for c in await clients(dr.ports["weighted"], 8):
        answers[(await c.ask(b"x")).split(b":")[0]] += 1
    assert answers == {b"w1": 6, b"w2": 2}  # weights 3 and 1


async def test_dead_backend_does_not_stop_anything(tmp_path, proxy, echo, clients):
    (b,) = await echo("b")
    dead = dead_address()
    dr = await proxy(udp_dynamic({"svc": [dead, b.address]}), static=udp_static(tmp_path))
    # Sessions alternate between the servers: of two clients, one starts on the dead server; its session
    # ends on the ICMP refusal, and its next datagram starts a session on the live server.
    for c in await clients(dr.ports["dns"], 2):
        assert await wait_for(lambda c=c: _answer(c), timeout=10) == b"b:ping"
    await wait_for(lambda: f"UDP server {dead}: Connection refused" in dr.log())
    assert dr.proc is not None and dr.proc.poll() is None


async def _answer(c: Client) -> bytes | None:
    """One datagram's answer, or None when none came (lost to a dead server) within 0.3 s."""
    c.send(b"ping")
    try:
        return await asyncio.wait_for(c.received.get(), 0.3)
    except TimeoutError:
        return None


async def test_reload_keeps_sessions_whose_server_stays(tmp_path, proxy, echo, clients):
    a, b = await echo("a", "b")
    dr = await proxy(udp_dynamic({"svc": [a.address]}), static=udp_static(tmp_path, timeout="1m"))
    (c,) = await clients(dr.ports["dns"])
    assert await c.ask(b"1") == b"a:1"
    # a reload that keeps the server (another service added): the session and its socket stay
    dr.write_dynamic(udp_dynamic({"svc": [a.address], "other": [b.address]}))
    await wait_for(lambda: dr.log().count("configuration applied") >= 2)
    assert await c.ask(b"2") == b"a:2"
    assert a.peers[0] == a.peers[1]
    # the server removed: the session is closed, the next datagram starts one on the new server
    dr.write_dynamic(udp_dynamic({"svc": [b.address]}))
    await wait_for(lambda: dr.log().count("configuration applied") >= 3)
    assert await c.ask(b"3") == b"b:3"


async def test_routers_on_the_wrong_kind_of_entry_point_are_refused_by_name(tmp_path, proxy, echo, clients):
    (b,) = await echo("b")
    dynamic = udp_dynamic(
        {"svc": [b.address]},
        routers={"good": {"service": "svc"}, "onweb": {"entryPoints": ["web"], "service": "svc"}},
    )
    dynamic["http"] = {
        "routers": {"h": {"rule": "PathPrefix(`/`)", "entryPoints": ["dns"], "service": "hs"}},
        "services": {"hs": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9"}]}}},
    }
    dr = await proxy(dynamic, static=udp_static(tmp_path))
    (c,) = await clients(dr.ports["dns"])
    assert await c.ask(b"x") == b"b:x"  # "good" has no entryPoints: on every UDP entry point
    await wait_for(lambda: "UDP router onweb@file is not routed" in dr.log())
    assert "web" in dr.log().split("UDP router onweb@file is not routed")[1].splitlines()[0]
    await wait_for(lambda: "router h@file is not routed: its entry points do not exist: dns" in dr.log())


async def test_api_lists_udp_routers_and_services(tmp_path, proxy, echo):
    (b,) = await echo("b")
    static = udp_static(tmp_path, traefik={"address": "127.0.0.1:0"})
    static["api"] = {"insecure": True}
    dynamic = udp_dynamic(
        {"svc": [b.address], "mix": {"svc": 2, "missing": 1}},
        routers={
            "r": {"entryPoints": ["dns", "web"], "service": "svc"},
            "w": {"entryPoints": ["dns"], "service": "mix"},
        },
    )
    dr = await proxy(dynamic, static=static)
    async with aiohttp.ClientSession() as s:

        async def get(path: str) -> Any:
            async with s.get(dr.url(f"/api/{path}", ep="traefik")) as r:
                assert r.status == 200, (path, r.status, await r.text())
                return await r.json()

        routers = {r["name"]: r for r in await get("udp/routers")}
        assert routers["r@file"]["status"] == "warning" and routers["r@file"]["using"] == ["dns"]
        assert routers["r@file"]["error"] == ["entry point web is not a UDP entry point"]
        assert routers["w@file"]["status"] == "disabled" and "missing@file" in routers["w@file"]["error"][0]
        services = {s["name"]: s for s in await get("udp/services")}
        assert services["svc@file"]["loadBalancer"] == {"servers": [{"address": b.address}]}
        assert services["svc@file"]["type"] == "loadbalancer" and services["svc@file"]["usedBy"] == ["r@file"]
        assert services["mix@file"]["status"] == "disabled" and services["mix@file"]["type"] == "weighted"
        assert (await get("udp/routers/r@file"))["service"] == "svc@file"
        overview = await get("overview")
        assert overview["udp"]["routers"] == {"total": 2, "warnings": 1, "errors": 1}
        assert set((await get("rawdata"))["udpServices"]) == {"svc@file", "mix@file"}
        ep = await get("entrypoints/dns")
        assert ep["address"] == "127.0.0.1:0/udp" and ep["udp"] == {"timeout": "3s"}
