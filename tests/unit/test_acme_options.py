"""``certificatesResolvers.<name>.acme`` options: eab, profile, certificatesDuration (read like Traefik,
through the static configuration reader the proxy starts with)."""

from __future__ import annotations

import pytest

from acme_client.resolver import AcmeResolver
from acme_client.settings import renewal_check_interval
from tests.acme_settings import acme_error, acme_settings

# Let's Encrypt, the default CA, needs an email, and every resolver a challenge.
EMAIL = {"email": "ops@example.com", "tlsChallenge": {}}
KEY = "certificatesResolvers.le.acme"


def test_eab_is_read_case_insensitively_and_kept_out_of_repr():
    s = acme_settings({**EMAIL, "EAB": {"KID": "kid-1", "hmacencoded": "c2VjcmV0"}})
    assert s.eab == ("kid-1", "c2VjcmV0")
    assert "c2VjcmV0" not in repr(s)  # a secret: never in a log line that prints the settings


@pytest.mark.parametrize(
    ("eab", "key", "why"),
    [
        ({"kid": "kid-1"}, "eab.hmacEncoded", "needs both kid and hmacEncoded"),
        ({"hmacEncoded": "c2VjcmV0"}, "eab.kid", "needs both kid and hmacEncoded"),
        ({"kid": "", "hmacEncoded": "x"}, "eab.kid", "expected a non-empty string, got ''"),
        ("kid", "eab", "expected a section"),
    ],
)
def test_an_incomplete_eab_stops_the_start_naming_the_key(eab, key, why):
    # Registering without the binding a CA requires would only fail later, at the CA: exit 2 instead.
    e = acme_error({**EMAIL, "eab": eab})
    assert e.key == f"{KEY}.{key}" and why in str(e)


def test_no_eab_by_default():
    assert acme_settings(EMAIL).eab is None
    assert acme_settings({**EMAIL, "eab": {}}).eab is None  # an empty section is no binding, not an error


@pytest.mark.parametrize(
    ("raw", "profile"),
    [({"Profile": "shortlived"}, "shortlived"), ({"profile": " tlsserver "}, "tlsserver"), ({}, None)],
)
def test_profile(raw, profile):
    assert acme_settings({**EMAIL, **raw}).profile == profile


def test_a_blank_profile_stops_the_start():
    # Once read as "no profile"; a key set to nothing is now named rather than guessed at.
    e = acme_error({**EMAIL, "profile": " "})
    assert e.key == f"{KEY}.profile" and "expected a non-empty string, got ' '" in str(e)


@pytest.mark.parametrize(("value", "hours"), [(None, 2160), (72, 72), ("72", 72), (" 24 ", 24), (8760, 8760)])
def test_certificates_duration_accepts_whole_hours(value, hours):
    raw = {} if value is None else {"CertificatesDuration": value}
    assert acme_settings({**EMAIL, **raw}).certificates_duration == hours


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("90d", "expected a whole number, got '90d'"),
        ("2.5", "expected a whole number, got '2.5'"),
        (2.5, "expected a whole number, got 2.5"),
        (True, "expected a whole number, got True"),
        (0, "must be at least 1, got 0"),
        (-1, "must be at least 1, got -1"),
        ([], "expected a whole number, got a list"),
        ({}, "expected a whole number, got a mapping"),
    ],
)
def test_certificates_duration_that_is_not_whole_hours_stops_the_start(value, why):
    e = acme_error({**EMAIL, "certificatesDuration": value})
    assert e.key == f"{KEY}.certificatesDuration" and why in str(e)


@pytest.mark.parametrize(
    ("hours", "seconds"),
    [
        (2160, 600),  # 90 days (Traefik: 24 h) - dockroute keeps its 10 minutes
        (365 * 24, 600),  # a year (Traefik: 7 days)
        (30 * 24, 600),  # Traefik: 12 h
        (7 * 24, 600),  # Traefik: 1 h
        (24, 600),  # Traefik: 10 min
        (23, 60),  # Traefik: 1 min - shorter than dockroute's, so taken
        (1, 60),
    ],
)
def test_check_interval_is_traefiks_but_never_longer_than_ten_minutes(hours, seconds):
    assert renewal_check_interval(hours) == seconds


def test_resolver_checks_every_minute_for_day_long_certificates(tmp_path):
    raw = {**EMAIL, "storage": str(tmp_path / "acme.json"), "certificatesDuration": 12}
    assert AcmeResolver("le", acme_settings(raw), lambda: None).check_interval == 60
    raw = {**EMAIL, "storage": str(tmp_path / "acme.json")}
    assert AcmeResolver("le", acme_settings(raw), lambda: None).check_interval == 600


def test_a_bad_certificates_duration_is_one_line_naming_the_resolver():
    # Once a default taken with an error at order time; now the start stops (exit 2) with this line.
    e = acme_error({**EMAIL, "certificatesDuration": "ninety days"}, name="myca")
    assert str(e).startswith(
        "certificatesResolvers.myca.acme.certificatesDuration: expected a whole number, got 'ninety days' "
    )
