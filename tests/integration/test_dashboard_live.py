"""The dashboard of a real ``dockroute`` process in headless Chromium at 390 px: ``api.insecure`` on the
``traefik`` entry point, two routed containers and a file router with a certificate from the built-in CA,
and a container on no network at all. The page, reached through Traefik's redirect of ``/``, must show
the three routers, the certificate with the days left the API gives, and the unreachable container with
its reason and fix."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration import docker_env
from tests.integration.harness import wait_for
from tests.integration.test_dashboard import browser, check_layout, has_text, keep_screenshots

pytestmark = pytest.mark.integration


def real_static(tmp_path: Path) -> dict[str, Any]:
    return {
        "entryPoints": {
            "web": {"address": "127.0.0.1:0"},
            "websecure": {"address": "127.0.0.1:0"},
            "traefik": {"address": "127.0.0.1:0"},
        },
        "api": {"insecure": True},
        "providers": {
            "file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True},
            "docker": {"exposedByDefault": False},
        },
        # a certificate without the Internet: the built-in CA, 100 days
        "certificatesResolvers": {
            "home": {"internalCA": {"storage": str(tmp_path / "ca"), "leafLifetime": "2400h"}}
        },
        "log": {"level": "DEBUG"},
    }


def site_router(url: str) -> dict[str, Any]:
    return {
        "http": {
            "routers": {
                "site": {
                    "rule": "Host(`site.lan`)",
                    "service": "site",
                    "entryPoints": ["websecure"],
                    "tls": {"certResolver": "home"},
                }
            },
            "services": {"site": {"loadBalancer": {"servers": [{"url": url}]}}},
        }
    }


async def api_ready(base: str, names: tuple[str, ...], lone: str, seen: dict[str, Any]) -> bool:
    """True once the API's routers, certificates and discovery show what the test set up (the last
    answers are kept in ``seen``, for the failure message)."""
    async with aiohttp.ClientSession() as s:
        for path in ("http/routers", "certificates", "discovery"):
            async with s.get(f"{base}/api/{path}") as r:
                seen[path] = await r.json() if r.status == 200 else r.status
    if not all(isinstance(seen[p], list | dict) for p in seen):
        return False
    routers = {r["name"] for r in seen["http/routers"]}
    lone_seen = [c for c in seen["discovery"]["containers"] if c["name"] == lone and c["reason"]]
    return set(names) <= routers and bool(seen["certificates"]) and bool(lone_seen)


async def test_dashboard_of_a_real_dockroute(client, containers, backends, proxy, tmp_path: Path) -> None:
    (backend,) = await backends("site")
    alpha, beta, lone = (containers(docker_env.unique(p)) for p in ("dash-alpha", "dash-beta", "dash-lone"))
    for name in (alpha, beta, lone):
        labels = {"traefik.enable": "true", f"traefik.http.routers.{name}.rule": f"Host(`{name}.test`)"}
        extra: dict[str, Any] = {}
        if name == lone:  # on no network at all: dockroute cannot reach it (its port named, as none shows)
            extra["network_mode"] = "none"
            labels[f"traefik.http.services.{name}.loadbalancer.server.port"] = "80"
        await asyncio.to_thread(docker_env.run, client, name, labels, **extra)
    dr = await proxy(site_router(backend.url), static=real_static(tmp_path))
    base = dr.url("", ep="traefik")
    names = (f"{alpha}@docker", f"{beta}@docker", "site@file")
    got: dict[str, Any] = {}
    try:
        await wait_for(lambda: api_ready(base, names, lone, got), timeout=30, interval=0.2)
    except AssertionError:
        raise AssertionError(f"the API never showed the setup: {json.dumps(got)[:3000]}") from None
    cert = next(c for c in got["certificates"] if "site.lan" in c["domains"])
    why = next(c for c in got["discovery"]["containers"] if c["name"] == lone)
    assert why["reason"] == "unreachable-network"

    async with browser(tmp_path) as b:
        await b.send("Page.navigate", url=base + "/")  # Traefik's redirect to /dashboard/
        await wait_for(lambda: has_text(b, lone), timeout=20)
        text = await b.text()
        assert await b.eval("location.pathname") == "/dashboard/"
        for name in names:
            assert name in text
        routers = await b.eval("document.getElementById('list-routers').innerText")
        assert all(name in routers for name in names)
        certs = await b.eval("document.getElementById('list-certificates').innerText")
        assert (
            "site.lan" in certs and f"{cert['daysLeft']} days left" in certs and 90 <= cert["daysLeft"] <= 100
        )
        not_routed = await b.eval("document.getElementById('list-notrouted').innerText")
        assert lone in not_routed and "unreachable network" in not_routed
        assert why["detail"] in not_routed and (why["fix"] or "") in not_routed
        await check_layout(b)
        await keep_screenshots(b, tmp_path)
        assert b.problems == []
