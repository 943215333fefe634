"""The HTTP-API and program DNS providers end to end: the real dockroute gets a Pebble certificate through
DNS-01 with provider ``cloudflare``, ``httpreq`` or ``exec``, and Pebble really reads the TXT record from
a real BIND.

Cloudflare's API and the httpreq endpoint are local stand-ins (tests/dns_standins.py) that mirror the
records they are given into BIND by RFC 2136, as the real service would publish them on its
nameservers; the exec program is a real script that updates BIND itself. So what is checked is the
whole path: lego's variables read at start, the zone found, the API called as documented, the
propagation wait seeing the value on the zone's authoritative server, the CA's validation, the cleanup.
Pebble's HTTP-01 and TLS-ALPN-01 ports are closed: only DNS-01 can succeed."""

from __future__ import annotations

import ssl
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import dns.name
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest
from cryptography import x509

from tests.dns_standins import CloudflareStandin, HttpReqStandin, Standin, running
from tests.integration import pebble_env
from tests.integration.bind_env import ZONE, Bind, dns_wildcard_static
from tests.integration.harness import verified_get, wait_for

pytestmark = pytest.mark.integration

HOST = f"app.{ZONE}"
TOKEN = "cf-dns-token-for-the-test"


def mirror(bind: Bind) -> Callable[[str, list[str]], None]:
    """Sets BIND's TXT set at a name to the values a stand-in now holds there (TSIG-signed update)."""

    def publish(name: str, values: list[str]) -> None:
        keyring = dns.tsigkeyring.from_text({bind.key_name: bind.key_secret})
        update = dns.update.UpdateMessage(
            ZONE, keyring=keyring, keyname=bind.key_name, keyalgorithm=dns.tsig.HMAC_SHA256
        )
        update.delete(dns.name.from_text(name), "TXT")
        for value in values:
            update.add(dns.name.from_text(name), 60, "TXT", f'"{value}"')
        rcode = dns.query.tcp(update, bind.address, port=bind.port, timeout=5).rcode()
        assert rcode == dns.rcode.NOERROR, dns.rcode.to_text(rcode)

    return publish


EXEC_SCRIPT = """#!{python}
# lego's exec contract: <present|cleanup> <fqdn> <value>; adds or removes that one value in BIND
import sys, dns.query, dns.tsig, dns.tsigkeyring, dns.update
action, fqdn, value = sys.argv[1:4]
keyring = dns.tsigkeyring.from_text({{{key_name!r}: {key_secret!r}}})
update = dns.update.UpdateMessage({zone!r}, keyring=keyring, keyname={key_name!r},
                                  keyalgorithm=dns.tsig.HMAC_SHA256)
if action == "present":
    update.add(fqdn, 60, "TXT", '"' + value + '"')
else:
    update.delete(fqdn, "TXT", '"' + value + '"')
answer = dns.query.tcp(update, {address!r}, port={port}, timeout=5)
print(action, fqdn, "rcode", answer.rcode())
sys.exit(0 if answer.rcode() == 0 else 1)
"""


def _provider(kind: str, bind: Bind, tmp_path: Path, standin: Standin | None) -> dict[str, str]:
    """The provider's lego variables for the dockroute process."""
    if kind == "cloudflare":
        assert standin is not None
        return {"CF_DNS_API_TOKEN": TOKEN, "CLOUDFLARE_BASE_URL": f"{standin.url}/client/v4"}
    if kind == "httpreq":
        assert standin is not None
        return {"HTTPREQ_ENDPOINT": f"{standin.url}/api", "HTTPREQ_USERNAME": "u", "HTTPREQ_PASSWORD": "p"}
    program = tmp_path / "dns-hook.py"
    program.write_text(
        EXEC_SCRIPT.format(
            python=sys.executable,
            key_name=bind.key_name,
            key_secret=bind.key_secret,
            zone=ZONE,
            address=bind.address,
            port=bind.port,
        )
    )
    program.chmod(0o700)
    return {"EXEC_PATH": str(program)}


def _standin(kind: str) -> Standin | None:
    if kind == "cloudflare":
        return CloudflareStandin(zones={ZONE: "zone-home"}, dns_tokens={TOKEN})
    if kind == "httpreq":
        return HttpReqStandin(username="u", password="p")
    return None


async def _served(proxy, kind: str, bind: Bind, site_url: str, tls: dict, tmp_path: Path):
    """Start Pebble (validating against ``bind``, its HTTP-01 and TLS-ALPN-01 ports closed) and dockroute
    with resolver ``le`` on DNS-01 through provider ``kind`` and one router for HOST (``tls`` its tls),
    and wait until HOST is served over HTTPS with a certificate Pebble's root verifies: (process, answer,
    certificate DER). A timeout fails with the process's log."""
    http_port, tls_port = pebble_env.free_port(), pebble_env.free_port()
    with pebble_env.run_pebble(
        tmp_path / "pebble", http_port=http_port, tls_port=tls_port, dns_server=bind.hostport
    ) as pebble:
        static = dns_wildcard_static(tmp_path, pebble.directory_url, pebble.ca_bundle, bind)
        static["certificatesResolvers"]["le"]["acme"]["dnsChallenge"]["provider"] = kind
        router = {"rule": f"Host(`{HOST}`)", "service": "s", "entryPoints": ["websecure"], "tls": tls}
        dynamic = {
            "http": {
                "routers": {"app": router},
                "services": {"s": {"loadBalancer": {"servers": [{"url": site_url}]}}},
            }
        }
        dr = await proxy(dynamic, static=static)
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root_pem())
        ctx = ssl.create_default_context(cafile=str(root))
        try:
            answer, der = await wait_for(lambda: verified_get(dr.ports["websecure"], ctx, HOST), timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- dockroute log ---\n{dr.log()[-4000:]}") from None
    return dr, answer, der


@pytest.mark.parametrize("kind", ["cloudflare", "httpreq", "exec"])
async def test_a_certificate_through_the_provider_and_bind(
    kind, bind, backends, proxy, tmp_path, monkeypatch
) -> None:
    (site,) = await backends("site")
    standin = _standin(kind)
    if standin is not None:
        standin.on_change = mirror(bind)
    with running(standin) if standin is not None else nullcontext():
        for key, value in _provider(kind, bind, tmp_path, standin).items():
            monkeypatch.setenv(key, value)
        dr, answer, _ = await _served(proxy, kind, bind, site.url, {"certResolver": "le"}, tmp_path)
        assert answer.startswith(b"HTTP/1.1 200")
        left = await wait_for(lambda: not bind.acme_txt_left() and "clean", timeout=10)
        assert left == "clean", bind.acme_txt_left()
        if isinstance(standin, CloudflareStandin):
            calls = [(r.method, r.path) for r in standin.requests]
            assert calls[0] == ("GET", "/client/v4/zones") and standin.requests[0].query["name"] == ZONE
            assert ("POST", "/client/v4/zones/zone-home/dns_records") in calls
            assert calls[-1][0] == "DELETE" and standin.records["zone-home"] == []
        if isinstance(standin, HttpReqStandin):
            assert [r.path for r in standin.requests] == ["/api/present", "/api/cleanup"]
            assert standin.requests[0].json()["fqdn"] == f"_acme-challenge.{HOST}."
        assert f"certificate for {HOST} obtained" in dr.log()


async def test_a_wildcard_and_its_apex_hold_two_cloudflare_records_at_one_name(
    bind, backends, proxy, tmp_path, monkeypatch
) -> None:
    """``*.home.example.test`` and ``home.example.test`` in one certificate: two values at
    ``_acme-challenge.home.example.test`` at once, two Cloudflare records, each cleaned up by its id."""
    (site,) = await backends("site")
    standin = CloudflareStandin(zones={ZONE: "zone-home"}, dns_tokens={TOKEN})
    publish = mirror(bind)
    seen: list[list[str]] = []
    standin.on_change = lambda name, values: (seen.append(sorted(values)), publish(name, values))
    with running(standin):
        for key, value in _provider("cloudflare", bind, tmp_path, standin).items():
            monkeypatch.setenv(key, value)
        tls = {"certResolver": "le", "domains": [{"main": f"*.{ZONE}", "sans": [ZONE]}]}
        _, _, der = await _served(proxy, "cloudflare", bind, site.url, tls, tmp_path)
        sans = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        assert sorted(sans.value.get_values_for_type(x509.DNSName)) == sorted([f"*.{ZONE}", ZONE])
        assert any(len(values) == 2 for values in seen), seen  # both values published together
        creates = [r for r in standin.requests if r.method == "POST"]
        deletes = [r.path.rsplit("/", 1)[1] for r in standin.requests if r.method == "DELETE"]
        assert [r.json()["name"] for r in creates] == [f"_acme-challenge.{ZONE}"] * 2
        assert sorted(deletes) == ["rec0001", "rec0002"] and standin.records["zone-home"] == []
        left = await wait_for(lambda: not bind.acme_txt_left() and "clean", timeout=10)
        assert left == "clean", bind.acme_txt_left()
