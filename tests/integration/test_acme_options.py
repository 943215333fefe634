"""certificatesResolvers.<name>.acme options against a real Pebble: External Account Binding (Pebble
itself), certificate profiles and ACME Renewal Information (Pebble 2.4 has neither: the shim in
``acme_shim`` adds them in front of the real Pebble, which still does every ACME exchange)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509

import acme_client.renewal_info as renewal_info_module
from acme_client.issuer import AcmeError, IssuedCertificate, Issuer, Solver
from acme_client.resolver import AcmeResolver
from acme_client.storage import AcmeStorage, StoredCertificate
from tests.acme_settings import acme_settings
from tests.integration import pebble_env
from tests.integration.acme_shim import AcmeShim, ari_cert_id
from tests.integration.harness import routers, wait_for

pytestmark = pytest.mark.integration

EAB_KID = "kid-1"
EAB_HMAC = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")  # Pebble decodes unpadded base64url
ACME_LOG = "dockroute.acme"


@pytest.fixture(scope="module")
def challenges():
    srv = pebble_env.ChallengeServer()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def pebble(tmp_path_factory, challenges):
    with pebble_env.run_pebble(tmp_path_factory.mktemp("pebble"), challenges.port) as env:
        yield env


@pytest.fixture(scope="module")
def eab_pebble(tmp_path_factory, challenges):
    workdir = tmp_path_factory.mktemp("pebble-eab")
    with pebble_env.run_pebble(workdir, challenges.port, eab_keys={EAB_KID: EAB_HMAC}) as env:
        yield env


@pytest.fixture
def shim(pebble):
    """Pebble with profiles and renewalInfo in its directory."""
    s = AcmeShim(pebble)
    yield s
    s.close()


@pytest.fixture
def plain_shim(pebble):
    """Pebble's directory as it is (no profiles, no renewalInfo), every request recorded."""
    s = AcmeShim(pebble, profiles=None, renewal_info=False)
    yield s
    s.close()


def _solver(challenges: pebble_env.ChallengeServer) -> Solver:
    return Solver(
        "http-01",
        lambda domain, token, key_auth: challenges.publish(token, key_auth),
        lambda domain, token: challenges.unpublish(token),
    )


def _issue(directory_url: str, ca_bundle: str, challenges, name: str, **kw) -> IssuedCertificate:
    issuer = Issuer(directory_url, None, "ops@example.com", ca_bundle=ca_bundle, **kw)
    return issuer.issue([name], [_solver(challenges)], deadline=30)


def _serial(cert_pem: bytes) -> int:
    return x509.load_pem_x509_certificate(cert_pem).serial_number


def _days(n: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=n)


# -- External Account Binding (RFC 8555 section 7.3.4) -------------------------------------------------


def test_eab_binds_the_account_and_the_order_is_issued(eab_pebble, challenges):
    issuer = Issuer(
        eab_pebble.directory_url,
        None,
        "ops@example.com",
        ca_bundle=eab_pebble.ca_bundle,
        eab=(EAB_KID, EAB_HMAC),
    )
    cert = issuer.issue(["eab.example.com"], [_solver(challenges)], deadline=30)
    assert issuer.registration_uri
    leaf = x509.load_pem_x509_certificate(cert.fullchain_pem)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["eab.example.com"]
    pebble_log = (Path(eab_pebble.ca_bundle).parent / "pebble.log").read_text()
    assert f'Successful newAccount Binding with CA using kid "{EAB_KID}"' in pebble_log


def test_a_known_account_is_looked_up_without_binding_again(eab_pebble):
    """A restart with the account on record finds it (onlyReturnExisting) and never re-sends the
    binding: a CA may accept an EAB key only once. Shown on a Pebble that requires EAB: a full newAccount
    without it would be refused."""
    first = Issuer(
        eab_pebble.directory_url, None, None, ca_bundle=eab_pebble.ca_bundle, eab=(EAB_KID, EAB_HMAC)
    )
    first.register()
    log_path = Path(eab_pebble.ca_bundle).parent / "pebble.log"
    bindings = log_path.read_text().count("Successful newAccount Binding")

    again = Issuer(eab_pebble.directory_url, first.account_key_pem, None, ca_bundle=eab_pebble.ca_bundle)
    again.register(known=True)  # no eab configured at all: only a look-up can succeed
    assert again.registration_uri == first.registration_uri

    with_eab = Issuer(
        eab_pebble.directory_url,
        first.account_key_pem,
        None,
        ca_bundle=eab_pebble.ca_bundle,
        eab=(EAB_KID, EAB_HMAC),
    )
    with_eab.register(known=True)
    assert with_eab.registration_uri == first.registration_uri
    assert log_path.read_text().count("Successful newAccount Binding") == bindings  # no new binding

    fresh = Issuer(
        eab_pebble.directory_url, None, None, ca_bundle=eab_pebble.ca_bundle, eab=(EAB_KID, EAB_HMAC)
    )
    fresh.register(known=True)  # on record here but unknown to the CA: a full sign-up, bound
    assert fresh.registration_uri and fresh.registration_uri != first.registration_uri


def test_eab_required_but_not_configured_fails_with_the_problem_type(eab_pebble):
    issuer = Issuer(eab_pebble.directory_url, None, "ops@example.com", ca_bundle=eab_pebble.ca_bundle)
    with pytest.raises(AcmeError) as info:
        issuer.register()
    assert "urn:ietf:params:acme:error:externalAccountRequired" in str(info.value)


def test_eab_with_a_wrong_hmac_fails_clearly(eab_pebble):
    wrong = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    issuer = Issuer(
        eab_pebble.directory_url, None, None, ca_bundle=eab_pebble.ca_bundle, eab=(EAB_KID, wrong)
    )
    with pytest.raises(AcmeError) as info:
        issuer.register()
    text = str(info.value)
    assert "urn:ietf:params:acme:error:unauthorized" in text
    assert "external account binding JWS verification error" in text

    garbled = Issuer(
        eab_pebble.directory_url, None, None, ca_bundle=eab_pebble.ca_bundle, eab=(EAB_KID, "not*base64!")
    )
    with pytest.raises(AcmeError, match=r"eab.hmacEncoded for kid 'kid-1' is not base64url"):
        garbled.register()


async def test_dockroute_with_eab_obtains_a_certificate(backends, proxy, tmp_path):
    """The real process: ``eab: {kid, hmacEncoded}`` in the static file reaches newAccount."""
    pebble_env.require_pebble()
    (b,) = await backends("site")
    web_port = pebble_env.free_port()
    eab = {EAB_KID: EAB_HMAC}
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=web_port, eab_keys=eab) as pebble:
        static = _static(tmp_path, pebble.directory_url, pebble.ca_bundle, web_port)
        static["certificatesResolvers"]["le"]["acme"]["eab"] = {"kid": EAB_KID, "hmacEncoded": EAB_HMAC}
        dr = await proxy(_site(b.url, "eab.example.com"), static=static)
        await wait_for(lambda: "certificate for eab.example.com obtained" in dr.log(), timeout=20)
        assert "Successful newAccount Binding" in (tmp_path / "pebble" / "pebble.log").read_text()


# -- profiles (draft-ietf-acme-profiles) --------------------------------------------------------------


@contextlib.asynccontextmanager
async def _running(resolver: AcmeResolver) -> AsyncIterator[AcmeResolver]:
    task = asyncio.get_running_loop().create_task(resolver.run())
    try:
        yield resolver
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _resolver(tmp_path: Path, directory_url: str, ca_bundle: str, challenges, **acme) -> AcmeResolver:
    """An in-process resolver whose HTTP-01 answers are served by ``challenges``; ``acme`` are more keys
    of its ``acme`` section, read as the proxy reads them at start."""
    raw = {
        "email": "ops@example.com",
        "storage": str(tmp_path / "acme.json"),
        "caServer": directory_url,
        "caCertificates": [ca_bundle],
        "httpChallenge": {"entryPoint": "web"},  # Traefik's embedded entry point; served by `challenges`
        **acme,
    }
    resolver = AcmeResolver("le", acme_settings(raw), lambda: None)
    resolver.tokens = challenges.tokens  # the solver fills this very dict; the challenge server reads it
    return resolver


async def test_resolver_asks_for_its_profile_when_the_ca_offers_it(
    shim, pebble, challenges, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger=ACME_LOG)
    resolver = _resolver(tmp_path, shim.directory_url, pebble.ca_bundle, challenges, profile="shortlived")
    async with _running(resolver):
        resolver.want([("profile.example.com",)])
        await wait_for(lambda: resolver.certificates(), timeout=20)
    assert [o.get("profile") for o in shim.orders] == ["shortlived"]
    assert "offer" not in caplog.text  # neither "offers no profiles" nor "does not offer"


def test_a_profile_the_ca_does_not_offer_is_sent_with_one_warning(shim, pebble, challenges, caplog):
    caplog.set_level(logging.INFO, logger=ACME_LOG)
    issuer = Issuer(
        shim.directory_url, None, None, ca_bundle=pebble.ca_bundle, profile="tlsserver", label="resolver le"
    )
    for name in ("a.example.com", "b.example.com"):
        issuer.issue([name], [_solver(challenges)], deadline=30)  # Pebble 2.4 ignores the field
    assert [o.get("profile") for o in shim.orders] == ["tlsserver", "tlsserver"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == ACME_LOG]
    assert len(warnings) == 1
    assert "resolver le" in warnings[0].getMessage()
    assert "'tlsserver'" in warnings[0].getMessage() and "classic, shortlived" in warnings[0].getMessage()


async def test_no_profile_is_sent_to_a_ca_without_profiles(plain_shim, pebble, challenges, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=ACME_LOG)
    resolver = _resolver(
        tmp_path, plain_shim.directory_url, pebble.ca_bundle, challenges, profile="shortlived"
    )
    async with _running(resolver):
        resolver.want([("one.example.com",), ("two.example.com",)])
        await wait_for(lambda: len(resolver.certificates()) == 2, timeout=30)
    assert len(plain_shim.orders) == 2
    assert all("profile" not in order for order in plain_shim.orders)
    assert all("replaces" not in order for order in plain_shim.orders)  # new certificates replace nothing
    assert (
        caplog.text.count("resolver le: the CA offers no profiles; ordering without profile 'shortlived'")
        == 1
    )


# -- ACME Renewal Information (RFC 9773) ---------------------------------------------------------------


def _store(tmp_path: Path, name: str, cert: IssuedCertificate) -> None:
    AcmeStorage(str(tmp_path / "acme.json")).put_certificate(
        "le", StoredCertificate(name, (), cert.fullchain_pem, cert.key_pem)
    )


def _fresh_on_web_port(pebble, web_port: int, name: str) -> IssuedCertificate:
    """A certificate Pebble has just issued (5 years: far from a third left), validated on ``web_port``
    before dockroute takes that port over."""
    challenges = pebble_env.ChallengeServer(port=web_port)
    try:
        return _issue(pebble.directory_url, pebble.ca_bundle, challenges, name)
    finally:
        challenges.close()


_static = pebble_env.acme_static


def _site(url: str, name: str) -> dict:
    cfg = routers(services={"s": [url]})
    cfg["http"]["routers"]["site"] = {
        "rule": f"Host(`{name}`)",
        "service": "s",
        "entryPoints": ["websecure"],
        "tls": {"certResolver": "le"},
    }
    return cfg


async def _served_serial(port: int, name: str, root_pem: bytes) -> int:
    ctx = ssl.create_default_context(cadata=root_pem.decode())
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=name)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der).serial_number


async def test_dockroute_renews_a_fresh_certificate_at_start_when_the_ari_window_has_passed(
    backends, proxy, tmp_path
):
    pebble_env.require_pebble()
    (b,) = await backends("site")
    name = "ari-past.example.com"
    web_port = pebble_env.free_port()
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=web_port) as pebble:
        old = _fresh_on_web_port(pebble, web_port, name)
        _store(tmp_path, name, old)
        shim = AcmeShim(pebble)
        shim.ari_window = (_days(-2), _days(-1))
        try:
            dr = await proxy(
                _site(b.url, name), static=_static(tmp_path, shim.directory_url, pebble.ca_bundle, web_port)
            )
            await wait_for(lambda: f"certificate for {name} obtained" in dr.log(), timeout=20)
            assert ari_cert_id(old.fullchain_pem) in shim.ari_requests
            assert len(shim.orders) == 1

            async def renewed() -> bool:  # served once the store the new certificate goes into is built
                served = await _served_serial(dr.ports["websecure"], name, pebble.root_pem())
                return served != _serial(old.fullchain_pem)

            await wait_for(renewed, timeout=5)
        finally:
            shim.close()


async def test_dockroute_keeps_a_fresh_certificate_while_the_ari_window_is_ahead(backends, proxy, tmp_path):
    pebble_env.require_pebble()
    (b,) = await backends("site")
    name = "ari-ahead.example.com"
    web_port = pebble_env.free_port()
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=web_port) as pebble:
        old = _fresh_on_web_port(pebble, web_port, name)
        _store(tmp_path, name, old)
        shim = AcmeShim(pebble)
        shim.ari_window = (_days(30), _days(31))
        try:
            dr = await proxy(
                _site(b.url, name), static=_static(tmp_path, shim.directory_url, pebble.ca_bundle, web_port)
            )
            decided = f"certificate for {name} not due: the CA's renewal information says renew at"
            await wait_for(lambda: decided in dr.log(), timeout=20)
            assert shim.ari_requests == [ari_cert_id(old.fullchain_pem)]
            assert shim.orders == [] and "obtained" not in dr.log()
            served = await _served_serial(dr.ports["websecure"], name, pebble.root_pem())
            assert served == _serial(old.fullchain_pem)
        finally:
            shim.close()


async def test_ari_is_asked_again_on_every_check_and_renews_once_the_window_opens(
    shim, pebble, challenges, tmp_path, monkeypatch
):
    """No kick from new wanted names: only the periodic check (shortened here) asks ARI again."""
    name = "ari-tick.example.com"
    old = _issue(pebble.directory_url, pebble.ca_bundle, challenges, name)
    _store(tmp_path, name, old)
    shim.ari_window = (_days(30), _days(31))
    shim.ari_retry_after = 0
    monkeypatch.setattr(renewal_info_module, "_ARI_RECHECK_MIN", 0.0)
    resolver = _resolver(tmp_path, shim.directory_url, pebble.ca_bundle, challenges)
    resolver.check_interval = 0.1
    async with _running(resolver):
        resolver.want([(name,)])
        await wait_for(lambda: len(shim.ari_requests) >= 3, timeout=10)
        assert shim.orders == []
        shim.ari_window = (_days(-2), _days(-1))
        await wait_for(lambda: resolver.certificates()[0].certificate_pem != old.fullchain_pem, timeout=20)
    old_id, new_id = ari_cert_id(old.fullchain_pem), ari_cert_id(resolver.certificates()[0].certificate_pem)
    assert shim.ari_requests.count(old_id) >= 3
    assert set(shim.ari_requests) <= {old_id, new_id}  # later checks ask about the new certificate
    assert len(shim.orders) == 1
    assert shim.orders[0]["replaces"] == old_id  # RFC 9773 section 5: the renewal names what it replaces


async def test_an_ari_failure_warns_once_and_falls_back_to_the_one_third_rule(
    shim, pebble, challenges, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG, logger=ACME_LOG)
    name = "ari-down.example.com"
    old = _issue(pebble.directory_url, pebble.ca_bundle, challenges, name)
    _store(tmp_path, name, old)
    shim.ari_status = 500
    resolver = _resolver(tmp_path, shim.directory_url, pebble.ca_bundle, challenges)
    resolver.check_interval = 0.1
    not_due = f"certificate for {name} not due: "
    async with _running(resolver):
        resolver.want([(name,)])
        await wait_for(lambda: caplog.text.count(not_due) >= 3, timeout=10)  # three checks went by
        # the loop goes on: a new name set still gets its certificate
        resolver.want([(name,), ("after-ari.example.com",)])
        await wait_for(lambda: len(resolver.certificates()) == 2, timeout=20)
        # the new certificate's renewal information is asked at the check after its issue, not with it
        await wait_for(lambda: len(shim.ari_requests) >= 2, timeout=10)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == ACME_LOG and name in r.getMessage()
    ]
    assert len(warnings) == 1, warnings  # once for the certificate, not once per check
    assert warnings[0].startswith(f"resolver le: {name}: renewal information")
    assert "urn:ietf:params:acme:error:serverInternal" in warnings[0]
    assert "a third of the lifetime" in warnings[0]
    assert "left (renewal with a third left)" in caplog.text  # decided by the one-third rule
    # the CA's 6-hour retry is respected: one request for the old certificate (and one for the new)
    assert shim.ari_requests.count(ari_cert_id(old.fullchain_pem)) == 1
    assert len(shim.ari_requests) == 2
    assert [o["identifiers"][0]["value"] for o in shim.orders] == ["after-ari.example.com"]


async def test_a_ca_without_renewal_info_gets_no_request_beyond_the_directory(
    plain_shim, pebble, challenges, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG, logger=ACME_LOG)
    name = "no-ari.example.com"
    _store(tmp_path, name, _issue(pebble.directory_url, pebble.ca_bundle, challenges, name))
    resolver = _resolver(tmp_path, plain_shim.directory_url, pebble.ca_bundle, challenges)
    resolver.check_interval = 0.1
    async with _running(resolver):
        resolver.want([(name,)])
        await wait_for(lambda: caplog.text.count(f"certificate for {name} not due: ") >= 3, timeout=10)
    assert plain_shim.requests == [("GET", "/dir")]
    assert caplog.text.count("resolver le: the CA offers no renewal information (ARI)") == 1


async def test_new_names_come_first_and_an_unreachable_ari_is_not_waited_on_for_each_certificate(
    shim, pebble, challenges, tmp_path, caplog
):
    """ARI runs in the one worker thread: a new router's order must not queue behind it, and when ARI
    does not answer at all, the other certificates are parked instead of each waiting a timeout."""
    stored = [f"park{i}.example.com" for i in range(3)]
    for name in stored:
        _store(tmp_path, name, _issue(pebble.directory_url, pebble.ca_bundle, challenges, name))
    shim.ari_drop = True
    caplog.set_level(logging.DEBUG, logger=ACME_LOG)
    resolver = _resolver(tmp_path, shim.directory_url, pebble.ca_bundle, challenges)
    async with _running(resolver):
        resolver.want([(n,) for n in stored] + [("new.example.com",)])
        await wait_for(lambda: len(resolver.certificates()) == 4, timeout=20)
        await wait_for(lambda: shim.ari_requests, timeout=10)
        # one more whole pass (each pass ends with a "not due" line per name): nothing asked again
        checked = caplog.text.count(" not due: ")
        resolver.want([(n,) for n in stored] + [("new.example.com",)])
        await wait_for(lambda: caplog.text.count(" not due: ") >= checked + 4, timeout=10)
    assert len(shim.ari_requests) == 1, shim.ari_requests
    kinds = [
        "order" if p == shim._new_order_path else "ari" if "renewal-info" in p else ""
        for _, p in shim.requests
    ]  # noqa: SLF001
    assert kinds.index("order") < kinds.index("ari")  # the new name was ordered before ARI was asked


async def test_a_certificate_that_cannot_be_stored_is_served_and_never_ordered_again(
    pebble, challenges, tmp_path, caplog, monkeypatch
):
    """A full disk after issuance: the certificate is served from memory and written once the disk
    allows, with no second order (the CA counts duplicate certificates)."""
    from acme_client import storage as storage_module

    caplog.set_level(logging.DEBUG, logger=ACME_LOG)
    disk_full = True
    real_write = storage_module.AcmeStorage._write_atomic  # noqa: SLF001

    def write(self, data: bytes) -> None:
        if disk_full and b"full.example.com" in data:
            raise storage_module.StorageError(f"cannot write {self.path}: [Errno 28] No space left on device")
        real_write(self, data)

    monkeypatch.setattr(storage_module.AcmeStorage, "_write_atomic", write)
    resolver = _resolver(tmp_path, pebble.directory_url, pebble.ca_bundle, challenges)
    resolver.check_interval = 0.05
    async with _running(resolver):
        resolver.want([("full.example.com",)])
        await wait_for(lambda: resolver.certificates(), timeout=20)  # served although not stored
        not_due = "certificate for full.example.com not due"
        await wait_for(lambda: caplog.text.count(not_due) >= 5, timeout=10)  # five more checks went by
        assert "full.example.com" not in (tmp_path / "acme.json").read_text()
        disk_full = False
        await wait_for(lambda: "full.example.com" in (tmp_path / "acme.json").read_text(), timeout=10)
        await wait_for(lambda: "now stored in" in caplog.text, timeout=5)  # logged once the write returned
    assert caplog.text.count("certificate for full.example.com obtained, valid until") == 1
    assert caplog.text.count("obtained but not stored: cannot write") == 1
    assert "now stored in" in caplog.text


async def test_a_refused_replaces_still_renews_with_a_plain_order(shim, pebble, challenges, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=ACME_LOG)
    name = "replaced.example.com"
    old = _issue(pebble.directory_url, pebble.ca_bundle, challenges, name)
    _store(tmp_path, name, old)
    shim.ari_window = (_days(-2), _days(-1))
    shim.refuse_replaces = True
    resolver = _resolver(tmp_path, shim.directory_url, pebble.ca_bundle, challenges)
    async with _running(resolver):
        resolver.want([(name,)])
        await wait_for(lambda: resolver.certificates()[0].certificate_pem != old.fullchain_pem, timeout=20)
    assert [o.get("replaces") for o in shim.orders] == [ari_cert_id(old.fullchain_pem), None]
    assert f"the CA refused replaces={ari_cert_id(old.fullchain_pem)} (409 Conflict)" in caplog.text
