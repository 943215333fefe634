"""Automatic HTTPS end to end: the real dockroute obtains a certificate from Let's Encrypt's test CA
(Pebble) through HTTP-01 on its own entry point, stores it in acme.json and serves it by SNI."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import stat

import pytest

from tests.integration import pebble_env
from tests.integration.harness import routers, wait_for

pytestmark = pytest.mark.integration


async def test_router_with_cert_resolver_gets_a_pebble_certificate(backends, proxy, tmp_path):
    pebble_env.require_pebble()
    (b,) = await backends("site")
    web_port = pebble_env.free_port()  # Pebble validates HTTP-01 on this port: dockroute's `web`
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=web_port) as pebble:
        static = {
            "entryPoints": {
                "web": {
                    "address": f"127.0.0.1:{web_port}",
                    "http": {"redirections": {"entryPoint": {"to": "websecure", "scheme": "https"}}},
                },
                "websecure": {"address": "127.0.0.1:0"},
            },
            "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
            "certificatesResolvers": {
                "le": {
                    "acme": {
                        "email": "admin@example.com",
                        "storage": str(tmp_path / "acme.json"),
                        "caServer": pebble.directory_url,
                        "caCertificates": [pebble.ca_bundle],
                        "httpChallenge": {"entryPoint": "web"},
                    }
                }
            },
            "log": {"level": "DEBUG"},
        }
        cfg = routers(services={"s": [b.url]})
        cfg["http"]["routers"]["site"] = {
            "rule": "Host(`app.example.com`)",
            "service": "s",
            "entryPoints": ["websecure"],
            "tls": {"certResolver": "le"},
        }
        cfg["http"]["routers"]["printer"] = {
            "rule": "Host(`printer.local`)",
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
        assert "no certificate ordered for printer.local" in dr.log()
