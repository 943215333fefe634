"""DNS-01 end to end, the homelab case: the real dockroute gets ONE wildcard certificate for
``*.home.example.test`` from Pebble by writing the TXT record into a real BIND through RFC 2136, with no
inbound port (Pebble's HTTP-01 and TLS-ALPN-01 ports are closed), and serves it to every covered host
by SNI. Pebble reads the record from that BIND (its ``-dnsserver``), so the validation is real.

Also: nothing is left in the zone after issuance or after a failed validation, a missing credential
stops the start naming the variable, and a DNS server that does not answer gives the resolver's backoff."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from tests.integration import pebble_env
from tests.integration.bind_env import ZONE, Bind, dns_wildcard_static, wildcard_routers
from tests.integration.harness import ROOT, verified_get, wait_for

pytestmark = pytest.mark.integration

WILDCARD = f"*.{ZONE}"
FAILED = re.compile(rf"order for \*\.{re.escape(ZONE)} failed: .*; next try in \d+s")
# named logs every dynamic update it applies (category update): the provider's presents, counted here.
ADDED = f"adding an RR at '_acme-challenge.{ZONE}' TXT"


def _static(tmp_path: Path, pebble: pebble_env.Pebble, bind: Bind) -> dict:
    return dns_wildcard_static(tmp_path, pebble.directory_url, pebble.ca_bundle, bind)


def _credentials(monkeypatch, bind: Bind, **override: str) -> None:
    """The rfc2136 variables for the dockroute process (the harness passes the environment on)."""
    for key, value in {**bind.env(), "RFC2136_DNS_TIMEOUT": "2", **override}.items():
        monkeypatch.setenv(key, value)


def _closed_ports() -> tuple[int, int]:
    """Pebble's HTTP-01 and TLS-ALPN-01 ports: nothing listens there, so only DNS-01 can succeed."""
    return pebble_env.free_port(), pebble_env.free_port()


def _sans(der: bytes) -> list[str]:
    cert = x509.load_der_x509_certificate(der)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )


async def _logged(dr, cond, timeout: float):
    """``wait_for(cond)``, failing with the process's log (what it did instead)."""
    try:
        return await wait_for(cond, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- dockroute log ---\n{dr.log()[-4000:]}") from None


async def _nothing_more_within(seconds: float, trouble) -> None:
    """Absence over a bounded window: ``trouble()`` (a description of what should not happen, or None)
    polled every 0.1 s for ``seconds``, failing at its first sign. Only for what must NOT happen (a
    second order after a failure): there is no event to wait for, so a window it is, as short as shows a
    retry loop (an order against BIND and Pebble takes well under a second here)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        found = trouble()
        assert not found, found
        await asyncio.sleep(0.1)


async def _no_txt_left(bind: Bind) -> None:
    left = await wait_for(lambda: not bind.acme_txt_left() and "clean", timeout=10)
    assert left == "clean"


async def test_one_wildcard_certificate_through_bind_is_served_to_every_covered_host(
    bind, backends, proxy, tmp_path, monkeypatch
):
    (b,) = await backends("site")
    _credentials(monkeypatch, bind)
    http_port, tls_port = _closed_ports()
    with pebble_env.run_pebble(
        tmp_path / "pebble", http_port=http_port, tls_port=tls_port, dns_server=bind.hostport
    ) as pebble:
        dr = await proxy(wildcard_routers(b.url), static=_static(tmp_path, pebble, bind))
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root_pem())
        ctx = ssl.create_default_context(cafile=str(root))
        port = dr.ports["websecure"]

        got_a = await _logged(dr, lambda: verified_get(port, ctx, f"a.{ZONE}"), timeout=30)
        got_b = await verified_get(port, ctx, f"b.{ZONE}")  # at once: the same certificate covers it
        assert got_b is not None, "b is not served the wildcard certificate"
        for (answer, der), host in ((got_a, "a"), (got_b, "b")):
            assert answer.startswith(b"HTTP/1.1 200"), (host, answer[:200])
            assert _sans(der) == [WILDCARD], host
        assert got_a[1] == got_b[1], "a and b are served different certificates"

        saved = json.loads((tmp_path / "acme.json").read_text())
        stored = [(c["domain"]["main"], c["domain"].get("sans") or []) for c in saved["le"]["Certificates"]]
        assert stored == [(WILDCARD, [])], "acme.json holds exactly the one wildcard certificate"
        assert bind.log().count(ADDED) == 1, "the TXT record was not written through RFC 2136 exactly once"
        await _no_txt_left(bind)
        assert "order for b." not in dr.log() and f"certificate for b.{ZONE}" not in dr.log()


async def test_a_failed_validation_leaves_no_record_and_backs_off(
    bind, backends, proxy, tmp_path, monkeypatch
):
    """Pebble asks pebble-challtestsrv (which never sees dockroute's record), so validation fails."""
    (b,) = await backends("site")
    _credentials(monkeypatch, bind)
    http_port, tls_port = _closed_ports()
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=http_port, tls_port=tls_port) as pebble:
        dr = await proxy(wildcard_routers(b.url), static=_static(tmp_path, pebble, bind))
        failed = await _logged(dr, lambda: FAILED.search(dr.log()), timeout=30)
        assert failed.group(0).endswith("next try in 3600s")  # a failed validation: no new order for an hour
        assert bind.log().count(ADDED) == 1  # it was presented (and propagated) before the CA looked
        await _no_txt_left(bind)
        await _nothing_more_within(
            3,
            lambda: (
                (len(FAILED.findall(dr.log())) > 1 and f"a second failure:\n{dr.log()}")
                or (bind.log().count(ADDED) > 1 and "a second order was tried within seconds")
            ),
        )
        store = tmp_path / "acme.json"
        assert not store.exists() or not json.loads(store.read_text()).get("le", {}).get("Certificates")


def test_a_missing_credential_variable_stops_the_start_naming_it(tmp_path):
    static = {
        "entryPoints": {"websecure": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "certificatesResolvers": {
            "le": {
                "acme": {
                    "email": "admin@example.com",
                    "storage": str(tmp_path / "acme.json"),
                    "caServer": "https://127.0.0.1:1/dir",
                    "dnsChallenge": {"provider": "rfc2136"},
                }
            }
        },
    }
    (tmp_path / "dockroute.yml").write_text(yaml.safe_dump(static))
    (tmp_path / "dynamic.yml").write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RFC2136_", "DOCKROUTE_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        RFC2136_TSIG_KEY="dockroute-test",
        RFC2136_TSIG_SECRET="c2VjcmV0",
        RFC2136_TSIG_ALGORITHM="hmac-sha256.",
    )
    done = subprocess.run(
        [sys.executable, "-m", "dockroute", "--config", str(tmp_path / "dockroute.yml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 2, (done.returncode, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "RFC2136_NAMESERVER" in lines[0] and "certificatesResolvers.le.acme.dnsChallenge" in lines[0]


class SilentDns:
    """A DNS server that never answers: a UDP socket and a TCP listener on one loopback port that count
    what arrives (datagrams, connections) and reply nothing."""

    def __init__(self) -> None:
        self.port = pebble_env.free_port(udp_too=True)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.tcp = socket.create_server(("127.0.0.1", self.port))
        self.datagrams = 0
        self.connections = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        for target in (self._udp_loop, self._tcp_loop):
            threading.Thread(target=target, daemon=True).start()

    @property
    def attempts(self) -> int:
        return self.datagrams + self.connections

    def _udp_loop(self) -> None:
        self.udp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                self.udp.recv(4096)
            except (TimeoutError, OSError):
                continue
            self.datagrams += 1

    def _tcp_loop(self) -> None:
        self.tcp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._held.append(conn)  # read nothing, answer nothing

    def close(self) -> None:
        self._stop.set()
        for s in (self.udp, self.tcp, *self._held):
            s.close()


@pytest.mark.parametrize("server", ["silent", "closed"])
async def test_a_dns_server_that_does_not_answer_gets_the_backoff_not_a_loop(
    server, bind, backends, proxy, tmp_path, monkeypatch
):
    """RFC2136_NAMESERVER names a server that never answers (silent: it counts what it receives) or a
    closed loopback port (refused at once, where a retry loop would spin fastest)."""
    (b,) = await backends("site")
    silent = SilentDns() if server == "silent" else None
    nameserver = f"127.0.0.1:{silent.port if silent else pebble_env.free_port(udp_too=True)}"
    _credentials(monkeypatch, bind, RFC2136_NAMESERVER=nameserver)
    http_port, tls_port = _closed_ports()
    try:
        with pebble_env.run_pebble(
            tmp_path / "pebble", http_port=http_port, tls_port=tls_port, dns_server=bind.hostport
        ) as pebble:
            dr = await proxy(wildcard_routers(b.url), static=_static(tmp_path, pebble, bind))
            failed = await _logged(dr, lambda: FAILED.search(dr.log()), timeout=90)
            assert failed.group(0).endswith("next try in 60s")  # the usual backoff
            # the present and its cleanup, each with a retry or two at most: never a loop
            await _nothing_more_within(
                3,
                lambda: (
                    (len(FAILED.findall(dr.log())) > 1 and f"a second failure:\n{dr.log()}")
                    or (silent and silent.attempts > 10 and f"{silent.attempts} attempts")
                ),
            )
            if silent:
                assert silent.attempts >= 1, "the silent server was never asked"
            assert dr.proc is not None and dr.proc.poll() is None, "the process died"
    finally:
        if silent:
            silent.close()
    assert bind.acme_txt_left() == {}


EXAMPLE = ROOT / "compose-examples" / "dns-wildcard" / "docker-compose.yml"
CF_TOKEN = "cf-dns-token-for-the-example"


def _example_flags(tmp_path: Path, pebble: pebble_env.Pebble, bind: Bind) -> list[str]:
    """compose-examples/dns-wildcard's command line for dockroute, with .env's variables filled in
    (DOMAIN = the test zone) and only what cannot work here swapped: loopback addresses instead of :80
    and :443, the store in tmp, Pebble as the CA (and its HTTPS trusted), BIND instead of the public
    resolvers, and no Docker provider (the file provider's routers stand in for the labelled apps)."""
    command = yaml.safe_load(EXAMPLE.read_text())["services"]["dockroute"]["command"]
    values = {"DOMAIN": ZONE, "ACME_EMAIL": "admin@example.com", "ACME_CA_SERVER": pebble.directory_url}
    swaps = {
        ".address": "127.0.0.1:0",
        ".storage": str(tmp_path / "acme.json"),
        ".resolvers": bind.hostport,
    }
    flags = []
    for flag in command:
        flag = re.sub(r"\$\{(\w+)(?::-[^}]*)?\}", lambda m: values[m.group(1)], flag)
        key, _, value = flag.partition("=")
        if key.startswith("--providers.docker"):
            continue
        flags.append(next((f"{key}={v}" for end, v in swaps.items() if key.endswith(end)), flag))
    return [*flags, f"--certificatesresolvers.cloudflare.acme.cacertificates={pebble.ca_bundle}"]


async def test_the_compose_example_gets_one_wildcard_certificate_through_cloudflare(
    bind, backends, tmp_path, monkeypatch
):
    """The example's own flags: the websecure entry point's domains (DOMAIN, *.DOMAIN) give every router on
    it that one certificate, through the cloudflare provider (a stand-in of its API that publishes the
    records it holds into BIND, where Pebble reads them)."""
    from tests.dns_standins import CloudflareStandin, running
    from tests.integration.harness import Dockroute

    (site,) = await backends("site")
    standin = CloudflareStandin(zones={ZONE: "zone-home"}, dns_tokens={CF_TOKEN})
    standin.on_change = bind.set_txt
    http_port, tls_port = _closed_ports()
    with (
        running(standin),
        pebble_env.run_pebble(
            tmp_path / "pebble", http_port=http_port, tls_port=tls_port, dns_server=bind.hostport
        ) as pebble,
    ):
        monkeypatch.setenv("CF_DNS_API_TOKEN", CF_TOKEN)
        monkeypatch.setenv("CLOUDFLARE_BASE_URL", f"{standin.url}/client/v4")
        services = {"s": {"loadBalancer": {"servers": [{"url": site.url}]}}}
        apps = {  # the example's whoami and homepage labels, as file-provider routers
            "whoami": {"rule": f"Host(`whoami.{ZONE}`)", "service": "s", "entryPoints": ["websecure"]},
            "homepage": {"rule": f"Host(`{ZONE}`) || Host(`www.{ZONE}`)", "service": "s",
                         "entryPoints": ["websecure"]},
        }  # fmt: skip
        static = {"providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}}}
        dr = Dockroute(tmp_path, static=static, dynamic={"http": {"routers": apps, "services": services}})
        try:
            await dr.start(extra_args=tuple(_example_flags(tmp_path, pebble, bind)), expect_entrypoints=2)
            root = tmp_path / "pebble-root.pem"
            root.write_bytes(pebble.root_pem())
            ctx = ssl.create_default_context(cafile=str(root))
            port = dr.ports["websecure"]
            _, der = await _logged(dr, lambda: verified_get(port, ctx, f"whoami.{ZONE}"), timeout=30)
            assert sorted(_sans(der)) == sorted([ZONE, WILDCARD])
            for host in (ZONE, f"www.{ZONE}"):
                got = await verified_get(port, ctx, host)
                assert got is not None and got[1] == der, host
            saved = json.loads((tmp_path / "acme.json").read_text())
            assert [c["domain"]["main"] for c in saved["cloudflare"]["Certificates"]] == [ZONE]
            await _no_txt_left(bind)
            assert standin.records["zone-home"] == []
        finally:
            await dr.stop()
