"""UDP, below the process: the ``udp`` section's parsing, ``/udp`` entry points and ``udp.timeout`` in the
static configuration, the compiled tables (Traefik's router and service rules), Traefik's interleaved
round robin, and an entry point's session limit and reloads on real loopback sockets."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from dataclasses import replace

import pytest

from discover.model import merge
from discover.model_base import host_and_port, split_host_port
from discover.model_udp import UDPConfig
from discover.parse import ConfigError, parse_dynamic_with_warnings
from dockroute.static import StaticConfigError, load_static
from router.compile import default_entry_points_of
from router.interleaved_wrr import InterleavedWRR
from router.settings import EntryPoint
from router.udp.endpoint import UDPEntryPoint
from router.udp.table import compile_udp
from tests.polling import until


def parse(udp: dict) -> tuple[UDPConfig, list[str]]:
    cfg, warnings = parse_dynamic_with_warnings({"udp": udp})
    return cfg.udp, warnings


# -- parsing ------------------------------------------------------------------------------------------


def test_routers_and_services_as_a_file_gives_them():
    udp, warnings = parse(
        {
            "routers": {"dns": {"entryPoints": ["dns"], "service": "resolvers"}, "any": {"service": "mix"}},
            "services": {
                "resolvers": {
                    "loadBalancer": {"servers": [{"address": "10.0.0.2:53"}, {"address": "[::1]:53"}]}
                },
                "mix": {"weighted": {"services": [{"name": "resolvers", "weight": 3}, {"name": "other"}]}},
            },
        }
    )
    assert warnings == []
    assert udp.routers["dns"].entry_points == ("dns",) and udp.routers["dns"].service == "resolvers"
    assert udp.routers["any"].entry_points == ()  # every UDP entry point
    assert [s.address for s in udp.services["resolvers"].load_balancer.servers] == ["10.0.0.2:53", "[::1]:53"]
    refs = udp.services["mix"].weighted.services
    assert [(r.name, r.weight) for r in refs] == [("resolvers", 3), ("other", 1)]


def test_label_shapes_parse_any_case_and_as_strings():
    """What the Docker label module hands over: lower-case keys, scalars as strings, comma lists."""
    udp, _ = parse(
        {
            "routers": {"x": {"entrypoints": "dns, dns6", "service": "x"}},
            "services": {
                "x": {"loadbalancer": {"servers": [{"address": "172.17.0.2:53"}]}},
                "w": {"weighted": {"services": [{"name": "x", "weight": "2"}]}},
            },
        }
    )
    assert udp.routers["x"].entry_points == ("dns", "dns6")
    assert udp.services["x"].load_balancer.servers[0].address == "172.17.0.2:53"
    assert udp.services["w"].weighted.services[0].weight == 2


@pytest.mark.parametrize(
    "udp, path",
    [
        ({"routers": {"r": {"entryPoints": ["dns"]}}}, "udp.routers.r.service"),
        ({"routers": {"r": {"service": "s", "rule": "HostSNI(`*`)"}}}, "udp.routers.r.rule"),
        ({"services": {"s": {}}}, "udp.services.s"),
        (
            {"services": {"s": {"loadBalancer": {"servers": []}, "weighted": {"services": []}}}},
            "udp.services.s",
        ),
        # Traefik's UDP servers have no weight: a weight there is an unknown key, not silently dropped
        ({"services": {"s": {"loadBalancer": {"servers": [{"address": "a:1", "weight": 2}]}}}}, None),
        ({"services": {"s": {"weighted": {"services": [{"name": "a", "weight": -1}]}}}}, None),
        ({"tcp": {}}, "udp.tcp"),
    ],
)
def test_bad_udp_sections_are_refused_by_key(udp, path):
    with pytest.raises(ConfigError) as info:
        parse(udp)
    if path is not None:
        assert info.value.path == path
    assert info.value.path.startswith("udp.")


def test_a_server_address_without_a_port_is_left_out_with_a_warning():
    udp, warnings = parse(
        {
            "services": {
                "s": {"loadBalancer": {"servers": [{"address": "10.0.0.2"}, {"address": "10.0.0.3:53"}]}}
            }
        }
    )
    assert [s.address for s in udp.services["s"].load_balancer.servers] == ["10.0.0.3:53"]
    assert warnings == [
        "udp.services.s.loadBalancer.servers[0].address: expected host:port, got '10.0.0.2'; "
        "this server is left out"
    ]


@pytest.mark.parametrize(
    "address, expected",
    [
        ("10.0.0.2:53", ("10.0.0.2", "53")),
        ("[::1]:53", ("::1", "53")),
        ("dns.lan:5353", ("dns.lan", "5353")),
        (":53", ("", "53")),  # an empty host is Go's too (dialled as the local system)
        ("[]:53", ("", "53")),
        ("host:dns", ("host", "dns")),  # Go does not check the port
        ("::1:53", "too many colons in address"),
        ("[::1]:5:3", "too many colons in address"),
        ("host", "missing port in address"),
        ("[::1]", "missing port in address"),
        ("[::1]x:53", "missing port in address"),
        ("[::1:53", "missing ']' in address"),
        ("h]ost:53", "unexpected ']' in address"),
        ("h[ost:53", "unexpected '[' in address"),
    ],
)
def test_split_host_port_is_gos(address, expected):
    """One split_host_port (discover.model_base) with Go's net.SplitHostPort results and reasons."""
    if isinstance(expected, tuple):
        assert split_host_port(address) == expected
    else:
        with pytest.raises(ValueError, match=re.escape(expected)):
            split_host_port(address)


@pytest.mark.parametrize("address", ["host:0", "host:65536", "host:dns", "host:+53", "host:"])
def test_host_and_port_wants_a_port_number(address):
    with pytest.raises(ValueError, match="invalid port"):
        host_and_port(address)
    assert host_and_port("[::1]:53") == ("::1", 53) and host_and_port(":53") == ("", 53)


def test_merge_qualifies_udp_names_per_provider():
    cfg, _ = parse_dynamic_with_warnings(
        {
            "udp": {
                "routers": {"r": {"service": "w"}},
                "services": {
                    "w": {"weighted": {"services": [{"name": "s"}, {"name": "t@docker"}]}},
                    "s": {"loadBalancer": {"servers": [{"address": "a:1"}]}},
                },
            }
        }
    )
    merged = merge({"file": cfg}).udp
    assert merged.routers["r@file"].service == "w@file"
    assert [r.name for r in merged.services["w@file"].weighted.services] == ["s@file", "t@docker"]


# -- static: /udp entry points and udp.timeout ---------------------------------------------------------


def load(*argv: str):
    return {ep.name: ep for ep in load_static(list(argv), {}, search_dirs=()).entry_points}


def test_udp_address_and_timeout():
    eps = load("--entrypoints.dns.address=:5353/udp", "--entrypoints.web.address=:80")
    assert (eps["dns"].address, eps["dns"].udp, eps["dns"].udp_timeout) == (":5353", True, 3.0)
    assert eps["web"].udp is False
    eps = load("--entrypoints.dns.address=127.0.0.1:53/UDP", "--entrypoints.dns.udp.timeout=10s")
    assert (eps["dns"].address, eps["dns"].udp, eps["dns"].udp_timeout) == ("127.0.0.1:53", True, 10.0)
    assert load("--entrypoints.web.address=:80/tcp")["web"].udp is False


@pytest.mark.parametrize(
    "argv, key",
    [
        (
            ["--entrypoints.dns.address=:53/udp", "--entrypoints.dns.udp.timeout=0"],
            "entryPoints.dns.udp.timeout",
        ),
        (
            ["--entrypoints.dns.address=:53/udp", "--entrypoints.dns.udp.timeout=soon"],
            "entryPoints.dns.udp.timeout",
        ),
        (["--entrypoints.dns.address=:53/udp", "--entrypoints.dns.udp.idle=1s"], "entryPoints.dns.udp.idle"),
        (["--entrypoints.dns.address=:53/quic"], "entryPoints.dns.address"),
    ],
)
def test_bad_udp_static_keys_stop_the_start(argv, key):
    with pytest.raises(StaticConfigError) as info:
        load_static(argv, {}, search_dirs=())
    assert info.value.key == key


def test_keys_without_effect_on_the_kind_of_entry_point_are_named():
    static = load_static(
        [
            "--entrypoints.dns.address=:53/udp",
            "--entrypoints.dns.http.middlewares=auth@file",
            "--entrypoints.dns.forwardedheaders.insecure",
            "--entrypoints.dns.transport.lifecycle.gracetimeout=1s",  # used by UDP entry points too
            "--entrypoints.web.address=:80",
            "--entrypoints.web.udp.timeout=5s",
        ],
        {},
        search_dirs=(),
    )
    assert [w for w in static.warnings if "entryPoints." in w] == [
        "entryPoints.dns.http has no effect on a UDP entry point (address ending in /udp); ignored",
        "entryPoints.dns.forwardedHeaders has no effect on a UDP entry point (address ending in /udp); "
        "ignored",
        "entryPoints.web.udp has no effect on a TCP entry point (only on an address ending in /udp)",
    ]
    assert not any("udp" in key for key in static.ignored)


def test_every_key_a_udp_entry_point_does_not_use_is_named():
    static = load_static(
        [
            "--entrypoints.dns.address=:53/udp",
            "--entrypoints.dns.proxyprotocol.insecure",
            "--entrypoints.dns.observability.accesslogs=false",
            "--entrypoints.dns.transport.respondingtimeouts.readtimeout=5s",
        ],
        {},
        search_dirs=(),
    )
    said = " ".join(static.warnings)
    for key in ("proxyProtocol", "observability", "transport.respondingTimeouts"):
        assert f"entryPoints.dns.{key} has no effect on a UDP entry point" in said
    assert static.entry_points[0].proxy_protocol is None


def test_as_default_on_a_udp_entry_point_takes_defaults_away_as_in_traefik():
    """Traefik (getDefaultsEntrypoints): ``asDefault`` on a UDP entry point counts as "some entry point is
    marked", so HTTP and TCP routers naming none get only the other marked ones (none here)."""
    static = load_static(
        ["--entrypoints.dns.address=:53/udp", "--entrypoints.dns.asdefault", "--entrypoints.web.address=:80"],
        {},
        search_dirs=(),
    )
    assert [w for w in static.warnings if "asDefault" in w] == [
        "entryPoints.dns.asDefault is set on a UDP entry point: UDP routers do not use it, but as in Traefik "
        "it counts as marking default entry points, so HTTP and TCP routers naming no entry point go "
        "nowhere: they are not routed"
    ]
    eps = static.entry_points
    assert default_entry_points_of(eps) == ()
    marked = tuple(replace(ep, as_default=True) if ep.name == "web" else ep for ep in eps)
    assert default_entry_points_of(marked) == ("web",)
    unmarked = tuple(replace(ep, as_default=False) for ep in eps)
    assert default_entry_points_of(unmarked) == ("web",)  # never a UDP entry point


# -- compiled tables ----------------------------------------------------------------------------------

EPS = (
    EntryPoint("web", ":80"),
    EntryPoint("dns", ":53", udp=True),
    EntryPoint("dns6", ":5353", udp=True),
)


def compiled(udp: dict):
    cfg, _ = parse_dynamic_with_warnings({"udp": udp})
    return compile_udp(merge({"file": cfg}).udp, EPS, random.Random(1))


def lb(*addresses: str) -> dict:
    return {"loadBalancer": {"servers": [{"address": a} for a in addresses]}}


def test_a_router_without_entry_points_is_on_every_udp_one(caplog):
    out = compiled({"routers": {"r": {"service": "s"}}, "services": {"s": lb("10.0.0.1:53")}})
    assert set(out.tables) == {"dns", "dns6"}  # never on a TCP entry point
    assert all(t is not None and t.router == "r@file" for t in out.tables.values())
    assert out.entry_points == {"r@file": ("dns", "dns6")} and out.errors == {}


def test_a_udp_router_on_a_tcp_entry_point_is_refused_by_name(caplog):
    caplog.set_level(logging.WARNING, "dockroute.udp")
    out = compiled(
        {
            "routers": {
                "tcp": {"entryPoints": ["web"], "service": "s"},
                "both": {"entryPoints": ["web", "dns"], "service": "s"},
            },
            "services": {"s": lb("10.0.0.1:53")},
        }
    )
    assert out.errors["tcp@file"] == "its entry points are not UDP entry points or do not exist: web"
    assert out.entry_points == {"both@file": ("dns",)}
    assert "UDP router tcp@file is not routed: its entry points are not UDP entry points" in caplog.text
    assert (
        "UDP router both@file: entry point web is not a UDP entry point; routed on the others" in caplog.text
    )


def test_one_router_per_entry_point_the_greatest_name_wins(caplog):
    caplog.set_level(logging.WARNING, "dockroute.udp")
    out = compiled(
        {
            "routers": {
                "a": {"entryPoints": ["dns"], "service": "s"},
                "b": {"entryPoints": ["dns"], "service": "s"},
                "c": {"entryPoints": ["dns"], "service": "missing"},
            },
            "services": {"s": lb("10.0.0.1:53")},
        }
    )
    # descending order: c first, which cannot be built; then b
    assert out.tables["dns"] is not None and out.tables["dns"].router == "b@file"
    assert out.errors["c@file"] == "the UDP service 'missing@file' does not exist"
    assert out.errors["a@file"].startswith("not used")
    assert "entry point dns has more than one UDP router (c@file, b@file, a@file); only b@file" in caplog.text


def test_weighted_cycles_and_missing_children_are_refused():
    out = compiled(
        {
            "routers": {"r": {"entryPoints": ["dns"], "service": "w1"}},
            "services": {
                "w1": {"weighted": {"services": [{"name": "w2"}]}},
                "w2": {"weighted": {"services": [{"name": "w1"}]}},
            },
        }
    )
    assert out.tables["dns"] is None
    assert "cycle: w1@file → w2@file → w1@file" in out.errors["r@file"]


def test_weighted_picks_follow_weights_and_servers_alternate():
    out = compiled(
        {
            "routers": {"r": {"entryPoints": ["dns"], "service": "w"}},
            "services": {
                "w": {"weighted": {"services": [{"name": "a", "weight": 3}, {"name": "b", "weight": 1}]}},
                "a": lb("10.0.0.1:53", "10.0.0.2:53"),
                "b": lb("10.0.0.3:53"),
            },
        }
    )
    table = out.tables["dns"]
    assert table is not None and table.addresses == {"10.0.0.1:53", "10.0.0.2:53", "10.0.0.3:53"}
    picks = [table.pick().address for _ in range(8)]
    assert picks.count("10.0.0.3:53") == 2 and picks.count("10.0.0.1:53") == picks.count("10.0.0.2:53") == 3


def test_interleaved_wrr_is_traefiks_order():
    wrr = InterleavedWRR([("a", 3), ("b", 1)])
    assert [wrr.next() for _ in range(8)] == list("aaabaaab")
    wrr = InterleavedWRR([("a", 2), ("b", 2), ("c", 1)])
    assert [wrr.next() for _ in range(10)] == list("ababcababc")  # level 2: a b; level 1: a b c
    assert InterleavedWRR([("a", 0), ("b", 0)]).next() is None
    assert InterleavedWRR([]).next() is None


# -- an entry point on real sockets -------------------------------------------------------------------


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def _client(port: int) -> tuple[asyncio.DatagramTransport, asyncio.Queue]:
    queue: asyncio.Queue = asyncio.Queue()

    class _C(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            queue.put_nowait(data)

    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        _C, remote_addr=("127.0.0.1", port)
    )
    return transport, queue


def _table(*servers: str):
    return compiled({"routers": {"r": {"service": "s"}}, "services": {"s": lb(*servers)}}).tables["dns"]


async def test_sessions_are_capped_and_reloads_close_only_what_left(caplog):
    caplog.set_level(logging.WARNING, "dockroute.udp")
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    backend = f"127.0.0.1:{echo.get_extra_info('sockname')[1]}"
    ep = UDPEntryPoint(EntryPoint("dns", "127.0.0.1:0", udp=True, udp_timeout=60), max_sessions=2)
    await ep.start()
    clients = []
    try:
        ep.set_table(_table(backend))
        clients = [await _client(ep.port) for _ in range(3)]
        for transport, queue in clients[:2]:
            for data in (b"hi", b"there"):  # two datagrams each: not the sessions that make room
                transport.sendto(data)
                assert await asyncio.wait_for(queue.get(), 3) == data
        clients[2][0].sendto(b"hi")
        clients[2][0].sendto(b"again")
        await until(lambda: "UDP sessions open" in caplog.text)
        assert len(ep.sessions) == 2 and clients[2][1].empty()
        assert caplog.text.count("UDP sessions open") == 1  # logged once
        # a reload that keeps the server keeps the sessions; one that drops it closes them
        ep.set_table(_table(backend, "10.9.9.9:1"))
        assert len(ep.sessions) == 2
        ep.set_table(_table("10.9.9.9:1"))
        assert ep.sessions == {}
        ep.set_table(None)
        clients[2][0].sendto(b"nobody")
        await until(lambda: "no UDP router" in caplog.text)
        assert ep.sessions == {}
        ep.set_table(None)  # a reload that changes nothing here: not logged again
        seen, received = [], ep.datagram_received
        ep.datagram_received = lambda data, addr: (seen.append(data), received(data, addr))  # type: ignore
        clients[2][0].sendto(b"nobody")
        clients[1][0].sendto(b"nobody")
        await until(lambda: len(seen) == 2)
        assert caplog.text.count("no UDP router") == 1
    finally:
        for transport, _ in clients:
            transport.close()
        ep.close()
        echo.close()


async def test_shutdown_waits_for_open_sessions_to_go_idle_and_takes_no_new_ones():
    """Traefik's UDP Shutdown: no new session, the open ones relay until idle (or the grace ends)."""
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    backend = f"127.0.0.1:{echo.get_extra_info('sockname')[1]}"
    ep = UDPEntryPoint(EntryPoint("dns", "127.0.0.1:0", udp=True, udp_timeout=0.3))
    await ep.start()
    clients = []
    try:
        ep.set_table(_table(backend))
        clients = [await _client(ep.port) for _ in range(2)]
        clients[0][0].sendto(b"open")
        assert await asyncio.wait_for(clients[0][1].get(), 3) == b"open"
        started = loop.time()
        closing = asyncio.ensure_future(ep.shutdown(grace=10))
        await until(lambda: not ep.accepting)
        clients[0][0].sendto(b"still")  # the open session still relays
        assert await asyncio.wait_for(clients[0][1].get(), 3) == b"still"
        clients[1][0].sendto(b"new")  # a new client is not taken
        await asyncio.wait_for(closing, 5)
        assert loop.time() - started < 5 and ep.sessions == {} and clients[1][1].empty()
        assert ep.transport is not None and ep.transport.is_closing()
    finally:
        for transport, _ in clients:
            transport.close()
        ep.close()
        echo.close()
