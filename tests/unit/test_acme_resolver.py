from pathlib import Path

import pytest

from acme_client.resolver import AcmeResolver, why_not_public
from acme_client.settings import LETS_ENCRYPT, ResolverSettings
from tests.acme_certs import stored_certificate
from tests.acme_settings import acme_error, acme_settings

# Let's Encrypt, the default CA, requires an email, and every resolver a challenge (HTTP-01 on Traefik's
# embedded `web` entry point here, so that tlsChallenge may be switched off).
EMAIL = {"email": "ops@example.com", "httpChallenge": {"entryPoint": "web"}}
TLS_CHALLENGE = "certificatesResolvers.le.acme.tlsChallenge"


@pytest.mark.parametrize(
    ("name", "public"),
    [
        ("app.example.com", True),
        ("a.b.example.org", True),
        ("printer.local", False),
        ("nas.lan", False),
        ("svc.internal", False),
        ("box.home.arpa", False),
        ("x.localhost", False),
        ("localhost", False),
        ("intranet", False),
        ("192.168.1.10", False),
        ("[::1]", False),
        ("site.test", False),
    ],
)
def test_why_not_public(name, public):
    assert (why_not_public(name) is None) is public


def test_settings_from_traefik_keys_case_insensitively(tmp_path):
    a, b = tmp_path / "a.pem", tmp_path / "b.pem"
    a.write_text("-----BEGIN CERTIFICATE-----\n")
    b.write_text("-----BEGIN CERTIFICATE-----\n")
    s = acme_settings(
        {
            "Email": "a@b.c",
            "STORAGE": "/data/acme.json",
            "caserver": "https://ca/dir",
            "keyType": "RSA4096",
            "httpChallenge": {"entrypoint": "web"},
            "caCertificates": f"{a}, {b}",
        }
    )
    assert (s.email, s.storage, s.ca_server, s.key_type, s.http_entry_point) == (
        "a@b.c",
        "/data/acme.json",
        "https://ca/dir",
        "RSA4096",
        "web",
    )
    assert s.ca_certificates == (str(a), str(b))
    assert acme_settings(EMAIL).ca_server == LETS_ENCRYPT


@pytest.mark.parametrize(
    ("value", "on"),
    [({}, True), (None, True), ("true", True), (True, True), ("false", False), (False, False)],
)
def test_tls_challenge_is_on_when_its_section_is_present(value, on):
    # Traefik's `tlsChallenge: {}` is the usual spelling: an empty section means "on", and so does the
    # key with nothing after it (`tlsChallenge:`), as for every section (`providers: docker:`).
    assert acme_settings({**EMAIL, "tlsChallenge": value}).tls_challenge is on
    assert acme_settings(EMAIL).tls_challenge is False


def test_tls_challenge_as_a_bare_flag_is_on():
    flag = "--certificatesresolvers.le.acme.tlschallenge"
    assert acme_settings(EMAIL, argv=[flag]).tls_challenge is True
    assert acme_settings({**EMAIL, "tlsChallenge": {}}, argv=[f"{flag}=false"]).tls_challenge is False


def test_a_tls_challenge_switch_that_means_nothing_is_refused_with_its_value():
    # Once left off with an error at order time; now the start stops (exit 2) with one line.
    e = acme_error({**EMAIL, "tlsChallenge": "maybe"})
    assert e.key == TLS_CHALLENGE
    assert str(e).startswith(f"{TLS_CHALLENGE}: expected a section, or true or false")
    assert "got 'maybe'" in str(e)


@pytest.mark.parametrize(
    ("word", "on"), [("T", True), ("1", True), ("TRUE", True), ("0", False), ("F", False)]
)
def test_tls_challenge_reads_gos_boolean_words_like_every_other_key(word, on):
    assert acme_settings({**EMAIL, "tlsChallenge": word}).tls_challenge is on


@pytest.mark.parametrize("word", ["yes", "on", "tRUE"])
def test_tls_challenge_refuses_words_go_does_not_read(word):
    e = acme_error({**EMAIL, "tlsChallenge": word})
    assert e.key == TLS_CHALLENGE and f"got {word!r}" in str(e)


@pytest.mark.parametrize("challenges", [{}, {"tlsChallenge": False}, {"httpChallenge": False}])
def test_a_resolver_without_any_challenge_stops_the_start_as_traefik_orders_nothing(challenges):
    # Once accepted, and HTTP-01 was then answered on every entry point, which nobody configured.
    e = acme_error({"email": "ops@example.com", **challenges})
    assert e.key == "certificatesResolvers.le.acme"
    assert "ACME challenge not specified, please select TLS or HTTP or DNS Challenge" in str(e)


def test_want_drops_private_names_and_logs_once(tmp_path, caplog):
    caplog.set_level("INFO")
    r = AcmeResolver("le", ResolverSettings(storage=str(tmp_path / "acme.json")), lambda: None)
    r.want([("app.example.com", "printer.local"), ("nas.lan",)])
    r.want([("nas.lan",)])
    assert r._wanted == []  # noqa: SLF001
    r.want([("App.Example.com.", "printer.local")])
    assert r._wanted == [("app.example.com",)]  # noqa: SLF001
    assert caplog.text.count("no certificate ordered for nas.lan") == 1


@pytest.mark.parametrize(
    "ca_server",
    ["https://ca.internal:9000/acme/acme/directory", "https://127.0.0.1:14000/dir", "https://pebble/dir"],
)
def test_a_private_ca_is_asked_for_internal_names(tmp_path, caplog, ca_server):
    caplog.set_level("INFO")
    settings = ResolverSettings(storage=str(tmp_path / "acme.json"), ca_server=ca_server)
    r = AcmeResolver("step", settings, lambda: None)
    r.want([("NAS.home.arpa.", "printer.lan"), ("intranet",), ("app.example.com", "x.localhost")])
    assert r._wanted == [  # noqa: SLF001
        ("nas.home.arpa", "printer.lan"),
        ("intranet",),
        ("app.example.com", "x.localhost"),
    ]
    assert "no certificate ordered" not in caplog.text


@pytest.mark.parametrize(
    "ca_server",
    [
        LETS_ENCRYPT,
        "https://acme-staging-v02.api.letsencrypt.org/directory",
        "https://acme.zerossl.com/v2/DV90",
        "https://dv.acme-v02.api.pki.goog/directory",
    ],
)
def test_a_public_ca_is_still_never_asked_for_internal_names(tmp_path, caplog, ca_server):
    caplog.set_level("INFO")
    settings = ResolverSettings(storage=str(tmp_path / "acme.json"), ca_server=ca_server)
    r = AcmeResolver("le", settings, lambda: None)
    r.want([("nas.home.arpa", "app.example.com"), ("intranet",)])
    assert r._wanted == [("app.example.com",)]  # noqa: SLF001
    assert "no certificate ordered for nas.home.arpa (a .home.arpa name, which a public CA" in caplog.text
    assert "no certificate ordered for intranet (a single-label name" in caplog.text


@pytest.mark.parametrize("ca_server", [LETS_ENCRYPT, "https://127.0.0.1:14000/dir"])
def test_ip_addresses_are_left_out_for_every_ca_with_the_reason(tmp_path, caplog, ca_server):
    caplog.set_level("INFO")
    settings = ResolverSettings(storage=str(tmp_path / "acme.json"), ca_server=ca_server)
    r = AcmeResolver("ca", settings, lambda: None)
    r.want([("192.168.1.10", "[::1]", "app.example.com")])
    assert r._wanted == [("app.example.com",)]  # noqa: SLF001
    assert "no certificate ordered for 192.168.1.10 (an IP address: IP identifiers (RFC 8738)" in caplog.text
    assert "no certificate ordered for [::1] (an IP address" in caplog.text


@pytest.mark.parametrize("ca_server", [LETS_ENCRYPT, "https://127.0.0.1:14000/dir"])
def test_wildcards_are_left_out_until_dns_01_exists(tmp_path, caplog, ca_server):
    """A wildcard needs DNS-01 at every CA: ordering it over HTTP-01 would fail (and back off the names
    sharing its certificate), so it is left out with the reason and the rest of the set is ordered."""
    caplog.set_level("INFO")
    settings = ResolverSettings(storage=str(tmp_path / "acme.json"), ca_server=ca_server)
    r = AcmeResolver("ca", settings, lambda: None)
    r.want([("example.com", "*.example.com")])
    assert r._wanted == [("example.com",)]  # noqa: SLF001
    assert (
        "no certificate ordered for *.example.com (a wildcard: it needs the DNS-01 challenge" in caplog.text
    )


def test_failed_validation_is_told_apart_from_an_unreachable_ca():
    from acme_client.issuer import AcmeError
    from acme_client.resolver import _validation_failed

    assert _validation_failed(AcmeError("urn:ietf:params:acme:error:unauthorized: wrong key authorization"))
    assert _validation_failed(AcmeError("urn:ietf:params:acme:error:connection: connection refused"))
    assert not _validation_failed(AcmeError("cannot reach CA: connection refused"))
    assert not _validation_failed(AcmeError("urn:ietf:params:acme:error:rateLimited: too many"))


# -- the renewal decision: ARI where the CA answered, else a third of the lifetime left -----------------


def _cert(name: str, days_in: float, days_left: float):
    return stored_certificate([name], days_in=days_in, days_left=days_left)


def _resolver_with(tmp_path, cert) -> AcmeResolver:
    r = AcmeResolver("le", ResolverSettings(storage=str(tmp_path / "acme.json")), lambda: None)
    r._certs[(cert.main,)] = cert  # noqa: SLF001
    r.want([(cert.main,)])
    return r


def _ari(cert, renew_in_days: float | None, next_check_in: float = 3600.0):
    import datetime as dt
    import time

    from acme_client.renewal_info import Ari as _Ari

    renew_at = None if renew_in_days is None else dt.datetime.now(dt.UTC) + dt.timedelta(days=renew_in_days)
    return _Ari(cert.certificate_pem, renew_at, time.monotonic() + next_check_in)


def test_without_ari_a_third_of_the_lifetime_left_decides(tmp_path):
    fresh = _cert("a.example.com", days_in=1, days_left=89)
    assert _resolver_with(tmp_path, fresh)._due(("a.example.com",))[0] is False  # noqa: SLF001
    old = _cert("a.example.com", days_in=80, days_left=2)
    assert _resolver_with(tmp_path, old)._due(("a.example.com",))[0] is True  # noqa: SLF001


def test_an_ari_answer_for_the_certificate_decides_both_ways(tmp_path):
    fresh = _cert("a.example.com", days_in=1, days_left=89)
    r = _resolver_with(tmp_path, fresh)
    r._renewal.answers[("a.example.com",)] = _ari(fresh, renew_in_days=-1)  # noqa: SLF001
    assert r._due(("a.example.com",))[0] is True  # noqa: SLF001 - the window opened: renew early

    old = _cert("b.example.com", days_in=65, days_left=25)
    r = _resolver_with(tmp_path, old)
    r._renewal.answers[("b.example.com",)] = _ari(old, renew_in_days=1)  # noqa: SLF001
    assert r._due(("b.example.com",))[0] is False  # noqa: SLF001 - the CA's window, not the rule of thumb


def test_a_tenth_of_the_lifetime_left_is_due_whatever_ari_says(tmp_path):
    # A stale or wrong window must not let the certificate run out.
    old = _cert("b.example.com", days_in=80, days_left=2)
    r = _resolver_with(tmp_path, old)
    r._renewal.answers[("b.example.com",)] = _ari(old, renew_in_days=10)  # noqa: SLF001
    due, why = r._due(("b.example.com",))  # noqa: SLF001
    assert due is True and "a tenth of the lifetime" in why


def test_ari_answers_about_another_certificate_or_failures_leave_the_one_third_rule(tmp_path):
    fresh = _cert("a.example.com", days_in=1, days_left=89)
    other = _cert("a.example.com", days_in=1, days_left=89)
    r = _resolver_with(tmp_path, fresh)
    r._renewal.answers[("a.example.com",)] = _ari(other, renew_in_days=-1)  # noqa: SLF001 - the replaced certificate's
    assert r._due(("a.example.com",))[0] is False  # noqa: SLF001
    r._renewal.answers[("a.example.com",)] = _ari(fresh, renew_in_days=None)  # noqa: SLF001 - ARI failed
    assert r._due(("a.example.com",))[0] is False  # noqa: SLF001


def test_an_expired_certificate_is_due_whatever_ari_said(tmp_path):
    expired = _cert("a.example.com", days_in=90, days_left=-1)
    r = _resolver_with(tmp_path, expired)
    r._renewal.answers[("a.example.com",)] = _ari(expired, renew_in_days=5)  # noqa: SLF001
    assert r._due(("a.example.com",)) == (True, "expired")  # noqa: SLF001


def test_ari_is_asked_only_once_its_next_check_has_come(tmp_path):
    import time

    fresh = _cert("a.example.com", days_in=1, days_left=89)
    r = _resolver_with(tmp_path, fresh)
    assert [n for n, _ in r._ari_questions()] == [("a.example.com",)]  # noqa: SLF001 - never asked
    r._renewal.answers[("a.example.com",)] = _ari(fresh, renew_in_days=30, next_check_in=3600)  # noqa: SLF001
    assert r._ari_questions() == []  # noqa: SLF001
    r._renewal.answers[("a.example.com",)] = _ari(fresh, renew_in_days=30, next_check_in=-1)  # noqa: SLF001
    assert len(r._ari_questions()) == 1  # noqa: SLF001
    r._failures[("a.example.com",)] = (time.monotonic() + 60, 60)  # noqa: SLF001 - backing off
    assert r._ari_questions() == []  # noqa: SLF001
    r.want([("b.example.com",)])  # no stored certificate: nothing to ask about
    assert r._ari_questions() == []  # noqa: SLF001


def test_several_ca_certificates_are_all_trusted(tmp_path, caplog):
    from acme_client.resolver import _ca_bundle

    a, b = tmp_path / "a.pem", tmp_path / "b.pem"
    a.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    b.write_bytes(b"-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----")
    assert _ca_bundle(()) is None
    assert _ca_bundle((str(a),)) == str(a)
    with caplog.at_level("ERROR"):
        bundle = _ca_bundle((str(a), str(tmp_path / "missing.pem"), str(b)))
    text = Path(bundle).read_bytes()
    assert b"AAAA" in text and b"BBBB" in text
    assert "cannot read" in caplog.text and "missing.pem" in caplog.text


async def test_config_changes_never_hammer_a_ca_that_is_down(tmp_path, caplog, down_ca):
    """Every config change kicks the resolver; with the CA unreachable, the renewal-information check of
    a stored (not yet due) certificate must back off like an order does, not retry on every kick."""
    import asyncio

    settings = ResolverSettings(storage=str(tmp_path / "acme.json"), ca_server=down_ca.directory_url)
    cert = _cert("fresh.example.com", days_in=1, days_left=80)
    r = AcmeResolver("le", settings, lambda: None)
    r._certs[(cert.main,)] = cert  # noqa: SLF001
    r.want([(cert.main,)])
    caplog.set_level("DEBUG", logger="dockroute.acme")
    loop = asyncio.get_running_loop()

    async def passes(n: int) -> None:  # each pass of the loop ends with this debug line for the name
        deadline = loop.time() + 5
        while caplog.text.count("certificate for fresh.example.com not due") < n:
            assert loop.time() < deadline, f"pass {n} did not happen"
            await asyncio.sleep(0.01)

    task = loop.create_task(r.run())
    try:
        await passes(1)
        for n in range(2, 7):
            r.want([(cert.main,)])  # a config change kicks the loop
            await passes(n)
    finally:
        task.cancel()
    assert down_ca.attempts == 1, f"the CA saw {down_ca.attempts} connections"
    assert caplog.text.count("cannot check renewal information") == 1
    assert "asking again in 60s" in caplog.text


def test_tls_alpn_01_is_tried_before_http_01_as_lego_does(tmp_path):
    both = ResolverSettings(storage=str(tmp_path / "a.json"), http_entry_point="web", tls_challenge=True)
    assert [s.typ for s in AcmeResolver("a", both, lambda: None)._solvers] == ["tls-alpn-01", "http-01"]  # noqa: SLF001
    http = ResolverSettings(storage=str(tmp_path / "b.json"), http_entry_point="web")
    assert [s.typ for s in AcmeResolver("b", http, lambda: None)._solvers] == ["http-01"]  # noqa: SLF001


async def test_a_name_set_backing_off_keeps_one_wake_up_however_often_it_is_checked(tmp_path):
    import asyncio
    import time

    r = AcmeResolver("le", ResolverSettings(storage=str(tmp_path / "acme.json")), lambda: None)
    r._kick = asyncio.Event()  # noqa: SLF001
    names = ("busy.example.com",)
    r._failures[names] = (time.monotonic() + 3600, 3600)  # noqa: SLF001
    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # noqa: SLF001 - the loop's timer heap
    for _ in range(50):  # fifty config changes during the backoff
        await r._check(loop, names)  # noqa: SLF001
    assert len(loop._scheduled) - before == 1  # noqa: SLF001
    r._retry_timers[names].cancel()  # noqa: SLF001
