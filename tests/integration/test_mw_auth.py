"""The auth middlewares through the real process: basicAuth with bcrypt (from a file config, from a
usersFile that changes, from container labels), digestAuth's whole handshake, and forwardAuth against a
real auth server started here."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from tests.integration import docker_env
from tests.integration.harness import docker_static, routers, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "s3cret pass"
BCRYPT_LINE = "alice:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode().replace(
    "$2b$", "$2y$", 1
)
HOST = {"Host": "app.test"}


def _basic(user: str, password: str) -> dict[str, str]:
    return {**HOST, "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _cfg(backend, middlewares: dict) -> dict:
    cfg = routers(("app", "Host(`app.test`)", "svc"), services={"svc": [backend.url]})
    cfg["http"]["routers"]["app"]["middlewares"] = ["auth"]
    cfg["http"]["middlewares"] = {"auth": middlewares}
    return cfg


async def _get(http, url, headers, **kw) -> tuple[int, dict, str]:
    async with http.get(url, headers=headers, allow_redirects=False, **kw) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def test_basic_auth_with_a_bcrypt_line(proxy, backends):
    (b,) = await backends("b")
    auth = {"basicAuth": {"users": [BCRYPT_LINE], "headerField": "X-Auth-User", "removeHeader": True}}
    dr = await proxy(_cfg(b, auth))
    async with aiohttp.ClientSession() as http:
        status, headers, body = await _get(http, dr.url("/x"), HOST)
        assert (status, headers["WWW-Authenticate"], body) == (
            401,
            'Basic realm="traefik"',
            "401 Unauthorized\n",
        )
        status, headers, _ = await _get(http, dr.url("/x"), _basic("alice", "wrong"))
        assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="traefik"'
        assert (await _get(http, dr.url("/x"), _basic("mallory", PASSWORD)))[0] == 401
        assert b.hits == 0
        for _ in range(2):  # the second one from the verification cache
            status, _, body = await _get(
                http, dr.url("/x"), {**_basic("alice", PASSWORD), "X-Auth-User": "forged"}
            )
            assert status == 200
        seen = b.requests[-1]["headers"]
        assert seen["X-Auth-User"] == "alice" and "Authorization" not in seen


async def test_users_file_change_is_picked_up(proxy, backends, tmp_path):
    (b,) = await backends("b")
    users = tmp_path / "htpasswd"
    users.write_text(f"# users\n{BCRYPT_LINE}\n")
    dr = await proxy(_cfg(b, {"basicAuth": {"usersFile": str(users), "realm": "office"}}))
    async with aiohttp.ClientSession() as http:
        status, headers, _ = await _get(http, dr.url("/"), HOST)
        assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="office"'
        assert (await _get(http, dr.url("/"), _basic("alice", PASSWORD)))[0] == 200
        bob = "bob:" + bcrypt.hashpw(b"bobpw", bcrypt.gensalt(4)).decode()
        tmp = users.with_suffix(".new")
        tmp.write_text(bob + "\n")
        os.replace(tmp, users)

        async def switched() -> bool:
            return (await _get(http, dr.url("/"), _basic("bob", "bobpw")))[0] == 200

        await wait_for(switched, timeout=10)
        assert (await _get(http, dr.url("/"), _basic("alice", PASSWORD)))[0] == 401  # removed: refused
        users.unlink()  # deleted: its users are revoked (fail closed), with one log line naming it

        async def refused(user: str, password: str) -> bool:
            return (await _get(http, dr.url("/"), _basic(user, password)))[0] == 401

        await wait_for(lambda: refused("bob", "bobpw"), timeout=10)  # the file is looked at by requests
        assert f"usersFile {users}: No such file" in dr.log()
        users.write_text(bob + "\n")
        await wait_for(switched, timeout=10)
        carol = "carol:" + bcrypt.hashpw(b"carolpw", bcrypt.gensalt(4)).decode()
        tmp.write_text(f"{carol}\nmallory:plain-text\n")  # bob removed in an edit that broke a line
        os.replace(tmp, users)
        await wait_for(lambda: refused("bob", "bobpw"), timeout=10)
        assert await refused("carol", "carolpw") and f"usersFile {users} line 2: user 'mallory'" in dr.log()


def _digest_header(
    challenge: str, user: str, password: str, uri: str, nc: int, realm: str = "traefik"
) -> str:
    params = dict(p.strip().split("=", 1) for p in challenge[len("Digest ") :].split(","))
    nonce, opaque = params["nonce"].strip('"'), params["opaque"].strip('"')
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"GET:{uri}".encode()).hexdigest()
    cnonce, ncs = "0a4f113b", f"{nc:08x}"
    response = hashlib.md5(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5, '
        f'response="{response}", opaque="{opaque}", qop=auth, nc={ncs}, cnonce="{cnonce}"'
    )


async def test_digest_auth_handshake(proxy, backends):
    (b,) = await backends("b")
    ha1 = hashlib.md5(b"alice:traefik:pw").hexdigest()
    dr = await proxy(_cfg(b, {"digestAuth": {"users": [f"alice:traefik:{ha1}"], "headerField": "X-User"}}))
    async with aiohttp.ClientSession() as http:
        status, headers, _ = await _get(http, dr.url("/d?x=1"), HOST)
        challenge = headers["WWW-Authenticate"]
        assert status == 401 and challenge.startswith('Digest realm="traefik", nonce="')
        assert 'qop="auth"' in challenge and 'algorithm="MD5"' in challenge
        auth = _digest_header(challenge, "alice", "pw", "/d?x=1", 1)
        status, _, _ = await _get(http, dr.url("/d?x=1"), {**HOST, "Authorization": auth})
        assert status == 200 and b.requests[-1]["headers"]["X-User"] == "alice"
        # the same nonce count again is a replay
        assert (await _get(http, dr.url("/d?x=1"), {**HOST, "Authorization": auth}))[0] == 401
        auth2 = _digest_header(challenge, "alice", "pw", "/d?x=1", 2)
        assert (await _get(http, dr.url("/d?x=1"), {**HOST, "Authorization": auth2}))[0] == 200
        bad = _digest_header(challenge, "alice", "wrong", "/d?x=1", 3)
        assert (await _get(http, dr.url("/d?x=1"), {**HOST, "Authorization": bad}))[0] == 401
        other_uri = _digest_header(challenge, "alice", "pw", "/elsewhere", 4)
        assert (await _get(http, dr.url("/d?x=1"), {**HOST, "Authorization": other_uri}))[0] == 401
        # a nonce the proxy never issued, with a right answer: stale, so the browser retries silently
        forged = _digest_header(
            'Digest nonce="00", opaque="' + challenge.split('opaque="')[1], "alice", "pw", "/d", 1
        )
        status, headers, _ = await _get(http, dr.url("/d"), {**HOST, "Authorization": forged})
        assert status == 401 and 'stale="true"' in headers["WWW-Authenticate"]
    assert b.hits == 2


class AuthServer:
    """A real auth server: answers by the request's ``X-Test-Auth`` header and records what it got."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> AuthServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(
            {**request.headers, "_method": request.method, "_path": request.path_qs, "_body": body}
        )
        mode = request.headers.get("X-Test-Auth", "ok")
        if mode == "cookies":
            resp = web.Response(text="fine")
            resp.set_cookie("auth_session", "tok")
            resp.set_cookie("not_listed", "x")
            return resp
        if mode == "big":
            return web.Response(status=403, body=b"x" * 5000)
        if mode == "ok":
            return web.Response(
                text="fine", headers={"Remote-User": "alice", "X-Auth-Groups": "admins", "X-Secret": "no"}
            )
        if mode == "401":
            return web.Response(
                status=401,
                text="who are you?",
                headers={"WWW-Authenticate": 'Bearer realm="x"', "X-Reason": "nope"},
            )
        if mode == "403":
            return web.Response(status=403, text="forbidden here", content_type="text/html")
        return web.Response(status=302, headers={"Location": "/login?rd=1"})

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_forward_auth_against_a_real_auth_server(proxy, backends):
    (b,) = await backends("b")
    server = await AuthServer().start()
    try:
        address = f"http://127.0.0.1:{server.port}/api/verify?x=1"
        auth = {
            "forwardAuth": {
                "address": address,
                "authResponseHeaders": ["Remote-User"],
                "authResponseHeadersRegex": "^X-Auth-",
            }
        }
        dr = await proxy(_cfg(b, auth))
        async with aiohttp.ClientSession() as http:
            forged = {**HOST, "Remote-User": "mallory", "X-Auth-Role": "root", "Cookie": "session=1"}
            status, _, _ = await _get(http, dr.url("/app/page?q=2"), forged)
            assert status == 200
            got = b.requests[-1]["headers"]
            assert got["Remote-User"] == "alice" and got["X-Auth-Groups"] == "admins"
            assert "X-Auth-Role" not in got and "X-Secret" not in got
            asked = server.seen[-1]
            assert asked["_method"] == "GET" and asked["_path"] == "/api/verify?x=1"
            assert asked["X-Forwarded-Method"] == "GET" and asked["X-Forwarded-Proto"] == "http"
            assert asked["X-Forwarded-Host"] == "app.test" and asked["X-Forwarded-Uri"] == "/app/page?q=2"
            assert asked["X-Forwarded-For"] == "127.0.0.1" and asked["Cookie"] == "session=1"

            hits = b.hits
            status, headers, body = await _get(http, dr.url("/"), {**HOST, "X-Test-Auth": "401"})
            assert (status, body, headers["WWW-Authenticate"], headers["X-Reason"]) == (
                401,
                "who are you?",
                'Bearer realm="x"',
                "nope",
            )
            status, headers, body = await _get(http, dr.url("/"), {**HOST, "X-Test-Auth": "403"})
            assert (status, body) == (403, "forbidden here") and headers["Content-Type"].startswith(
                "text/html"
            )
            status, headers, _ = await _get(http, dr.url("/"), {**HOST, "X-Test-Auth": "302"})
            assert status == 302 and headers["Location"] == f"http://127.0.0.1:{server.port}/login?rd=1"
            assert b.hits == hits  # the backend never saw a refused request
    finally:
        await server.stop()
    async with aiohttp.ClientSession() as http:  # the auth server gone: 500, and one log line
        assert (await _get(http, dr.url("/"), HOST))[0] == 500
    await wait_for(lambda: "cannot ask the auth server" in dr.log())


async def test_basic_auth_from_container_labels(client, containers, proxy):
    name = containers(docker_env.unique("auth"))
    host = f"{name}.test"
    dr = await proxy(static=docker_static())
    labels = {  # a bcrypt line's "$" needs no escaping in a label set through the API (compose: "$$")
        f"traefik.http.routers.{name}.rule": f"Host(`{host}`)",
        f"traefik.http.routers.{name}.middlewares": f"{name}-auth",
        f"traefik.http.middlewares.{name}-auth.basicauth.users": BCRYPT_LINE,
        f"traefik.http.middlewares.{name}-auth.basicauth.realm": "containers",
    }
    await asyncio.to_thread(docker_env.run, client, name, labels)
    async with aiohttp.ClientSession() as http:

        async def guarded() -> bool:
            return (await _get(http, dr.url("/"), {"Host": host}))[0] == 401

        await wait_for(guarded, timeout=10)
        status, headers, _ = await _get(http, dr.url("/"), {"Host": host})
        assert headers["WWW-Authenticate"] == 'Basic realm="containers"'
        status, _, body = await _get(http, dr.url("/"), {**_basic("alice", PASSWORD), "Host": host})
        assert status == 200 and body.strip() == name


async def test_forward_auth_body_method_cookies_signin_and_limits(proxy, backends):
    (b,) = await backends("b")
    server = await AuthServer().start()
    try:
        base = {
            "address": f"http://127.0.0.1:{server.port}/auth",
            "trustForwardHeader": False,
            "addAuthCookiesToResponse": ["auth_session"],
            "maxResponseBodySize": 1000,
        }
        cfg = _cfg(
            b,
            {"forwardAuth": {**base, "forwardBody": True, "maxBodySize": 100, "preserveRequestMethod": True}},
        )
        cfg["http"]["routers"]["signin"] = {
            "rule": "Host(`signin.test`)",
            "service": "svc",
            "middlewares": ["si"],
        }
        cfg["http"]["middlewares"]["si"] = {
            "forwardAuth": {**base, "authSigninURL": "https://login.test/", "preserveLocationHeader": True}
        }
        dr = await proxy(cfg)
        async with aiohttp.ClientSession() as http:
            async with http.post(
                dr.url("/p"), data=b"hello", headers={**HOST, "X-Test-Auth": "cookies"}
            ) as resp:
                assert resp.status == 200
                cookies = resp.headers.getall("Set-Cookie")
                assert [c.split("=")[0] for c in cookies] == ["auth_session"]
            asked = server.seen[-1]
            assert asked["_method"] == "POST" and asked["_body"] == b"hello"
            assert (
                b.requests[-1]["body_len"] == 5
            )  # the body read for the auth server still reaches the backend
            async with http.post(dr.url("/p"), data=b"z" * 101, headers=HOST) as resp:
                assert resp.status == 401  # over maxBodySize
            assert (await _get(http, dr.url("/"), {**HOST, "X-Test-Auth": "big"}))[0] == 401  # over the limit
            status, headers, _ = await _get(http, dr.url("/"), {"Host": "signin.test", "X-Test-Auth": "401"})
            assert status == 302 and headers["Location"] == "https://login.test/"
            status, headers, _ = await _get(http, dr.url("/"), {"Host": "signin.test", "X-Test-Auth": "302"})
            assert status == 302 and headers["Location"] == "/login?rd=1"  # preserved as sent
    finally:
        await server.stop()


async def test_a_slow_bcrypt_check_does_not_stall_other_requests(proxy, backends):
    (b,) = await backends("b")
    slow = "alice:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(13)).decode()  # ~0.5 s per check here
    cfg = _cfg(b, {"basicAuth": {"users": [slow]}})
    cfg["http"]["routers"]["open"] = {"rule": "Host(`open.test`)", "service": "svc"}
    dr = await proxy(cfg)
    async with aiohttp.ClientSession() as http:
        checking = asyncio.create_task(_get(http, dr.url("/"), _basic("alice", "pw")))
        for _ in range(5):  # served while the check runs in a worker thread
            assert (await _get(http, dr.url("/"), {"Host": "open.test"}))[0] == 200
        assert not checking.done()
        assert (await checking)[0] == 200


async def test_forward_auth_never_carries_one_clients_cookies_to_another(proxy, backends):
    """The auth server's Set-Cookie for one client must not be sent on the next client's auth request
    (a client cookie jar would log anyone in as the last user). The address is a name, not an IP:
    aiohttp's jar keeps cookies only for names, which is what real setups use (http://authelia:9091)."""
    (b,) = await backends("b")

    async def verify(request: web.Request) -> web.Response:
        session = request.cookies.get("session")
        if request.headers.get("X-Login") == "alice":
            resp = web.Response(text="hello alice", headers={"Remote-User": "alice"})
            resp.set_cookie("session", "alice")
            return resp
        if session == "alice":
            return web.Response(text="ok", headers={"Remote-User": "alice"})
        return web.Response(status=401, text="who are you?")

    app = web.Application()
    app.router.add_get("/verify", verify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        auth = {
            "forwardAuth": {
                "address": f"http://localhost:{port}/verify",
                "authResponseHeaders": ["Remote-User"],
            }
        }
        dr = await proxy(_cfg(b, auth))
        async with aiohttp.ClientSession() as alice, aiohttp.ClientSession() as nobody:
            assert (await _get(alice, dr.url("/"), {**HOST, "X-Login": "alice"}))[0] == 200
            status, _, body = await _get(nobody, dr.url("/"), HOST)
            assert (status, body) == (401, "who are you?")
    finally:
        await runner.cleanup()


async def test_a_flood_of_abandoned_bad_logins_does_not_delay_a_real_one(proxy, backends):
    """100 bad logins whose clients hang up used to queue 100 bcrypt checks (about 12 s here) before a
    real login's; now at most MAX_PENDING wait (the rest get 503 with Retry-After: 1) and the abandoned
    ones that had not started are dropped."""
    (b,) = await backends("b")
    slow = "alice:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(12)).decode()  # ~0.25 s per check here
    dr = await proxy(_cfg(b, {"basicAuth": {"users": [slow]}}))
    statuses: list[tuple[int, str | None]] = []

    async def bad_login(http, i: int) -> None:
        try:
            async with asyncio.timeout(0.3):  # then the client hangs up
                status, headers, _ = await _get(http, dr.url("/"), _basic("alice", f"wrong{i}"))
                statuses.append((status, headers.get("Retry-After")))
        except TimeoutError:
            pass

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await asyncio.gather(*(bad_login(http, i) for i in range(100)))
        assert (503, "1") in statuses
        assert "password checks pending" in dr.log()
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await _get(http, dr.url("/"), _basic("alice", "pw")))[0] == 200
        assert loop.time() - started < 5.0  # behind at most the few checks already running
