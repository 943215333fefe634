"""A real BIND 9 (Debian's ``bind9``) on its own loopback address, for the DNS-01 tests.

Why port 53 on an address of its own: dockroute's propagation check asks every authoritative server of
the zone at its address, port 53 (as lego and Traefik do), and Pebble's ``-dnsserver`` reads the records
there too. Each server gets a random 127.53.x.y, added to ``lo`` for its lifetime (``named`` listens only
on interface addresses); ``ip addr add`` fails when another run holds that address, so parallel workers
(pytest -n) never share one. We run as root, as CI does.

The server is authoritative for ``home.example.test`` (SOA, NS ``ns1.home.example.test``, A for ``ns1``)
and ``delegated.test`` (its own SOA and NS, on the same address); ``_acme-challenge.cname.home.example.test``
is a CNAME to ``_acme-challenge.cname.delegated.test`` (the usual ``_acme-challenge`` delegation). One TSIG
key (hmac-sha256) may update TXT records anywhere in both zones and transfer them (for :meth:`records`).
No recursion, no rndc control channel, no IPv6 listener; journals and keys stay in the working directory.
"""

from __future__ import annotations

import base64
import contextlib
import random
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.zone
import pytest

from tests.integration.harness import stop_process
from tests.unavailable import require_tools

ZONE = "home.example.test"
DELEGATED_ZONE = "delegated.test"
CNAME_DOMAIN = f"cname.{ZONE}"  # _acme-challenge.<this> is a CNAME into DELEGATED_ZONE
CNAME_TARGET = f"_acme-challenge.cname.{DELEGATED_ZONE}"
KEY_NAME = "dockroute-test"
KEY_ALGORITHM = "hmac-sha256"
NAMED = "/usr/sbin/named"


def require_bind() -> None:
    """Skip when BIND (or iproute2's ``ip``) is missing, unless running in CI (then it is a failure)."""
    require_tools(NAMED, "ip", hint="apt-get install bind9 iproute2")


@dataclass
class Bind:
    """A running ``named``: where it answers, the TSIG key that may update it, and small query helpers."""

    address: str
    workdir: Path
    key_secret: str = field(repr=False)
    port: int = 53
    key_name: str = KEY_NAME
    key_algorithm: str = KEY_ALGORITHM
    zone: str = ZONE
    delegated_zone: str = DELEGATED_ZONE
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def hostport(self) -> str:
        """``address:port``: RFC2136_NAMESERVER's, dnsChallenge.resolvers' and Pebble's -dnsserver's form."""
        return f"{self.address}:{self.port}"

    def env(self) -> dict[str, str]:
        """The rfc2136 provider's variables (lego's names) pointing at this server."""
        return {
            "RFC2136_NAMESERVER": self.hostport,
            "RFC2136_TSIG_KEY": self.key_name,
            "RFC2136_TSIG_SECRET": self.key_secret,
            "RFC2136_TSIG_ALGORITHM": f"{self.key_algorithm}.",
        }

    def _keyring(self) -> dict:
        return dns.tsigkeyring.from_text({self.key_name: self.key_secret})

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        """One direct UDP query to this server (no resolver, no cache)."""
        q = dns.message.make_query(name, rdtype)
        return dns.query.udp(q, self.address, port=self.port, timeout=2)

    def txt(self, name: str) -> list[str]:
        """The TXT values this server holds at ``name`` (empty when none or no such name)."""
        answer = self.query(name, "TXT")
        qname = dns.name.from_text(name)
        out: list[str] = []
        for rrset in answer.answer:
            if rrset.name == qname and rrset.rdtype == dns.rdatatype.TXT:
                out += [b"".join(r.strings).decode() for r in rrset]
        return out

    def records(self, zone: str | None = None) -> dict[str, list[tuple[str, str]]]:
        """Every record of ``zone`` (default the main one) by a TSIG-signed AXFR:
        relative name → [(type, text)]. What "nothing left in the zone" is checked against."""
        z = dns.zone.from_xfr(
            dns.query.xfr(
                self.address,
                zone or self.zone,
                port=self.port,
                keyring=self._keyring(),
                keyname=self.key_name,
                keyalgorithm=dns.tsig.HMAC_SHA256,
                timeout=5,
            )
        )
        out: dict[str, list[tuple[str, str]]] = {}
        for name, rdataset in z.iterate_rdatasets():
            for rdata in rdataset:
                out.setdefault(name.to_text(), []).append(
                    (dns.rdatatype.to_text(rdataset.rdtype), rdata.to_text())
                )
        return out

    def acme_txt_left(self) -> dict[str, list[str]]:
        """``_acme-challenge`` TXT records in either zone: {relative name@zone: [values]}; {} when clean."""
        left: dict[str, list[str]] = {}
        for zone in (self.zone, self.delegated_zone):
            for name, rrs in self.records(zone).items():
                values = [text for rtype, text in rrs if rtype == "TXT"]
                if name.startswith("_acme-challenge") and values:
                    left[f"{name}@{zone}"] = values
        return left

    def update(self, zone: str, add: dict[str, str] | None = None, delete: list[str] | None = None) -> None:
        """A TSIG-signed update: ``add`` name → TXT value (names relative to ``zone``), ``delete`` names'
        TXT sets. For tests seeding a record a crashed run left behind."""
        u = dns.update.UpdateMessage(
            zone, keyring=self._keyring(), keyname=self.key_name, keyalgorithm=dns.tsig.HMAC_SHA256
        )
        for name, value in (add or {}).items():
            u.add(name, 60, "TXT", f'"{value}"')
        for name in delete or []:
            u.delete(name, "TXT")
        rcode = dns.query.tcp(u, self.address, port=self.port, timeout=5).rcode()
        if rcode != dns.rcode.NOERROR:
            raise RuntimeError(f"update refused: {dns.rcode.to_text(rcode)}")

    def set_txt(self, fqdn: str, values: list[str]) -> None:
        """Make the TXT set at ``fqdn`` (absolute, in the main zone) exactly ``values``: what a hosted DNS
        service's API stand-in publishes on its nameservers (an empty list removes the set)."""
        u = dns.update.UpdateMessage(
            self.zone, keyring=self._keyring(), keyname=self.key_name, keyalgorithm=dns.tsig.HMAC_SHA256
        )
        name = dns.name.from_text(fqdn)
        u.delete(name, "TXT")
        for value in values:
            u.add(name, 60, "TXT", f'"{value}"')
        rcode = dns.query.tcp(u, self.address, port=self.port, timeout=5).rcode()
        if rcode != dns.rcode.NOERROR:
            raise RuntimeError(f"update refused: {dns.rcode.to_text(rcode)}")

    def log(self) -> str:
        return (self.workdir / "named.log").read_text(errors="replace")


def _config(workdir: Path, address: str, secret: str) -> str:
    zones = "".join(
        f"""zone "{zone}" {{
  type primary;
  file "{zone}.zone";
  update-policy {{ grant {KEY_NAME} zonesub TXT; }};
  allow-transfer {{ key {KEY_NAME}; }};
}};
"""
        for zone in (ZONE, DELEGATED_ZONE)
    )
    return f"""options {{
  directory "{workdir}";
  pid-file "{workdir}/named.pid";
  lock-file "{workdir}/named.lock";
  session-keyfile "{workdir}/session.key";
  managed-keys-directory "{workdir}";
  dump-file "{workdir}/named_dump.db";
  statistics-file "{workdir}/named.stats";
  listen-on port 53 {{ {address}; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
  notify no;
  allow-query {{ any; }};
}};
controls {{ }};
key "{KEY_NAME}" {{ algorithm {KEY_ALGORITHM}; secret "{secret}"; }};
{zones}"""


def _zone_file(zone: str, address: str) -> str:
    # SOA minimum 1 s: a negative answer cached by anyone goes stale at once.
    extra = f"_acme-challenge.cname IN CNAME {CNAME_TARGET}.\n" if zone == ZONE else ""
    return f"""$TTL 60
@ IN SOA ns1.{zone}. admin.{zone}. 1 3600 600 86400 1
@ IN NS ns1.{zone}.
ns1 IN A {address}
{extra}"""


def _answers_soa(address: str) -> bool:
    try:
        r = dns.query.udp(dns.message.make_query(ZONE, "SOA"), address, port=53, timeout=0.3)
    except (dns.exception.Timeout, OSError):
        return False
    return r.rcode() == dns.rcode.NOERROR and bool(r.answer)


def _claim_address() -> str:
    """A random 127.53.x.y added to ``lo``; the add fails when another run holds it, so try another."""
    for _ in range(50):
        address = f"127.53.{random.randint(1, 254)}.{random.randint(1, 254)}"
        added = subprocess.run(
            ["ip", "addr", "add", f"{address}/32", "dev", "lo"], capture_output=True, text=True
        )
        if added.returncode == 0:
            return address
    raise RuntimeError(f"no free 127.53.x.y address: {added.stderr.strip()}")


def _release_address(address: str) -> None:
    subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True)


def _start(workdir: Path, address: str, secret: str) -> subprocess.Popen:
    (workdir / "named.conf").write_text(_config(workdir, address, secret))
    for zone in (ZONE, DELEGATED_ZONE):
        (workdir / f"{zone}.zone").write_text(_zone_file(zone, address))
    with open(workdir / "named.log", "wb") as log:
        proc = subprocess.Popen(
            [NAMED, "-g", "-c", str(workdir / "named.conf")], stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _answers_soa(address):
            return proc
        time.sleep(0.05)
    stop_process(proc, 10)
    raise RuntimeError(f"named on {address} not ready:\n{(workdir / 'named.log').read_text()[-2000:]}")


@contextlib.contextmanager
def run_bind(workdir: Path) -> Iterator[Bind]:
    """Start ``named -g`` in ``workdir`` (created) on a fresh 127.53.x.y:53; stop it and free the address
    on exit. A start that fails (say the address was taken between the add and the bind) retries once on
    another address."""
    require_bind()
    workdir.mkdir(parents=True, exist_ok=True)
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    for attempt in range(3):
        address = _claim_address()
        try:
            proc = _start(workdir, address, secret)
        except RuntimeError:
            _release_address(address)
            if attempt == 2:
                raise
            continue
        break
    try:
        yield Bind(address=address, workdir=workdir, key_secret=secret, proc=proc)
    finally:
        stop_process(proc, 10)
        _release_address(address)


def dns_wildcard_static(tmp: Path, directory_url: str, ca_bundle: str, bind: Bind) -> dict:
    """dockroute's static config for the DNS-01 wildcard setup (the acceptance tests and
    bench/dns_wildcard.py): one HTTPS entry point ``websecure`` and resolver ``le`` on DNS-01 through
    rfc2136 (credentials from :meth:`Bind.env` in the environment), ``bind`` as its resolver; no plain-HTTP
    entry point at all: nothing for a CA to connect to."""
    return {
        "entryPoints": {"websecure": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp / "dynamic.yml")}},
        "certificatesResolvers": {
            "le": {
                "acme": {
                    "email": "admin@example.com",
                    "storage": str(tmp / "acme.json"),
                    "caServer": directory_url,
                    "caCertificates": [ca_bundle],
                    "dnsChallenge": {"provider": "rfc2136", "resolvers": [bind.hostport]},
                }
            }
        },
    }


def wildcard_routers(url: str) -> dict:
    """The dynamic config beside it: router ``a`` asks for ``*.home.example.test`` (tls.domains), router
    ``b`` is covered by that wildcard; both on ``websecure``, both to ``url``."""
    tls_a = {"certResolver": "le", "domains": [{"main": f"*.{ZONE}"}]}
    return {
        "http": {
            "routers": {
                name: {
                    "rule": f"Host(`{name}.{ZONE}`)",
                    "service": "s",
                    "entryPoints": ["websecure"],
                    "tls": tls,
                }
                for name, tls in (("a", tls_a), ("b", {"certResolver": "le"}))
            },
            "services": {"s": {"loadBalancer": {"servers": [{"url": url}]}}},
        }
    }


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[Bind]:
    """A running BIND for one test (registered for tests/integration by its conftest)."""
    with run_bind(tmp_path / "bind") as server:
        yield server
