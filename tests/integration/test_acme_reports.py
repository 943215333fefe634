"""A resolver's certificate reports against a real Pebble CA: the issuer and dates of what Pebble issued,
and the last error of an order Pebble refused."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from cryptography import x509

from acme_client.report import CertificateStatus
from acme_client.resolver import AcmeResolver
from acme_client.settings import ResolverSettings
from tests.integration.pebble_env import ChallengeServer, run_pebble

pytestmark = pytest.mark.integration


async def _until(condition, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _parsed_on(monkeypatch) -> list[str]:
    """The threads where a certificate is parsed from now on."""
    threads: list[str] = []
    real = x509.load_pem_x509_certificate

    def load(*a, **kw):
        threads.append(threading.current_thread().name)
        return real(*a, **kw)

    monkeypatch.setattr(x509, "load_pem_x509_certificate", load)
    return threads


async def test_reports_show_pebbles_issuer_then_a_refused_orders_error(tmp_path, monkeypatch):
    challenges = ChallengeServer()
    try:
        with run_pebble(tmp_path / "pebble", http_port=challenges.port) as pebble:
            settings = ResolverSettings(
                email="ops@example.com",
                storage=str(tmp_path / "acme.json"),
                ca_server=pebble.directory_url,
                ca_certificates=(pebble.ca_bundle,),
                http_entry_point="web",
            )
            r = AcmeResolver("pebble", settings, lambda: None)
            r.tokens = challenges.tokens  # Pebble validates HTTP-01 against the challenge server
            good = ("app.example.com", "www.example.com")
            r.want([good])
            with monkeypatch.context() as m:
                parsed_on = _parsed_on(m)
                task = asyncio.get_running_loop().create_task(r.run())
                await _until(lambda: good in r._certs, "Pebble's certificate")  # noqa: SLF001
                r.want([good])  # one more pass of the loop, with the certificate stored
                await _until(lambda: not r._kick.is_set(), "a pass")  # noqa: SLF001
                [rep] = r.reports()
            # Read once, in the resolver's worker thread: neither the loop nor a report parsed it.
            assert parsed_on and set(parsed_on) == {"acme-pebble_0"}, parsed_on
            try:
                await _refused_order(r, rep, monkeypatch)
            finally:
                task.cancel()
    finally:
        challenges.close()


async def _refused_order(r: AcmeResolver, rep: CertificateStatus, monkeypatch) -> None:
    good = rep.domains
    chain = x509.load_pem_x509_certificates(r._certs[good].certificate_pem)  # noqa: SLF001
    issuer_cn = chain[0].issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert rep.domains == good and rep.source == "acme" and rep.resolver == "pebble"
    assert rep.facts is not None
    assert rep.facts.issuer == issuer_cn and issuer_cn.startswith("Pebble Intermediate CA")
    assert rep.facts.not_after > time.time() + 86400
    assert rep.next_renewal is not None and time.time() < rep.next_renewal < rep.facts.not_after
    assert rep.last_error is None and r.failure_log.count == 0

    # A challenge nobody answers: the tokens no longer reach the challenge server, Pebble gets a 404.
    r.tokens = {}
    bad = ("unanswered.example.com",)
    started = time.time()
    r.want([good, bad])
    await _until(lambda: r.failure_log.count == 1, "the refused order")
    served, pending = r.reports()
    assert served.domains == good and served.last_error is None  # the other certificate is unaffected
    assert pending.domains == bad and pending.facts is None
    assert pending.last_error is not None
    assert "urn:ietf:params:acme:error:unauthorized" in pending.last_error.message
    assert "returned 404" in pending.last_error.message  # the CA's own words, as logged
    assert "unanswered.example.com" in pending.last_error.message
    assert started <= pending.last_error.at <= time.time()
    # A failed validation waits an hour before the next order (Let's Encrypt's limit).
    assert pending.next_renewal == pytest.approx(pending.last_error.at + 3600, abs=2)
