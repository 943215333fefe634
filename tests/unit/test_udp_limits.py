"""UDP entry points under pressure, on real loopback sockets: the session cap shared by all UDP entry
points (from the open-file limit) and who makes room when it is reached, host-name servers (one lookup per
host, bounded bytes held meanwhile, malformed names), a server that is the entry point itself, running out
of descriptors, and the failure paths of a session (send errors, a backed-up entry point socket)."""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import resource
import socket
from typing import Any

import pytest

from discover.model import merge
from discover.model_udp import UDPConfig, UDPLoadBalancer, UDPRouter, UDPServer, UDPService
from discover.parse import parse_dynamic_with_warnings
from router.settings import EntryPoint
from router.udp import endpoint as endpoint_module
from router.udp.endpoint import UDPEntryPoint
from router.udp.table import UDPTable, compile_udp
from tests.polling import until

EPS = (EntryPoint("web", ":80"), EntryPoint("dns", ":53", udp=True))


def _table(*servers: str) -> UDPTable:
    cfg = UDPConfig(
        routers={"r": UDPRouter("r", "s")},
        services={"s": UDPService("s", UDPLoadBalancer(tuple(UDPServer(a) for a in servers)))},
    )
    table = compile_udp(cfg, EPS, random.Random(1)).tables["dns"]
    assert table is not None
    return table


class _Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.peers: list[Any] = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.peers.append(addr)
        self.transport.sendto(data, addr)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.received.put_nowait(data)

    async def ask(self, data: bytes) -> bytes:
        self.transport.sendto(data)
        return await asyncio.wait_for(self.received.get(), 3)


@pytest.fixture
async def udp():
    """``echo()`` → (its ``host:port``, its protocol); ``entry(**kw)`` → a started entry point on
    127.0.0.1; ``client(port, host)``: a connected client. All closed at the end."""
    loop = asyncio.get_running_loop()
    closing: list[Any] = []

    async def echo(host: str = "127.0.0.1") -> tuple[str, _Echo]:
        transport, proto = await loop.create_datagram_endpoint(_Echo, local_addr=(host, 0))
        closing.append(transport)
        return f"{host}:{transport.get_extra_info('sockname')[1]}", proto

    async def entry(address: str = "127.0.0.1:0", **kw: Any) -> UDPEntryPoint:
        ep = UDPEntryPoint(EntryPoint("dns", address, udp=True, udp_timeout=60), **kw)
        await ep.start()
        closing.append(ep)
        return ep

    async def client(port: int, host: str = "127.0.0.1") -> _Client:
        transport, proto = await loop.create_datagram_endpoint(_Client, remote_addr=(host, port))
        closing.append(transport)
        return proto

    yield echo, entry, client
    for item in closing:
        item.close()


# -- the session cap --------------------------------------------------------------------------------------


def test_the_session_cap_leaves_descriptors_to_http(monkeypatch):
    """At the common limit of 1024 open files, UDP sessions may take at most (1024 - 256) / 2: the
    rest stays for HTTP/TCP connections (the 10,000 per entry point before exhausted them)."""
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 1024))
    assert endpoint_module.session_limit() == 384
    monkeypatch.setattr(resource, "getrlimit", lambda _: (200, 200))
    assert endpoint_module.session_limit() == 50  # a reserve of half the limit when it is small
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1 << 20, 1 << 20))
    assert endpoint_module.session_limit() == 10_000
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert endpoint_module.session_limit() == 10_000


async def test_the_session_cap_is_shared_by_every_udp_entry_point(udp, caplog):
    caplog.set_level(logging.WARNING, "dockroute.udp")
    echo, entry, client = udp
    backend, _ = await echo()
    budget = endpoint_module.SessionBudget(2)
    one, two = await entry(budget=budget), await entry(budget=budget)
    one.set_table(_table(backend))
    two.set_table(_table(backend))
    a, b, c = await client(one.port), await client(one.port), await client(two.port)
    for cl in (a, b):  # two datagrams each: sessions that do not make room
        assert await cl.ask(b"1") == b"1" and await cl.ask(b"2") == b"2"
    c.transport.sendto(b"third")
    await until(lambda: "UDP sessions open" in caplog.text)
    assert budget.used == 2 and two.sessions == {} and c.received.empty()


async def test_when_full_the_oldest_one_datagram_session_makes_room(udp, caplog):
    """A flood of spoofed sources (one datagram each) no longer locks real clients out: the oldest
    session whose client sent a single datagram is closed for the newcomer; clients that keep talking
    keep theirs."""
    caplog.set_level(logging.WARNING, "dockroute.udp")
    echo, entry, client = udp
    backend, proto = await echo()
    ep = await entry(max_sessions=3)
    ep.set_table(_table(backend))
    real = await client(ep.port)
    assert await real.ask(b"a") == b"a" and await real.ask(b"b") == b"b"
    flood = [await client(ep.port) for _ in range(2)]
    for f in flood:
        assert await f.ask(b"x") == b"x"
    newcomer = await client(ep.port)
    assert await newcomer.ask(b"let me in") == b"let me in"
    oldest = flood[0].transport.get_extra_info("sockname")
    assert oldest not in ep.sessions and len(ep.sessions) == 3
    assert await real.ask(b"c") == b"c"
    # the backend's peers: real, real, flood, flood, newcomer, real: the real client's session (its
    # upstream socket) was kept
    assert proto.peers[0] == proto.peers[1] == proto.peers[5]
    assert "the oldest of one datagram make room" in caplog.text
    assert "new clients are dropped" not in caplog.text


# -- host-name servers ------------------------------------------------------------------------------------


async def test_clients_of_a_host_name_server_share_one_lookup(udp, monkeypatch):
    echo, entry, client = udp
    backend, _ = await echo()
    port = backend.rsplit(":", 1)[1]
    ep = await entry()
    calls = []
    real = ep.loop.getaddrinfo

    async def counting(*args, **kw):
        calls.append(args[0])
        await asyncio.sleep(0.05)  # a lookup that takes a while: every client arrives meanwhile
        return await real(*args, **kw)

    monkeypatch.setattr(ep.loop, "getaddrinfo", counting)
    ep.set_table(_table(f"localhost:{port}"))
    clients = [await client(ep.port) for _ in range(20)]
    answers = await asyncio.gather(*(c.ask(b"q%d" % i) for i, c in enumerate(clients)))
    assert answers == [b"q%d" % i for i in range(20)]
    assert calls == ["localhost"]  # one lookup for 20 sessions (one each before)
    late = await client(ep.port)
    assert await late.ask(b"late") == b"late" and calls == ["localhost"]  # its answer is reused


async def test_datagrams_held_during_a_lookup_are_bounded_in_bytes(udp, monkeypatch):
    """While a host name resolves, a session holds at most 64 KiB and an entry point at most
    MAX_PENDING_TOTAL, counted in bytes (16 datagrams of any size before)."""
    echo, entry, client = udp
    backend, proto = await echo()
    proto.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    port = backend.rsplit(":", 1)[1]
    ep = await entry()
    gate = asyncio.Event()
    real = ep.loop.getaddrinfo

    async def slow(*args, **kw):
        await gate.wait()
        return await real(*args, **kw)

    monkeypatch.setattr(ep.loop, "getaddrinfo", slow)
    monkeypatch.setattr(endpoint_module, "MAX_PENDING_TOTAL", 100_000)
    ep.set_table(_table(f"localhost:{port}"))
    first, second = await client(ep.port), await client(ep.port)
    for _ in range(80):
        first.transport.sendto(b"x" * 1000)
    await until(lambda: ep.held >= 65_000)
    for _ in range(80):
        second.transport.sendto(b"y" * 1000)
    await until(lambda: ep.held >= 99_000)
    await asyncio.sleep(0.05)
    assert ep.held == 65_000 + 35_000  # 65 of the first's (64 KiB), the rest of the entry point's budget
    gate.set()
    await until(lambda: len(proto.peers) == 100)
    await asyncio.sleep(0.05)
    assert len(proto.peers) == 100 and ep.held == 0


async def test_a_host_name_no_lookup_can_take_fails_its_sessions_in_one_line(udp, caplog):
    """``a..b`` passes Go's SplitHostPort but cannot be encoded for DNS: Python raises UnicodeError, which
    used to escape as a traceback per new client."""
    caplog.set_level(logging.WARNING)
    _, entry, client = udp
    ep = await entry()
    errors: list[Any] = []
    ep.loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    ep.set_table(_table("a..b:53"))
    clients = [await client(ep.port) for _ in range(3)]
    for c in clients:
        c.transport.sendto(b"q")
    await until(lambda: "UDP server a..b:53" in caplog.text and not ep.sessions)
    assert caplog.text.count("UDP server a..b:53") == 1 and "Traceback" not in caplog.text
    assert errors == []


def test_malformed_host_names_are_left_out_when_parsed():
    cfg, warnings = parse_dynamic_with_warnings(
        {
            "udp": {
                "routers": {"r": {"service": "s"}},
                "services": {
                    "s": {
                        "loadBalancer": {
                            "servers": [
                                {"address": "a..b:53"},
                                {"address": "x" * 64 + ".lan:53"},
                                {"address": "dns.lan:53"},
                            ]
                        }
                    }
                },
            }
        }
    )
    assert [s.address for s in cfg.udp.services["s"].load_balancer.servers] == ["dns.lan:53"]
    assert warnings == [
        "udp.services.s.loadBalancer.servers[0].address: 'a..b:53': not a valid host name: label empty or "
        "too long; this server is left out",
        f"udp.services.s.loadBalancer.servers[1].address: '{'x' * 64}.lan:53': not a valid host name: "
        "label empty or too long; this server is left out",
    ]
    assert merge({"file": cfg}).udp.services["s@file"].load_balancer.servers[0].address == "dns.lan:53"


# -- the entry point's own address ------------------------------------------------------------------------


async def test_a_server_that_is_the_entry_point_itself_is_left_out(udp, caplog):
    """One datagram to itself would come back as a new session, again and again (10,000 of them)."""
    caplog.set_level(logging.INFO, "dockroute.udp")
    echo, entry, client = udp
    backend, _ = await echo()
    ep = await entry()
    own = f"127.0.0.1:{ep.port}"
    ep.set_table(_table(own, f"0.0.0.0:{ep.port}", f"localhost:{ep.port}", backend))
    for text in (own, f"0.0.0.0:{ep.port}", f"localhost:{ep.port}"):
        assert f"UDP server {text} is this entry point's own address" in caplog.text
    assert "entry point dns: UDP router r → service s (4 servers)" in caplog.text
    clients = [await client(ep.port) for _ in range(4)]
    for i, c in enumerate(clients):
        assert await c.ask(b"%d" % i) == b"%d" % i
    await asyncio.sleep(0.1)
    assert len(ep.sessions) == 4 and {s.target.address for s in ep.sessions.values()} == {backend}
    ep.set_table(_table(own))  # nothing else: no server to send to
    c = await client(ep.port)
    c.transport.sendto(b"x")
    await until(lambda: "has no server to send to" in caplog.text)


# -- running out of descriptors ---------------------------------------------------------------------------


async def _routed(udp: Any) -> tuple[Any, Any, str, Any]:
    """An entry point routing to one echo server, a client of it, and the server's address and protocol."""
    echo, entry, client = udp
    backend, proto = await echo()
    ep = await entry()
    ep.set_table(_table(backend))
    return ep, await client(ep.port), backend, proto


def _no_socket(*_: Any) -> None:
    raise OSError(errno.EMFILE, "Too many open files")  # what socket.socket raises at the limit


async def test_no_socket_is_warned_once_a_minute_however_sessions_come_and_go(udp, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, "dockroute.udp")
    client = udp[2]
    ep, old, _, _ = await _routed(udp)
    assert await old.ask(b"open") == b"open"
    seen, received = [], ep.datagram_received
    ep.datagram_received = lambda data, addr: (seen.append(data), received(data, addr))  # type: ignore
    monkeypatch.setattr(endpoint_module._Session, "open", _no_socket)
    for i in range(3):
        c = await client(ep.port)
        c.transport.sendto(b"x")
        await until(lambda: seen.count(b"x") == i + 1)  # noqa: B023
        monkeypatch.undo()  # meanwhile a session comes and goes
        assert await (await client(ep.port)).ask(b"y") == b"y"
        for session in list(ep.sessions.values()):
            session.close()
        monkeypatch.setattr(endpoint_module._Session, "open", _no_socket)
    assert caplog.text.count("no socket for a new UDP session") == 1
    ep._said_at["fds"] -= 61  # a minute later, still failing: said again
    c = await client(ep.port)
    c.transport.sendto(b"x")
    await until(lambda: caplog.text.count("no socket for a new UDP session") == 2)
    assert "its sessions are closed" not in caplog.text  # not the server's fault


async def test_no_socket_after_a_lookup_is_the_process_limit_not_the_server(udp, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, "dockroute.udp")
    echo, entry, client = udp
    backend, _ = await echo()
    ep = await entry()
    ep.set_table(_table(f"localhost:{backend.rsplit(':', 1)[1]}"))
    monkeypatch.setattr(endpoint_module._Session, "open", _no_socket)
    c = await client(ep.port)
    c.transport.sendto(b"x")
    await until(lambda: "no socket for a new UDP session" in caplog.text and not ep.sessions)
    assert "localhost" not in caplog.text  # not the server's fault: no warning naming it


# -- a session's failure paths ----------------------------------------------------------------------------


class _Refusing:
    """A backend socket whose send fails (ECONNREFUSED after an ICMP port unreachable, EPERM...)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, data: bytes) -> int:
        raise OSError(errno.EPERM, "Operation not permitted")

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


async def test_a_send_error_ends_the_session_and_warns_once_until_the_server_answers(udp, caplog):
    caplog.set_level(logging.INFO, "dockroute.udp")
    ep, c, backend, _ = await _routed(udp)
    assert await c.ask(b"one") == b"one"
    session = next(iter(ep.sessions.values()))
    session.sock = _Refusing(session.sock)  # type: ignore[assignment]
    c.transport.sendto(b"two")
    await until(lambda: not ep.sessions)
    assert f"UDP server {backend}: Operation not permitted; its sessions are closed" in caplog.text
    assert await c.ask(b"three") == b"three"  # a new session
    assert f"UDP server {backend} answers again" in caplog.text


async def test_replies_are_dropped_while_the_entry_point_socket_is_backed_up(udp, monkeypatch):
    ep, c, _, proto = await _routed(udp)
    assert await c.ask(b"one") == b"one"
    monkeypatch.setattr(ep.transport, "get_write_buffer_size", lambda: endpoint_module.MAX_SEND_BUFFER + 1)
    c.transport.sendto(b"dropped")
    await until(lambda: len(proto.peers) == 2)  # the backend got it and answered
    await asyncio.sleep(0.1)
    assert c.received.empty()
    monkeypatch.undo()
    assert await c.ask(b"three") == b"three"


async def test_an_unspecified_address_takes_ipv6_and_ipv4_clients(udp):
    if not socket.has_dualstack_ipv6():
        pytest.skip("no dual-stack IPv6 here")
    echo, entry, client = udp
    backend, _ = await echo()
    ep = await entry(":0")
    ep.set_table(_table(backend))
    six, four = await client(ep.port, "::1"), await client(ep.port, "127.0.0.1")
    assert await six.ask(b"six") == b"six" and await four.ask(b"four") == b"four"
    assert {c[0] for c in ep.sessions} == {"::1", "::ffff:127.0.0.1"}
