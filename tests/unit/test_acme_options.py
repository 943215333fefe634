"""``certificatesResolvers.<name>.acme`` options: eab, profile, certificatesDuration (read like Traefik)."""

from __future__ import annotations

import logging

import pytest

from acme_client.resolver import AcmeResolver
from acme_client.settings import renewal_check_interval
from dockroute.static.resolvers import resolver_settings


def test_eab_is_read_case_insensitively_and_kept_out_of_repr():
    s = resolver_settings({"EAB": {"KID": "kid-1", "hmacencoded": "c2VjcmV0"}})
    assert s.eab == ("kid-1", "c2VjcmV0")
    assert s.config_errors == ()
    assert "c2VjcmV0" not in repr(s)  # a secret: never in a log line that prints the settings


@pytest.mark.parametrize(
    "eab", [{"kid": "kid-1"}, {"hmacEncoded": "c2VjcmV0"}, {"kid": "", "hmacEncoded": "x"}, "kid"]
)
def test_an_incomplete_eab_is_a_config_error(eab):
    s = resolver_settings({"eab": eab})
    assert s.eab is None
    assert len(s.config_errors) == 1 and "eab" in s.config_errors[0]


def test_no_eab_by_default():
    assert resolver_settings({}).eab is None
    assert resolver_settings({"eab": {}}).config_errors == ()


@pytest.mark.parametrize(
    ("raw", "profile"), [({"Profile": "shortlived"}, "shortlived"), ({"profile": " "}, None), ({}, None)]
)
def test_profile(raw, profile):
    assert resolver_settings(raw).profile == profile


@pytest.mark.parametrize(("value", "hours"), [(None, 2160), (72, 72), ("72", 72), (" 24 ", 24), (8760, 8760)])
def test_certificates_duration_accepts_whole_hours(value, hours):
    raw = {} if value is None else {"CertificatesDuration": value}
    s = resolver_settings(raw)
    assert s.certificates_duration == hours
    assert s.config_errors == ()


@pytest.mark.parametrize("value", ["90d", "2.5", 2.5, True, 0, -1, [], {}])
def test_certificates_duration_that_is_not_whole_hours_falls_back_to_the_default(value):
    s = resolver_settings({"certificatesDuration": value})
    assert s.certificates_duration == 2160
    assert len(s.config_errors) == 1 and "certificatesDuration" in s.config_errors[0]


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
    raw = {"storage": str(tmp_path / "acme.json"), "certificatesDuration": 12}
    assert AcmeResolver("le", resolver_settings(raw), lambda: None).check_interval == 60
    raw = {"storage": str(tmp_path / "acme.json")}
    assert AcmeResolver("le", resolver_settings(raw), lambda: None).check_interval == 600


def test_a_bad_certificates_duration_logs_one_error_naming_the_resolver(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dockroute.acme")
    raw = {"storage": str(tmp_path / "acme.json"), "certificatesDuration": "ninety days"}
    resolver = AcmeResolver("myca", resolver_settings(raw), lambda: None)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage() == (
        "resolver myca: certificatesDuration 'ninety days' is not a positive whole number of hours; "
        "using 2160"
    )
    assert resolver.check_interval == 600
