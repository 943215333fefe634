"""The loop check of router.proxy: which routes lead only back to this process's own listening addresses
(answered 508 at once by the real process: tests/hardening/test_host_path.py). Here the decisions on
their own: address literals, ``localhost``, wildcard and specific listeners, mixed and weighted services."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from router import proxy
from router.proxy import EntryPointHandler


@dataclass
class _Up:
    host: str
    port: int


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


@dataclass
class _Chain:
    final: object


@dataclass
class _Route:
    target: object


@dataclass
class _Table:
    routes: list[_Route] = field(default_factory=list)


@pytest.fixture
def listening(monkeypatch):
    """This process listens on every address at port 8080 and on 127.0.0.1 at port 9090 only."""
    monkeypatch.setattr(proxy, "_LISTENING", {(None, 8080), ("127.0.0.1", 9090)})
    monkeypatch.setattr(proxy, "_OWN_SERVERS", {})


def _route(*servers: tuple[str, int]) -> _Route:
    return _Route(_Target(_Balancer(tuple(_Up(h, p) for h, p in servers))))


@pytest.mark.parametrize(
    ("host", "port", "own"),
    [
        ("127.0.0.1", 8080, True),  # a wildcard listener: any address of the machine
        ("127.0.0.2", 8080, True),
        ("localhost", 8080, True),
        ("LOCALHOST.", 9090, True),
        ("app.localhost", 9090, True),  # RFC 6761
        ("[::1]", 9090, False),  # 9090 is bound to 127.0.0.1 only
        ("127.0.0.2", 9090, False),
        ("127.0.0.1", 8081, False),
        ("192.0.2.1", 8080, False),  # TEST-NET-1: never this machine's
        ("backend.test", 8080, False),  # names are not looked up
    ],
)
def test_own_addresses(listening, host, port, own):
    assert proxy._is_own(host, port) is own


def test_only_routes_whose_every_server_is_own_are_loops(listening):
    self_only = _route(("127.0.0.1", 8080))
    mixed = _route(("127.0.0.1", 8080), ("192.0.2.1", 80))
    foreign = _route(("192.0.2.1", 8080))
    chained = _Route(_Chain(_route(("localhost", 9090)).target))
    weighted = _Route(_Target(_Weighted((_Child(_Balancer((_Up("127.0.0.1", 8080),))),))))
    redirect = _Route(object())
    table = _Table([self_only, mixed, foreign, chained, weighted, redirect])
    handler = object.__new__(EntryPointHandler)
    loops = handler.loops(table)  # type: ignore[arg-type]
    assert loops == {id(self_only), id(chained), id(weighted)}
    assert handler._loops_of is table
