"""The ``headers`` and ``contentType`` middlewares: option parsing (files and Docker labels alike, bad
values refused by name) and behaviour on an exchange (request edits, security headers, CORS, sniffing)."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from multidict import CIMultiDict

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding
from discover.middlewares.headers import ContentType, Headers
from discover.parse import parse_dynamic_with_warnings
from router.exchange import answer
from router.headers import TrustedNetworks
from router.middlewares import BuildContext, MiddlewareError
from router.middlewares import content_type as content_type_mw
from router.middlewares import headers as headers_mw
from router.middlewares.headers_sniff import detect_content_type
from tests.exchange_fakes import fake_exchange

# -- parsing --------------------------------------------------------------------------------------------


def _file(options, mtype="headers"):
    cfg, _ = parse_dynamic_with_warnings({"http": {"middlewares": {"m": {mtype: options}}}}, references=False)
    return cfg.middlewares["m"]


def _labels(labels):
    box = ContainerInfo(
        id="app-id",
        name="app",
        labels={f"traefik.http.middlewares.m.{k}": v for k, v in labels.items()},
        ports=(PortBinding(80),),
        networks={"net": "10.0.0.2"},
    )
    cfg, _ = build_docker_config([box], DockerSettings(), frozenset())
    return cfg.middlewares["m"]


def test_files_and_labels_give_the_same_options():
    from_file = _file(
        {
            "customRequestHeaders": {"X-Script-Name": "test", "X-Drop": ""},
            "customResponseHeaders": {"X-Custom": "1"},
            "accessControlAllowMethods": ["GET", "PUT"],
            "accessControlAllowOriginList": ["https://a.example", "https://b.example"],
            "accessControlMaxAge": 100,
            "addVaryHeader": True,
            "stsSeconds": 31536000,
            "frameDeny": True,
            "sslProxyHeaders": {"X-Forwarded-Proto": "https"},
            "contentSecurityPolicy": "default-src 'self'",
        }
    )
    from_labels = _labels(
        {
            "headers.customrequestheaders.X-Script-Name": "test",
            "headers.customrequestheaders.X-Drop": "",
            "headers.customresponseheaders.X-Custom": "1",
            "headers.accesscontrolallowmethods": "GET,PUT",
            "headers.accesscontrolalloworiginlist": "https://a.example, https://b.example",
            "headers.accesscontrolmaxage": "100",
            "headers.addvaryheader": "true",
            "headers.stsseconds": "31536000",
            "headers.framedeny": "true",
            "headers.sslproxyheaders.X-Forwarded-Proto": "https",
            "headers.contentsecuritypolicy": "default-src 'self'",
        }
    )
    assert not from_file.error and not from_labels.error
    assert isinstance(from_file.options, Headers)
    assert from_file.options == from_labels.options
    o = from_file.options
    assert dict(o.custom_request_headers) == {"X-Script-Name": "test", "X-Drop": ""}
    assert o.access_control_allow_origin_list == ("https://a.example", "https://b.example")
    assert o.access_control_max_age == 100 and o.sts_seconds == 31536000 and o.frame_deny


def test_content_type_from_a_label_word_and_from_a_file():
    assert _labels({"contenttype": "true"}).options == ContentType()
    assert _file({"autoDetect": False}, "contentType").options == ContentType(auto_detect=False)
    assert _file(None, "contentType").options == ContentType(auto_detect=None)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({}, "needs at least one option set"),
        ({"frameDeny": False}, "needs at least one option set"),
        ({"customRequestHeaders": {"Bad Name": "x"}}, "customRequestHeaders: 'Bad Name' is not a valid"),
        ({"customResponseHeaders": {"X-A": "a\r\nSet-Cookie: x=1"}}, "the value of X-A holds a line break"),
        ({"customRequestHeaders": {"Connection": "close"}}, "Connection is managed by the proxy"),
        ({"customResponseHeaders": {"Content-Length": ""}}, "Content-Length is managed by the proxy"),
        ({"stsSeconds": -1}, "stsSeconds: must be at least 0"),
        ({"contentSecurityPolicy": "a\nb"}, "contentSecurityPolicy: the value holds a line break"),
        ({"accessControlAllowHeaders": ["X-Ok", "no good"]}, "accessControlAllowHeaders: 'no good'"),
        ({"frameDeny": "maybe"}, "frameDeny: expected true or false"),
        ({"nosuch": 1}, "unknown key 'nosuch'"),
    ],
)
def test_bad_options_are_refused_by_name(options, words):
    mw = _file(options)
    assert mw.options is None and words in mw.error, mw.error


def test_a_regex_go_refuses_is_named_when_the_middleware_is_built():
    options = _file({"accessControlAllowOriginListRegex": ["^https://ok$", "(?<=x)y"]}).options
    with pytest.raises(MiddlewareError) as err:
        headers_mw.build(options, BuildContext("m@file", "r@file", None))
    assert err.value.option == "accessControlAllowOriginListRegex[1]"


# -- behaviour on an exchange ----------------------------------------------------------------------------


def _exchange(method="GET", headers=None, scheme="http", host="app.test", trusted=()):
    ex = fake_exchange(
        method,
        host=host,
        headers=headers or {},
        client="10.0.0.9",
        scheme=scheme,
        trusted=TrustedNetworks(trusted),
        port_b=b"80",
    )
    return ex, ex.transport


def _run(options, ex, backend_headers=(), status=200, body=b"ok", mtype=headers_mw):
    """Run the middleware built from ``options`` (a mapping, read as a file gives it) on ``ex``, with a
    backend answering ``status``; returns (whether the backend was reached, the answer's head)."""
    opts = _file(options, "headers" if mtype is headers_mw else "contentType").options
    reached = []

    async def backend(ex):
        reached.append(True)
        await answer(ex, status, body, backend_headers, content_type=None)

    handler = mtype.build(opts, BuildContext("m@file", "r@file", None))(backend)
    asyncio.run(handler(ex))
    return bool(reached), _head(ex.transport.data)


def _head(data: bytes) -> CIMultiDict:
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    out = CIMultiDict({":status": head[0].split()[1]})
    for line in head[1:]:
        k, _, v = line.partition(": ")
        out.add(k, v)
    return out


def test_custom_request_headers_set_remove_and_change_the_host():
    ex, _ = _exchange(headers={"User-Agent": "curl", "X-Keep": "1", "X-Forwarded-Host": "spoofed"})
    _run({"customRequestHeaders": {"X-Script-Name": "t", "user-agent": "", "Host": "inner.test"}}, ex)
    assert ex.header("X-Script-Name") == "t" and ex.header("User-Agent") is None
    assert ex.header("X-Keep") == "1"
    assert ex.host_header == "inner.test"  # what the service is asked for (Go's req.Host)
    # what the proxy sends as X-Forwarded-Host stays the host the client asked for (not trusted: its own
    # X-Forwarded-Host is not believed)
    assert ex.header("X-Forwarded-Host") == "app.test" and ex.header("X-Forwarded-Port") == "80"


def test_custom_response_headers_win_over_the_backends_and_the_security_ones():
    ex, _ = _exchange()
    custom = {"X-Frame-Options": "", "X-New": "1", "Server": ""}
    options = {"frameDeny": True, "customResponseHeaders": custom}
    _, head = _run(options, ex, backend_headers=[("Server", "b"), ("X-Frame-Options", "SAMEORIGIN")])
    assert "X-Frame-Options" not in head and "Server" not in head and head["X-New"] == "1"


def test_hsts_only_over_https_unless_forced_and_never_in_development():
    sts = {"stsSeconds": 60, "stsIncludeSubdomains": True}
    assert "Strict-Transport-Security" not in _run(sts, _exchange()[0])[1]
    assert _run(sts, _exchange(scheme="https")[0])[1]["Strict-Transport-Security"] == (
        "max-age=60; includeSubDomains"
    )
    assert _run({**sts, "forceSTSHeader": True}, _exchange()[0])[1]["Strict-Transport-Security"]
    for options in ({**sts, "isDevelopment": True}, {"stsSeconds": 0}):
        assert "Strict-Transport-Security" not in _run(options, _exchange(scheme="https")[0])[1]


def test_ssl_proxy_headers_count_only_from_trusted_clients():
    options = {"stsSeconds": 60, "sslProxyHeaders": {"X-Forwarded-Proto": "https"}}
    said = {"X-Forwarded-Proto": "https"}
    assert "Strict-Transport-Security" not in _run(options, _exchange(headers=said)[0])[1]
    trusted = _exchange(headers=said, trusted=("10.0.0.0/8",))[0]
    assert _run(options, trusted)[1]["Strict-Transport-Security"] == "max-age=60"
    other = {"stsSeconds": 60, "sslProxyHeaders": {"X-Tls": "on"}}  # not a proxy-set header: taken as sent
    assert "Strict-Transport-Security" in _run(other, _exchange(headers={"X-Tls": "on"})[0])[1]


def test_the_other_security_headers():
    options = {
        "customFrameOptionsValue": "SAMEORIGIN",
        "frameDeny": True,
        "contentTypeNosniff": True,
        "customBrowserXSSValue": "0",
        "browserXssFilter": True,
        "contentSecurityPolicy": "script-src $NONCE",
        "contentSecurityPolicyReportOnly": "default-src 'self'",
        "referrerPolicy": "same-origin",
        "permissionsPolicy": "camera=()",
        "publicKey": 'pin-sha256="x"; max-age=5',
    }
    _, head = _run(options, _exchange()[0])
    assert head["X-Frame-Options"] == "SAMEORIGIN"  # the custom value overrides frameDeny
    assert head["X-Content-Type-Options"] == "nosniff" and head["X-XSS-Protection"] == "0"
    assert re.fullmatch(r"script-src 'nonce-[A-Za-z0-9+/]{22}'", head["Content-Security-Policy"])
    assert head["Content-Security-Policy-Report-Only"] == "default-src 'self'"
    assert head["Referrer-Policy"] == "same-origin" and head["Permissions-Policy"] == "camera=()"
    assert "Public-Key-Pins" not in head  # HTTPS only
    _, again = _run(options, _exchange(scheme="https")[0])
    assert again["Public-Key-Pins"] == 'pin-sha256="x"; max-age=5'
    assert again["Content-Security-Policy"] != head["Content-Security-Policy"]  # a fresh nonce each time


def test_allowed_hosts_refuse_others_with_500_unless_development():
    options = {"allowedHosts": ["App.Test"], "hostsProxyHeaders": ["X-Original-Host"], "frameDeny": True}
    reached, head = _run(options, _exchange()[0])
    assert reached and head[":status"] == "200"
    reached, head = _run(options, _exchange(host="evil.test")[0])
    assert not reached and head[":status"] == "500" and "X-Frame-Options" not in head
    reached, _ = _run(options, _exchange(headers={"X-Original-Host": "evil.test"})[0])
    assert not reached  # the first non-empty hostsProxyHeaders header is the host checked
    reached, _ = _run({**options, "isDevelopment": True}, _exchange(host="evil.test")[0])
    assert reached


PREFLIGHT = {"Origin": "https://a.example", "Access-Control-Request-Method": "PUT"}


def test_a_preflight_is_answered_without_the_backend():
    options = {
        "accessControlAllowOriginList": ["https://a.example"],
        "accessControlAllowMethods": ["GET", "PUT"],
        "accessControlAllowHeaders": ["X-A", "X-B"],
        "accessControlMaxAge": 0,
        "accessControlExposeHeaders": ["X-E"],
        "accessControlAllowCredentials": True,
        "customResponseHeaders": {"X-Custom": "1"},
    }
    reached, head = _run(options, _exchange("OPTIONS", PREFLIGHT)[0])
    assert not reached and head[":status"] == "200" and head["Content-Length"] == "0"
    assert head["Access-Control-Allow-Origin"] == "https://a.example"
    assert head["Access-Control-Allow-Methods"] == "GET,PUT"
    assert head["Access-Control-Allow-Headers"] == "X-A,X-B"
    assert head["Access-Control-Max-Age"] == "0" and head["Access-Control-Allow-Credentials"] == "true"
    assert head["Access-Control-Expose-Headers"] == "X-E"
    assert "X-Custom" not in head  # Traefik answers the preflight before the custom headers
    # without Origin or without Access-Control-Request-Method it is an ordinary OPTIONS request
    assert _run(options, _exchange("OPTIONS", {"Origin": "https://a.example"})[0])[0]


def test_wildcards_with_credentials_echo_what_the_request_asked():
    options = {
        "accessControlAllowOriginList": ["*"],
        "accessControlAllowMethods": ["*"],
        "accessControlAllowHeaders": ["*"],
        "accessControlExposeHeaders": ["*"],
        "accessControlAllowCredentials": True,
    }
    asked = {**PREFLIGHT, "Access-Control-Request-Headers": "X-Token"}
    _, head = _run(options, _exchange("OPTIONS", asked)[0])
    assert head["Access-Control-Allow-Origin"] == "https://a.example"
    assert head["Access-Control-Allow-Methods"] == "PUT" and head["Access-Control-Allow-Headers"] == "X-Token"
    assert "Access-Control-Expose-Headers" not in head  # "*" means nothing with credentials
    _, head = _run({"accessControlAllowOriginList": ["*"]}, _exchange("OPTIONS", PREFLIGHT)[0])
    assert head["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    ("origins", "regexes", "credentials", "origin", "expected"),
    [
        (["https://a.example"], [], False, "https://a.example", "https://a.example"),
        (["https://a.example"], [], False, "https://b.example", None),
        (["https://a.example", "*"], [], False, "https://a.example", "https://a.example"),
        (["*", "https://a.example"], [], False, "https://a.example", "*"),  # the first entry decides
        (["*"], [], True, "https://z.example", "https://z.example"),
        ([], [r"^https://[a-z]+\.example$"], False, "https://q.example", "https://q.example"),
        ([], [r"^https://[a-z]+\.example$"], False, "https://q.example.evil", None),
    ],
)
def test_origin_echo_rules(origins, regexes, credentials, origin, expected):
    options = {
        "accessControlAllowOriginList": origins,
        "accessControlAllowOriginListRegex": regexes,
        "accessControlAllowCredentials": credentials,
    }
    _, head = _run(options, _exchange(headers={"Origin": origin})[0])
    assert head.get("Access-Control-Allow-Origin") == expected


def test_vary_gets_origin_added_as_traefik_does():
    options = {"accessControlAllowOriginList": ["https://a.example"], "addVaryHeader": True}
    assert _run(options, _exchange()[0])[1]["Vary"] == "Origin"
    assert _run(options, _exchange()[0], [("Vary", "Accept-Encoding")])[1]["Vary"] == "Accept-Encoding,Origin"
    assert _run(options, _exchange()[0], [("Vary", "Origin")])[1].getall("Vary") == ["Origin"]


def test_removed_v3_options_are_warned_about_by_name(caplog):
    caplog.set_level(logging.WARNING)
    opts = _file({"sslRedirect": True, "featurePolicy": "camera 'none'"}).options
    headers_mw.build(opts, BuildContext("m@file", "r@file", None))
    assert "option sslRedirect was removed in Traefik v3 and does nothing" in caplog.text
    assert "option featurePolicy was removed in Traefik v3" in caplog.text
    _, head = _run({"sslRedirect": True, "featurePolicy": "x"}, _exchange()[0])
    assert head[":status"] == "200" and "Feature-Policy" not in head  # as Traefik v3: ignored


# -- contentType -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"  <!DOCTYPE html><html>", "text/html; charset=utf-8"),
        (b"<p>hi</p>", "text/html; charset=utf-8"),
        (b"<pre>", "text/plain; charset=utf-8"),  # not one of the table's tags
        (b"\n<?xml version='1.0'?>", "text/xml; charset=utf-8"),
        (b"%PDF-1.7", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"GIF89a", "image/gif"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4"),
        (b"\x1f\x8b\x08\x00", "application/x-gzip"),
        (b"PK\x03\x04", "application/zip"),
        (b"wOF2", "font/woff2"),
        (b"\x00asm\x01", "application/wasm"),
        (b"\xef\xbb\xbfhello", "text/plain; charset=utf-8"),
        (b'{"json": true}', "text/plain; charset=utf-8"),
        (b"\x00\x01\x02binary", "application/octet-stream"),
        (b"", "text/plain; charset=utf-8"),
    ],
)
def test_detection_follows_gos_table(data, expected):
    assert detect_content_type(data) == expected


def _sniff(options, headers=(), status=200, body=b"<html>", method="GET"):
    return _run(options, _exchange(method)[0], headers, status, body, mtype=content_type_mw)[1]


def test_content_type_is_sniffed_only_when_the_answer_has_none():
    assert _sniff({})["Content-Type"] == "text/html; charset=utf-8"
    assert _sniff({}, [("Content-Type", "text/x-mine")]).getall("Content-Type") == ["text/x-mine"]
    assert "Content-Type" not in _sniff({}, [("Content-Encoding", "gzip")])  # Go never sniffs an encoding
    assert "Content-Type" not in _sniff({}, body=b"")
    assert "Content-Type" not in _sniff({}, status=204, body=b"")
    assert "Content-Type" not in _sniff({}, method="HEAD")
    assert "Content-Type" not in _sniff({"autoDetect": False})  # the deprecated off switch
    assert _sniff({"autoDetect": True})["Content-Type"] == "text/html; charset=utf-8"
