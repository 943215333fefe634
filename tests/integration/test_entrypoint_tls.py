"""Entry-point TLS as Traefik users write it (``entryPoints.websecure.http.tls.certResolver=le``), through
the real process against Pebble: routers with no ``tls`` of their own on that entry point answer verified
HTTPS with a Pebble-issued certificate and no plain HTTP there; the entry point's ``domains`` give one
certificate carrying main and sans; a router on an entry point that does not exist is reported, by name,
as not routed."""

from __future__ import annotations

import json
import ssl

import pytest
from cryptography import x509

from tests.integration import pebble_env
from tests.integration.harness import raw_exchange, routers, verified_get, wait_for

pytestmark = pytest.mark.integration


def _names(der: bytes) -> set[str]:
    cert = x509.load_der_x509_certificate(der)
    return set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ))  # fmt: skip


async def test_routers_on_an_entry_point_with_http_tls_get_pebble_certificates_and_https_only(
    backends, proxy, tmp_path
):
    pebble_env.require_pebble()
    (b,) = await backends("site")
    web_port = pebble_env.free_port()  # Pebble validates HTTP-01 here: dockroute's `web`
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=web_port) as pebble:
        static = pebble_env.acme_static(tmp_path, pebble.directory_url, pebble.ca_bundle, web_port)
        static["entryPoints"]["websecure"]["http"] = {"tls": {"certResolver": "le"}}
        static["entryPoints"]["multi"] = {
            "address": "127.0.0.1:0",
            "http": {
                "tls": {
                    "certResolver": "le",
                    "domains": [{"main": "one.example.com", "sans": ["two.example.com"]}],
                }
            },
        }
        cfg = routers(
            ("site", "Host(`app.example.com`)", "s"),  # no tls of its own
            ("pair", "Host(`one.example.com`) || Host(`two.example.com`)", "s"),
            ("lost", "Host(`lost.example.com`)", "s"),
            services={"s": [b.url]},
        )
        cfg["http"]["routers"]["site"]["entryPoints"] = ["websecure"]
        cfg["http"]["routers"]["pair"]["entryPoints"] = ["multi"]
        cfg["http"]["routers"]["lost"]["entryPoints"] = ["nope"]
        dr = await proxy(cfg, static=static)
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root_pem())
        ctx = ssl.create_default_context(cafile=str(root))

        # verified HTTPS with Pebble's certificate, though the router has no tls
        port = dr.ports["websecure"]
        data, der = await wait_for(lambda: verified_get(port, ctx, "app.example.com"), timeout=15)
        assert data.startswith(b"HTTP/1.1 200") and b'"server": "site"' in data
        assert _names(der) == {"app.example.com"}
        # and no plain HTTP for it on that entry point
        plain = await raw_exchange(
            dr.ports["websecure"], b"GET / HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n"
        )
        assert plain.startswith(b"HTTP/1.1 404"), plain[:100]

        # the entry point's domains: ONE certificate carrying main and sans, served for both names
        one = await wait_for(lambda: verified_get(dr.ports["multi"], ctx, "one.example.com"), timeout=15)
        two = await verified_get(dr.ports["multi"], ctx, "two.example.com")
        assert two is not None and one[1] == two[1]
        assert _names(one[1]) == {"one.example.com", "two.example.com"}
        assert one[0].startswith(b"HTTP/1.1 200") and two[0].startswith(b"HTTP/1.1 200")
        saved = json.loads((tmp_path / "acme.json").read_text())["le"]["Certificates"]
        assert sorted((c["domain"]["main"], tuple(c["domain"].get("sans") or ())) for c in saved) == [
            ("app.example.com", ()),
            ("one.example.com", ("two.example.com",)),
        ]

        # a router on an entry point that does not exist: reported by name, and not counted
        log = dr.log()
        assert "router lost@file is not routed: its entry points do not exist: nope" in log
        assert "configuration applied: 2 routers" in log and "1 routers left out" in log
