"""The path and redirect middlewares through the real process: from the file provider, on an entry point,
and from the labels of a real container (stripPrefix, redirectScheme)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from yarl import URL

from tests.integration import docker_env
from tests.integration.harness import docker_static, routers, wait_for

pytestmark = pytest.mark.integration

MIDDLEWARES = {
    "add": {"addPrefix": {"prefix": "/api"}},
    "strip": {"stripPrefix": {"prefixes": ["/v1", "/app"]}},
    "stripre": {"stripPrefixRegex": {"regex": ["/tenant/[a-z]+"]}},
    "replace": {"replacePath": {"path": "/fixed"}},
    "replacere": {"replacePathRegex": {"regex": "^/old/(.*)", "replacement": "/new/$1"}},
    "https": {"redirectScheme": {"scheme": "https", "permanent": True}},
    "moved": {"redirectRegex": {"regex": "^http://moved\\.test/(.*)", "replacement": "https://example.test/${1}"}},
    "badre": {"replacePathRegex": {"regex": "^/(a+)\\1", "replacement": "/"}},
}  # fmt: skip


def _cfg(backend) -> dict:
    names = ("add", "strip", "stripre", "replace", "replacere", "https", "moved", "badre")
    cfg = routers(*((n, f"Host(`{n}.test`)", "svc") for n in names), services={"svc": [backend.url]})
    for n in names:
        cfg["http"]["routers"][n]["middlewares"] = [n]
    cfg["http"]["middlewares"] = MIDDLEWARES
    return cfg


async def _get(http, dr, host, path, method="GET", headers=None):
    """(status, JSON the backend echoed or None, Location)."""
    url = URL(dr.url(path), encoded=True)  # the path goes out exactly as written
    h = {"Host": host, **(headers or {})}
    async with http.request(method, url, headers=h, allow_redirects=False) as resp:
        body = await resp.json() if resp.headers.get("X-Backend") else None
        return resp.status, body, resp.headers.get("Location")


async def test_path_middlewares_from_the_file_provider(proxy, backends):
    (b,) = await backends("b")
    dr = await proxy(_cfg(b))
    async with aiohttp.ClientSession() as http:
        status, body, _ = await _get(http, dr, "add.test", "/x?q=1")
        assert status == 200 and body["raw_path"] == "/api/x?q=1"

        status, body, _ = await _get(http, dr, "strip.test", "/app/users?q=1")
        assert body["raw_path"] == "/users?q=1" and body["headers"]["X-Forwarded-Prefix"] == "/app"
        status, body, _ = await _get(http, dr, "strip.test", "/v1")
        assert body["raw_path"] == "/" and body["headers"]["X-Forwarded-Prefix"] == "/v1"
        status, body, _ = await _get(http, dr, "strip.test", "/app//evil.test/")
        # slashes merged before routing (Traefik's sanitizePath): never a network-path reference
        assert status == 200 and body["raw_path"] == "/evil.test/"

        status, body, _ = await _get(http, dr, "stripre.test", "/tenant/acme/home")
        assert body["raw_path"] == "/home" and body["headers"]["X-Forwarded-Prefix"] == "/tenant/acme"

        status, body, _ = await _get(http, dr, "replace.test", "/any/thing?q=1")
        assert body["raw_path"] == "/fixed?q=1" and body["headers"]["X-Replaced-Path"] == "/any/thing"

        status, body, _ = await _get(http, dr, "replacere.test", "/old/a%20b")
        assert body["raw_path"] == "/new/a%20b" and body["headers"]["X-Replaced-Path"] == "/old/a%20b"
        status, body, _ = await _get(http, dr, "replacere.test", "/other")
        assert body["raw_path"] == "/other" and "X-Replaced-Path" not in body["headers"]


async def test_redirect_middlewares_from_the_file_provider(proxy, backends):
    (b,) = await backends("b")
    dr = await proxy(_cfg(b))
    port = dr.port
    async with aiohttp.ClientSession() as http:
        status, body, loc = await _get(http, dr, f"https.test:{port}", "/p?q=1")
        assert (status, body, loc) == (301, None, "https://https.test/p?q=1")
        status, _, loc = await _get(http, dr, "https.test", "/p", method="POST")
        assert (status, loc) == (308, "https://https.test/p")
        # an untrusted client cannot talk its way past the redirect
        status, _, loc = await _get(http, dr, "https.test", "/p", headers={"X-Forwarded-Proto": "https"})
        assert status == 301

        status, body, loc = await _get(http, dr, "moved.test", "/a/b?c=d")
        assert (status, body, loc) == (302, None, "https://example.test/a/b?c=d")
        status, _, loc = await _get(http, dr, "moved.test", "/a", method="PUT")
        assert (status, loc) == (307, "https://example.test/a")
    assert b.hits == 0


async def test_a_forwarded_proto_from_a_trusted_proxy_is_believed(proxy, backends, tmp_path):
    (b,) = await backends("b")
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0", "forwardedHeaders": {"trustedIPs": ["127.0.0.1"]}}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "log": {"level": "DEBUG"},
    }
    dr = await proxy(_cfg(b), static=static)
    async with aiohttp.ClientSession() as http:
        status, body, _ = await _get(http, dr, "https.test", "/p", headers={"X-Forwarded-Proto": "https"})
        assert status == 200 and body["raw_path"] == "/p"
        status, _, loc = await _get(http, dr, "https.test", "/p", headers={"X-Forwarded-Proto": "http"})
        assert (status, loc) == (301, "https://https.test/p")


async def test_a_bad_regex_refuses_its_router_only_naming_the_option(proxy, backends):
    (b,) = await backends("b")
    dr = await proxy(_cfg(b))
    async with aiohttp.ClientSession() as http:
        assert (await _get(http, dr, "badre.test", "/aa"))[0] == 404
        assert (await _get(http, dr, "add.test", "/"))[0] == 200
    await wait_for(
        lambda: "middleware badre@file (replacePathRegex): option regex: invalid regex" in dr.log()
    )
    assert "backreferences are not supported" in dr.log()


async def test_redirect_scheme_on_an_entry_point(proxy, backends, tmp_path):
    (b,) = await backends("b")
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0", "http": {"middlewares": ["https@file"]}}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "log": {"level": "DEBUG"},
    }
    dr = await proxy(_cfg(b), static=static)
    async with aiohttp.ClientSession() as http:
        status, body, loc = await _get(http, dr, "add.test", "/x")
        assert (status, body, loc) == (301, None, "https://add.test/x")
    assert b.hits == 0


# -- labels on a real container ---------------------------------------------------------------------------


async def test_stripprefix_and_redirectscheme_from_container_labels(client, containers, proxy):
    name = containers(docker_env.unique("paths"))
    host, secure = f"{name}.test", f"secure-{name}.test"
    labels = {
        f"traefik.http.routers.{name}.rule": f"Host(`{host}`) && PathPrefix(`/app`)",
        f"traefik.http.routers.{name}.middlewares": "strip-app",
        "traefik.http.middlewares.strip-app.stripprefix.prefixes": "/app",
        f"traefik.http.routers.s-{name}.rule": f"Host(`{secure}`)",
        f"traefik.http.routers.s-{name}.middlewares": "to-https",
        "traefik.http.middlewares.to-https.redirectscheme.scheme": "https",
        "traefik.http.middlewares.to-https.redirectscheme.port": "8443",
    }
    dr = await proxy(static=docker_static())
    await asyncio.to_thread(docker_env.run, client, name, labels)
    async with aiohttp.ClientSession() as http:

        async def page() -> tuple[int, str]:
            async with http.get(dr.url("/app/"), headers={"Host": host}) as r:
                return r.status, (await r.text()).strip()

        # busybox httpd serves its page at / only: /app/ reaches it only once stripped
        await wait_for(lambda: _ok(page, name), timeout=10)
        async with http.get(dr.url("/x?y=1"), headers={"Host": secure}, allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == f"https://{secure}:8443/x?y=1"


async def _ok(page, name) -> bool:
    return await page() == (200, name)
