"""The internal provider's routers through the real process: without ``api.insecure`` nothing of the API is
reachable on any entry point except through a user's router to ``api@internal``; with it, the API and the
dashboard are on entry point ``traefik`` (``/`` redirected to ``/dashboard/``), as in Traefik."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import trustme

from tests.api_fakes import TRAEFIK_OBSERVABILITY
from tests.integration.harness import routers, wait_for

pytestmark = pytest.mark.integration

API_PATHS = (
    "/api/version",
    "/api/overview",
    "/api/http/routers",
    "/api/rawdata",
    "/dashboard/",
    "/debug/vars",
)


def _static(tmp_path: Path, api: dict | None) -> dict:
    static: dict = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}, "traefik": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "log": {"level": "DEBUG"},
    }
    if api is not None:
        static["api"] = api
    return static


async def _get(url: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


async def test_api_without_insecure_is_reachable_only_through_a_user_router(proxy, backends, tmp_path):
    (b,) = await backends("app")
    dynamic = routers(("app", "PathPrefix(`/`)", "app"), services={"app": [b.url]})
    dynamic["http"]["routers"]["app"]["entryPoints"] = ["web"]
    dr = await proxy(dynamic, static=_static(tmp_path, {"dashboard": True, "debug": True}))
    # the user's catch-all router gets every API path: nothing internal answers on web
    for path in API_PATHS:
        status, body, headers = await _get(dr.url(path))
        assert status == 200 and headers.get("X-Backend") == "app", path
    for path in API_PATHS:
        assert (await _get(dr.url(path, "traefik")))[0] == 404, path
    # a user's router to api@internal (with its own rule) serves the API
    dynamic["http"]["routers"]["admin"] = {
        "rule": "Host(`admin.test`)",
        "service": "api@internal",
        "entryPoints": ["web"],
    }
    dr.write_dynamic(dynamic)

    async def served() -> bool:
        async with (
            aiohttp.ClientSession() as s,
            s.get(dr.url("/api/version"), headers={"Host": "admin.test"}) as resp,
        ):
            return resp.status == 200 and "Version" in await resp.json(content_type=None)

    await wait_for(served)
    assert (await _get(dr.url("/api/version")))[2].get("X-Backend") == "app"  # other hosts: the app


async def test_api_section_absent_makes_api_internal_unknown(proxy, tmp_path):
    dynamic = {"http": {"routers": {"admin": {"rule": "PathPrefix(`/`)", "service": "api@internal"}}}}
    dr = await proxy(dynamic, static=_static(tmp_path, None))
    for ep in ("web", "traefik"):
        assert (await _get(dr.url("/api/version", ep)))[0] == 404


async def test_insecure_serves_api_and_dashboard_on_traefik(proxy, tmp_path):
    dr = await proxy({}, static=_static(tmp_path, {"insecure": True}))
    status, body, _ = await _get(dr.url("/api/version", "traefik"))
    assert status == 200 and '"Version"' in body
    # Traefik's dashboard_redirect: the bare root goes to /dashboard/
    status, _, headers = await _get(dr.url("/", "traefik"))
    assert status == 301 and headers["Location"].endswith(f":{dr.ports['traefik']}/dashboard/")
    status, body, headers = await _get(dr.url("/dashboard/", "traefik"))
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert (await _get(dr.url("/debug/vars", "traefik")))[0] == 404  # api.debug is off
    # the internal routers as Traefik's API shows them (its integration/testdata/rawdata-*.json): their
    # references qualified as the internal provider writes them, ruleSyntax "default"; the priorities
    # are Traefik's MaxInt less 1 and 2 on dockroute's scale
    async with aiohttp.ClientSession() as s, s.get(dr.url("/api/rawdata", "traefik")) as resp:
        raw = (await resp.json())["routers"]
    assert raw["api@internal"] == {
        "entryPoints": ["traefik"],
        "service": "api@internal",
        "rule": "PathPrefix(`/api`)",
        "ruleSyntax": "default",
        "priority": 2**31 - 2,
        "observability": TRAEFIK_OBSERVABILITY,
        "status": "enabled",
        "using": ["traefik"],
    }
    assert raw["dashboard@internal"] == {
        "entryPoints": ["traefik"],
        "middlewares": ["dashboard_redirect@internal", "dashboard_stripprefix@internal"],
        "service": "dashboard@internal",
        "rule": "PathPrefix(`/`)",
        "ruleSyntax": "default",
        "priority": 2**31 - 3,
        "observability": TRAEFIK_OBSERVABILITY,
        "status": "enabled",
        "using": ["traefik"],
    }
    # nothing of it on the other entry point
    for path in API_PATHS:
        assert (await _get(dr.url(path)))[0] == 404, path


async def test_insecure_without_dashboard(proxy, tmp_path):
    dr = await proxy({}, static=_static(tmp_path, {"insecure": True, "dashboard": False, "debug": True}))
    assert (await _get(dr.url("/api/overview", "traefik")))[0] == 200
    assert (await _get(dr.url("/debug/vars", "traefik")))[0] == 200
    assert (await _get(dr.url("/", "traefik")))[0] == 404
    assert (await _get(dr.url("/dashboard/", "traefik")))[0] == 404


async def test_api_state_follows_each_applied_configuration(proxy, tmp_path):
    """The app publishes a new ApiState per configuration: routers and file certificates as applied."""
    ca = trustme.CA()
    leaf = ca.issue_cert("app.test")
    cert_file, key_file = tmp_path / "app.pem", tmp_path / "app.key"
    cert_file.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key_file.write_bytes(leaf.private_key_pem.bytes())
    dynamic = routers(("one", "Host(`one.test`)", "noop@internal"))
    dr = await proxy(dynamic, static=_static(tmp_path, {"insecure": True}))

    async def names() -> set[str]:
        async with aiohttp.ClientSession() as s, s.get(dr.url("/api/http/routers", "traefik")) as resp:
            return {r["name"] for r in await resp.json()}

    got = await names()
    assert {"one@file", "api@internal", "dashboard@internal"} <= got and "two@file" not in got
    dynamic["http"]["routers"]["two"] = {"rule": "Host(`two.test`)", "service": "noop@internal"}
    dynamic["tls"] = {"certificates": [{"certFile": str(cert_file), "keyFile": str(key_file)}]}
    dr.write_dynamic(dynamic)

    async def applied() -> bool:
        return "two@file" in await names()

    await wait_for(applied)
    async with aiohttp.ClientSession() as s, s.get(dr.url("/api/certificates", "traefik")) as resp:
        certs = await resp.json()
    assert any(c["domains"] == ["app.test"] and c["source"] == "file" for c in certs), certs
