"""The httpreq provider (lego's generic HTTP one), read from lego's variables and run against a local
endpoint answering as lego's documentation says (tests/dns_standins.py): bodies, modes, basic auth,
errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from acme_client.dns.base import DnsConfigError, DnsError
from acme_client.dns.registry import build_provider, read_provider
from tests.dns_standins import RECORD, Answer, HttpReqStandin, running


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


def test_paths_join_onto_the_endpoints_path_keeping_its_query_and_userinfo_authenticates(
    endpoint: HttpReqStandin,
) -> None:
    """lego's url.JoinPath: ``<endpoint>/present`` goes onto the path, the query string stays; the
    endpoint's ``user:password@`` is sent as basic authentication (Go's client does the same)."""
    endpoint.username, endpoint.password = "acme", "s3cret-pass"
    url = endpoint.url.replace("://", "://acme:s3cret-pass@") + "/api/?key=T0ken-in-query"
    config, _ = read_provider("httpreq", {"HTTPREQ_ENDPOINT": url})
    p = build_provider(config)
    p.present(RECORD)
    p.cleanup(RECORD)
    assert [(r.path, r.query) for r in endpoint.requests] == [
        ("/api/present", {"key": "T0ken-in-query"}),
        ("/api/cleanup", {"key": "T0ken-in-query"}),
    ]
    assert endpoint.held == set()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("silent", [False, True])
def test_the_endpoints_userinfo_and_query_never_reach_a_message(silent: bool, caplog) -> None:  # type: ignore[no-untyped-def]
    """An unreachable (or silent) endpoint is named by host and port only: no ``user:password@``, no
    ``?key=`` value, also not in anything logged."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1] if silent else _closed_port()
        if silent:
            listener.listen()
        url = f"http://dns-user:Pa55-w0rd@127.0.0.1:{port}/api?key=T0ken-in-query"
        config, _ = read_provider("httpreq", {"HTTPREQ_ENDPOINT": url, "HTTPREQ_HTTP_TIMEOUT": "1"})
        with pytest.raises(DnsError) as caught:
            build_provider(config).present(RECORD)
    text = str(caught.value)
    assert text.startswith(f"httpreq: POST /present at 127.0.0.1:{port} ")
    for secret in ("Pa55-w0rd", "T0ken-in-query", "dns-user"):
        assert secret not in text and secret not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "ftp://dns-user:Pa55-w0rd@my.server/api?key=T0ken-in-query",
        "http://dns-user:Pa55-w0rd@my.server:port/api?key=T0ken-in-query",
        "dns-user:Pa55-w0rd@my.server/api?key=T0ken-in-query",
    ],
)
def test_a_malformed_endpoint_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(DnsConfigError) as caught:
        read_provider("httpreq", {"HTTPREQ_ENDPOINT": url})
    assert caught.value.variable == "HTTPREQ_ENDPOINT"
    assert "Pa55-w0rd" not in str(caught.value) and "T0ken-in-query" not in str(caught.value)


def test_the_endpoints_password_and_query_values_are_scrubbed_from_a_refusal(
    endpoint: HttpReqStandin,
) -> None:
    """An endpoint that echoes what it was given (here: the stand-in's failure text) never gets the
    endpoint's password or query value into the message."""
    echo = Answer(500, b"rejected key T0ken-in-query for Pa55-w0rd", "text/plain")
    endpoint.answer = lambda request: echo  # type: ignore[method-assign]
    url = endpoint.url.replace("://", "://u:Pa55-w0rd@") + "/api?key=T0ken-in-query"
    config, _ = read_provider("httpreq", {"HTTPREQ_ENDPOINT": url})
    with pytest.raises(DnsError) as caught:
        build_provider(config).present(RECORD)
    assert (
        str(caught.value)
        == "httpreq: POST /present answered 500 Internal Server Error: rejected key *** for ***"
    )


@pytest.mark.parametrize("given", ["HTTPREQ_USERNAME", "HTTPREQ_PASSWORD"])
def test_a_username_without_password_or_the_reverse_stops_the_start(given: str) -> None:
    """lego sends no authentication at all then, and says nothing: refused at start, naming the other."""
    env = {"HTTPREQ_ENDPOINT": "https://dns-api.example/api", given: "set"}
    missing = "HTTPREQ_PASSWORD" if given == "HTTPREQ_USERNAME" else "HTTPREQ_USERNAME"
    with pytest.raises(DnsConfigError) as caught:
        read_provider("httpreq", env)
    assert caught.value.variable == missing
    assert str(caught.value).startswith(f"{missing} is not set")
