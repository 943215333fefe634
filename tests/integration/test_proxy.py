"""The real dockroute process against real loopback backends: routing, balancing, streaming, lifecycle."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import re
import socket
import time

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.integration.harness import expected_sha256, raw_exchange, routers, wait_for

pytestmark = pytest.mark.integration


async def get(session: aiohttp.ClientSession, url: str, host: str, **kw) -> tuple[int, dict, bytes]:
    async with session.get(url, headers={"Host": host, **kw.pop("headers", {})}, **kw) as r:
        return r.status, dict(r.headers), await r.read()


async def test_routes_by_host_and_priority_and_404(backends, proxy):
    a, b, api = await backends("app1", "app2", "api")
    dr = await proxy(
        routers(
            ("one", "Host(`app1.test`)", "s1"),
            ("two", "Host(`app2.test`)", "s2"),
            ("api", "Host(`app1.test`) && PathPrefix(`/api`)", "s3"),
            services={"s1": [a.url], "s2": [b.url], "s3": [api.url]},
        )
    )
    async with aiohttp.ClientSession() as s:
        st, h, _ = await get(s, dr.url("/"), "app1.test")
        assert (st, h["X-Backend"]) == (200, "app1")
        st, h, _ = await get(s, dr.url("/x"), "APP2.test.:1234")  # case, trailing dot and port ignored
        assert (st, h["X-Backend"]) == (200, "app2")
        st, h, _ = await get(s, dr.url("/api/users"), "app1.test")
        assert (st, h["X-Backend"]) == (200, "api")
        st, _, body = await get(s, dr.url("/"), "unknown.test")
        assert st == 404 and body == b"404 page not found\n"


async def test_round_robin_passive_health_and_dead_service(backends, proxy):
    bs = await backends("s0", "s1", "s2")
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there any more
    dr = await proxy(
        routers(
            ("lb", "Host(`lb.test`)", "pool"),
            ("dead", "Host(`dead.test`)", "nothing"),
            services={"pool": [b.url for b in bs], "nothing": [f"http://127.0.0.1:{dead_port}"]},
        )
    )
    async with aiohttp.ClientSession() as s:
        seen = collections.Counter()
        for _ in range(30):
            st, h, _ = await get(s, dr.url("/"), "lb.test")
            assert st == 200
            seen[h["X-Backend"]] += 1
        assert all(seen[b.name] >= 7 for b in bs), seen

        await bs[1].stop()
        statuses = collections.Counter()
        for _ in range(30):
            st, h, _ = await get(s, dr.url("/"), "lb.test")
            statuses[(st, h.get("X-Backend"))] += 1
        assert sum(n for (st, _), n in statuses.items() if st == 200) == 30, statuses
        assert "s1" not in {name for (_, name) in statuses}

        t0 = time.monotonic()
        st, _, body = await get(s, dr.url("/"), "dead.test")
        assert st in (502, 503) and time.monotonic() - t0 < 2.0
        assert b"dead.test" not in body
    await wait_for(lambda: "failed to connect" in dr.log() or "out for" in dr.log(), timeout=2)


async def test_large_upload_and_download_stream_with_bounded_memory(backends, proxy):
    (b,) = await backends("big")
    dr = await proxy(routers(("big", "Host(`big.test`)", "svc"), services={"svc": [b.url]}))
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        payload = os.urandom(5 * 1024 * 1024)
        async with s.post(dr.url("/upload"), data=payload, headers={"Host": "big.test"}) as r:
            got = await r.json()
        assert got["length"] == len(payload) and got["sha256"] == hashlib.sha256(payload).hexdigest()

        async def chunks():
            for i in range(0, len(payload), 1 << 18):
                yield payload[i : i + (1 << 18)]

        async with s.post(dr.url("/upload"), data=chunks(), headers={"Host": "big.test"}) as r:
            got = await r.json()  # chunked request body re-framed by the proxy
        assert got["length"] == len(payload) and got["sha256"] == hashlib.sha256(payload).hexdigest()

        rss_before = dr.rss_kib("VmRSS")
        for chunked in ("0", "1"):
            size = 200 * 1024 * 1024
            h = hashlib.sha256()
            n = 0
            async with s.get(
                dr.url(f"/download?size={size}&chunked={chunked}"), headers={"Host": "big.test"}
            ) as r:
                assert r.status == 200
                async for chunk in r.content.iter_chunked(1 << 20):
                    h.update(chunk)
                    n += len(chunk)
            assert n == size and h.hexdigest() == expected_sha256(size)
        growth_mib = (dr.rss_kib("VmHWM") - rss_before) / 1024
        assert growth_mib < 64, f"proxy RSS grew by {growth_mib:.1f} MiB"


async def test_websocket_echo_through_proxy(backends, proxy):
    (b,) = await backends("ws")
    dr = await proxy(routers(("ws", "Host(`ws.test`)", "svc"), services={"svc": [b.url]}))
    async with aiohttp.ClientSession() as s, s.ws_connect(dr.url("/ws"), headers={"Host": "ws.test"}) as ws:
        for i in range(5):
            await ws.send_str(f"hello {i}")
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.data == f"ws:hello {i}"
        await ws.send_bytes(b"\x00\x01" * 40000)
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.data == b"\x00\x01" * 40000


async def test_watched_file_adds_router_and_broken_file_keeps_routes(backends, proxy):
    a, b = await backends("first", "second")
    dr = await proxy(routers(("one", "Host(`one.test`)", "s1"), services={"s1": [a.url]}))
    async with aiohttp.ClientSession() as s:
        st, _, _ = await get(s, dr.url("/"), "two.test")
        assert st == 404
        dr.write_dynamic(
            routers(
                ("one", "Host(`one.test`)", "s1"),
                ("two", "Host(`two.test`)", "s2"),
                services={"s1": [a.url], "s2": [b.url]},
            )
        )
        t0 = time.monotonic()

        async def two_served() -> bool:
            st, h, _ = await get(s, dr.url("/"), "two.test")
            return st == 200 and h["X-Backend"] == "second"

        await wait_for(two_served, timeout=2.0)
        assert time.monotonic() - t0 < 2.0

        dr.write_dynamic("http:\n  routers:\n    one: [unclosed\n")
        await wait_for(lambda: "dynamic.yml" in dr.log() and "keeping" in dr.log(), timeout=3)
        for host, name in (("one.test", "first"), ("two.test", "second")):
            st, h, _ = await get(s, dr.url("/"), host)
            assert (st, h["X-Backend"]) == (200, name)
        assert re.search(r"dynamic\.yml:[34]: invalid YAML", dr.log()), dr.log()


async def test_sigterm_exits_zero_and_lets_inflight_finish(backends, proxy):
    (b,) = await backends("slow")
    dr = await proxy(routers(("slow", "Host(`slow.test`)", "svc"), services={"svc": [b.url]}))
    async with aiohttp.ClientSession() as s:
        inflight = asyncio.create_task(get(s, dr.url("/slow?delay=1"), "slow.test"))
        await wait_for(lambda: b.hits >= 1, timeout=3)
        t0 = time.monotonic()
        dr.terminate()
        st, _, body = await inflight
        assert st == 200 and body == b"slow from slow"
        await wait_for(lambda: dr.proc.poll() is not None, timeout=10)
        assert dr.proc.returncode == 0
        assert time.monotonic() - t0 < 10


async def test_config_change_keeps_open_websocket(backends, proxy):
    a, b = await backends("ws1", "other")
    dr = await proxy(routers(("ws", "Host(`ws.test`)", "svc"), services={"svc": [a.url]}))
    async with aiohttp.ClientSession() as s, s.ws_connect(dr.url("/ws"), headers={"Host": "ws.test"}) as ws:
        await ws.send_str("before")
        assert (await asyncio.wait_for(ws.receive(), 5)).data == "ws1:before"
        inflight = asyncio.create_task(get(s, dr.url("/slow?delay=1"), "ws.test"))
        await wait_for(lambda: a.hits >= 2, timeout=3)
        dr.write_dynamic(
            routers(
                ("ws", "Host(`ws.test`)", "svc"),
                ("new", "Host(`new.test`)", "other"),
                services={"svc": [a.url], "other": [b.url]},
            )
        )

        async def new_served() -> bool:
            st, _, _ = await get(s, dr.url("/"), "new.test")
            return st == 200

        await wait_for(new_served, timeout=3)
        await ws.send_str("after")
        assert (await asyncio.wait_for(ws.receive(), 5)).data == "ws1:after"
        st, _, body = await inflight  # a request in flight across the reload completes normally
        assert (st, body) == (200, b"slow from ws1")


async def test_forwarded_and_hop_by_hop_headers(backends, proxy):
    (b,) = await backends("hdr")
    dr = await proxy(routers(("h", "Host(`h.test`)", "svc"), services={"svc": [b.url]}))
    async with aiohttp.ClientSession() as s:
        st, _, body = await get(
            s,
            dr.url("/p"),
            "h.test",
            headers={
                "X-Forwarded-For": "6.6.6.6",
                "X-Real-Ip": "6.6.6.6",
                "Connection": "keep-alive, X-Secret",
                "X-Secret": "drop me",
                "Keep-Alive": "timeout=5",
                "X-Kept": "yes",
            },
        )
    import json

    seen = CIMultiDict(json.loads(body)["header_list"])
    assert st == 200, seen
    assert seen["X-Forwarded-For"] == "127.0.0.1"  # untrusted client: its own value is discarded
    assert seen["X-Real-Ip"] == "127.0.0.1"
    assert seen["X-Forwarded-Host"] == "h.test"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Port"] == "80"  # Traefik's: no port in Host, plain HTTP
    assert "X-Forwarded-Server" in seen
    assert seen["Host"] == "h.test"
    assert seen["X-Kept"] == "yes"
    assert "X-Secret" not in seen and "Keep-Alive" not in seen


async def test_trusted_ips_keep_incoming_forwarded_headers(backends, proxy, tmp_path):
    (b,) = await backends("hdr")
    static = {
        "entryPoints": {
            "web": {"address": "127.0.0.1:0", "forwardedHeaders": {"trustedIPs": ["127.0.0.0/8"]}}
        },
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
    }
    dr = await proxy(routers(("h", "Host(`h.test`)", "svc"), services={"svc": [b.url]}), static=static)
    async with aiohttp.ClientSession() as s:
        _, _, body = await get(
            s, dr.url("/"), "h.test", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        )
    import json

    seen = CIMultiDict(json.loads(body)["header_list"])
    assert seen["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "https"


async def test_pass_host_header_false_sends_backend_host(backends, proxy):
    (b,) = await backends("nohost")
    cfg = routers(("h", "Host(`h.test`)", "svc"))
    cfg["http"]["services"] = {
        "svc": {"loadBalancer": {"servers": [{"url": b.url}], "passHostHeader": False}}
    }
    dr = await proxy(cfg)
    async with aiohttp.ClientSession() as s:
        _, _, body = await get(s, dr.url("/"), "h.test")
    import json

    assert json.loads(body)["headers"]["Host"] == f"127.0.0.1:{b.port}"


async def test_path_normalised_once_and_forwarded_as_routed(backends, proxy):
    a, b = await backends("public", "admin")
    dr = await proxy(
        routers(
            ("pub", "Host(`n.test`)", "s1"),
            ("admin", "Host(`n.test`) && PathPrefix(`/admin`)", "s2"),
            services={"s1": [a.url], "s2": [b.url]},
        )
    )
    import json

    for raw, backend, forwarded in (
        (b"/public/../admin/x", "admin", "/admin/x"),
        (b"/public/%2e%2e/admin/x", "admin", "/admin/x"),
        (b"/%61dmin/y", "admin", "/admin/y"),
        (b"/a%20b/../c", "public", "/c"),
        (b"//admin//z", "admin", "/admin/z"),  # duplicate slashes merged (Traefik's sanitizePath)
    ):
        resp = await raw_exchange(
            dr.port, b"GET " + raw + b" HTTP/1.1\r\nHost: n.test\r\nConnection: close\r\n\r\n"
        )
        head, _, body = resp.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), (raw, head)
        rec = json.loads(body)
        assert (rec["server"], rec["raw_path"]) == (backend, forwarded), raw


async def test_sanitize_path_false_keeps_dot_segments_and_slashes(backends, proxy, tmp_path):
    """Traefik's ``entryPoints.<ep>.http.sanitizePath: false``: the path is routed and forwarded with its
    duplicate slashes and dot segments (apps that carry URLs or keys in the path, imgproxy-style), only
    its escapes normalised; by default they are removed (the test above)."""
    (b,) = await backends("raw")
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0", "http": {"sanitizePath": False}}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
    }
    dr = await proxy(routers(("r", "Host(`n.test`)", "s"), services={"s": [b.url]}), static=static)
    import json

    for raw in (b"/proxy/http://x//y", b"/a/../b/./c", b"/%61//b"):
        resp = await raw_exchange(
            dr.port, b"GET " + raw + b" HTTP/1.1\r\nHost: n.test\r\nConnection: close\r\n\r\n"
        )
        head, _, body = resp.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), (raw, head)
        assert json.loads(body)["raw_path"] == raw.replace(b"%61", b"a").decode(), raw
    assert "sanitizePath" not in dr.log()  # acted on, not reported as ignored


async def test_bad_request_is_not_echoed_and_slow_headers_are_cut(backends, proxy, tmp_path):
    (b,) = await backends("x")
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
    }
    dr = await proxy(routers(("x", "Host(`x.test`)", "svc"), services={"svc": [b.url]}), static=static)
    resp = await raw_exchange(dr.port, b"GET /<script>SECRET HTTP/1.1\r\nHost: x.test\r\nBad Header\r\n\r\n")
    assert resp.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400"))
    assert b"SECRET" not in resp and b"script" not in resp
    resp = await raw_exchange(dr.port, b"GET /%zz HTTP/1.1\r\nHost: x.test\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400") and b"%zz" not in resp
    assert "Traceback" not in dr.log()


async def test_response_header_timeout_gives_504(backends, proxy, tmp_path):
    (b,) = await backends("slow")
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "serversTransport": {"forwardingTimeouts": {"responseHeaderTimeout": "300ms"}},
        "accessLog": {"filePath": str(tmp_path / "access.log")},
    }
    dr = await proxy(routers(("s", "Host(`s.test`)", "svc"), services={"svc": [b.url]}), static=static)
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        st, _, body = await get(s, dr.url("/slow?delay=3"), "s.test")
        assert st == 504 and body == b"504 Gateway Timeout\n"
        assert time.monotonic() - t0 < 2
    await wait_for(
        lambda: (tmp_path / "access.log").exists() and "504" in (tmp_path / "access.log").read_text()
    )
    assert "no response headers" in (tmp_path / "access.log").read_text()


async def test_entrypoint_redirect_keeps_path_and_query(proxy, tmp_path):
    static = {
        "entryPoints": {
            "web": {
                "address": "127.0.0.1:0",
                "http": {"redirections": {"entryPoint": {"to": "websecure", "scheme": "https"}}},
            },
            "websecure": {"address": "127.0.0.1:0"},
        },
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
    }
    dr = await proxy({}, static=static)
    async with aiohttp.ClientSession() as s:
        async with s.get(dr.url("/a/b?x=1&y=2"), headers={"Host": "site.test"}, allow_redirects=False) as r:
            assert r.status == 301
            assert r.headers["Location"] == f"https://site.test:{dr.ports['websecure']}/a/b?x=1&y=2"
        async with s.post(dr.url("/form"), headers={"Host": "site.test"}, allow_redirects=False) as r:
            assert r.status == 308
            assert r.headers["Location"].endswith("/form")


async def test_sticky_cookie_pins_client_to_one_server(backends, proxy):
    bs = await backends("a", "b", "c")
    cfg = routers(("st", "Host(`st.test`)", "svc"))
    cfg["http"]["services"] = {
        "svc": {
            "loadBalancer": {
                "servers": [{"url": b.url} for b in bs],
                "sticky": {"cookie": {"name": "srv", "httpOnly": True}},
            }
        }
    }
    dr = await proxy(cfg)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async with s.get(dr.url("/"), headers={"Host": "st.test"}) as r:
            first = r.headers["X-Backend"]
            assert "srv=" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
        for _ in range(6):
            _, h, _ = await get(s, dr.url("/"), "st.test")
            assert h["X-Backend"] == first


async def test_active_health_check_takes_server_out_and_back(backends, proxy):
    good, flaky = await backends("good", "flaky")
    cfg = routers(("hc", "Host(`hc.test`)", "svc"))
    cfg["http"]["services"] = {
        "svc": {
            "loadBalancer": {
                "servers": [{"url": good.url}, {"url": flaky.url}],
                "healthCheck": {"path": "/health", "interval": "200ms", "timeout": "1s"},
            }
        }
    }
    dr = await proxy(cfg)
    flaky.health_status = 500
    async with aiohttp.ClientSession() as s:

        async def only_good() -> bool:
            names = set()
            for _ in range(6):
                st, h, _ = await get(s, dr.url("/"), "hc.test")
                names.add(h.get("X-Backend", f"status {st}"))  # a 503 while a slow check runs: not yet
            return names == {"good"}

        await wait_for(only_good, timeout=5)
        flaky.health_status = 200

        async def both() -> bool:
            names = set()
            for _ in range(6):
                st, h, _ = await get(s, dr.url("/"), "hc.test")
                names.add(h.get("X-Backend", f"status {st}"))
            return names == {"good", "flaky"}

        await wait_for(both, timeout=5)


async def test_embedded_default_starts_and_summarises(tmp_path):
    """No configuration file at all: entry point `web` (address from a flag, since :80 needs root) and a
    start-up summary of what listens and which providers are on."""
    import subprocess
    import sys

    from tests.integration.harness import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKROUTE_", "TRAEFIK_"))}
    env["PYTHONPATH"] = str(ROOT)
    log_path = tmp_path / "log"
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockroute", "--entrypoints.web.address=127.0.0.1:0"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    try:
        text = await wait_for(
            lambda: "configuration applied" in log_path.read_text() and log_path.read_text(), timeout=15
        )
        m = re.search(r"entrypoint web listening on 127\.0\.0\.1:(\d+)", text)
        assert m, text
        assert "provider file: off" in text
        assert "provider docker:" in text
        async with aiohttp.ClientSession() as s:
            st, _, body = await get(s, f"http://127.0.0.1:{m.group(1)}/", "anything.test")
        assert st == 404 and body == b"404 page not found\n"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


async def test_client_leaving_before_the_response_is_quiet(backends, proxy):
    """A client that hangs up while the backend is still answering must not produce errors or tracebacks
    (uvloop raises on writes to a closed transport)."""
    (b,) = await backends("slow")
    dr = await proxy(routers(("s", "Host(`s.test`)", "svc"), services={"svc": [b.url]}))
    for i in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
        writer.write(b"GET /slow?delay=0.2 HTTP/1.1\r\nHost: s.test\r\n\r\n")
        await writer.drain()
        await wait_for(lambda i=i: b.hits >= i + 1, timeout=3)
        writer.close()
    await wait_for(lambda: b.slow_done >= 3, timeout=5)
    async with aiohttp.ClientSession() as s:
        st, _, _ = await get(s, dr.url("/"), "s.test")
    assert st == 200
    assert "Traceback" not in dr.log() and " ERROR " not in dr.log(), dr.log()


async def test_request_headers_must_arrive_in_time(backends, proxy, tmp_path):
    """A client that trickles its headers (slowloris) is cut off after readTimeout, not aiohttp's hour;
    an idle keep-alive connection is not cut by that deadline."""
    (b,) = await backends("x")
    static = {
        "entryPoints": {
            "web": {"address": "127.0.0.1:0", "transport": {"respondingTimeouts": {"readTimeout": "1s"}}}
        },
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "log": {"level": "DEBUG"},
    }
    dr = await proxy(routers(("x", "Host(`x.test`)", "svc"), services={"svc": [b.url]}), static=static)
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    t0 = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nHost: x.test\r\n")
    await writer.drain()
    closed = False
    for _ in range(40):  # keep trickling one header line every 100 ms, never finishing
        try:
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(100), 0.1)
            if data == b"":
                closed = True
                break
        except TimeoutError:
            continue
        except ConnectionError:
            closed = True
            break
    assert closed, "slow headers were never cut"
    assert time.monotonic() - t0 < 3
    writer.close()
    # The deadline closes quietly: one debug line, no traceback from the timer callback.
    await wait_for(lambda: "request headers not received in time" in dr.log())
    assert "Traceback" not in dr.log() and "Exception in callback" not in dr.log(), dr.log()
