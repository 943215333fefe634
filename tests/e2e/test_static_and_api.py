"""compose-examples/static-and-api, run as its README says: on one hostname, ``/`` is the static site from
./site (served by the site container) and ``/api/...`` reaches the API container without the prefix
(stripPrefix), each through dockroute."""

from __future__ import annotations

import os
import re
import uuid

import aiohttp

from tests.e2e import compose
from tests.integration.pebble_env import free_port
from tests.polling import wait_for

SITE = compose.EXAMPLES / "static-and-api" / "site"


async def get(port: int, host: str, path: str) -> tuple[int, str] | None:
    """One request to the published port with ``host`` as Host; None while nothing answers yet."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s,
            s.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}, allow_redirects=False) as r,
        ):
            return r.status, await r.text()
    except (TimeoutError, aiohttp.ClientError):
        return None


async def test_site_at_the_root_and_the_api_under_api_without_the_prefix(engine):
    # The README's default hostname (no SITE_HOST). E2E_RUN: the override's constraint, only this run's
    # containers (the engine is shared with other tests, whose routers may claim app.localhost too).
    port, host = free_port(), "app.localhost"
    env = {"HTTP_PORT": str(port), "E2E_RUN": uuid.uuid4().hex}
    assert "SITE_HOST" not in os.environ
    with compose.running("static-and-api", env=env) as project:
        (api,) = project.containers(engine, "api")

        async def answer(path: str) -> str | None:
            got = await get(port, host, path)
            return got[1] if got and got[0] == 200 else None

        # Both containers routed: the site's index at /, the API's answer at /api/...
        index = await wait_for(lambda: answer("/"), timeout=60, interval=0.2)
        assert index == (SITE / "index.html").read_text()
        body = await wait_for(lambda: answer("/api/users/7?full=1"), timeout=60, interval=0.2)
        # The API got the path without /api, and is the api container (not the site).
        assert re.search(r"^GET /users/7\?full=1 HTTP/1\.1$", body, re.M), body
        assert re.search(r"^Hostname: (\S+)$", body, re.M).group(1) == api.id[:12]
        assert re.search(rf"^Host: {re.escape(host)}$", body, re.M), body
        assert re.search(r"^X-Forwarded-Prefix: /api$", body, re.M), body
        # /api alone is the API's root.
        assert re.search(r"^GET / HTTP/1\.1$", await answer("/api"), re.M)
        # PathPrefix is a plain prefix, as the README warns: /apis goes to the API, as /s.
        assert re.search(r"^GET /s HTTP/1\.1$", await answer("/apis"), re.M)
        # A path the site does not have is the site's 404, not the API's answer.
        assert (await get(port, host, "/nope.html"))[0] == 404
        # The site's other files, from the same folder.
        assert await answer("/app.js") == (SITE / "app.js").read_text()
        # Another hostname is nobody's: dockroute's own 404.
        assert (await get(port, "other.localhost", "/"))[0] == 404
        project.assert_still_up(engine, "dockroute")
