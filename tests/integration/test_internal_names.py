"""Certificates for internal names through the real process: a private ACME CA (Pebble) asked for a
``.home.arpa`` name, and the built-in CA (``internalCA``) serving, renewing and printing its root."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import verification

from tests.integration import pebble_env
from tests.integration.harness import ROOT, routers, verified_get, wait_for

pytestmark = pytest.mark.integration


def _router(host: str, resolver: str, url: str) -> dict:
    cfg = routers(services={"s": [url]})
    cfg["http"]["routers"]["site"] = {
        "rule": f"Host(`{host}`)",
        "service": "s",
        "entryPoints": ["websecure"],
        "tls": {"certResolver": resolver},
    }
    return cfg


async def _get(port: int, host: str, cafile: Path) -> tuple[bytes, x509.Certificate] | None:
    """GET / with SNI ``host``, trusting only ``cafile``: the answer and the certificate served; None while
    the served certificate does not verify (still the default one)."""
    got = await verified_get(port, ssl.create_default_context(cafile=str(cafile)), host)
    return None if got is None else (got[0], x509.load_der_x509_certificate(got[1]))


async def test_a_private_acme_ca_certifies_a_home_arpa_name(backends, proxy, tmp_path):
    pebble_env.require_pebble()
    (b,) = await backends("nas")
    web_port = pebble_env.free_port()  # Pebble validates HTTP-01 here: dockroute's `web`
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=web_port) as pebble:
        static = pebble_env.acme_static(tmp_path, pebble.directory_url, pebble.ca_bundle, web_port)
        dr = await proxy(_router("nas.home.arpa", "le", b.url), static=static)
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root_pem())
        data, cert = await wait_for(lambda: _get(dr.ports["websecure"], "nas.home.arpa", root), timeout=20)
        assert data.startswith(b"HTTP/1.1 200") and b'"server": "nas"' in data
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["nas.home.arpa"]
        assert "no certificate ordered for nas.home.arpa" not in dr.log()


def _internal_static(tmp_path: Path, lifetime: str = "1h") -> dict:
    return {
        "entryPoints": {"websecure": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "certificatesResolvers": {
            "home": {"internalCA": {"storage": str(tmp_path / "ca"), "leafLifetime": lifetime}}
        },
        "log": {"level": "DEBUG"},
    }


async def test_the_internal_ca_serves_a_lan_name_and_renews_it_without_a_restart(backends, proxy, tmp_path):
    (b,) = await backends("printer")
    # 60 s (the shortest leafLifetime accepted): renewed with a third left, i.e. 40 s after issue.
    dr = await proxy(_router("printer.lan", "home", b.url), static=_internal_static(tmp_path, "60s"))
    root = tmp_path / "ca" / "root.crt"
    await wait_for(root.exists, timeout=10)
    data, first = await wait_for(lambda: _get(dr.ports["websecure"], "printer.lan", root), timeout=10)
    assert data.startswith(b"HTTP/1.1 200") and b'"server": "printer"' in data
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    assert 60 <= lifetime.total_seconds() <= 60 + 5 * 60 + 5  # 60 s, backdated 5 minutes
    pid = dr.proc.pid if dr.proc else None

    async def renewed() -> x509.Certificate | None:
        got = await _get(dr.ports["websecure"], "printer.lan", root)
        return got[1] if got and got[1].serial_number != first.serial_number else None

    second = await wait_for(renewed, timeout=55, interval=0.5)
    assert second.not_valid_before_utc < first.not_valid_after_utc  # before the first one expired
    import datetime as dt

    assert dt.datetime.now(dt.UTC) < first.not_valid_after_utc
    assert dr.proc is not None and dr.proc.poll() is None and dr.proc.pid == pid  # no restart
    assert "certificate for printer.lan renewed by the internal CA" in dr.log()


def _cli_root(config: Path, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKROUTE_", "TRAEFIK_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "dockroute", "internal-ca", "root", "--config", str(config)],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=60,
    )


async def test_internal_ca_root_prints_the_root_the_proxy_uses(backends, proxy, tmp_path):
    import yaml

    (b,) = await backends("printer")
    static = _internal_static(tmp_path)
    config = tmp_path / "cli.yml"
    config.write_text(yaml.safe_dump(static))
    # Before the proxy ever ran: the command creates the root...
    before = _cli_root(config, tmp_path)
    assert before.returncode == 0, before.stderr
    printed = before.stdout
    assert printed == (tmp_path / "ca" / "root.crt").read_bytes()
    assert before.stderr.decode() == f"resolver home: {tmp_path / 'ca' / 'root.crt'} (created now)\n"
    # ...which the proxy then uses, not replaces,
    dr = await proxy(_router("printer.lan", "home", b.url), static=static)
    printed_file = tmp_path / "printed.pem"
    printed_file.write_bytes(printed)
    data, leaf = await wait_for(lambda: _get(dr.ports["websecure"], "printer.lan", printed_file), timeout=10)
    assert data.startswith(b"HTTP/1.1 200")
    store = verification.Store([x509.load_pem_x509_certificate(printed)])
    verifier = (
        verification.PolicyBuilder().store(store).build_server_verifier(verification.DNSName("printer.lan"))
    )
    verifier.verify(leaf, [])
    # ...and while it runs, the command prints the very same root.
    during = _cli_root(config, tmp_path)
    assert during.returncode == 0 and during.stdout == printed
    assert during.stderr.decode() == f"resolver home: {tmp_path / 'ca' / 'root.crt'} (existing)\n"
    assert (tmp_path / "ca" / "root.crt").read_bytes() == printed


async def test_an_unwritable_storage_is_one_error_line_and_the_proxy_keeps_serving(backends, proxy, tmp_path):
    (b,) = await backends("printer")
    (tmp_path / "not-a-folder").write_text("")
    static = _internal_static(tmp_path)
    static["certificatesResolvers"]["home"]["internalCA"]["storage"] = str(tmp_path / "not-a-folder" / "ca")
    dr = await proxy(_router("printer.lan", "home", b.url), static=static)
    await wait_for(lambda: "serving no certificates from it" in dr.log(), timeout=10)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the default certificate serves it
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", dr.ports["websecure"], ssl=ctx, server_hostname="printer.lan"
    )
    writer.write(b"GET / HTTP/1.1\r\nHost: printer.lan\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 200") and b'"server": "printer"' in data
    assert dr.proc is not None and dr.proc.poll() is None
    assert dr.log().count("serving no certificates from it") == 1
