"""router.loops on its own: which servers of a routing table are the entry point's own listening address
(the real process answers requests sent to them 508: tests/hardening/test_host_path.py). Address literals,
``localhost``, wildcard and specific listeners, weighted services and middleware chains."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from router.loops import OwnServers
from router.proxy import EntryPointHandler
from router.server import parse_address
from router.settings import EntryPoint


@dataclass(frozen=True)
class _Up:
    host: str
    port: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class _Balancer:
    servers: tuple[_Up, ...] = ()


@dataclass
class _Child:
    balancer: object


@dataclass
class _Weighted:
    children: tuple[_Child, ...] = ()


@dataclass
class _Target:
    balancer: object
    router: str = "r"


@dataclass
class _Chain:
    final: object
    router: str = "chained"


@dataclass
class _Route:
    target: object
    name: str = "r"


@dataclass
class _Table:
    routes: list[_Route] = field(default_factory=list)


def _route(*servers: tuple[str, int]) -> _Route:
    return _Route(_Target(_Balancer(tuple(_Up(h, p) for h, p in servers))))


def _own(address: str, port: int, host: str, server_port: int) -> bool:
    own = OwnServers()
    own.bound(parse_address(address)[0], port, _Table())
    up = _Up(host, server_port)
    own.update(_Table([_route((host, server_port))]))
    return up.key in own.keys


@pytest.mark.parametrize(
    ("address", "host", "own"),
    [
        (":8080", "127.0.0.1", True),  # a wildcard listener: any address of the machine
        (":8080", "127.0.0.2", True),
        ("0.0.0.0:8080", "localhost", True),
        ("127.0.0.1:8080", "LOCALHOST.", True),
        ("127.0.0.1:8080", "app.localhost", True),  # RFC 6761
        ("127.0.0.1:8080", "[::1]", False),  # bound to 127.0.0.1 only
        ("127.0.0.1:8080", "127.0.0.2", False),
        (":8080", "192.0.2.1", False),  # TEST-NET-1: never this machine's
        (":8080", "backend.test", False),  # names are not looked up
    ],
)
def test_own_addresses(address, host, own):
    assert _own(address, 8080, host, 8080) is own


def test_another_port_is_never_own():
    """Another entry point of the same process (a chain web → internal) is not a loop."""
    assert _own(":8080", 8080, "127.0.0.1", 8081) is False


def test_every_own_server_is_found_through_chains_and_weights():
    mixed = _route(("127.0.0.1", 8080), ("192.0.2.1", 80))
    foreign = _route(("192.0.2.1", 8080))
    chained = _Route(_Chain(_route(("localhost", 8080)).target))
    weighted = _Route(_Target(_Weighted((_Child(_Balancer((_Up("127.0.0.2", 8080),))),))))
    redirect = _Route(object())
    table = _Table([mixed, foreign, chained, weighted, redirect])
    own = OwnServers()
    own.bound(None, 8080, table)  # binding looks at the table installed already
    assert own.keys == {("127.0.0.1", 8080), ("localhost", 8080), ("127.0.0.2", 8080)}


def test_nothing_is_own_before_the_entry_point_binds():
    own = OwnServers()
    own.update(_Table([_route(("127.0.0.1", 8080))]))
    assert own.keys == frozenset()


def test_one_warning_per_router_and_server(caplog):
    own = OwnServers()
    own.bound(None, 8080, _Table())
    table = _Table([_route(("127.0.0.1", 8080))])
    with caplog.at_level(logging.WARNING, logger="dockroute.router"):
        own.update(table)
        own.update(_Table(list(table.routes)))  # a reload with the same router
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "router r" in lines[0] and "508" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dockroute.router"):
        own.update(_Table([_Route(_Target(_Balancer((_Up("127.0.0.1", 8080),)), router=n)) for n in "abc"]))
    assert sorted(r.getMessage().split()[1] for r in caplog.records) == ["a:", "b:", "c:"]  # one per router


def test_a_table_is_looked_at_when_installed_not_by_a_request():
    """The handler works its own servers out as a table is set (a reload) and as it binds, so that no
    request walks the routes or asks the system about addresses."""
    handler = EntryPointHandler(EntryPoint("web", "127.0.0.1:0"), pool=None)  # type: ignore[arg-type]
    table = _Table([_route(("127.0.0.1", 8080))])
    handler.table = table  # type: ignore[assignment]
    assert handler.table is table and handler.own.keys == frozenset()  # not bound yet
    handler.set_port(8080, "127.0.0.1")
    assert handler.own.keys == {("127.0.0.1", 8080)}
    handler.table = _Table([_route(("127.0.0.1", 8081))])  # type: ignore[assignment]
    assert handler.own.keys == frozenset()
    assert "table" in vars(handler)  # read as a plain attribute: nothing runs per request
