"""Automatic HTTPS end to end: the real dockroute obtains a certificate from Let's Encrypt's test CA
(Pebble) through HTTP-01 on its own entry point, stores it in acme.json and serves it by SNI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import stat

import pytest
from cryptography import x509

from tests.integration import pebble_env
from tests.integration.harness import routers, wait_for

pytestmark = pytest.mark.integration


async def test_router_with_cert_resolver_gets_a_pebble_certificate(backends, proxy, tmp_path):
    pebble_env.require_pebble()
    (b,) = await backends("site")
    web_port = pebble_env.free_port()  # Pebble validates HTTP-01 on this port: dockroute's `web`
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=web_port) as pebble:
        static = _static(tmp_path, pebble, web_port)
        static["entryPoints"]["web"]["http"] = {
            "redirections": {"entryPoint": {"to": "websecure", "scheme": "https"}}
        }
        cfg = routers(services={"s": [b.url]})
        cfg["http"]["routers"]["site"] = {
            "rule": "Host(`app.example.com`)",
            "service": "s",
            "entryPoints": ["websecure"],
            "tls": {"certResolver": "le"},
        }
        cfg["http"]["routers"]["printer"] = {
            "rule": "Host(`192.168.1.10`)",  # no CA is asked for an IP address
            "service": "s",
            "entryPoints": ["websecure"],
            "tls": {"certResolver": "le"},
        }
        dr = await proxy(cfg, static=static)
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root_pem())
        ctx = ssl.create_default_context(cafile=str(root))

        async def served() -> bytes | None:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", dr.ports["websecure"], ssl=ctx, server_hostname="app.example.com"
                )
            except ssl.SSLCertVerificationError:
                return None  # still the default certificate
            writer.write(b"GET / HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n")
            data = await reader.read()
            writer.close()
            return data

        data = await wait_for(served, timeout=10)  # the chain verifies against Pebble's root
        assert data.startswith(b"HTTP/1.1 200") and b'"server": "site"' in data

        store = tmp_path / "acme.json"
        assert stat.S_IMODE(os.stat(store).st_mode) == 0o600
        saved = json.loads(store.read_text())
        assert [c["domain"]["main"] for c in saved["le"]["Certificates"]] == ["app.example.com"]
        assert saved["le"]["Account"]["Email"] == "admin@example.com"
        assert "no certificate ordered for 192.168.1.10" in dr.log()

        # the entry point that validated HTTP-01 redirects everything else to HTTPS, path and query kept
        reader, writer = await asyncio.open_connection("127.0.0.1", web_port)
        writer.write(b"GET /a/b?x=1 HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n")
        head = (await reader.read()).split(b"\r\n\r\n", 1)[0]
        writer.close()
        assert head.startswith(b"HTTP/1.1 301")
        location = f"location: https://app.example.com:{dr.ports['websecure']}/a/b?x=1".encode()
        assert location in head.lower()


def _static(tmp_path, pebble, web_port: int) -> dict:
    return pebble_env.acme_static(tmp_path, pebble.directory_url, pebble.ca_bundle, web_port)


def _site(url: str) -> dict:
    cfg = routers(services={"s": [url]})
    cfg["http"]["routers"]["site"] = {
        "rule": "Host(`renew.example.com`)",
        "service": "s",
        "entryPoints": ["websecure"],
        "tls": {"certResolver": "le"},
    }
    return cfg


def _near_expiry_cert(name: str) -> tuple[bytes, bytes]:
    """A certificate 80 days into an 82-day life: 2 days left, far less than a third."""
    import datetime as dt

    from router.tls import self_signed

    pair = self_signed(name, (name,), valid_from=dt.timedelta(days=-80), valid_for=dt.timedelta(days=82))
    return pair.cert_pem, pair.key_pem


async def test_near_expiry_certificate_is_renewed_at_start_and_a_restart_reuses_it(backends, proxy, tmp_path):
    from acme_client.storage import AcmeStorage, StoredCertificate

    pebble_env.require_pebble()
    (b,) = await backends("site")
    cert_pem, key_pem = _near_expiry_cert("renew.example.com")
    AcmeStorage(str(tmp_path / "acme.json")).put_certificate(
        "le", StoredCertificate("renew.example.com", (), cert_pem, key_pem)
    )
    web_port = pebble_env.free_port()
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=web_port) as pebble:
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root_pem())
        ctx = ssl.create_default_context(cafile=str(root))

        async def pebble_cert_served(dr) -> bool:
            try:
                _, writer = await asyncio.open_connection(
                    "127.0.0.1", dr.ports["websecure"], ssl=ctx, server_hostname="renew.example.com"
                )
            except ssl.SSLCertVerificationError:
                return False  # still the seeded (self-signed) certificate
            writer.close()
            return True

        dr = await proxy(_site(b.url), static=_static(tmp_path, pebble, web_port))
        await wait_for(lambda: pebble_cert_served(dr), timeout=10)
        assert "certificate for renew.example.com obtained" in dr.log()
        assert await dr.stop() == 0

        # Another port for the restart's plain-HTTP entry point: the one just freed may be taken by a
        # parallel test meanwhile, and the restart must not need it (no order: nothing to validate there)
        dr2 = await proxy(_site(b.url), static=_static(tmp_path, pebble, pebble_env.free_port()))
        assert await pebble_cert_served(dr2)  # served from acme.json at once
        assert "obtained" not in dr2.log()  # and no new order


async def test_unreachable_ca_keeps_https_up_and_is_not_hammered(backends, proxy, tmp_path, down_ca):
    (b,) = await backends("site")
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}, "websecure": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "certificatesResolvers": {
            "le": {"acme": {"email": "a@example.com", "storage": str(tmp_path / "acme.json"),
                            "caServer": down_ca.directory_url, "httpChallenge": {"entryPoint": "web"}}}
        },
    }  # fmt: skip
    dr = await proxy(_site(b.url), static=static)
    await wait_for(lambda: "order for renew.example.com failed" in dr.log(), timeout=10)
    anything = ssl.create_default_context()
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    for _ in range(3):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", dr.ports["websecure"], ssl=anything, server_hostname="renew.example.com"
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: renew.example.com\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200")  # default certificate, still serving
        writer.close()
    seen = down_ca.attempts
    await asyncio.sleep(2)  # the measured interval: nothing to poll, the point is that nothing happens
    assert down_ca.attempts == seen and seen <= 3, f"the CA saw {down_ca.attempts} connection attempts"
    assert "next try in 60s" in dr.log()


_ACME_IDENTIFIER = "1.3.6.1.5.5.7.1.31"


async def _peer_certificate(port: int, alpn: list[str], name: str) -> x509.Certificate | None:
    """The certificate dockroute presents to a client offering ``alpn`` for ``name`` (None: refused)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(alpn)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=name)
    except (OSError, ssl.SSLError):
        return None
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der)


def _is_challenge(cert: x509.Certificate | None) -> bool:
    return cert is not None and any(e.oid.dotted_string == _ACME_IDENTIFIER for e in cert.extensions)


async def test_tls_challenge_only_resolver_is_validated_through_tls_alpn_01(backends, proxy, tmp_path):
    pebble_env.require_pebble()
    (b,) = await backends("site")
    # Two resolvers sharing one acme.json, as Traefik users often have them: `le` answers HTTP-01 on
    # `web`, `alpn` has tlsChallenge only and must be validated on `websecure`.
    tls_port = pebble_env.free_port()  # Pebble validates TLS-ALPN-01 here: dockroute's `websecure`
    web_port = pebble_env.free_port()  # and HTTP-01 here: dockroute's `web`
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=web_port, tls_port=tls_port) as pebble:
        static = _static(tmp_path, pebble, web_port)
        static["entryPoints"]["websecure"]["address"] = f"127.0.0.1:{tls_port}"
        static["certificatesResolvers"] |= {
            "alpn": {
                "acme": {
                    "email": "admin@example.com",
                    "storage": str(tmp_path / "acme.json"),
                    "caServer": pebble.directory_url,
                    "caCertificates": [pebble.ca_bundle],
                    "tlsChallenge": {},
                }
            }
        }
        cfg = routers(services={"s": [b.url]})
        cfg["http"]["routers"]["site"] = {
            "rule": "Host(`alpn.example.com`)",
            "service": "s",
            "tls": {"certResolver": "alpn"},
        }
        cfg["http"]["routers"]["other"] = {
            "rule": "Host(`http.example.com`)",
            "service": "s",
            "tls": {"certResolver": "le"},
        }
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root_pem())
        verify = ssl.create_default_context(cafile=str(root))
        verify.set_alpn_protocols(["h2", "http/1.1"])

        browser_saw: list[x509.Certificate | None] = []
        inside_window = 0  # browser probes made while a validator-like client was getting the challenge
        issued = asyncio.Event()

        async def probe() -> None:
            # validator, browser, validator: when both validators get the challenge certificate, the
            # browser connected while the challenge was pending.
            # A client offering acme-tls/1 among others is not a validator either.
            nonlocal inside_window
            offers = (["h2", "http/1.1"], ["acme-tls/1", "http/1.1"])
            while not issued.is_set():
                before = await _peer_certificate(tls_port, ["acme-tls/1"], "alpn.example.com")
                browser = await _peer_certificate(tls_port, offers[len(browser_saw) % 2], "alpn.example.com")
                after = await _peer_certificate(tls_port, ["acme-tls/1"], "alpn.example.com")
                browser_saw.append(browser)
                if _is_challenge(before) and _is_challenge(after):
                    inside_window += 1
                await asyncio.sleep(0.005)

        dr = await proxy(cfg, static=static)
        prober = asyncio.get_running_loop().create_task(probe())

        async def served(name: str) -> bytes | None:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", tls_port, ssl=verify, server_hostname=name
                )
            except ssl.SSLCertVerificationError:
                return None
            writer.write(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = await reader.read()
            writer.close()
            return data

        try:  # chains to Pebble's root: issued
            data = await wait_for(lambda: served("alpn.example.com"), timeout=10)
        finally:
            issued.set()
            await prober
        assert data.startswith(b"HTTP/1.1 200") and b'"server": "site"' in data
        assert await wait_for(lambda: served("http.example.com"), timeout=10)
        assert "answering the TLS-ALPN-01 challenge for alpn.example.com" in dr.log()
        assert "answering the TLS-ALPN-01 challenge for http.example.com" not in dr.log()
        http_validations = re.findall(
            r"validate w/ HTTP: http://([^:/]+)", (tmp_path / "pebble" / "pebble.log").read_text()
        )
        assert set(http_validations) == {"http.example.com"}  # never for the tlsChallenge-only resolver
        saved = json.loads((tmp_path / "acme.json").read_text())  # one file, both resolvers kept
        assert [c["domain"]["main"] for c in saved["alpn"]["Certificates"]] == ["alpn.example.com"]
        assert [c["domain"]["main"] for c in saved["le"]["Certificates"]] == ["http.example.com"]
        assert inside_window >= 1, "no browser-like probe landed while the challenge was pending"
        assert browser_saw and not any(_is_challenge(c) for c in browser_saw)
        assert all(c is not None for c in browser_saw), "a browser-like client was refused"
        # A validator-like client asking after issuance gets no challenge certificate any more.
        assert not _is_challenge(await _peer_certificate(tls_port, ["acme-tls/1"], "alpn.example.com"))


async def test_acme_json_readable_by_others_is_refused_before_asking_the_ca(
    backends, proxy, tmp_path, down_ca
):
    (b,) = await backends("site")
    store = tmp_path / "acme.json"
    store.write_text("{}")
    store.chmod(0o644)
    static = {
        "entryPoints": {"websecure": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "certificatesResolvers": {
            "le": {"acme": {"email": "a@example.com", "storage": str(store),
                            "caServer": down_ca.directory_url, "tlsChallenge": {}}}
        },
    }  # fmt: skip
    dr = await proxy(_site(b.url), static=static)
    await wait_for(lambda: "order for renew.example.com failed" in dr.log(), timeout=10)
    assert "permissions 644" in dr.log() and "please use 600" in dr.log()
    assert "Traceback" not in dr.log()
    assert down_ca.attempts == 0, "the CA was contacted although nothing could have been stored"
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o644  # the user's file is left as it was
