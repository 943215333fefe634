"""The ``headers`` and ``contentType`` middlewares through the real ``dockroute`` process (file provider):
custom headers both ways, security headers (HSTS on HTTPS only), CORS with the preflight answered by the
proxy, response headers on answers the proxy makes itself, and Content-Type detection."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme
from multidict import CIMultiDict

from tests.integration.harness import routers

pytestmark = pytest.mark.integration


async def request(
    port: int,
    host: str,
    path: str = "/",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    ctx: ssl.SSLContext | None = None,
) -> tuple[int, CIMultiDict, bytes]:
    """One request on its own connection (over TLS with SNI ``host`` when ``ctx``): status, headers,
    body (read to the close)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=host if ctx else None
    )
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    out: CIMultiDict = CIMultiDict()
    for line in header_lines:
        name, _, value = line.partition(":")
        out.add(name.strip(), value.strip())
    return int(status_line.split()[1]), out, body


def _cfg(backend, options: dict, *, extra: dict | None = None) -> dict:
    cfg = routers(("app", "Host(`app.test`)", "svc"), services={"svc": [backend.url]})
    cfg["http"]["routers"]["app"]["middlewares"] = ["h"]
    cfg["http"]["middlewares"] = {"h": {"headers": options}}
    for name, value in (extra or {}).items():
        cfg["http"][name].update(value)
    return cfg


async def test_custom_headers_are_set_and_removed_both_ways(proxy, backends):
    (b,) = await backends("b")
    options = {
        "customRequestHeaders": {"X-Script-Name": "test", "User-Agent": "", "X-Forwarded-Proto": "https"},
        "customResponseHeaders": {"X-Custom-Response": "yes", "X-Backend": ""},
    }
    dr = await proxy(_cfg(b, options))
    status, headers, body = await request(dr.port, "app.test", headers={"User-Agent": "curl/8"})
    assert status == 200
    got = b.requests[-1]
    assert got["headers"]["X-Script-Name"] == "test"
    assert "User-Agent" not in got["headers"]
    # the proxy's own X-Forwarded-Proto gives way to the middleware's: one line, the configured value
    assert [v for k, v in got["header_list"] if k.lower() == "x-forwarded-proto"] == ["https"]
    assert headers["X-Custom-Response"] == "yes"
    assert "X-Backend" not in headers  # the backend sent it; the empty value removed it


async def test_x_forwarded_for_set_gets_the_client_appended_and_empty_removes_it(proxy, backends):
    (b,) = await backends("b")
    extra = {
        "routers": {"gone": {"rule": "Host(`gone.test`)", "service": "svc", "middlewares": ["drop"]}},
        "middlewares": {"drop": {"headers": {"customRequestHeaders": {"X-Forwarded-For": ""}}}},
    }
    dr = await proxy(_cfg(b, {"customRequestHeaders": {"X-Forwarded-For": "203.0.113.7"}}, extra=extra))
    await request(dr.port, "app.test")
    assert [v for k, v in b.requests[-1]["header_list"] if k.lower() == "x-forwarded-for"] == [
        "203.0.113.7, 127.0.0.1"  # as Go's proxy: the value set, then the client's address
    ]
    await request(dr.port, "gone.test")
    assert "X-Forwarded-For" not in b.requests[-1]["headers"]
    forwarded = CIMultiDict(b.requests[-1]["header_list"])
    assert forwarded["X-Real-Ip"] == "127.0.0.1" and forwarded["X-Forwarded-Proto"] == "http"  # kept


async def test_security_headers_and_hsts_on_https_only(proxy, backends, tmp_path):
    (b,) = await backends("b")
    ca = trustme.CA()
    leaf = ca.issue_cert("app.test")
    cert_file, key_file = tmp_path / "app.pem", tmp_path / "app.key"
    cert_file.write_bytes(b"".join(x.bytes() for x in leaf.cert_chain_pems))
    key_file.write_bytes(leaf.private_key_pem.bytes())
    options = {
        "stsSeconds": 31536000,
        "stsIncludeSubdomains": True,
        "stsPreload": True,
        "frameDeny": True,
        "contentTypeNosniff": True,
        "browserXssFilter": True,
        "referrerPolicy": "no-referrer",
        "contentSecurityPolicy": "default-src 'self'",
        "permissionsPolicy": "camera=()",
    }
    cfg = _cfg(b, options)
    cfg["http"]["routers"]["secure"] = {
        "rule": "Host(`app.test`)",
        "service": "svc",
        "middlewares": ["h"],
        "tls": {},
    }
    cfg["tls"] = {"certificates": [{"certFile": str(cert_file), "keyFile": str(key_file)}]}
    dr = await proxy(cfg)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    status, secure, _ = await request(dr.port, "app.test", ctx=ctx)
    assert status == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    status, plain, _ = await request(dr.port, "app.test")
    assert status == 200
    assert "Strict-Transport-Security" not in plain  # HSTS over plain HTTP means nothing: never sent
    for h in (secure, plain):
        assert h["X-Frame-Options"] == "DENY"
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["X-XSS-Protection"] == "1; mode=block"
        assert h["Referrer-Policy"] == "no-referrer"
        assert h["Content-Security-Policy"] == "default-src 'self'"
        assert h["Permissions-Policy"] == "camera=()"


async def test_cors_preflight_is_answered_by_the_proxy_and_simple_requests_echo_the_origin(proxy, backends):
    (b,) = await backends("b")
    options = {
        "accessControlAllowMethods": ["GET", "OPTIONS", "PUT"],
        "accessControlAllowHeaders": ["X-Token"],
        "accessControlAllowOriginList": ["https://a.example"],
        "accessControlAllowOriginListRegex": [r"^https://[a-z]+\.b\.example$"],
        "accessControlMaxAge": 100,
        "accessControlExposeHeaders": ["X-Backend"],
        "addVaryHeader": True,
    }
    dr = await proxy(_cfg(b, options))
    preflight = {"Origin": "https://a.example", "Access-Control-Request-Method": "PUT"}
    status, headers, body = await request(dr.port, "app.test", method="OPTIONS", headers=preflight)
    assert status == 200 and body == b""
    assert headers["Access-Control-Allow-Origin"] == "https://a.example"
    assert headers["Access-Control-Allow-Methods"] == "GET,OPTIONS,PUT"
    assert headers["Access-Control-Allow-Headers"] == "X-Token"
    assert headers["Access-Control-Max-Age"] == "100"
    assert b.hits == 0  # answered by the proxy: the backend never saw it
    # an OPTIONS that is not a preflight goes to the backend
    status, _, _ = await request(dr.port, "app.test", method="OPTIONS")
    assert status == 200 and b.hits == 1

    status, headers, _ = await request(dr.port, "app.test", headers={"Origin": "https://x.b.example"})
    assert headers["Access-Control-Allow-Origin"] == "https://x.b.example"  # matched by the regex
    assert headers["Access-Control-Expose-Headers"] == "X-Backend"
    assert headers["Vary"] == "Origin"
    status, headers, _ = await request(dr.port, "app.test", headers={"Origin": "https://evil.example"})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


async def test_star_origin_with_credentials_echoes_the_origin(proxy, backends):
    (b,) = await backends("b")
    options = {"accessControlAllowOriginList": ["*"], "accessControlAllowCredentials": True}
    dr = await proxy(_cfg(b, options))
    _, headers, _ = await request(dr.port, "app.test", headers={"Origin": "https://c.example"})
    assert headers["Access-Control-Allow-Origin"] == "https://c.example"
    assert headers["Access-Control-Allow-Credentials"] == "true"


async def test_response_headers_reach_answers_the_proxy_makes_and_bad_hosts_are_refused(proxy, backends):
    (b,) = await backends("b")
    options = {
        "frameDeny": True,
        "customResponseHeaders": {"X-Custom": "1"},
        "allowedHosts": ["app.test", "down.test"],
    }
    extra = {
        "routers": {
            "down": {"rule": "Host(`down.test`)", "service": "gone", "middlewares": ["h"]},
            "other": {"rule": "Host(`other.test`)", "service": "svc", "middlewares": ["h"]},
        },
        "services": {"gone": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:1"}]}}},
    }
    dr = await proxy(_cfg(b, options, extra=extra))
    status, headers, _ = await request(dr.port, "down.test")
    assert status == 502  # the proxy's own answer, made after the middleware: it has the headers too
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Custom"] == "1"
    status, headers, body = await request(dr.port, "other.test")
    assert status == 500 and body == b"Bad Host\n" and b.hits == 0
    assert headers["X-Custom"] == "1" and "X-Frame-Options" not in headers


async def _typeless_backend(body: bytes) -> tuple[asyncio.base_events.Server, str]:
    """A backend answering every request with ``body`` and no Content-Type at all."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_content_type_is_detected_only_with_the_middleware(proxy):
    server, url = await _typeless_backend(b"<!DOCTYPE html><html><body>hi</body></html>")
    try:
        cfg = routers(
            ("sniffed", "Host(`sniffed.test`)", "svc"), ("plain", "Host(`plain.test`)", "svc"), services={}
        )
        cfg["http"]["services"]["svc"] = {"loadBalancer": {"servers": [{"url": url}]}}
        cfg["http"]["routers"]["sniffed"]["middlewares"] = ["ct"]
        cfg["http"]["routers"]["plain"]["middlewares"] = ["off"]
        off = {"contentType": {"autoDetect": False}}
        cfg["http"]["middlewares"] = {"ct": {"contentType": {}}, "off": off}
        dr = await proxy(cfg)
        status, headers, body = await request(dr.port, "sniffed.test")
        assert status == 200 and body.startswith(b"<!DOCTYPE html>")
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        status, headers, _ = await request(dr.port, "plain.test")
        assert status == 200 and "Content-Type" not in headers
        assert "option autoDetect is deprecated" in dr.log()
    finally:
        server.close()
