"""The dashboard in a real browser: Debian's headless ``chromium`` driven over the DevTools protocol at a
phone's width (390 px), against the page ``dashboard@internal`` serves.

The page must show the routers, a certificate with its days left and a container that is not routed
with its reason and fix, keep up with the API (polling), fit 390 px without horizontal scrolling in
readable type, run under its own Content-Security-Policy without a violation, and show API data as text
(a router named like markup stays text). Against a fixture API served beside the real handler (every
state the page must draw, exactly), and against the real process under ``api.basePath`` behind a user's
router with ``basicAuth``; test_dashboard_live.py has the real process with containers and a
certificate. The screenshots are kept in the test's tmp dir and copied to ``/tmp``
(``dashboard-390-fixture.png``; the real process's is ``dashboard-390.png``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from router.api.dashboard import dashboard_handler
from router.api.report import certificate_json
from router.api.state import CertificateReport
from tests.exchange_fakes import Recorder, fake_exchange
from tests.integration.harness import served, stop_process, wait_for
from tests.unavailable import unavailable

pytestmark = pytest.mark.integration

WIDTH = 390
SCREENSHOTS = Path("/tmp")  # where the screenshots are copied too
MARKUP_NAME = "<img src=x id=injected>@file"


def chromium_path() -> str:
    """Debian's chromium: skipped on a workstation without it, failed in CI (which installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable("Debian's chromium is not installed (.ci/run installs it)")
    return found


class Browser:
    """One headless Chromium page over the DevTools protocol: commands, evaluation, the console's errors."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.problems: list[str] = []  # exceptions thrown by the page, CSP violations, console errors
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.waiting:
                self.waiting.pop(data["id"]).set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                self.problems.append(json.dumps(data["params"]["exceptionDetails"])[:500])
            elif data.get("method") == "Log.entryAdded" and data["params"]["entry"]["level"] == "error":
                self.problems.append(data["params"]["entry"]["text"])
            elif data.get("method") == "Runtime.consoleAPICalled" and data["params"]["type"] == "error":
                self.problems.append(json.dumps(data["params"]["args"])[:500])

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[n] = fut
        await self.ws.send_json({"id": n, "method": method, "params": params})
        answer = await asyncio.wait_for(fut, 20)
        assert "error" not in answer, answer
        return answer["result"]

    async def eval(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def text(self) -> str:
        return await self.eval("document.body ? document.body.innerText : ''") or ""

    async def screenshot(self, path: Path, height: int | None = None) -> None:
        """The page from its top, ``height`` px of it (default: all of it), 390 px wide at scale 1."""
        height = height or await self.eval("document.documentElement.scrollHeight")
        shot = await self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    """Chromium with a throw-away profile, its first page emulating a 390 px wide phone."""
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen(
        [
            chromium_path(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},844",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "chromium.log", "wb"),  # noqa: SIM115
    )
    try:
        port_file = profile / "DevToolsActivePort"
        await wait_for(
            lambda: port_file.exists() and len(port_file.read_text().splitlines()) >= 2, timeout=30
        )
        port = int(port_file.read_text().splitlines()[0])
        async with aiohttp.ClientSession() as http:

            async def page_url() -> str | None:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                    pages = [t for t in await r.json() if t["type"] == "page"]
                return pages[0]["webSocketDebuggerUrl"] if pages else None

            ws_url = await wait_for(page_url, timeout=15)
            async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                b = Browser(ws)
                for domain in ("Runtime", "Log", "Page"):
                    await b.send(f"{domain}.enable")
                await b.send(
                    "Emulation.setDeviceMetricsOverride",
                    width=WIDTH,
                    height=844,
                    deviceScaleFactor=1,
                    mobile=True,
                )
                try:
                    yield b
                finally:
                    b.reader.cancel()
    finally:
        stop_process(proc, 10)


async def check_layout(b: Browser) -> None:
    """No horizontal scrolling at 390 px, and no text set smaller than 13 px."""
    width = await b.eval("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"the page is {width} px wide at a {WIDTH} px viewport"
    smallest = await b.eval(
        """Math.min(...[...document.querySelectorAll('body *')]
             .filter(e => [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
             .map(e => parseFloat(getComputedStyle(e).fontSize)))"""
    )
    assert smallest >= 13, f"text as small as {smallest} px"


async def keep_screenshots(b: Browser, tmp_path: Path, name: str = "dashboard-390") -> None:
    """The whole page (``<name>.png``) and the first screen a phone shows (``<name>-top.png``) in the
    test's tmp dir, both copied to ``/tmp`` as well (the artifacts to look at)."""
    shot, top = tmp_path / f"{name}.png", tmp_path / f"{name}-top.png"
    await b.screenshot(shot)
    await b.screenshot(top, height=844)
    for f in (shot, top):
        shutil.copyfile(f, SCREENSHOTS / f.name)
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(head[16:20], "big") == WIDTH  # the PNG's width


# ---- the page against a fixture API, served by the real handler --------------------------------------


def fixture_router(name: str, rule: str, service: str, provider: str, **more: Any) -> dict[str, Any]:
    r = {"entryPoints": ["web"], "service": service, "rule": rule, "priority": len(rule)}
    r.update({"status": "enabled", "using": ["web"], "name": name, "provider": provider})
    r.update(more)
    return r


def fixture_service(name: str, url: str, state: str, used_by: str) -> dict[str, Any]:
    """A load balancer of one server: ``serverStatus`` as Traefik's, ``serverStates`` saying why."""
    return {
        "loadBalancer": {"servers": [{"url": url}]},
        "status": "enabled",
        "usedBy": [used_by],
        "serverStatus": {url: state.partition(":")[0]},
        "serverStates": {url: state},
        "name": name,
        "provider": name.partition("@")[2],
        "type": "loadbalancer",
    }


def fixture_layer4(proto: str, name: str, address: str, **router: Any) -> dict[str, dict[str, Any]]:
    """A TCP or UDP router and its service of one server, as ``/api/tcp|udp/...`` list them."""
    ep = router.pop("entryPoints", ["db"])
    provider = name.partition("@")[2]
    r = {"entryPoints": ep, "service": name, "status": "enabled", "using": ep, "name": name}
    r.update({"provider": provider, **router})
    s = {"loadBalancer": {"servers": [{"address": address}]}, "status": "enabled", "usedBy": [name]}
    s.update({"name": name, "provider": provider, "type": "loadbalancer"})
    return {f"{proto}/routers": [r], f"{proto}/services": [s]}


def fixture_container(name: str, reason: str, **more: Any) -> dict[str, Any]:
    c = {"provider": "docker", "name": name, "id": name.encode().hex().ljust(64, "0"), "routed": not reason}
    c.update({"reason": reason, "detail": "", "fix": "", "routers": [], "services": [], "networks": []})
    c.update(more)
    return c


def fixture_certificates(now: float) -> list[dict[str, Any]]:
    """As the real API writes them (``certificate_json``): one served, one asked for whose first order
    failed (not issued yet: pending, no dates)."""
    served = CertificateReport(
        ("whoami.example.com",), "le", "acme", "Pebble Intermediate CA", now + 42 * 86400 + 600, now - 86400
    )
    pending = CertificateReport(
        ("new.example.com",),
        "le",
        "acme",
        "",
        0.0,
        next_renewal=now + 300,
        last_error="urn:ietf:params:acme:error:dns: NXDOMAIN looking up A for new.example.com",
        last_error_at=now - 60,
    )
    return [certificate_json(c, now) for c in (served, pending)]


def fixture_state() -> dict[str, Any]:
    """What the API answers: three routers (one broken, one named like markup), two services, a
    certificate and one not issued yet, a container on a network dockroute cannot reach and a file
    router left out; a TCP passthrough router and a UDP router."""
    pg = fixture_layer4(
        "tcp", "pg@file", "10.0.0.9:5432", rule="HostSNI(`db.example.com`)", tls={"passthrough": True}
    )
    dns = fixture_layer4("udp", "dns@file", "10.0.0.53:53", entryPoints=["dns"])
    return {
        "entrypoints": [{"address": ":80", "name": "web"}, {"address": ":8080", "name": "traefik"}],
        "http/routers": [
            fixture_router(
                "whoami@docker",
                "Host(`whoami.example.com`)",
                "whoami@docker",
                "docker",
                tls={"certResolver": "le"},
            ),
            fixture_router(
                "api@file",
                "Host(`api.example.com`) && PathPrefix(`/v1`)",
                "api@file",
                "file",
                middlewares=["auth@file"],
            ),
            fixture_router(
                MARKUP_NAME,
                "Path(`/x`)",
                "missing@file",
                "file",
                status="disabled",
                error=['the service "missing@file" does not exist'],
            ),
        ],
        "http/services": [
            fixture_service("whoami@docker", "http://172.17.0.2:80", "UP", "whoami@docker"),
            fixture_service(
                "api@file",
                "http://10.0.0.7:8000",
                "DOWN: passive: 3 failures in 10s, last: status 502, back at 2026-01-01T12:00:10Z",
                "api@file",
            ),
        ],
        **pg,
        **dns,
        "certificates": fixture_certificates(time.time()),
        "discovery": {
            "containers": [
                fixture_container("whoami", "", routers=["whoami@docker"], networks=["bridge"]),
                fixture_container(
                    "isolated-app",
                    "unreachable-network",
                    detail="on network backend-only (172.30.0.0/16), which dockroute is not attached to",
                    fix="docker network connect backend-only dockroute",
                    routers=["isolated-app@docker"],
                    networks=["backend-only"],
                ),
                fixture_container("postgres", "disabled", detail="traefik.enable=false", networks=["bridge"]),
            ],
            "routers": [{"name": "broken@file", "provider": "file", "error": ["rule: unknown matcher Hots"]}],
        },
        "version": {"Version": "0.1.0", "Codename": "dockroute"},
    }


@contextlib.asynccontextmanager
async def fixture_site(state: dict[str, Any]) -> AsyncIterator[str]:
    """A test-only server: ``/dashboard/...`` through the real handler (an exchange built per request),
    ``/api/...`` from ``state`` (which the test may change while the page polls)."""
    handler = dashboard_handler("/")

    async def dashboard(request: web.Request) -> web.Response:
        ex = fake_exchange(request.method, request.path_qs, host=request.host, headers=request.headers)
        ex.sink = rec = Recorder()
        await handler(ex)
        return web.Response(status=rec.status, headers=rec.headers, body=rec.body)

    async def api(request: web.Request) -> web.Response:
        key = request.match_info["tail"]
        if key not in state:
            return web.Response(status=404, text="404 page not found\n")
        return web.json_response(state[key], headers={"X-Next-Page": "1"})

    app = web.Application()
    app.router.add_get("/dashboard{tail:.*}", dashboard)
    app.router.add_get("/api/{tail:.*}", api)
    async with served(app) as port:
        yield f"http://127.0.0.1:{port}"


async def test_dashboard_shows_routers_certificates_and_what_is_not_routed(tmp_path: Path) -> None:
    state = fixture_state()
    async with fixture_site(state) as base, browser(tmp_path) as b:
        await b.send("Page.navigate", url=base + "/dashboard")  # redirected to /dashboard/
        await wait_for(lambda: has_text(b, "isolated-app"), timeout=20)
        text = await b.text()
        assert await b.eval("location.pathname") == "/dashboard/"
        for name in ("whoami@docker", "api@file", MARKUP_NAME):
            assert name in text
        assert "Host(`api.example.com`) && PathPrefix(`/v1`)" in text
        assert "auth@file" in text and 'the service "missing@file" does not exist' in text
        certs = await b.eval("document.getElementById('list-certificates').innerText")
        assert "whoami.example.com" in certs and "42 days left" in certs and "Pebble Intermediate CA" in certs
        assert (
            "new.example.com" in certs and "no certificate yet" in certs and "NXDOMAIN looking up A" in certs
        )
        assert "unreachable network" in text and "docker network connect backend-only dockroute" in text
        assert "which dockroute is not attached to" in text
        assert "broken@file" in text and "unknown matcher Hots" in text
        assert "http://10.0.0.7:8000" in text and "DOWN" in text
        services = await b.eval("document.getElementById('list-services').innerText")
        assert "passive: 3 failures in 10s, last: status 502" in services  # why it is down (serverStates)
        badges = await b.eval(
            "[...document.querySelectorAll('#list-routers .badge, #list-services .badge')]"
            ".map(e => e.textContent)"
        )
        assert not {"TCP", "UDP", "1", "2"} & set(badges), badges  # no protocol badge on an HTTP card
        # TCP and UDP routers and services, each with its protocol
        l4 = await b.eval("document.getElementById('list-l4routers').innerText")
        assert "pg@file" in l4 and "HostSNI(`db.example.com`)" in l4 and "passthrough" in l4 and "TCP" in l4
        assert "dns@file" in l4 and "UDP" in l4
        assert await b.eval("document.getElementById('n-l4routers').textContent") == "2"
        l4s = await b.eval("document.getElementById('list-l4services').innerText")
        assert "10.0.0.9:5432" in l4s and "10.0.0.53:53" in l4s
        assert ":8080" in text and "v0.1.0" in text
        # the routed container is not in the "not routed" list; the disabled one is in a group of its own,
        # not counted as a problem
        not_routed = await b.eval("document.getElementById('list-notrouted').innerText")
        assert "whoami" not in not_routed and "Not exposed" in not_routed and "postgres" in not_routed
        assert await b.eval("document.getElementById('n-notrouted').textContent") == "2"
        # API data is text, never markup
        assert await b.eval("document.getElementById('injected')") is None
        await check_layout(b)

        # live: a router added to the API shows up at the next poll
        state["http/routers"].append(dict(state["http/routers"][0], name="late@file", rule="Path(`/late`)"))
        await wait_for(lambda: has_text(b, "late@file"), timeout=15)

        await keep_screenshots(b, tmp_path, "dashboard-390-fixture")
        assert b.problems == []  # no script error, no CSP violation

        # the UDP half of the TCP/UDP list cannot be read (an older API): the TCP half is still shown
        del state["udp/routers"]

        async def tcp_half_only() -> bool:
            l4 = await b.eval("document.getElementById('list-l4routers').innerText")
            return "dns@file" not in l4 and "pg@file" in l4

        await wait_for(tcp_half_only, timeout=15)
        assert all("404 (Not Found)" in p for p in b.problems), b.problems  # the browser's own line


async def has_text(b: Browser, needle: str) -> bool:
    return needle in await b.text()


# ---- the real process: under api.basePath, behind the user's own router with basicAuth --------------


async def test_dashboard_under_a_base_path_behind_basic_auth(backends, proxy, tmp_path: Path) -> None:
    """Also, from the real API: a server down and why (its active check), and TCP and UDP routers."""
    backend, sick = await backends("site", "sick")
    sick.health_status = 500
    users = [f"admin:{bcrypt.hashpw(b'secret', bcrypt.gensalt(rounds=4)).decode()}"]
    dynamic = {
        "http": {
            "routers": {
                "dash": {
                    "rule": "PathPrefix(`/traefik`)",
                    "service": "api@internal",
                    "middlewares": ["auth"],
                },
                "site": {"rule": "Host(`site.test`)", "service": "site"},
            },
            "middlewares": {"auth": {"basicAuth": {"users": users}}},
            "services": {
                "site": {"loadBalancer": {"servers": [{"url": backend.url}]}},
                "sick": {
                    "loadBalancer": {
                        "servers": [{"url": sick.url}],
                        "healthCheck": {"path": "/health", "interval": "1s", "timeout": "1s"},
                    }
                },
            },
        },
        "tcp": {
            "routers": {"pg": {"rule": "HostSNI(`*`)", "entryPoints": ["db"], "service": "pg"}},
            "services": {"pg": {"loadBalancer": {"servers": [{"address": "127.0.0.1:9"}]}}},
        },
        "udp": {
            "routers": {"dns": {"entryPoints": ["dns"], "service": "dns"}},
            "services": {"dns": {"loadBalancer": {"servers": [{"address": "127.0.0.1:9"}]}}},
        },
    }
    dynamic["http"]["routers"]["sick"] = {"rule": "Host(`sick.test`)", "service": "sick"}
    static = {
        "entryPoints": {
            "web": {"address": "127.0.0.1:0"},
            "db": {"address": "127.0.0.1:0"},
            "dns": {"address": "127.0.0.1:0/udp", "transport": {"lifeCycle": {"graceTimeOut": "0s"}}},
        },
        "api": {"basePath": "/traefik/"},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "log": {"level": "DEBUG"},
    }
    dr = await proxy(dynamic, static=static)
    async with aiohttp.ClientSession() as s, s.get(dr.url("/traefik/dashboard/")) as r:
        assert r.status == 401  # the user's basicAuth guards the page
    credentials = base64.b64encode(b"admin:secret").decode()
    async with browser(tmp_path) as b:
        await b.send("Network.enable")
        await b.send("Network.setExtraHTTPHeaders", headers={"Authorization": f"Basic {credentials}"})
        await b.send("Page.navigate", url=dr.url("/traefik/dashboard"))  # redirected to .../dashboard/
        await wait_for(lambda: has_text(b, "site@file"), timeout=20)
        assert await b.eval("location.pathname") == "/traefik/dashboard/"
        routers = await b.eval("document.getElementById('list-routers').innerText")
        assert "dash@file" in routers and "PathPrefix(`/traefik`)" in routers and "\nauth\n" in routers
        services = await b.eval("document.getElementById('list-services').innerText")
        assert backend.url.rstrip("/") in services and "UP" in services

        async def sick_shown() -> bool:  # the first probe fails within a second; the page polls every 3
            shown = await b.eval("document.getElementById('list-services').innerText")
            return "active check failed: status 500" in shown

        await wait_for(sick_shown, timeout=20)
        l4 = await b.eval("document.getElementById('list-l4routers').innerText")
        assert "pg@file" in l4 and "HostSNI(`*`)" in l4 and "TCP" in l4 and "dns@file" in l4 and "UDP" in l4
        l4s = await b.eval("document.getElementById('list-l4services').innerText")
        assert "127.0.0.1:9" in l4s and "pg@file" in l4s and "dns@file" in l4s
        l4_badges = await b.eval(
            "[...document.querySelectorAll('#list-l4services .servers .badge')].map(e => e.textContent)"
        )
        assert l4_badges == ["UP"]  # the TCP server's health; UDP services have none
        api_link = await b.eval("document.getElementById('apilink').getAttribute('href')")
        assert api_link == "/traefik/api/overview"
        await check_layout(b)
        assert b.problems == []
