"""bench.faults' own parts, in-process and on loopback: the paced client counts every failure, the held
connections are reopened when the server ends them, and the docker verdict blames only failures that
happened while the container answered directly (the point's "routes whose containers keep running")."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from bench import faults
from tests.polling import wait_for


async def test_paced_client_counts_non_2xx_and_socket_errors():
    hits = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(status=503 if hits % 2 else 200)

    runner = web.AppRunner(_app(handler))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    load = faults.Load(f"http://127.0.0.1:{port}/", "x.test", rate=100)
    try:
        async with faults.loading(load):
            await wait_for(lambda: len(load.samples) >= 10, timeout=10)
    finally:
        await runner.cleanup()
    n, bad, _p50, p99 = faults.summary(load.samples)
    assert n >= 10 and 0 < bad < n and p99 > 0
    assert bad == sum(1 for *_, st in load.samples if st == 503)


def _app(handler) -> web.Application:  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_get("/", handler)
    return app


async def test_held_connections_are_reopened_when_the_server_ends_them():
    async def close_soon(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the slow head's first byte, or nothing from an idle one
        writer.close()

    server = await asyncio.start_server(close_soon, "127.0.0.1", 0)
    holders = faults.Holders(server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    slots = [asyncio.create_task(holders.hold(True, stop)) for _ in range(3)]
    try:
        await wait_for(lambda: len(holders.closed_by_server) >= 6, timeout=10)
    finally:
        stop.set()
        await asyncio.wait(slots, timeout=10)
        server.close()
    assert holders.opened >= 6 and holders.failed == 0 and holders.open_now == 0


def test_docker_verdict_blames_only_failures_while_the_container_answered():
    probe = faults.Probe("http://unused/")
    probe.seen = [(t / 10, not 3.0 <= t / 10 < 4.0) for t in range(0, 60)]  # down from 3.0 to 4.0 s
    down_failure = (3.2, 3.3, 502)
    samples = [(0.5, 0.6, 200), (1.5, 1.6, 200), down_failure, (4.5, 4.6, 200)]
    ok = faults.classify(samples, probe, t_kill=1.0, t_up=2.0, note="")
    assert ok.ok is True and ok.figure.startswith("0 5xx / 3 requests")
    failed = faults.classify([*samples, (1.5, 1.7, 502)], probe, t_kill=1.0, t_up=2.0, note="")
    assert failed.ok is False and failed.figure.startswith("1 5xx / 4 requests")


def test_only_names_known_checks_and_the_docker_check_needs_its_guard(monkeypatch):
    with pytest.raises(SystemExit):
        faults.parse_args(["--only", "reloads,nope"])
    assert faults.parse_args(["--only", "idle"]).checks == ["idle"]
    monkeypatch.delenv("ALLOW_DOCKERD_RESTART_IN_TESTS", raising=False)
    assert faults.docker_skip_reason().startswith("skipped:")
