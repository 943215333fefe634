"""The API against the real ``dockroute`` process: Traefik's shapes for a file router and real containers,
``api.insecure`` on entry point ``traefik``, and the API behind a user's router with ``basicAuth``."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest

from tests.api_fakes import TRAEFIK_OBSERVABILITY
from tests.integration import docker_env
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration

# htpasswd -nbs admin secret, as a user writes it for Traefik
ADMIN = "admin:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="
ADMIN_AUTH = "Basic " + base64.b64encode(b"admin:secret").decode()


def static(tmp_path, api: dict, docker: bool = False) -> dict:
    providers: dict = {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}}
    if docker:
        providers["docker"] = {}
    return {
        # `traefik` bound to a free port (api.insecure would create it on :8080 otherwise)
        "entryPoints": {"web": {"address": "127.0.0.1:0"}, "traefik": {"address": "127.0.0.1:0"}},
        "providers": providers,
        "api": api,
        "log": {"level": "DEBUG"},
    }


def file_router(backend_url: str, **extra) -> dict:
    return {
        "http": {
            "routers": {
                "app": {"rule": "Host(`app.test`)", "service": "app", "entryPoints": ["web"], **extra}
            },
            "services": {"app": {"loadBalancer": {"servers": [{"url": backend_url}]}}},
        }
    }


async def get_json(session: aiohttp.ClientSession, url: str, **kw) -> tuple[int, dict, object]:
    async with session.get(url, **kw) as r:
        body = await r.json(content_type=None) if r.status != 401 else await r.text()
        return r.status, dict(r.headers), body


async def test_insecure_api_shows_file_router_services_and_internal_routers(proxy, backends, tmp_path):
    (backend,) = await backends("b")
    dr = await proxy(file_router(backend.url), static=static(tmp_path, {"insecure": True}))
    api = dr.url("/api/", ep="traefik")
    async with aiohttp.ClientSession() as s:
        status, headers, routers = await get_json(s, api + "http/routers")
        assert (
            status == 200 and headers["Content-Type"] == "application/json" and headers["X-Next-Page"] == "1"
        )
        by_name = {r["name"]: r for r in routers}
        app = by_name["app@file"]
        assert app == {
            "entryPoints": ["web"],
            "service": "app",
            "rule": "Host(`app.test`)",
            "observability": TRAEFIK_OBSERVABILITY,
            "status": "enabled",
            "using": ["web"],
            "name": "app@file",
            "provider": "file",
            "priorityStr": "0",
        }
        # Traefik's internal routers of api.insecure, on entry point traefik
        assert by_name["api@internal"]["provider"] == "internal"
        assert by_name["api@internal"]["using"] == ["traefik"]
        assert by_name["api@internal"]["rule"] == "PathPrefix(`/api`)"
        status, _, service = await get_json(s, api + "http/services/app@file")
        assert status == 200 and service["serverStatus"] == {backend.url: "UP"}
        assert (service["type"], service["usedBy"], service["provider"]) == (
            "loadbalancer",
            ["app@file"],
            "file",
        )
        _, _, services = await get_json(s, api + "http/services")
        internal = {x["name"] for x in services if x["provider"] == "internal"}
        assert "api@internal" in internal
        _, _, overview = await get_json(s, api + "overview")
        assert overview["http"]["routers"]["total"] == len(routers)
        assert "File" in overview.get("providers", [])
        _, _, raw = await get_json(s, api + "rawdata")
        assert raw["routers"]["app@file"]["status"] == "enabled"
        assert raw["services"]["app@file"]["serverStatus"] == {backend.url: "UP"}
        _, _, eps = await get_json(s, api + "entrypoints")
        assert [e["name"] for e in eps] == ["traefik", "web"]
        status, _, body = await get_json(s, api + "http/routers?page=9")
        assert (status, body) == (400, {"message": "invalid request: page: 9, per_page: 100"})
        status, _, body = await get_json(s, api + "http/routers/nope@file")
        assert (status, body) == (404, {"message": "router not found: nope@file"})
        # a router left out is in the list, disabled, with its error, and in /api/discovery
        dr.write_dynamic(file_router(backend.url, middlewares=["missing"]))

        async def disabled() -> bool:
            _, _, r = await get_json(s, api + "http/routers/app@file")
            return r.get("status") == "disabled"

        await wait_for(disabled, timeout=10)
        _, _, app = await get_json(s, api + "http/routers/app@file")
        assert "missing@file" in app["error"][0]
        _, _, discovery = await get_json(s, api + "discovery")
        assert [r["name"] for r in discovery["routers"]] == ["app@file"]


async def test_api_without_insecure_only_through_a_router_with_basic_auth(proxy, backends, tmp_path):
    (backend,) = await backends("b")
    dynamic = file_router(backend.url)
    dynamic["http"]["routers"]["api"] = {
        "rule": "Host(`admin.test`) && PathPrefix(`/api`)",
        "service": "api@internal",
        "entryPoints": ["web"],
        "middlewares": ["auth"],
    }
    dynamic["http"]["middlewares"] = {"auth": {"basicAuth": {"users": [ADMIN]}}}
    dr = await proxy(dynamic, static=static(tmp_path, {}))
    async with aiohttp.ClientSession() as s:
        status, _, _ = await get_json(s, dr.url("/api/http/routers"), headers={"Host": "admin.test"})
        assert status == 401
        status, _, routers = await get_json(
            s, dr.url("/api/http/routers"), headers={"Host": "admin.test", "Authorization": ADMIN_AUTH}
        )
        assert status == 200
        names = {r["name"]: r for r in routers}
        assert set(names) == {"api@file", "app@file"}  # no internal router without api.insecure
        assert names["api@file"]["service"] == "api@internal" and names["api@file"]["middlewares"] == ["auth"]
        # nothing of the API on entry point traefik without api.insecure
        async with s.get(dr.url("/api/http/routers", ep="traefik")) as r:
            assert r.status == 404


async def test_routers_of_two_containers_and_a_file_router_with_provider_suffixes(
    client, containers, proxy, backends, tmp_path
):
    (backend,) = await backends("b")
    one, two = containers(docker_env.unique("api-one")), containers(docker_env.unique("api-two"))
    dr = await proxy(file_router(backend.url), static=static(tmp_path, {"insecure": True}, docker=True))
    for name in (one, two):
        labels = {"traefik.enable": "true", f"traefik.http.routers.{name}.rule": f"Host(`{name}.test`)"}
        await asyncio.to_thread(docker_env.run, client, name, labels)
    api = dr.url("/api/", ep="traefik")
    async with aiohttp.ClientSession() as s:

        async def listed() -> dict | None:
            _, _, routers = await get_json(s, api + "http/routers")
            names = {r["name"]: r for r in routers}
            return names if {f"{one}@docker", f"{two}@docker", "app@file"} <= set(names) else None

        names = await wait_for(listed, timeout=15)
        _, _, only_docker = await get_json(s, api + "http/routers?provider=docker")
        # (other containers of the engine may be listed too)
        assert {f"{one}@docker", f"{two}@docker"} <= {r["name"] for r in only_docker}
        assert {r["provider"] for r in only_docker} == {"docker"}
        for name in (one, two):
            router = names[f"{name}@docker"]
            assert (router["provider"], router["status"], router["rule"]) == (
                "docker",
                "enabled",
                f"Host(`{name}.test`)",
            )
            status, _, service = await get_json(s, api + f"http/services/{router['service']}@docker")
            assert status == 200 and list(service["serverStatus"].values()) == ["UP"]
        assert names["app@file"]["provider"] == "file"
        _, _, discovery = await get_json(s, api + "discovery")
        seen = {c["name"]: c for c in discovery["containers"]}
        assert seen[one]["routed"] is True and seen[one]["routers"] == [f"{one}@docker"]
