"""Certificate reports: what the resolvers and the file certificates tell the API and the metrics.

Issuer and dates come from the certificate, the next renewal from the same rule the renewal loop
applies, the last error from the last failed order; nothing is parsed when a report is asked for (the
API asks on the event loop)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_client.internal_ca import InternalCA
from acme_client.issuer import AcmeError
from acme_client.renewal_info import Ari as _Ari
from acme_client.report import read_facts
from acme_client.resolver import AcmeResolver
from acme_client.settings import InternalCASettings, ResolverSettings
from acme_client.storage import AcmeStorage, ResolverState, StoredCertificate
from dockroute.certificates import CertificateReports, read_file_certificates
from router.api.state import CertificateReport
from router.tls import CertKeyPair, self_signed_default

DAY = 86400.0


def _make(
    names: tuple[str, ...] = ("a.example.com",),
    *,
    days_in: float = 1,
    days_left: float = 89,
    issuer: str | None = "Test Issuing CA",
    cn: str | None = None,
    ips: tuple[str, ...] = (),
) -> tuple[bytes, bytes, x509.Certificate]:
    """A certificate for ``names`` (SAN; none when empty) signed by a throwaway CA called ``issuer``
    (None: an issuer DN with no CN)."""
    now = dt.datetime.now(dt.UTC)
    key, ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    issuer_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, issuer)]
        if issuer is not None
        else [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Org")]
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=days_in))
        .not_valid_after(now + dt.timedelta(days=days_left))
    )
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
    cert = builder.sign(ca_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, cert


def _stored(names: tuple[str, ...] = ("a.example.com",), **kw) -> StoredCertificate:
    pem, key, _ = _make(names, **kw)
    return StoredCertificate(names[0], tuple(names[1:]), pem, key)


def _resolver(tmp_path: Path, *certs: StoredCertificate) -> AcmeResolver:
    """A resolver loading ``certs`` from its acme.json, as at start."""
    storage = str(tmp_path / "acme.json")
    if certs:
        AcmeStorage(storage).save({"le": ResolverState(certificates=certs)})
    return AcmeResolver(
        "le", ResolverSettings(storage=storage, ca_server="https://ca.test/dir"), lambda: None
    )


@pytest.fixture
def no_parsing(monkeypatch):
    """Make any x509 parsing fail: reports must be built from what was read before."""

    def refuse(*a, **kw):
        raise AssertionError("a certificate was parsed while a report was asked for")

    def on() -> None:
        monkeypatch.setattr(x509, "load_pem_x509_certificate", refuse)
        monkeypatch.setattr(x509, "load_pem_x509_certificates", refuse)

    return on


# -- what a certificate says ----------------------------------------------------------------------------


def test_facts_are_read_from_the_leaf():
    pem, _, cert = _make(("b.example.com", "a.example.com"), cn="b.example.com", ips=("10.0.0.1",))
    facts = read_facts(pem)
    assert facts.issuer == "Test Issuing CA"
    assert facts.names == ("b.example.com", "a.example.com", "10.0.0.1")
    assert facts.dns_names == ("b.example.com", "a.example.com") and facts.ip_addresses == ("10.0.0.1",)
    assert facts.common_name == "b.example.com"
    assert facts.serial == str(cert.serial_number)  # decimal, as Traefik's metric label
    assert facts.not_after == cert.not_valid_after_utc.timestamp()
    assert facts.not_before == cert.not_valid_before_utc.timestamp()


def test_facts_fall_back_to_the_cn_and_to_the_issuers_whole_dn():
    facts = read_facts(_make((), cn="only-cn.example.com", issuer=None)[0])
    assert facts.names == ("only-cn.example.com",)
    assert facts.issuer == "O=Acme Org"
    with pytest.raises(ValueError):
        read_facts(b"not a certificate")


# -- the ACME resolver ----------------------------------------------------------------------------------


def test_a_loaded_certificate_is_reported_with_issuer_dates_and_the_one_third_renewal(tmp_path, no_parsing):
    stored = _stored(("a.example.com", "www.example.com"), days_in=30, days_left=60)
    r = _resolver(tmp_path, stored)
    r.want([("a.example.com", "www.example.com")])
    leaf = x509.load_pem_x509_certificate(stored.certificate_pem)
    no_parsing()  # everything below was read when acme.json was loaded
    [rep] = r.reports()
    assert (rep.domains, rep.resolver, rep.source) == (("a.example.com", "www.example.com"), "le", "acme")
    assert rep.facts is not None and rep.facts.issuer == "Test Issuing CA"
    assert rep.facts.not_after == leaf.not_valid_after_utc.timestamp()
    assert rep.facts.not_before == leaf.not_valid_before_utc.timestamp()
    # The loop's rule: due with a third of the lifetime (90 days) left, i.e. 30 days before not-after.
    assert rep.next_renewal == pytest.approx(rep.facts.not_after - 30 * DAY)
    assert rep.last_error is None
    assert r.failure_log.count == 0


def test_the_next_renewal_is_when_the_loop_finds_the_certificate_due(tmp_path, monkeypatch):
    names = ("a.example.com",)
    r = _resolver(tmp_path, _stored(names, days_in=59, days_left=31))
    r.want([names])
    [rep] = r.reports()
    assert rep.next_renewal is not None and rep.next_renewal > time.time()
    assert r._due(names)[0] is False  # noqa: SLF001
    # The loop's own rule flips from "not due" to "due" at the reported time.
    at = rep.next_renewal
    monkeypatch.setattr(time, "time", lambda: at - 1)
    assert r._due(names)[0] is False  # noqa: SLF001
    monkeypatch.setattr(time, "time", lambda: at + 1)
    assert r._due(names)[0] is True  # noqa: SLF001


def test_an_ari_answer_moves_the_next_renewal_but_never_past_a_tenth_left(tmp_path):
    names = ("a.example.com",)
    stored = _stored(names, days_in=10, days_left=80)
    r = _resolver(tmp_path, stored)
    r.want([names])
    before = r.reports()
    assert r.reports() is before  # kept until something changes
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    r._renewal.answers[names] = _Ari(stored.certificate_pem, soon, time.monotonic() + 3600)  # noqa: SLF001
    r._reports = None  # noqa: SLF001 - what _refresh_renewal_info does after an answer
    assert r.reports()[0].next_renewal == pytest.approx(soon.timestamp())
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=79)  # past a tenth of 90 days left (day 81)
    r._renewal.answers[names] = _Ari(stored.certificate_pem, late, time.monotonic() + 3600)  # noqa: SLF001
    r._reports = None  # noqa: SLF001
    [rep] = r.reports()
    assert rep.facts is not None
    assert rep.next_renewal == pytest.approx(rep.facts.not_after - 9 * DAY)


def test_a_certificate_no_router_wants_is_never_renewed(tmp_path):
    r = _resolver(tmp_path, _stored(("old.example.com",)))
    r.want([])
    [rep] = r.reports()
    assert rep.facts is not None and rep.next_renewal is None


async def test_a_failed_first_order_is_the_reports_last_error_until_an_order_succeeds(tmp_path):
    names = ("new.example.com",)
    r = _resolver(tmp_path)
    r.want([names])
    [pending] = r.reports()
    assert pending.facts is None and pending.last_error is None and pending.domains == names
    loop = asyncio.get_running_loop()

    def refused(_names):
        raise AcmeError("order for new.example.com: urn:ietf:params:acme:error:rejectedIdentifier: no")

    r._order = refused  # type: ignore[method-assign]  # noqa: SLF001
    before = time.time()
    await r._check(loop, names)  # noqa: SLF001
    [failed] = r.reports()
    assert failed.facts is None
    assert failed.last_error is not None
    assert "rejectedIdentifier" in failed.last_error.message
    assert before <= failed.last_error.at <= time.time()
    # A refused identifier waits out the failed-validation hour; the report says when it is tried again.
    assert failed.next_renewal == pytest.approx(failed.last_error.at + 3600, abs=1)
    assert r.failure_log.count == 1

    r._failures.clear()  # noqa: SLF001 - the backoff is over
    stored = _stored(names)
    r._order = lambda _names: stored  # type: ignore[method-assign]  # noqa: SLF001
    await r._check(loop, names)  # noqa: SLF001
    [ok] = r.reports()
    assert ok.facts is not None and ok.last_error is None
    assert r.failure_log.count == 1  # a counter: it never goes down


async def test_a_renewal_stored_under_another_key_is_the_one_judged_so_it_is_ordered_once(tmp_path):
    # A Traefik acme.json holds main b, sans [a]; the router asks for (a, b): the old certificate covers
    # the set but is stored under another key. Once it is due, each pass must not order again.
    old = _stored(("b.example.com", "a.example.com"), days_in=80, days_left=10)
    r = _resolver(tmp_path, old)
    wanted = ("a.example.com", "b.example.com")
    r.want([wanted])
    orders: list[tuple[str, ...]] = []

    def order(names):
        orders.append(names)
        return _stored(names, days_in=0, days_left=90)

    r._order = order  # type: ignore[method-assign]  # noqa: SLF001
    loop = asyncio.get_running_loop()
    for _ in range(3):
        await r._check(loop, wanted)  # noqa: SLF001
    assert orders == [wanted]
    [rep] = r.reports()  # the superseded certificate is neither served nor reported
    assert rep.domains == wanted and rep.facts is not None
    assert rep.facts.not_after == pytest.approx(time.time() + 90 * DAY, abs=60)
    assert rep.next_renewal == pytest.approx(rep.facts.not_after - 30 * DAY)  # the new one's renewal
    assert [c.names for c in r.certificates()] == [wanted]


def test_of_two_stored_certificates_for_a_set_the_later_expiring_one_is_kept(tmp_path):
    # A router that dropped a host: (a, b) renewed as (a); the old (a, b) expires first and is dropped.
    newer = _stored(("a.example.com", "b.example.com"), days_in=1, days_left=89)
    older = _stored(("b.example.com", "a.example.com"), days_in=70, days_left=20)
    r = _resolver(tmp_path, older, newer)
    r.want([("a.example.com",)])
    assert r.certificates() == [newer]
    assert r._due(("a.example.com",))[0] is False  # noqa: SLF001 - judged on the newer one
    [rep] = r.reports()
    assert rep.next_renewal == pytest.approx(newer.facts.not_after - 30 * DAY)


async def test_a_failed_renewal_keeps_the_certificate_and_tells_when_it_is_tried_again(tmp_path):
    names = ("a.example.com",)
    r = _resolver(tmp_path, _stored(names, days_in=80, days_left=10))  # due: under a third left
    r.want([names])

    def unreachable(_names):
        raise AcmeError("directory https://ca.test/dir: cannot reach CA: connection refused")

    r._order = unreachable  # type: ignore[method-assign]  # noqa: SLF001
    await r._check(asyncio.get_running_loop(), names)  # noqa: SLF001
    [rep] = r.reports()
    assert rep.facts is not None  # still served
    assert rep.last_error is not None and "cannot reach CA" in rep.last_error.message
    assert rep.next_renewal == pytest.approx(rep.last_error.retry_at)
    assert rep.next_renewal == pytest.approx(time.time() + 60, abs=2)  # the first backoff: a minute
    assert r.failure_log.count == 1


# -- the internal CA ------------------------------------------------------------------------------------


async def test_internal_ca_leaves_are_reported_with_the_roots_name_and_their_renewal(tmp_path, no_parsing):
    ca = InternalCA(
        "home", InternalCASettings(storage=str(tmp_path / "ca"), leaf_lifetime=3 * DAY), lambda: None
    )
    ca.want([("printer.lan",), ("nas.lan", "10.1.2.3")])
    await ca._pass(asyncio.get_running_loop())  # noqa: SLF001
    root = x509.load_pem_x509_certificate((tmp_path / "ca" / "root.crt").read_bytes())
    root_cn = root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    leaves = {leaf.names: leaf for leaf in ca.certificates()}
    no_parsing()
    reports = ca.reports()
    assert [r.domains for r in reports] == [("printer.lan",), ("nas.lan", "10.1.2.3")]
    for rep in reports:
        assert rep.source == "internalCA" and rep.resolver == "home" and rep.last_error is None
        assert rep.facts is not None and rep.facts.issuer == root_cn
        assert rep.facts.not_after == pytest.approx(time.time() + 3 * DAY, abs=5)
        assert rep.next_renewal == leaves[rep.domains].renew_at.timestamp()  # the loop's renewal time
    assert reports[1].facts is not None and reports[1].facts.ip_addresses == ("10.1.2.3",)


async def test_an_internal_ca_whose_root_cannot_be_used_reports_why(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    ca = InternalCA("home", InternalCASettings(storage=str(tmp_path / "file" / "ca")), lambda: None)
    ca.want([("printer.lan",)])
    await ca._pass(asyncio.get_running_loop())  # noqa: SLF001
    [rep] = ca.reports()
    assert rep.facts is None and rep.last_error is not None
    assert f"cannot use {tmp_path / 'file' / 'ca'}" in rep.last_error.message
    assert rep.next_renewal == pytest.approx(time.time() + 600, abs=5)  # the storage retry
    assert ca.failure_log.count == 1


async def test_an_internal_ca_issue_failure_is_the_leafs_last_error(tmp_path, monkeypatch):
    import acme_client.internal_ca as mod

    ca = InternalCA("home", InternalCASettings(storage=str(tmp_path / "ca")), lambda: None)
    ca.want([("printer.lan",)])
    loop = asyncio.get_running_loop()
    await ca._pass(loop)  # noqa: SLF001
    [leaf] = ca.certificates()

    def broken(*a, **kw):
        raise RuntimeError("a bug")

    monkeypatch.setattr(mod, "issue_leaf", broken)
    object.__setattr__(leaf, "renew_at", dt.datetime.now(dt.UTC))  # due now
    await ca._pass(loop)  # noqa: SLF001
    [rep] = ca.reports()
    assert rep.facts is leaf.facts
    assert rep.last_error is not None and rep.last_error.message == "RuntimeError: a bug"
    assert rep.next_renewal == pytest.approx(rep.last_error.retry_at)  # not the past renewal time
    assert ca.failure_log.count == 1


def _failing_for(monkeypatch, bad: str) -> None:
    """The internal CA's issue fails for every set naming ``bad``."""
    import acme_client.internal_ca as mod

    real = mod.issue_leaf

    def issue(root, names, lifetime):
        if bad in names:
            raise RuntimeError(f"cannot issue {bad}")
        return real(root, names, lifetime)

    monkeypatch.setattr(mod, "issue_leaf", issue)


async def test_an_internal_ca_set_failing_is_pending_though_one_of_its_names_has_a_leaf(
    tmp_path, monkeypatch
):
    _failing_for(monkeypatch, "b.lan")
    ca = InternalCA("home", InternalCASettings(storage=str(tmp_path / "ca")), lambda: None)
    ca.want([("a.lan",), ("a.lan", "b.lan")])
    await ca._pass(asyncio.get_running_loop())  # noqa: SLF001
    reports = {r.domains: r for r in ca.reports()}
    assert reports[("a.lan",)].facts is not None
    pending = reports[("a.lan", "b.lan")]
    assert pending.facts is None and pending.last_error is not None
    assert pending.last_error.message == "RuntimeError: cannot issue b.lan"


async def test_an_internal_ca_failure_of_a_set_the_root_trimmed_is_that_sets_last_error(
    tmp_path, monkeypatch
):
    InternalCA(
        "home", InternalCASettings(storage=str(tmp_path / "ca"), permitted_domains=("lan",)), lambda: None
    ).ensure_root()
    _failing_for(monkeypatch, "a.lan")
    ca = InternalCA("home", InternalCASettings(storage=str(tmp_path / "ca")), lambda: None)  # root: lan only
    ca.want([("a.lan", "www.example.com")])  # issued as (a.lan,): the root forbids example.com
    await ca._pass(asyncio.get_running_loop())  # noqa: SLF001
    [rep] = ca.reports()
    assert rep.domains == ("a.lan",) and rep.facts is None  # the set as it is issued
    assert rep.last_error is not None and rep.last_error.message == "RuntimeError: cannot issue a.lan"


async def test_an_internal_ca_forgets_the_last_error_of_a_set_no_longer_wanted(tmp_path, monkeypatch):
    _failing_for(monkeypatch, "b.lan")
    ca = InternalCA("home", InternalCASettings(storage=str(tmp_path / "ca")), lambda: None)
    loop = asyncio.get_running_loop()
    ca.want([("b.lan",)])
    await ca._pass(loop)  # noqa: SLF001
    assert ca.failure_log.last(("b.lan",)) is not None
    ca.want([("c.lan",)])  # the router went away
    await ca._pass(loop)  # noqa: SLF001
    ca.want([("b.lan",)])  # and came back: no stale error before its next attempt
    [rep] = [r for r in ca.reports() if r.domains == ("b.lan",)]
    assert rep.facts is None and rep.last_error is None
    assert ca.failure_log.count == 1


# -- the app: every resolver and the file certificates, as the router's CertificateReport ----------------


def test_file_certificates_are_read_once_and_bad_ones_left_out():
    pem, key, _ = _make(("files.example.com",), issuer="Corp CA")
    default = self_signed_default()
    files = read_file_certificates([CertKeyPair(pem, key), CertKeyPair(b"junk", b"junk")], default)
    assert [(source, f.names) for source, f in files] == [
        ("file", ("files.example.com",)),
        ("default", ("DOCKROUTE DEFAULT CERT",)),
    ]
    assert files[0][1].issuer == "Corp CA"


def test_the_app_turns_every_report_into_the_routers_certificate_report(tmp_path, no_parsing):
    names = ("a.example.com",)
    r = _resolver(tmp_path, _stored(names))
    r.want([names, ("new.example.com",)])
    r.failure_log.failed(("new.example.com",), "order for new.example.com: refused", 60)  # noqa: SLF001
    pem, key, _ = _make(("files.example.com",), cn="files.example.com", issuer="Corp CA")
    reports = CertificateReports({"le": r})
    reports.files = read_file_certificates([CertKeyPair(pem, key)], self_signed_default())
    no_parsing()
    got = reports()
    assert all(isinstance(g, CertificateReport) for g in got)
    assert [(g.domains, g.resolver, g.source) for g in got] == [
        (names, "le", "acme"),
        (("new.example.com",), "le", "acme"),
        (("files.example.com",), "", "file"),
        (("DOCKROUTE DEFAULT CERT",), "", "default"),
    ]
    served, pending, file, default = got
    assert served.issuer == "Test Issuing CA" and served.not_after > time.time() + 80 * DAY
    assert served.next_renewal is not None and served.last_error == "" and served.last_error_at is None
    assert pending.not_after == 0.0 and pending.issuer == ""  # nothing issued yet
    assert pending.last_error == "order for new.example.com: refused" and pending.last_error_at
    assert file.issuer == "Corp CA" and file.next_renewal is None
    assert default.issuer == "DOCKROUTE DEFAULT CERT"  # self-signed
    assert reports.failures() == {"le": 1}
    samples = reports.not_after_samples()  # Traefik's tls_certs_not_after labels: cn, serial, sans
    assert [(cn, sans) for cn, _serial, sans, _ in samples] == [
        ("", "a.example.com"),
        ("files.example.com", "files.example.com"),
    ]  # the default certificate is not in the store's list, as in Traefik
    assert samples[0][3] == served.not_after


async def test_each_failure_is_told_to_the_apps_counter_with_the_resolvers_name(tmp_path):
    from dockroute.certificates import build_resolvers

    (tmp_path / "file").write_text("not a folder")
    seen: list[str] = []
    resolvers = build_resolvers(
        {
            "le": ResolverSettings(storage=str(tmp_path / "acme.json"), ca_server="https://ca.test/dir"),
            "home": InternalCASettings(storage=str(tmp_path / "file" / "ca")),
        },
        lambda: None,
        on_failure=seen.append,
    )
    le, home = resolvers["le"], resolvers["home"]
    assert isinstance(le, AcmeResolver) and isinstance(home, InternalCA)

    def refused(_names):
        raise AcmeError("cannot reach CA")

    le._order = refused  # type: ignore[method-assign]  # noqa: SLF001
    loop = asyncio.get_running_loop()
    await le._check(loop, ("a.example.com",))  # noqa: SLF001
    home.want([("printer.lan",)])
    await home._pass(loop)  # noqa: SLF001
    assert seen == ["le", "home"]
    assert CertificateReports(resolvers).failures() == {"le": 1, "home": 1}
