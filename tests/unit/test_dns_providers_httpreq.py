"""The httpreq provider (lego's generic HTTP one), read from lego's variables and run against a local
endpoint answering as lego's documentation says (tests/dns_standins.py): bodies, modes, basic auth,
errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from acme_client.dns.base import DnsConfigError, DnsError, TxtRecord
from acme_client.dns.registry import build_provider, read_provider
from tests.dns_standins import HttpReqStandin, running

RECORD = TxtRecord(
    domain="home.example.com",
    fqdn="_acme-challenge.home.example.com.",
    zone="example.com.",
    value="LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmtoM",
    token="-tokenStartingWithADash",
    key_authorization="-tokenStartingWithADash.thumbprint",
)


@pytest.fixture
def endpoint() -> Iterator[HttpReqStandin]:
    with running(HttpReqStandin()) as standin:
        assert isinstance(standin, HttpReqStandin)
        yield standin


def test_default_mode_posts_fqdn_and_value(endpoint: HttpReqStandin) -> None:
    config, warnings = read_provider("httpreq", {"HTTPREQ_ENDPOINT": f"{endpoint.url}/api/"})
    assert warnings == []
    p = build_provider(config)
    p.present(RECORD)
    sent = endpoint.requests[0]
    assert (sent.method, sent.path) == ("POST", "/api/present")
    assert sent.json() == {"fqdn": RECORD.fqdn, "value": RECORD.value}
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert len(endpoint.held) == 1
    p.cleanup(RECORD)
    assert (endpoint.requests[1].path, endpoint.requests[1].json()) == ("/api/cleanup", sent.json())
    assert endpoint.held == set()


def test_raw_mode_posts_the_challenge_itself(endpoint: HttpReqStandin) -> None:
    config, _ = read_provider("httpreq", {"HTTPREQ_ENDPOINT": f"{endpoint.url}/api", "HTTPREQ_MODE": "RAW"})
    build_provider(config).present(RECORD)
    assert endpoint.requests[0].json() == {
        "domain": "home.example.com",
        "token": RECORD.token,
        "keyAuth": RECORD.key_authorization,
    }


def test_basic_auth_is_sent_when_both_are_set(endpoint: HttpReqStandin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    endpoint.username, endpoint.password = "acme", "s3cret-pass"
    (tmp_path / "password").write_text("s3cret-pass\n")
    env = {
        "HTTPREQ_ENDPOINT": f"{endpoint.url}/api",
        "HTTPREQ_USERNAME": "acme",
        "HTTPREQ_PASSWORD_FILE": str(tmp_path / "password"),
    }
    config, _ = read_provider("httpreq", env)
    build_provider(config).present(RECORD)
    expected = "Basic " + base64.b64encode(b"acme:s3cret-pass").decode()
    assert endpoint.requests[0].headers["authorization"] == expected


def test_a_refusal_is_a_dns_error_with_status_and_body_never_the_password(endpoint: HttpReqStandin) -> None:
    endpoint.username, endpoint.password = "acme", "right"
    config, _ = read_provider(
        "httpreq",
        {
            "HTTPREQ_ENDPOINT": f"{endpoint.url}/api",
            "HTTPREQ_USERNAME": "acme",
            "HTTPREQ_PASSWORD": "wrong-pw",
        },
    )
    with pytest.raises(DnsError) as caught:
        build_provider(config).present(RECORD)
    assert str(caught.value) == 'httpreq: POST /present answered 401 Unauthorized: {"error": "unauthorized"}'
    endpoint.username = ""
    endpoint.fail_with = 500
    with pytest.raises(DnsError, match="^httpreq: POST /cleanup answered 500 .*: stand-in failure$"):
        build_provider(config).cleanup(RECORD)


def test_an_endpoint_that_does_not_answer_in_time_is_a_dns_error() -> None:
    import socket

    with socket.socket() as silent:  # accepts (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config, _ = read_provider("httpreq", {"HTTPREQ_ENDPOINT": url, "HTTPREQ_HTTP_TIMEOUT": "1"})
        with pytest.raises(
            DnsError, match=r"^httpreq: POST /present at 127.0.0.1:\d+ did not answer within 1 s$"
        ):
            build_provider(config).present(RECORD)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "HTTPREQ_ENDPOINT"),
        ({"HTTPREQ_ENDPOINT": "my.server:9090"}, "HTTPREQ_ENDPOINT"),
        ({"HTTPREQ_ENDPOINT": "http://my.server:9090", "HTTPREQ_MODE": "raw"}, "HTTPREQ_MODE"),
        (
            {"HTTPREQ_ENDPOINT": "http://my.server:9090", "HTTPREQ_HTTP_TIMEOUT": "soon"},
            "HTTPREQ_HTTP_TIMEOUT",
        ),
    ],
)
def test_missing_or_malformed_variables_are_refused_at_start(env: dict[str, str], variable: str) -> None:
    with pytest.raises(DnsConfigError) as caught:
        read_provider("httpreq", env)
    assert caught.value.variable == variable
