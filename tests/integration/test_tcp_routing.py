"""TCP routers through the real process: TLS passthrough by SNI beside HTTP on one entry point, plain TCP
(``HostSNI(`*`)``) with a server that speaks first, TLS terminated by dockroute, middlewares."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import trustme

from tests.integration.harness import Dockroute, routers
from tests.polling import wait_for

pytestmark = pytest.mark.integration

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo everything, and close once the client has half-closed (its FIN reached us through the relay)."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write(b"<eof>")
    writer.close()


class TCPServer:
    """A backend in the test process: ``handler`` per connection, on a free port."""

    def __init__(self, handler: Handler = _echo, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_ctx = ssl_ctx
        self.server: asyncio.Server | None = None
        self.connections = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass

    async def __aenter__(self) -> TCPServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_ctx)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


def tcp_config(routers_: dict, services: dict, **extra: dict) -> dict:
    return {"tcp": {"routers": routers_, "services": services, **extra}}


def lb(*addresses: str) -> dict:
    return {"loadBalancer": {"servers": [{"address": a} for a in addresses]}}


async def exchange(port: int, payload: bytes, **kw) -> bytes:
    """Send ``payload``, half-close, read until the other end closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, **kw)
    writer.write(payload)
    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    async with asyncio.timeout(5):
        data = await reader.read(-1) if writer.can_write_eof() else await reader.readuntil(payload)
    writer.close()
    return data


async def refused(port: int) -> bool:
    """The connection is closed without a byte (a reset when the client's bytes were left unread)."""
    try:
        return await exchange(port, b"hello") == b""
    except OSError:  # reset, or not connected any more by the time the FIN is sent
        return True


def tls_pair(ca: trustme.CA, name: str, tmp, stem: str) -> tuple[str, str]:
    leaf = ca.issue_cert(name)
    cert, key = tmp / f"{stem}.pem", tmp / f"{stem}.key"
    cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return str(cert), str(key)


async def test_tls_passthrough_by_sni_beside_http_routers_on_one_entry_point(backends, proxy, tmp_path):
    (web,) = await backends("web")
    backend_ca = trustme.CA()  # the backend's own CA: dockroute never sees its key or its certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    backend_ca.issue_cert("nas.test").configure_cert(server_ctx)
    async with TCPServer(ssl_ctx=server_ctx) as nas:
        cfg = routers(("web", "Host(`app.test`)", "web"), services={"web": [web.url]})
        cfg.update(
            tcp_config(
                {"nas": {"rule": "HostSNI(`nas.test`)", "service": "nas", "tls": {"passthrough": True}}},
                {"nas": lb(nas.address)},
            )
        )
        dr = await proxy(cfg)
        client_ctx = ssl.create_default_context()
        backend_ca.configure_trust(client_ctx)  # verifies the backend's certificate and name
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", dr.port, ssl=client_ctx, server_hostname="nas.test"
        )
        assert writer.get_extra_info("peercert")["subjectAltName"] == (("DNS", "nas.test"),)
        writer.write(b"through the relay")
        assert await asyncio.wait_for(reader.readexactly(17), 5) == b"through the relay"
        writer.close()
        # the same port still routes HTTP
        reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        assert data.startswith(b"HTTP/1.1 200") and b'"server": "web"' in data
        # another SNI is not the TCP router's: dockroute's HTTPS answers with its own certificate
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", dr.port, ssl=client_ctx, server_hostname="other.test")


async def _banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 hello\r\n")  # a server that speaks first (SMTP, MySQL)
    await writer.drain()
    await _echo(reader, writer)


async def test_plain_tcp_catch_all_echoes_and_a_server_speaking_first_is_not_kept_waiting(proxy):
    async with TCPServer(_banner) as smtp:
        cfg = tcp_config({"mail": {"rule": "HostSNI(`*`)", "service": "mail"}}, {"mail": lb(smtp.address)})
        dr = await proxy(cfg)
        reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
        assert await asyncio.wait_for(reader.readline(), 5) == b"220 hello\r\n"  # sent nothing yet
        writer.write(b"x" * 300_000)
        writer.write_eof()  # the FIN is passed on: the backend answers <eof> once it has read it all
        data = await asyncio.wait_for(reader.read(-1), 10)
        assert data == b"x" * 300_000 + b"<eof>"
        writer.close()


async def test_tls_terminated_tcp_router_with_dockroute_certificates(proxy, tmp_path):
    ca = trustme.CA()
    cert, key = tls_pair(ca, "mqtt.test", tmp_path, "mqtt")
    async with TCPServer() as plain:
        cfg = tcp_config(
            {"mqtt": {"rule": "HostSNI(`mqtt.test`)", "service": "mqtt", "tls": {}}},
            {"mqtt": lb(plain.address)},
        )
        cfg["tls"] = {"certificates": [{"certFile": cert, "keyFile": key}]}
        dr = await proxy(cfg)
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", dr.port, ssl=ctx, server_hostname="mqtt.test"
        )
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        writer.close()


async def test_ip_allow_list_refuses_and_in_flight_conn_limits_per_client(proxy):
    async with TCPServer() as echo:
        cfg = tcp_config(
            {
                "far": {
                    "rule": "HostSNI(`*`) && ClientIP(`127.0.0.1`)",
                    "service": "echo",
                    "middlewares": ["only-lan"],
                    "entryPoints": ["far"],
                },
                "one": {
                    "rule": "HostSNI(`*`)",
                    "service": "echo",
                    "middlewares": ["one"],
                    "entryPoints": ["web"],
                },
            },
            {"echo": lb(echo.address)},
            middlewares={
                "only-lan": {"ipAllowList": {"sourceRange": ["10.0.0.0/8"]}},
                "one": {"inFlightConn": {"amount": 1}},
            },
        )
        static = {
            "entryPoints": {"web": {"address": "127.0.0.1:0"}, "far": {"address": "127.0.0.1:0"}},
            "providers": {"file": {"filename": "dynamic.yml"}},
            "log": {"level": "DEBUG"},
        }
        dr = await proxy(cfg, static=static)
        # 127.0.0.1 is not in 10.0.0.0/8: closed without a byte, the backend never dialled
        assert await refused(dr.ports["far"])
        assert echo.connections == 0
        # one connection at a time per client IP: the second is closed while the first is open
        reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
        writer.write(b"first")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"first"
        assert await refused(dr.port)
        writer.close()  # once dockroute has seen it end, there is room again

        async def third() -> bool:
            try:
                return await exchange(dr.port, b"third") == b"third<eof>"
            except OSError:
                return False

        await wait_for(third)
        assert echo.connections == 2


class Flood:
    """A backend that writes ``total`` bytes as fast as it is let, counting what it could write."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.written = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = b"z" * 65536
        while self.written < self.total:
            writer.write(chunk)
            await writer.drain()
            self.written += len(chunk)
        writer.close()


async def _stalls(flood: Flood) -> int:
    """How much the backend could write while the client reads nothing: polled until it stops growing."""
    last = -1
    while flood.written != last:
        last = flood.written
        await asyncio.sleep(0.3)  # a window with no progress at all: the writer is held
    return last


def _kernel_buffers() -> int:
    """What the kernel may hold between a backend and a client that reads nothing: two connections, each
    with a send and a receive buffer grown to their maximum (tcp_wmem, tcp_rmem), plus the relay's 1 MiB
    pipe and 256 KiB write buffer; anything the relay held in its own memory would come on top."""
    try:
        rmem = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
        wmem = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        rmem = wmem = 8 * 1024 * 1024
    return 2 * (rmem + wmem) + 2 * 1024 * 1024


@pytest.mark.parametrize("terminated", [False, True], ids=["plain (spliced)", "tls terminated (protocols)"])
async def test_a_client_that_does_not_read_holds_the_backend_back(proxy, tmp_path, terminated):
    held_at_most = _kernel_buffers()
    total = 3 * held_at_most
    flood = Flood(total)
    ca = trustme.CA()
    cert, key = tls_pair(ca, "flood.test", tmp_path, "flood")
    async with TCPServer(flood) as backend:
        router = (
            {"rule": "HostSNI(`flood.test`)", "service": "s", "tls": {}}
            if terminated
            else {"rule": "HostSNI(`*`)", "service": "s"}
        )
        cfg = tcp_config({"r": router}, {"s": lb(backend.address)})
        cfg["tls"] = {"certificates": [{"certFile": cert, "keyFile": key}]}
        dr = await proxy(cfg)
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        kw = {"ssl": ctx, "server_hostname": "flood.test"} if terminated else {}
        reader, writer = await asyncio.open_connection("127.0.0.1", dr.port, limit=1 << 16, **kw)
        await wait_for(lambda: flood.written > 0)
        held = await _stalls(flood)
        assert held < held_at_most, f"the backend wrote {held} bytes to a client reading nothing"
        got = 0
        async with asyncio.timeout(30):
            while got < total:
                chunk = await reader.read(1 << 20)
                assert chunk, f"EOF after {got} of {total} bytes"
                got += len(chunk)
        assert got == total
        writer.close()


class Recorder:
    """A backend that keeps the first bytes it got (the PROXY header) and echoes what follows."""

    def __init__(self) -> None:
        self.headers: list[bytes] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(16)
        if first.startswith(b"PROXY "):
            self.headers.append(first + await reader.readuntil(b"\r\n"))
        else:  # v2: 16 bytes of header, then the address block
            self.headers.append(first + await reader.readexactly(int.from_bytes(first[14:16], "big")))
        await _echo(reader, writer)


async def test_proxy_protocol_v1_and_v2_to_backends_carry_the_real_client(proxy):
    v1, v2 = Recorder(), Recorder()
    async with TCPServer(v1) as b1, TCPServer(v2) as b2:
        cfg = tcp_config(
            {
                "one": {"rule": "HostSNI(`*`)", "service": "one", "entryPoints": ["web"]},
                "two": {"rule": "HostSNI(`*`)", "service": "two", "entryPoints": ["lb"]},
            },
            {
                "one": {"loadBalancer": {"servers": [{"address": b1.address}], "serversTransport": "pp1"}},
                "two": {"loadBalancer": {"servers": [{"address": b2.address}], "proxyProtocol": {}}},  # v2
            },
            serversTransports={"pp1": {"proxyProtocol": {"version": 1}}},
        )
        static = {
            # lb trusts 127.0.0.1's PROXY headers: the client a load balancer in front names is passed on
            "entryPoints": {
                "web": {"address": "127.0.0.1:0"},
                "lb": {"address": "127.0.0.1:0", "proxyProtocol": {"trustedIPs": ["127.0.0.1"]}},
            },
            "providers": {"file": {"filename": "dynamic.yml"}},
            "log": {"level": "DEBUG"},
        }
        dr = await proxy(cfg, static=static)
        reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
        port = writer.get_extra_info("sockname")[1]
        writer.write(b"one")
        assert await asyncio.wait_for(reader.readexactly(3), 5) == b"one"
        writer.close()
        assert v1.headers == [f"PROXY TCP4 127.0.0.1 127.0.0.1 {port} {dr.port}\r\n".encode()]

        reader, writer = await asyncio.open_connection("127.0.0.1", dr.ports["lb"])
        writer.write(b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\ntwo")
        assert await asyncio.wait_for(reader.readexactly(3), 5) == b"two"
        writer.close()
        (header,) = v2.headers
        assert header[:12] == b"\r\n\r\n\x00\r\nQUIT\n" and header[12] == 0x21 and header[13] == 0x11
        assert header[16:20] == bytes([203, 0, 113, 7]) and header[20:24] == bytes([192, 0, 2, 1])
        assert int.from_bytes(header[24:26], "big") == 40000 and int.from_bytes(header[26:28], "big") == 443


def _named(name: bytes) -> Handler:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name)
        await writer.drain()
        writer.close()

    return answer


async def test_weighted_services_and_servers_dialled_with_tls_through_a_servers_transport(proxy, tmp_path):
    backend_ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    backend_ca.issue_cert("backend.internal").configure_cert(server_ctx)
    ca_file = tmp_path / "backend-ca.pem"
    backend_ca.cert_pem.write_to_path(str(ca_file))
    async with TCPServer(_named(b"A")) as a, TCPServer(_named(b"B"), ssl_ctx=server_ctx) as b:
        cfg = tcp_config(
            {"r": {"rule": "HostSNI(`*`)", "service": "split"}},
            {
                "split": {"weighted": {"services": [{"name": "a", "weight": 3}, {"name": "b", "weight": 1}]}},
                "a": lb(a.address),
                # b speaks TLS: dialled with the transport's CA and server name, its bytes relayed in clear
                "b": {
                    "loadBalancer": {
                        "servers": [{"address": b.address, "tls": True}],
                        "serversTransport": "t",
                    }
                },
            },
            serversTransports={"t": {"tls": {"serverName": "backend.internal", "rootCAs": [str(ca_file)]}}},
        )
        dr = await proxy(cfg)
        got = [await exchange(dr.port, b"") for _ in range(8)]
        assert sorted(got) == [b"A"] * 6 + [b"B"] * 2, got


async def test_the_api_lists_tcp_routers_services_and_middlewares(proxy, tmp_path):
    cfg = tcp_config(
        {
            "db": {"rule": "HostSNI(`*`)", "service": "db", "middlewares": ["lan"], "entryPoints": ["web"]},
            "broken": {"rule": "HostSNI(`x.test`)", "service": "db"},  # HostSNI without tls: refused
        },
        {"db": lb("127.0.0.1:5432")},
        middlewares={"lan": {"ipAllowList": {"sourceRange": ["10.0.0.0/8"]}}},
    )
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}, "traefik": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": "dynamic.yml"}},
        "api": {"insecure": True},
        "log": {"level": "DEBUG"},
    }
    dr = await proxy(cfg, static=static)
    api = dr.url("/api/", ep="traefik")
    async with aiohttp.ClientSession() as s:
        async with s.get(api + "tcp/routers") as r:
            routers = {i["name"]: i for i in await r.json()}
        assert routers["db@file"]["status"] == "enabled" and routers["db@file"]["using"] == ["web"]
        assert (
            routers["db@file"]["middlewares"] == ["lan@file"] and routers["db@file"]["rule"] == "HostSNI(`*`)"
        )
        assert (
            routers["broken@file"]["status"] == "disabled" and "no tls" in routers["broken@file"]["error"][0]
        )
        async with s.get(api + "tcp/services/db@file") as r:
            service = await r.json()
        assert service["loadBalancer"]["servers"] == [{"address": "127.0.0.1:5432"}]
        assert service["usedBy"] == ["broken@file", "db@file"]
        assert service["serverStatus"] == {"127.0.0.1:5432": "UP"}  # Traefik's: up until a check says not
        async with s.get(api + "tcp/middlewares") as r:
            (mw,) = await r.json()
        assert mw["ipAllowList"] == {"sourceRange": ["10.0.0.0/8"]} and mw["type"] == "ipallowlist"
        async with s.get(api + "overview") as r:
            tcp = (await r.json())["tcp"]
        assert tcp["routers"] == {"total": 2, "warnings": 0, "errors": 1}
        async with s.get(api + "rawdata") as r:
            raw = await r.json()
        assert set(raw["tcpRouters"]) == {"db@file", "broken@file"}
        assert raw["tcpServices"]["db@file"]["serverStatus"] == {"127.0.0.1:5432": "UP"}


async def test_dial_timeout_of_the_servers_transport_closes_the_client(proxy):
    import socket  # noqa: PLC0415

    # A listener whose accept queue is full: the kernel drops further SYNs, a connect hangs
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    try:
        cfg = tcp_config(
            {"r": {"rule": "HostSNI(`*`)", "service": "s"}},
            {
                "s": {
                    "loadBalancer": {
                        "servers": [{"address": f"127.0.0.1:{port}"}],
                        "serversTransport": "quick",
                    }
                }
            },
            serversTransports={"quick": {"dialTimeout": "500ms"}},
        )
        dr = await proxy(cfg)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await refused(dr.port)  # closed once the dial gave up: not after Traefik's default 30 s
        assert loop.time() - started < 10
        await wait_for(lambda: "error while dialing backend" in dr.log())
    finally:
        for s in (full, *fillers):
            s.close()


class Checked:
    """A backend answering a health check (``ping``) while ``healthy``, and its name to anyone else."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.healthy = True

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if line == b"ping\n":
            writer.write(b"pong\n" if self.healthy else b"sick\n")
        else:
            writer.write(self.name)
        await writer.drain()
        writer.close()


async def test_health_checks_take_a_tcp_server_out_and_bring_it_back(proxy):
    a, b = Checked(b"A"), Checked(b"B")
    async with TCPServer(a) as sa, TCPServer(b) as sb:
        hc = {"interval": "100ms", "timeout": "1s", "send": "ping\n", "expect": "pong\n"}
        cfg = tcp_config(
            {"r": {"rule": "HostSNI(`*`)", "service": "s"}},
            {
                "s": {
                    "loadBalancer": {
                        "servers": [{"address": sa.address}, {"address": sb.address}],
                        "healthCheck": hc,
                    }
                }
            },
        )
        static = {
            "entryPoints": {"web": {"address": "127.0.0.1:0"}, "traefik": {"address": "127.0.0.1:0"}},
            "providers": {"file": {"filename": "dynamic.yml"}},
            "api": {"insecure": True},
        }
        dr = await proxy(cfg, static=static)

        async def answers(n: int = 4) -> list[bytes]:
            return sorted([await exchange(dr.port, b"who\n") for _ in range(n)])

        async def api_states() -> tuple[dict, dict]:
            async with (
                aiohttp.ClientSession() as http,
                http.get(dr.url("/api/tcp/services/s@file", ep="traefik")) as r,
            ):
                svc = await r.json()
            return svc["serverStatus"], svc["serverStates"]

        assert await answers() == [b"A", b"A", b"B", b"B"]
        assert await api_states() == (
            {sa.address: "UP", sb.address: "UP"},
            {sa.address: "UP", sb.address: "UP"},
        )
        b.healthy = False
        await wait_for(lambda: f"server {sb.address} is down: unexpected health check response" in dr.log())
        assert await answers() == [b"A"] * 4
        status, states = await api_states()  # the API says so, and why
        assert status == {sa.address: "UP", sb.address: "DOWN"}
        assert states[sb.address] == "DOWN: active check failed: unexpected health check response"
        b.healthy = True
        await wait_for(lambda: f"server {sb.address} is up again" in dr.log())
        assert await answers() == [b"A", b"A", b"B", b"B"]
        assert (await api_states())[0] == {sa.address: "UP", sb.address: "UP"}


SSL_REQUEST = bytes((0, 0, 0, 8, 4, 210, 22, 47))  # PostgreSQL's


def _postgres(server_ctx: ssl.SSLContext | None) -> Handler:
    """A PostgreSQL stand-in: with ``server_ctx`` it takes the SSLRequest, answers S and speaks TLS (its
    own certificate); without, it speaks plain (TLS was terminated before it). Then it echoes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if server_ctx is not None:
            assert await reader.readexactly(8) == SSL_REQUEST
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(server_ctx)
        await _echo(reader, writer)

    return serve


async def _starttls(port: int, ctx: ssl.SSLContext, name: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(SSL_REQUEST)
    assert await asyncio.wait_for(reader.readexactly(1), 5) == b"S"
    await writer.start_tls(ctx, server_hostname=name)
    writer.write(b"SELECT 1")
    data = await asyncio.wait_for(reader.readexactly(8), 5)
    writer.close()
    return data


async def test_postgres_starttls_routed_by_sni_passed_through_or_terminated(backends, proxy, tmp_path):
    pg_ca, dr_ca = trustme.CA(), trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pg_ca.issue_cert("pg.test").configure_cert(server_ctx)
    cert, key = tls_pair(dr_ca, "db.test", tmp_path, "db")
    (web,) = await backends("web")
    async with TCPServer(_postgres(server_ctx)) as own_tls, TCPServer(_postgres(None)) as plain_pg:
        cfg = routers(("web", "Host(`app.test`)", "web"), services={"web": [web.url]})  # not server-first
        cfg.update(
            tcp_config(
                {
                    "pg": {"rule": "HostSNI(`pg.test`)", "service": "pg", "tls": {"passthrough": True}},
                    "db": {"rule": "HostSNI(`db.test`)", "service": "db", "tls": {}},
                },
                {"pg": lb(own_tls.address), "db": lb(plain_pg.address)},
            )
        )
        cfg["tls"] = {"certificates": [{"certFile": cert, "keyFile": key}]}
        dr = await proxy(cfg)
        through, terminated = ssl.create_default_context(), ssl.create_default_context()
        pg_ca.configure_trust(through)  # the server's own certificate, through dockroute
        dr_ca.configure_trust(terminated)  # dockroute's
        assert await _starttls(dr.port, through, "pg.test") == b"SELECT 1"
        assert await _starttls(dr.port, terminated, "db.test") == b"SELECT 1"


async def _lingers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads until the client's FIN, answers, and then never closes its side."""
    await reader.read(-1)
    writer.write(b"bye")
    await writer.drain()
    await asyncio.Event().wait()


async def test_termination_delay_closes_both_sides_after_one_ended(proxy):
    async with TCPServer(_lingers) as backend:
        cfg = tcp_config(
            {"r": {"rule": "HostSNI(`*`)", "service": "s"}},
            {"s": {"loadBalancer": {"servers": [{"address": backend.address}], "serversTransport": "t"}}},
            serversTransports={"t": {"terminationDelay": "300ms"}},
        )
        dr = await proxy(cfg)
        # the client's FIN reaches the backend, whose answer still arrives; 300 ms later both are closed
        # although the backend never closes (without the delay the client would wait for ever)
        assert await exchange(dr.port, b"done") == b"bye"


async def test_shutdown_lets_relayed_connections_end_within_the_grace_then_closes_the_rest(proxy, tmp_path):
    async with TCPServer() as backend:
        cfg = tcp_config({"r": {"rule": "HostSNI(`*`)", "service": "s"}}, {"s": lb(backend.address)})
        dr = Dockroute(tmp_path, dynamic=cfg)
        dr.static["entryPoints"]["web"]["transport"] = {"lifeCycle": {"graceTimeOut": "3s"}}
        dr = await proxy(cfg, static=dr.static)
        finishing = await asyncio.open_connection("127.0.0.1", dr.port)
        lingering = await asyncio.open_connection("127.0.0.1", dr.port)
        for reader, writer in (finishing, lingering):
            writer.write(b"ping")
            async with asyncio.timeout(5):
                assert await reader.readexactly(4) == b"ping"
        dr.terminate()
        await wait_for(lambda: "waiting up to" in dr.log())
        reader, writer = finishing  # Traefik's tracker.Shutdown: a relayed connection goes on in the grace
        writer.write(b"still")
        async with asyncio.timeout(5):
            assert await reader.readexactly(5) == b"still"
        writer.write_eof()
        async with asyncio.timeout(5):
            assert await reader.read(-1) == b"<eof>"
        writer.close()
        reader, writer = lingering  # one that does not end is closed once the grace is over
        async with asyncio.timeout(10):
            assert await reader.read(-1) == b""
        await wait_for(lambda: "INFO dockroute: stopped" in dr.log())
        writer.close()


async def test_servers_transport_tls_takes_inline_pem_certificates_and_checks_peer_cert_uri(proxy):
    from tests.unit.test_transports import _files, uri_leaf

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(*_files(*uri_leaf(ca, "spiffe://td/db")))
    server_ctx.verify_mode = ssl.CERT_REQUIRED  # mTLS: the transport's client certificate is needed
    ca.configure_trust(server_ctx)
    client_leaf = ca.issue_cert("dockroute.client")
    cert_pem = b"".join(b.bytes() for b in client_leaf.cert_chain_pems).decode()
    async with TCPServer(_named(b"DB"), ssl_ctx=server_ctx) as backend:

        def transport(uri: str) -> dict:
            return {
                "tls": {
                    "rootCAs": [ca.cert_pem.bytes().decode()],
                    "certificates": [
                        {"certFile": cert_pem, "keyFile": client_leaf.private_key_pem.bytes().decode()}
                    ],
                    "peerCertURI": uri,
                }
            }

        def service(t: str) -> dict:
            return {
                "loadBalancer": {
                    "servers": [{"address": backend.address, "tls": True}],
                    "serversTransport": t,
                }
            }

        def config(t: str) -> dict:
            return tcp_config(
                {"r": {"rule": "HostSNI(`*`)", "service": "db"}},
                {"db": service(t)},
                serversTransports={
                    "right": transport("spiffe://td/db"),
                    "other": transport("spiffe://td/web"),
                },
            )

        dr = await proxy(config("right"))
        assert "not supported" not in dr.log() and "cannot be loaded" not in dr.log(), dr.log()
        assert await exchange(dr.port, b"") == b"DB"  # inline PEM client certificate, URI SAN matched
        dr.write_dynamic(config("other"))  # the backend's URI SAN is not the one wanted: closed

        async def closed() -> bool:
            return await exchange(dr.port, b"") == b""

        await wait_for(closed)
        # the client sees the close before the proxy writes its line: poll the log, do not read it once
        await wait_for(
            lambda: "error while dialing backend" in dr.log() and "peerCertURI spiffe://td/web" in dr.log()
        )
