"""The auth middlewares on their own: options from files and label strings (and refusals by name), the
htpasswd hash schemes against published vectors, users-file merging and refresh, Basic and Digest
credential parsing, the digest computation, and forwardAuth's auth-request headers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os

import bcrypt
import pytest
from multidict import CIMultiDict

from discover.middlewares.auth import BasicAuth, DigestAuth
from router.headers import TrustedNetworks
from router.middlewares import MiddlewareError, basic_auth, digest_auth, forward_auth, htpasswd
from router.middlewares.digest_auth import parse_digest, response_digest
from router.middlewares.forward_auth import canonical
from router.middlewares.htpasswd import UsersError, basic_users, check_password, digest_users, md5_crypt
from tests.exchange_fakes import Recorder, fake_exchange
from tests.exchange_fakes import ctx as _ctx
from tests.exchange_fakes import read_options as _read
from tests.exchange_fakes import refusal as _refusal

# Apache's documented examples (password encryptions page) for "myPassword"; the others made with
# `openssl passwd -apr1 -salt abcdefgh ...` and `openssl passwd -1 -salt saltsalt password`.
APR1_VECTORS = [
    (b"myPassword", "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/"),
    ("pässwörd-long-password-more-than-sixteen".encode(), "$apr1$abcdefgh$zdBMt2jeYwKcJsTtRZyOJ/"),
    (b"password", "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"),
]
SHA_VECTOR = (b"myPassword", "{SHA}VBPuJHI7uixaa6LQGWx4s+5GKNE=")
# crypt_blowfish's published test vector
BCRYPT_VECTOR = (b"U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")


def test_options_from_label_strings_and_files():
    got = _read("basicAuth", {"users": "a:{SHA}x,b:{SHA}y", "removeheader": "true", "realm": "r"})
    assert got == BasicAuth(users=("a:{SHA}x", "b:{SHA}y"), realm="r", remove_header=True)
    assert _read("basicAuth", {"usersFile": "/f"}).realm == "traefik"
    got = _read("digestAuth", {"users": ["u:traefik:" + "0" * 32], "headerField": "X-User"})
    assert got == DigestAuth(users=("u:traefik:" + "0" * 32,), header_field="X-User")
    fa = _read(
        "forwardAuth",
        {
            "address": "http://auth:9091/api/verify",
            "trustForwardHeader": "false",
            "authResponseHeaders": "Remote-User,Remote-Groups",
            "maxBodySize": "10",
            "tls": {"insecureSkipVerify": "true"},
        },
    )
    assert fa.trust_forward_header is False and fa.max_body_size == 10 and fa.tls.insecure_skip_verify
    assert fa.auth_response_headers == ("Remote-User", "Remote-Groups")
    assert _read("forwardAuth", {"address": "http://a"}).trust_forward_header is None  # unset ≠ false


def test_options_refused_by_name():
    assert "users: no users" in _refusal("basicAuth", {"realm": "x"})
    assert "address: required" in _refusal("forwardAuth", {"trustForwardHeader": True})
    assert "address: must be an http:// or https:// URL" in _refusal("forwardAuth", {"address": "auth:80"})
    assert "nosuch" in _refusal("forwardAuth", {"address": "http://a", "nosuch": 1})
    assert "maxBodySize" in _refusal("forwardAuth", {"address": "http://a", "maxBodySize": -2})


@pytest.mark.parametrize(("password", "secret"), APR1_VECTORS)
def test_md5_crypt_matches_published_vectors(password, secret):
    magic = "$apr1$" if secret.startswith("$apr1$") else "$1$"
    salt = secret[len(magic) :].split("$")[0]
    assert md5_crypt(password, salt.encode(), magic) == secret
    assert check_password(password, secret)
    assert not check_password(password + b"x", secret)


def test_sha1_and_bcrypt_vectors():
    assert check_password(*SHA_VECTOR) and not check_password(b"mypassword", SHA_VECTOR[1])
    assert check_password(*BCRYPT_VECTOR) and not check_password(b"U*V", BCRYPT_VECTOR[1])
    fresh = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    for prefix in ("$2y$", "$2a$", "$2b$"):  # htpasswd -B writes $2y$
        assert check_password(b"s3cret", prefix + fresh[4:])


def test_users_merge_as_traefik_and_bad_lines_are_named():
    sha_a, sha_b = "{SHA}" + base64.b64encode(hashlib.sha1(b"a").digest()).decode(), SHA_VECTOR[1]
    users = basic_users([f"alice:{sha_a}", f"bob:{sha_a}"], [f"bob:{sha_b}"], "f")
    assert users == {"alice": sha_a, "bob": sha_b}  # users overrides the file for bob
    with pytest.raises(UsersError, match=r"users\[1\]: user 'carol': not a bcrypt .*plain-text"):
        basic_users([], [f"alice:{sha_a}", "carol:hunter2"])
    with pytest.raises(UsersError, match=r"usersFile f line 2: expected user:hash"):
        basic_users([f"alice:{sha_a}", "nocolon"], [], "f")
    with pytest.raises(UsersError, match=r"\$2x\$"):
        basic_users([], ["x:$2x$05$" + "C" * 53])
    with pytest.raises(UsersError, match="malformed bcrypt"):
        basic_users([], ["x:$2y$05$short"])
    with pytest.raises(UsersError, match="SHA"):
        basic_users([], ["x:{SHA}notbase64!"])
    ha1 = hashlib.md5(b"u:r:p").hexdigest()
    assert digest_users([f"u:r:{ha1}"], []) == {"u:r": ha1}
    with pytest.raises(UsersError, match="users.0.: expected user:realm:HA1"):
        digest_users([], [f"u:{ha1}"])


def test_users_file_lines_skip_comments_and_blanks(tmp_path):
    f = tmp_path / "users"
    f.write_text(f"# comment\n\n  alice:{SHA_VECTOR[1]}  \n")
    lines, stamp = htpasswd.read_lines(str(f))
    assert lines == [f"alice:{SHA_VECTOR[1]}"] and stamp[1] == f.stat().st_size


async def test_users_file_is_read_again_when_it_changes_and_fails_closed(tmp_path, monkeypatch, caplog):
    """A deleted or broken usersFile revokes all of its users (inline ``users`` stay) until it is fixed,
    with one log line per problem naming the file: keeping the old users would let a user removed in the
    same edit, or every user of a deleted file, still log in."""
    monkeypatch.setattr(htpasswd, "REFRESH_INTERVAL", 0.0)
    f = tmp_path / "users"
    f.write_text(f"alice:{SHA_VECTOR[1]}\n")
    src = htpasswd.UsersSource("m@file", (f"inline:{SHA_VECTOR[1]}",), str(f), basic_users)
    assert set(await src.current()) == {"alice", "inline"}
    f.write_text(f"bob:{SHA_VECTOR[1]}\n")
    os.utime(f, ns=(1, 1))  # a different mtime whatever the clock's granularity
    assert set(await src.current()) == {"bob", "inline"}
    f.unlink()
    for _ in range(2):
        assert set(await src.current()) == {"inline"}  # unreadable: none of the file's users
    f.write_text(f"carol:{SHA_VECTOR[1]}\n")
    assert set(await src.current()) == {"carol", "inline"}  # fixed: read again
    f.write_text(f"dave:{SHA_VECTOR[1]}\nerin:plain\n")
    os.utime(f, ns=(2, 2))
    for _ in range(2):
        assert set(await src.current()) == {"inline"}  # a bad line: none of the file's users
    problems = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(problems) == 2, problems  # one line per distinct problem, not one per look
    assert str(f) in problems[0] and "No such file" in problems[0]
    assert f"usersFile {f} line 2" in problems[1] and "'erin'" in problems[1]


def test_basic_credentials_parse_like_go():
    enc = base64.b64encode(b"al:ice:pa:ss").decode()
    assert basic_auth.parse_basic(f"BASIC {enc}") == ("al", b"ice:pa:ss")
    assert basic_auth.parse_basic("Bearer x") is None
    assert basic_auth.parse_basic("Basic !!!") is None
    assert basic_auth.parse_basic("Basic " + base64.b64encode(b"nocolon").decode()) is None


def test_digest_response_matches_rfc_2617_example():
    ha1 = hashlib.md5(b"Mufasa:testrealm@host.com:Circle Of Life").hexdigest()
    got = response_digest(
        ha1, "GET", "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b"
    )
    assert got == "6629fae49393a05397450978507c4ef1"


def test_digest_header_parses_quoted_and_bare_values():
    p = parse_digest('Digest username="Mu\\"fasa", realm="a, b", nc=00000001, qop=auth,uri="/x"')
    assert p == {"username": 'Mu"fasa', "realm": "a, b", "nc": "00000001", "qop": "auth", "uri": "/x"}
    assert parse_digest('Digest username="open') is None
    assert parse_digest("Basic abc") is None


def _exchange(method="GET", target="/p?q=1", client="10.0.0.9", trusted=(), **headers):
    hdrs = CIMultiDict((k.replace("_", "-"), v) for k, v in headers.items())
    ex = fake_exchange(
        method,
        target,
        "app.test",
        hdrs,
        client,
        host_header="app.test:8080",
        trusted=TrustedNetworks(trusted),
    )
    ex.sink = Recorder()
    return ex


def test_forward_auth_request_headers_per_trust_setting():
    fwd = {"X_Forwarded_For": "1.2.3.4", "X-Forwarded-Prefix": "/evil", "Connection": "X-Hop", "X-Hop": "1"}
    legacy = forward_auth.build(_read("forwardAuth", {"address": "http://a"}), _ctx())
    h = legacy.auth_headers(_exchange(Cookie="c=1", **fwd))
    assert h["X-Forwarded-For"] == "10.0.0.9" and h["X-Forwarded-Method"] == "GET"
    assert h["X-Forwarded-Uri"] == "/p?q=1" and h["X-Forwarded-Host"] == "app.test:8080"
    assert h["X-Forwarded-Proto"] == "http" and h["Cookie"] == "c=1"
    assert "X-Hop" not in h and "Connection" not in h and "X-Forwarded-Prefix" not in h  # untrusted peer
    off = forward_auth.build(
        _read("forwardAuth", {"address": "http://a", "trustForwardHeader": False}), _ctx()
    )
    h = off.auth_headers(_exchange(trusted=("10.0.0.0/8",), **fwd))
    assert (
        h["X-Forwarded-For"] == "10.0.0.9"
        and "X-Forwarded-Prefix" not in h
        and h["X-Forwarded-Port"] == "8080"
    )
    on = forward_auth.build(
        _read(
            "forwardAuth", {"address": "http://a", "trustForwardHeader": True, "authRequestHeaders": "Cookie"}
        ),
        _ctx(),
    )
    h = on.auth_headers(_exchange(trusted=("10.0.0.0/8",), Cookie="c=1", Accept="x", **fwd))
    # only the listed headers are copied, X-Forwarded-* included (Traefik filters before it sets its own)
    assert h["X-Forwarded-For"] == "10.0.0.9" and "X-Forwarded-Prefix" not in h and "X-Real-Ip" not in h
    assert h["Cookie"] == "c=1" and "Accept" not in h
    assert h["X-Forwarded-Proto"] == "http" and h["X-Forwarded-Port"] == "8080"
    trusting = forward_auth.build(
        _read("forwardAuth", {"address": "http://a", "trustForwardHeader": True}), _ctx()
    )
    h = trusting.auth_headers(_exchange(trusted=("10.0.0.0/8",), Cookie="c=1", **fwd))
    assert h["X-Forwarded-For"] == "1.2.3.4, 10.0.0.9" and h["X-Forwarded-Prefix"] == "/evil"
    assert h["X-Real-Ip"] == "10.0.0.9" and h["X-Forwarded-Host"] == "app.test:8080"


def test_forward_auth_grants_listed_and_matching_headers_into_the_request():
    fa = forward_auth.build(
        _read(
            "forwardAuth",
            {
                "address": "http://a",
                "authResponseHeaders": "remote-user",
                "authResponseHeadersRegex": "^X-Auth-",
            },
        ),
        _ctx(),
    )
    ex = _exchange(Remote_User="forged", X_Auth_Role="forged", X_Other="kept")
    fa.grant(ex, CIMultiDict({"Remote-User": "alice", "x-auth-email": "a@x", "Other": "no"}))
    assert ex.header("Remote-User") == "alice" and ex.header("X-Auth-Email") == "a@x"
    assert ex.header("X-Auth-Role") is None and ex.header("X-Other") == "kept" and ex.header("Other") is None
    assert canonical("x-auth-user") == "X-Auth-User" and canonical("bad name") == "bad name"


def test_forward_auth_build_refuses_by_option_name():
    with pytest.raises(MiddlewareError) as info:
        forward_auth.build(
            _read("forwardAuth", {"address": "http://a", "authResponseHeadersRegex": "(a)\\1"}), _ctx()
        )
    assert info.value.option == "authResponseHeadersRegex"
    with pytest.raises(MiddlewareError) as info:
        forward_auth.build(
            _read("forwardAuth", {"address": "https://a", "tls": {"ca": "/nonexistent"}}), _ctx()
        )
    assert info.value.option == "tls.ca"
    with pytest.raises(MiddlewareError) as info:
        basic_auth.build(_read("basicAuth", {"users": "a:plaintext"}), _ctx())
    assert info.value.option == "users[0]"
    with pytest.raises(MiddlewareError) as info:
        digest_auth.build(_read("digestAuth", {"usersFile": "/nonexistent/u"}), _ctx())
    assert info.value.option == "usersFile"


async def test_basic_auth_checks_once_then_answers_from_the_cache(monkeypatch):
    mw = basic_auth.build(
        _read("basicAuth", {"users": [f"alice:{SHA_VECTOR[1]}"], "headerField": "X-User"}), _ctx()
    )
    calls = []
    real = basic_auth.check_password
    monkeypatch.setattr(basic_auth, "check_password", lambda p, s: calls.append(1) or real(p, s))
    passed = []

    async def nxt(ex):
        passed.append(ex.header("X-User"))

    handler = mw(nxt)
    good = "Basic " + base64.b64encode(b"alice:myPassword").decode()
    for _ in range(3):
        await handler(_exchange(Authorization=good))
    assert passed == ["alice"] * 3 and len(calls) == 1
    ex = _exchange(Authorization="Basic " + base64.b64encode(b"alice:nope").decode())
    await handler(ex)
    assert ex.sink.status == 401 and ex.sink.headers["WWW-Authenticate"] == 'Basic realm="traefik"'
    await asyncio.sleep(0)


def test_forwarded_uri_after_a_path_middleware_is_escaped_once():
    """ex.path is already escaped as on the request line: a path middleware's result is sent as it is in
    X-Forwarded-Uri (Authelia and Authentik match their rules on it), never escaped a second time."""

    from router.middlewares.forward_auth import request_uri

    ex = fake_exchange("GET", "/api/a%20b%3Fc?x=1")
    assert request_uri(ex) == "/api/a%20b%3Fc?x=1"
    ex.path = "/a%20b%3Fc"  # what stripPrefix /api leaves
    assert request_uri(ex) == "/a%20b%3Fc?x=1"


async def test_bad_logins_queue_a_bounded_number_of_checks_and_abandoned_ones_never_run(monkeypatch, caplog):
    """A flood of bad logins must not queue bcrypt work without limit: beyond MAX_PENDING checks a login
    gets 503 with Retry-After: 1 (one log line), and a check whose clients all hung up before it started
    is dropped, so the next real login is checked at once instead of waiting behind the flood."""
    import threading

    gate, calls = threading.Event(), []

    def slow_check(password, secret):
        calls.append(password)
        gate.wait(10)
        return password == b"myPassword"

    monkeypatch.setattr(basic_auth, "check_password", slow_check)
    handler = basic_auth.build(_read("basicAuth", {"users": [f"alice:{SHA_VECTOR[1]}"]}), _ctx())(_served)

    def login(password: bytes):
        return _exchange(Authorization="Basic " + base64.b64encode(b"alice:" + password).decode())

    workers, cap = htpasswd.AUTH_WORKERS, basic_auth.MAX_PENDING
    try:
        flood = [asyncio.create_task(handler(login(b"bad%d" % i))) for i in range(cap)]
        same = asyncio.create_task(handler(login(b"bad0")))  # shares the first check, takes no place
        for _ in range(500):
            if len(calls) == workers:
                break
            await asyncio.sleep(0.01)
        assert len(calls) == workers  # the others queued behind the busy threads
        for i in range(2):
            ex = login(b"one-too-many%d" % i)
            await asyncio.wait_for(handler(ex), 2)  # answered at once, not queued
            assert ex.sink.status == 503 and ex.sink.headers["Retry-After"] == "1"
        assert sum("password checks pending" in r.getMessage() for r in caplog.records) == 1
        for task in [*flood, same]:
            task.cancel()  # the clients hang up
        await asyncio.gather(*flood, same, return_exceptions=True)
    finally:
        gate.set()
    ex = login(b"myPassword")
    await asyncio.wait_for(handler(ex), 5)
    assert ex.sink.status == 0 and ex.values.get("served")  # through to the next handler
    assert len(calls) == workers + 1  # the abandoned checks that had not started never ran


async def _served(ex):
    ex.values["served"] = True


@pytest.mark.parametrize("bad", ["a\r\nSet-Cookie: x=1", "a\nb", "a\0b"])
def test_header_values_with_cr_lf_or_nul_are_refused_by_name(bad):
    """``realm`` goes into WWW-Authenticate and ``authSigninURL`` into Location: CR/LF/NUL would split
    the header (a response-splitting hole), so they are refused by option name."""
    assert "realm: must not contain CR, LF or NUL" in _refusal(
        "basicAuth", {"users": "a:{SHA}x", "realm": bad}
    )
    assert "realm: must not contain CR, LF or NUL" in _refusal("digestAuth", {"users": "a:r:x", "realm": bad})
    refusal = _refusal("forwardAuth", {"address": "http://a", "authSigninURL": "https://l/" + bad})
    assert "authSigninURL: must not contain CR, LF or NUL" in refusal
