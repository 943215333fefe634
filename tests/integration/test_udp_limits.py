"""The real process under a low open-file limit: the soft limit raised to the hard one at start (as Go
does), a flood of UDP clients from spoofed source addresses that must not starve HTTP of sockets, HTTP's
accept() pausing instead of spinning when descriptors run out, and host-name UDP servers."""

from __future__ import annotations

import asyncio
import resource
import socket
from pathlib import Path

import pytest

from tests.integration.harness import Dockroute, raw_exchange, wait_for
from tests.integration.test_udp import echo, udp_dynamic, udp_static  # noqa: F401  # the echo fixture

pytestmark = pytest.mark.integration

GET = b"GET / HTTP/1.1\r\nHost: nothing.test\r\nConnection: close\r\n\r\n"


def _limit(soft: int, hard: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return preexec


async def _start(tmp_path: Path, static: dict, dynamic: dict, soft: int, hard: int) -> Dockroute:
    dr = Dockroute(tmp_path, static=static, dynamic=dynamic)
    dr.preexec = _limit(soft, hard)
    return await dr.start()


@pytest.fixture
async def running():
    started: list[Dockroute] = []
    yield started
    for dr in started:
        await dr.stop()


def _open_files_limit(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError("no open files line")


async def test_the_soft_open_files_limit_is_raised_to_the_hard_one(tmp_path, running):
    dr = await _start(tmp_path, udp_static(tmp_path), {}, 256, 4096)
    running.append(dr)
    assert dr.proc is not None and _open_files_limit(dr.proc.pid) == ("4096", "4096")
    assert "open files limit: 4096" in dr.log()


async def test_a_spoofed_source_flood_leaves_http_answering(tmp_path, running, echo):  # noqa: F811
    """2,000 UDP clients from as many loopback addresses, sessions kept a minute, under an open-file
    limit of 512: the UDP sessions stay under their share of descriptors (they used to take every one,
    10,000 per entry point), HTTP still accepts, and the log stays short."""
    (b,) = await echo("b")
    static = udp_static(tmp_path, timeout="1m")
    static["log"] = {"level": "INFO"}
    dr = await _start(tmp_path, static, udp_dynamic({"svc": [b.address]}), 512, 512)
    running.append(dr)
    port = dr.ports["dns"]
    for i in range(2000):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((f"127.1.{i // 250}.{i % 250 + 1}", 0))
            s.sendto(b"q", ("127.0.0.1", port))
        finally:
            s.close()
        if i % 200 == 199:
            await asyncio.sleep(0.01)  # let the proxy read its socket (a full buffer drops, as the network)
    await wait_for(lambda: len(b.peers) >= 400, timeout=15)  # sessions made (more than the cap: evictions)
    for _ in range(5):
        reply = await raw_exchange(dr.port, GET)
        assert reply.startswith(b"HTTP/1.1 404"), reply
    assert len(dr.log().splitlines()) < 40, dr.log()[-3000:]
    assert "accept failed" not in dr.log()


async def test_http_accept_pauses_while_out_of_descriptors_and_says_so_once(tmp_path, running):
    """Connections held open past the process's descriptors: accept() fails with EMFILE while the
    listener stays readable. It is retried after a backoff (Go's net/http: 5 ms doubling to 1 s), logged
    once, instead of a warning per wake-up in a busy loop; once connections close, HTTP answers again."""
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "log": {"level": "INFO"},
    }
    dr = await _start(tmp_path, static, {}, 128, 128)
    running.append(dr)
    held: list[asyncio.StreamWriter] = []
    try:
        for _ in range(200):
            _, writer = await asyncio.open_connection("127.0.0.1", dr.port)
            held.append(writer)
        await wait_for(lambda: "accept failed" in dr.log(), timeout=10)
        await asyncio.sleep(1.0)  # what a busy loop would log meanwhile: thousands of lines
        assert dr.log().count("accept failed") == 1, dr.log()[-2000:]
        assert len(dr.log().splitlines()) < 30
    finally:
        for writer in held:
            writer.close()
    reply = await wait_for(lambda: _get(dr.port), timeout=10)
    assert reply.startswith(b"HTTP/1.1 404")
    await wait_for(lambda: "web: accepting connections again" in dr.log())


async def _get(port: int) -> bytes | None:
    try:
        reply = await raw_exchange(port, GET, timeout=2)
    except (OSError, TimeoutError):
        return None
    return reply or None


async def test_a_host_name_server_round_trips(tmp_path, running, echo):  # noqa: F811
    """``localhost:<port>``: looked up once for the sessions, each client answered; the log names what
    the UDP entry point routes and counts the UDP routers."""
    (b,) = await echo("b")
    port = b.address.rsplit(":", 1)[1]
    dr = Dockroute(
        tmp_path,
        static=udp_static(tmp_path, timeout="1m"),
        dynamic=udp_dynamic({"svc": [f"localhost:{port}"]}),
    )
    running.append(await dr.start())
    loop = asyncio.get_running_loop()
    answers = []
    for i in range(3):
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        class _C(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr, queue=queue):
                queue.put_nowait(data)

        transport, _ = await loop.create_datagram_endpoint(_C, remote_addr=("127.0.0.1", dr.ports["dns"]))
        try:
            transport.sendto(b"q%d" % i)
            answers.append(await asyncio.wait_for(queue.get(), 5))
        finally:
            transport.close()
    assert answers == [b"b:q0", b"b:q1", b"b:q2"]
    log = dr.log()
    assert "entry point dns: UDP router r@file → service svc@file (1 servers)" in log
    assert "; UDP: 1 routers" in log
