"""``failover`` services through the real process: the fallback while the main service's health check
fails, the main service again once it passes."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.polling import wait_for

pytestmark = pytest.mark.integration

_CHECK = {"path": "/health", "interval": "100ms", "timeout": "1s"}


def _failover(main: str, backup: str, *, checked: bool = True, **options: Any) -> dict[str, Any]:
    """Router ``r`` → failover ``f`` over ``main`` (health-checked when ``checked``) and ``backup``."""
    main_lb: dict[str, Any] = {"servers": [{"url": main}]}
    if checked:
        main_lb["healthCheck"] = _CHECK
    return {
        "http": {
            "routers": {
                "r": {"rule": "PathPrefix(`/`)", "service": "f"},
                "direct": {"rule": "Path(`/direct`)", "service": "backup"},
            },
            "services": {
                "f": {"failover": {"service": "main", "fallback": "backup", **options}},
                "main": {"loadBalancer": main_lb},
                "backup": {"loadBalancer": {"servers": [{"url": backup}], "healthCheck": _CHECK}},
            },
        }
    }


async def _who(s: aiohttp.ClientSession, url: str) -> str:
    async with s.get(url) as r:
        await r.read()
        return r.headers.get("X-Backend", str(r.status))


async def test_the_fallback_serves_while_the_main_health_check_fails_and_the_main_one_after(backends, proxy):
    main, backup = await backends("main", "backup")
    d = await proxy(_failover(main.url, backup.url))
    async with aiohttp.ClientSession() as s:
        assert {await _who(s, d.url("/a")) for _ in range(5)} == {"main"}
        main.health_status = 503  # the server still answers requests: only its health check fails
        await wait_for(lambda: _is(s, d.url("/a"), "backup"), timeout=5)
        assert {await _who(s, d.url("/a")) for _ in range(5)} == {"backup"}
        main.health_status = 200
        await wait_for(lambda: _is(s, d.url("/a"), "main"), timeout=5)
        assert {await _who(s, d.url("/a")) for _ in range(5)} == {"main"}


async def _is(s: aiohttp.ClientSession, url: str, who: str) -> bool:
    return await _who(s, url) == who


async def test_a_dead_main_server_fails_over_and_with_both_down_the_answer_is_503(backends, proxy):
    main, backup = await backends("main", "backup")
    d = await proxy(_failover(main.url, backup.url, healthCheck={}))
    async with aiohttp.ClientSession() as s:
        assert await _who(s, d.url("/a")) == "main"
        await main.stop()  # connections refused: the check fails
        await wait_for(lambda: _is(s, d.url("/a"), "backup"), timeout=5)
        backup.health_status = 500  # the failover follows its fallback's health too (healthCheck: {})
        await wait_for(lambda: _is(s, d.url("/a"), "503"), timeout=5)
        backup.health_status = 200
        await wait_for(lambda: _is(s, d.url("/a"), "backup"), timeout=5)


async def test_a_failover_whose_main_service_has_no_health_check_is_refused_by_name(backends, proxy):
    main, backup = await backends("main", "backup")
    d = await proxy(_failover(main.url, backup.url, checked=False))
    line = "service f@file is left out: its service main@file has no healthCheck"
    await wait_for(lambda: line in d.log())
    async with aiohttp.ClientSession() as s:
        assert await _who(s, d.url("/a")) == "404"
        assert await _who(s, d.url("/direct")) == "backup"  # everything else is served
