import pytest

from acme_client.resolver import LETS_ENCRYPT, AcmeResolver, ResolverSettings, why_not_public


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


def test_settings_from_traefik_keys_case_insensitively():
    s = ResolverSettings.from_raw(
        {
            "Email": "a@b.c",
            "STORAGE": "/data/acme.json",
            "caserver": "https://ca/dir",
            "keyType": "RSA4096",
            "httpChallenge": {"entrypoint": "web"},
            "caCertificates": "/a.pem, /b.pem",
        }
    )
    assert (s.email, s.storage, s.ca_server, s.key_type, s.http_entry_point) == (
        "a@b.c",
        "/data/acme.json",
        "https://ca/dir",
        "RSA4096",
        "web",
    )
    assert s.ca_certificates == ("/a.pem", "/b.pem")
    assert ResolverSettings.from_raw({}).ca_server == LETS_ENCRYPT


@pytest.mark.parametrize(
    ("value", "on"),
    [({}, True), ("true", True), ("", True), (True, True), (None, False), ("false", False), (False, False)],
)
def test_tls_challenge_is_on_when_its_section_is_present(value, on):
    # Traefik's `tlsChallenge: {}` is the usual spelling: an empty section means "on".
    assert ResolverSettings.from_raw({"tlsChallenge": value}).tls_challenge is on
    assert ResolverSettings.from_raw({}).tls_challenge is False


def test_want_drops_private_names_and_logs_once(tmp_path, caplog):
    caplog.set_level("INFO")
    r = AcmeResolver("le", ResolverSettings(storage=str(tmp_path / "acme.json")), lambda: None)
    r.want([("app.example.com", "printer.local"), ("nas.lan",)])
    r.want([("nas.lan",)])
    assert r._wanted == []  # noqa: SLF001
    r.want([("App.Example.com.", "printer.local")])
    assert r._wanted == [("app.example.com",)]  # noqa: SLF001
    assert caplog.text.count("no certificate ordered for nas.lan") == 1


def test_failed_validation_is_told_apart_from_an_unreachable_ca():
    from acme_client.issuer import AcmeError
    from acme_client.resolver import _validation_failed

    assert _validation_failed(AcmeError("urn:ietf:params:acme:error:unauthorized: wrong key authorization"))
    assert _validation_failed(AcmeError("urn:ietf:params:acme:error:connection: connection refused"))
    assert not _validation_failed(AcmeError("cannot reach CA: connection refused"))
    assert not _validation_failed(AcmeError("urn:ietf:params:acme:error:rateLimited: too many"))
