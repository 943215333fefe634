"""The access middlewares through the real process: ``rateLimit`` (issue 10's acceptance: average 10/s,
burst 20, 100 requests at once → 20-25 pass), ``ipAllowList``/``ipWhiteList`` with X-Forwarded-For depth
from a trusted peer, ``inFlightReq`` against a slow backend, and ``rateLimit`` from a container's labels."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.integration import docker_env
from tests.integration.harness import docker_static, routers, wait_for

pytestmark = pytest.mark.integration


def _static(tmp_path, trusted=("127.0.0.1/32",)) -> dict:
    return {
        "entryPoints": {
            "web": {"address": "127.0.0.1:0", "forwardedHeaders": {"trustedIPs": list(trusted)}},
            "plain": {"address": "127.0.0.1:0"},  # trusts no one: a client's X-Forwarded-For is dropped
        },
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "log": {"level": "DEBUG"},
    }


def _cfg(backend, routes: dict[str, list[str]], middlewares: dict) -> dict:
    """One router per host ``<name>.test`` with the middlewares listed, all to ``backend``."""
    specs = [(name, f"Host(`{name}.test`)", "svc") for name in routes]
    cfg = routers(*specs, services={"svc": [backend.url]})
    for name, mws in routes.items():
        cfg["http"]["routers"][name]["middlewares"] = mws
    cfg["http"]["middlewares"] = middlewares
    return cfg


async def _burst(port: int, host: str, n: int) -> list[tuple[int, dict[str, str]]]:
    """``n`` requests sent at once: every connection is opened first, then each writes its request, so
    they reach the proxy within a few milliseconds of each other. Status and headers of each answer."""
    conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(n)))
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    for _, writer in conns:
        writer.write(request)

    async def read(reader, writer) -> tuple[int, dict[str, str]]:
        data = await reader.read()
        writer.close()
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in head[1:])
        return int(head[0].split()[1]), headers

    return await asyncio.gather(*(read(r, w) for r, w in conns))


async def test_rate_limit_average_10_burst_20_lets_20_to_25_of_100_through(proxy, backends, tmp_path):
    (b,) = await backends("b")
    mws = {"rl": {"rateLimit": {"average": 10, "burst": 20}}}
    dr = await proxy(_cfg(b, {"app": ["rl"]}, mws))
    results = await _burst(dr.port, "app.test", 100)
    passed = [h for status, h in results if status == 200]
    limited = [h for status, h in results if status == 429]
    assert len(passed) + len(limited) == 100, sorted({s for s, _ in results})
    assert 20 <= len(passed) <= 25, len(passed)
    assert b.hits == len(passed)  # a refused request never reaches the service
    assert all(h["Retry-After"] == "1" for h in limited)  # the next token is ≤ 100 ms away
    assert all(h["X-Retry-In"].endswith("ms") for h in limited)
    # the bucket refills at 10/s: a little later the same client is served again
    async with aiohttp.ClientSession() as http:

        async def served_again() -> bool:
            async with http.get(dr.url("/"), headers={"Host": "app.test"}) as resp:
                return resp.status == 200

        await wait_for(served_again, timeout=3, interval=0.05)


async def test_rate_limit_by_header_keeps_one_bucket_per_key(proxy, backends, tmp_path):
    (b,) = await backends("b")
    mws = {
        "rl": {
            "rateLimit": {
                "average": 1,
                "period": "1m",
                "burst": 2,
                "sourceCriterion": {"requestHeaderName": "X-Api-Key"},
            }
        }
    }
    dr = await proxy(_cfg(b, {"app": ["rl"]}, mws))
    async with aiohttp.ClientSession() as http:

        async def status(key: str) -> int:
            async with http.get(dr.url("/"), headers={"Host": "app.test", "X-Api-Key": key}) as resp:
                return resp.status

        assert [await status("k1") for _ in range(3)] == [200, 200, 429]
        assert [await status("k2") for _ in range(3)] == [200, 200, 429]


async def test_ip_allow_list_by_remote_address_and_forwarded_for_depth(proxy, backends, tmp_path):
    (b,) = await backends("b")
    mws = {
        "local": {"ipAllowList": {"sourceRange": ["127.0.0.1/32", "::1"]}},
        "elsewhere": {"ipAllowList": {"sourceRange": ["10.0.0.0/8"]}},
        "depth": {"ipAllowList": {"sourceRange": ["203.0.113.0/24"], "ipStrategy": {"depth": 2}}},
        "hidden": {"ipAllowList": {"sourceRange": ["10.0.0.0/8"], "rejectStatusCode": 404}},
        "legacy": {"ipWhiteList": {"sourceRange": ["10.0.0.0/8"]}},
        "excluded": {
            "ipAllowList": {
                "sourceRange": ["203.0.113.0/24"],
                "ipStrategy": {"excludedIPs": ["198.51.100.0/24"]},
            }
        },
    }
    routes = {name: [name] for name in mws}
    dr = await proxy(_cfg(b, routes, mws), static=_static(tmp_path))
    async with aiohttp.ClientSession() as http:

        async def get(host: str, xff: str | None = None, ep: str = "web") -> tuple[int, str]:
            headers = {"Host": f"{host}.test"}
            if xff is not None:
                headers["X-Forwarded-For"] = xff
            async with http.get(dr.url("/", ep=ep), headers=headers) as resp:
                return resp.status, await resp.text()

        assert (await get("local"))[0] == 200
        assert await get("elsewhere") == (403, "Forbidden")
        assert await get("hidden") == (404, "Not Found")
        assert await get("legacy") == (403, "Forbidden")
        # depth 2 counts from the right of the list the trusted peer sent
        assert (await get("depth", "198.51.100.9, 203.0.113.5, 127.0.0.1"))[0] == 200
        assert await get("depth", "203.0.113.5, 198.51.100.9, 127.0.0.1") == (403, "Forbidden")
        assert (await get("depth", "127.0.0.1"))[0] == 403  # shorter than the depth: no address, refused
        assert (await get("excluded", "203.0.113.5, 198.51.100.1, 198.51.100.2"))[0] == 200
        assert (await get("excluded", "198.51.100.1, 203.0.113.5, 192.0.2.1"))[0] == 403
        # from a peer the entry point does not trust, its X-Forwarded-For is not believed
        assert (await get("depth", "198.51.100.9, 203.0.113.5, 127.0.0.1", ep="plain"))[0] == 403
    hits = [r["raw_path"] for r in b.requests]
    assert len(hits) == 3  # only the three allowed requests reached the service


async def test_in_flight_req_rejects_the_excess_while_slow_requests_run(proxy, backends, tmp_path):
    (b,) = await backends("b")
    mws = {"two": {"inFlightReq": {"amount": 2}}}
    dr = await proxy(_cfg(b, {"app": ["two"], "other": ["two"]}, mws))
    async with aiohttp.ClientSession() as http:

        async def get(path: str, host: str = "app.test") -> tuple[int, str]:
            async with http.get(dr.url(path), headers={"Host": host}) as resp:
                return resp.status, await resp.text()

        slow = [asyncio.create_task(get("/slow?delay=1.5")) for _ in range(2)]
        await wait_for(lambda: b.hits == 2, timeout=5)  # both are in progress at the backend
        assert await get("/") == (429, "max connections reached: 2")
        assert (await get("/", host="other.test"))[0] == 200  # by default the source is the Host
        assert [s for s, _ in await asyncio.gather(*slow)] == [200, 200]
        assert (await get("/"))[0] == 200  # released when they ended
        # a client that goes away mid-request frees its place too
        gone = [asyncio.create_task(get("/slow?delay=1")) for _ in range(2)]
        await wait_for(lambda: b.hits == 6, timeout=5)
        for task in gone:
            task.cancel()
        await asyncio.gather(*gone, return_exceptions=True)

        async def freed() -> bool:
            return [s for s, _ in await asyncio.gather(get("/slow?delay=0"), get("/slow?delay=0"))] == [
                200,
                200,
            ]

        await wait_for(freed, timeout=5, interval=0.1)


async def test_rate_limit_from_container_labels(client, containers, proxy, tmp_path):
    name = containers(docker_env.unique("rl"))
    host = f"{name}.test"
    dr = await proxy(static=docker_static())
    labels = {
        f"traefik.http.routers.{name}.rule": f"Host(`{host}`)",
        f"traefik.http.routers.{name}.middlewares": f"{name}-rl",
        f"traefik.http.middlewares.{name}-rl.ratelimit.average": "1",
        f"traefik.http.middlewares.{name}-rl.ratelimit.period": "1m",
        f"traefik.http.middlewares.{name}-rl.ratelimit.burst": "2",
    }
    await asyncio.to_thread(docker_env.run, client, name, labels)
    async with aiohttp.ClientSession() as http:

        async def get() -> tuple[int, dict]:
            async with http.get(dr.url("/"), headers={"Host": host}) as resp:
                return resp.status, dict(resp.headers)

        first: list[int] = []

        async def routed() -> bool:
            status = (await get())[0]
            if status != 404:
                first.append(status)  # the first routed request took one token
            return bool(first)

        await wait_for(routed, timeout=10)
        second = await get()
        third = await get()
        assert 200 in (first[0], second[0]), (first, second)
        assert third[0] == 429, third
        assert 55 <= int(third[1]["Retry-After"]) <= 60  # a minute per token
        assert third[1]["X-Retry-In"].startswith(("59.", "1m0s", "58.", "57.", "56.", "55."))


async def test_rate_limit_by_long_header_values_keeps_one_bucket_per_value(proxy, backends, tmp_path):
    """Keys over 64 characters are kept as a digest (see the unit test for the memory): through the real
    process, 8 KB values that differ only in their last character still get a bucket each, and the same
    value shares one."""
    (b,) = await backends("b")
    criterion = {"requestHeaderName": "X-Api-Key"}
    mws = {"rl": {"rateLimit": {"average": 1, "period": "1h", "burst": 1, "sourceCriterion": criterion}}}
    dr = await proxy(_cfg(b, {"app": ["rl"]}, mws))
    async with aiohttp.ClientSession() as http:

        async def status(key: str) -> int:
            async with http.get(dr.url("/"), headers={"Host": "app.test", "X-Api-Key": key}) as resp:
                return resp.status

        keys = ["k" * 7999 + c for c in "abc"]
        assert [await status(k) for k in keys] == [200, 200, 200]
        assert [await status(k) for k in keys] == [429, 429, 429]
