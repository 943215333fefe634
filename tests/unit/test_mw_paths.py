"""The path and redirect middlewares: options from files and labels, Go's regex replacement rules, and
each middleware's effect on an exchange (the path the service is asked for, the headers it gets, the
redirect the client gets), checked against Traefik's behaviour."""

from __future__ import annotations

import asyncio
import logging

import pytest

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding
from discover.middlewares.fields import read_options
from discover.middlewares.paths import (
    AddPrefix,
    RedirectRegex,
    RedirectScheme,
    ReplacePath,
    ReplacePathRegex,
    StripPrefix,
    StripPrefixRegex,
)
from discover.parse import parse_dynamic_with_warnings
from discover.readers import At, ConfigError
from router.middlewares import (
    BuildContext,
    MiddlewareError,
    add_prefix,
    redirect_regex,
    redirect_scheme,
    replace_path,
    replace_path_regex,
    strip_prefix,
    strip_prefix_regex,
)
from router.middlewares.paths_common import GoRe, is_clean, path_unescape, wire_path
from tests.exchange_fakes import fake_exchange

# -- options ----------------------------------------------------------------------------------------------


def test_files_and_label_strings_read_alike():
    cases = [
        (
            StripPrefix,
            {"prefixes": ["/a", "/b"], "forceSlash": False},
            {"PREFIXES": "/a,/b", "forceslash": "false"},
        ),
        (StripPrefixRegex, {"regex": ["/v[0-9]+", "/x"]}, {"regex": "/v[0-9]+,/x"}),
        (ReplacePath, {"path": "/new"}, {"Path": "/new"}),
        (
            ReplacePathRegex,
            {"regex": "^/a/(.*)", "replacement": "/b/$1"},
            {"regex": "^/a/(.*)", "replacement": "/b/$1"},
        ),
        (
            RedirectScheme,
            {"scheme": "https", "port": 8443, "permanent": True},
            {"scheme": "https", "port": "8443", "permanent": "true"},
        ),
        (
            RedirectRegex,
            {"regex": "^http://(.*)", "replacement": "https://$1", "permanent": True},
            {"Regex": "^http://(.*)", "replacement": "https://$1", "permanent": "TRUE"},
        ),
        (AddPrefix, {"prefix": "/api"}, {"prefix": "/api"}),
    ]
    for cls, typed, labels in cases:
        assert read_options(cls, typed, At()) == read_options(cls, labels, At()), cls
    assert read_options(RedirectScheme, {"scheme": "https", "port": 8443}, At()).port == "8443"
    assert read_options(StripPrefix, {"prefixes": "/a"}, At()).forceSlash is None  # unset, not False


@pytest.mark.parametrize(
    ("cls", "options", "where", "words"),
    [
        (AddPrefix, {}, "prefix", "cannot be empty"),
        (AddPrefix, {"prefix": ""}, "prefix", "cannot be empty"),
        (RedirectScheme, {"port": "443"}, "scheme", "you must provide a target scheme"),
        (RedirectScheme, {"scheme": "https", "port": "44x"}, "port", "must be a port number"),
        (StripPrefix, {"prefix": "/a"}, "prefix", "unknown key"),
        (StripPrefix, {"prefixes": "/a", "forceSlash": "maybe"}, "forceSlash", "expected true or false"),
        (RedirectRegex, {"regex": "x", "statusCode": 303}, "statusCode", "unknown key"),
    ],
)
def test_bad_options_are_refused_by_name(cls, options, where, words):
    with pytest.raises(ConfigError) as err:
        read_options(cls, options, At("m"))
    assert f"m.{where}" in str(err.value) and words in str(err.value)


def test_addprefix_needs_no_leading_slash_as_in_traefik():
    assert read_options(AddPrefix, {"prefix": "api"}, At()).prefix == "api"


def test_docker_labels_give_the_typed_options():
    labels = {
        "traefik.http.routers.app.middlewares": "strip,https",
        "traefik.http.middlewares.strip.stripprefix.prefixes": "/api,/v1",
        "traefik.http.middlewares.https.redirectscheme.scheme": "https",
        "traefik.http.middlewares.https.redirectscheme.permanent": "true",
        "traefik.http.middlewares.re.replacepathregex.regex": "^/old/(.*)",
        "traefik.http.middlewares.re.replacepathregex.replacement": "/new/$1",
    }
    box = ContainerInfo(
        id="x", name="app", labels=labels, ports=(PortBinding(80),), networks={"n": "10.0.0.2"}
    )
    cfg, _ = build_docker_config([box], DockerSettings(), frozenset())
    mws = {m.name.split("@")[0]: m for m in cfg.middlewares.values()}
    assert mws["strip"].options == StripPrefix(prefixes=("/api", "/v1"))
    assert mws["https"].options == RedirectScheme(scheme="https", permanent=True)
    assert mws["re"].options == ReplacePathRegex(regex="^/old/(.*)", replacement="/new/$1")


def test_a_bad_paths_middleware_is_kept_with_its_error():
    cfg, _ = parse_dynamic_with_warnings(
        {"http": {"middlewares": {"r": {"redirectScheme": {"port": "443"}}}}}
    )
    assert "http.middlewares.r.redirectScheme.scheme" in cfg.middlewares["r"].error


@pytest.mark.parametrize(
    ("module", "options", "option"),
    [
        (strip_prefix_regex, StripPrefixRegex(regex=("/ok", "/(a+)\\1")), "regex[1]"),
        (replace_path_regex, ReplacePathRegex(regex="(?=x)", replacement="/"), "regex"),
        (redirect_regex, RedirectRegex(regex="(", replacement="/"), "regex"),
        (replace_path, ReplacePath(path="/a%zz"), "path"),
        (add_prefix, AddPrefix(prefix=""), "prefix"),
    ],
)
def test_build_refuses_what_go_refuses_by_option(module, options, option):
    with pytest.raises(MiddlewareError) as err:
        module.build(options, BuildContext("m@file", "r@file", None))
    assert err.value.option == option


# -- Go's regexp rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "replacement", "want"),
    [
        ("a(x*)b", "-ab-axxb-", "${1}W", "-W-xxW-"),  # Go's regexp docs
        ("a(x*)b", "-ab-axxb-", "$1W", "---"),  # $1W is the (missing) group "1W"
        ("a(?P<x>x*)b", "-axb-", "[$x|${x}|$$|$]", "-[x|x|$|$]-"),
        ("a*", "baaac", "x", "xbxcx"),  # empty matches: never right after a match
        ("^/a", "/a/a", "/b", "/b/a"),  # ^ is the start of the text, even when searching further on
        ("(a)|(b)", "b", "[$1$2$3]", "[b]"),  # a group that took no part, and one that does not exist
        ("/(0)", "/0", "$00$01", ""),  # leading zeros: a name, and no group has it
    ],
)
def test_replace_all_is_gos(pattern, text, replacement, want):
    rx = GoRe(pattern, "regex")
    assert rx.replace_all(text, rx.template(replacement)) == want
    rx._match = None  # the binding's public search, used when RE2's own Match is not reachable
    assert rx.replace_all(text, rx.template(replacement)) == want


def test_offsets_are_go_bytes_and_find_gives_the_leftmost_match():
    rx = GoRe("(é+)(b)", "regex")
    assert rx.replace_all("aééb-éb", rx.template("<$2$1>")) == "a<béé>-<bé>"
    assert GoRe("/t/[a-z]+", "regex").find("/x/t/ab/t/cd") == "/t/ab"
    assert GoRe("x*", "regex").find("/b") == ""


def test_path_helpers_follow_go_url():
    assert path_unescape("/a%2Fb%20c") == "/a/b c" and path_unescape("/a%zz") is None
    assert wire_path("/a b") == "/a%20b" and wire_path("/a%2Fb") == "/a%2Fb" and wire_path("/%") is None
    assert is_clean("/a/b/") and is_clean("/") and not is_clean("//evil.test") and not is_clean("/a/../b")


# -- behaviour on an exchange -----------------------------------------------------------------------------


class _Trusted:
    def __init__(self, ok: bool) -> None:
        self.ok = ok

    def trusts(self, ip):
        return self.ok


def _exchange(path="/", query="", method="GET", host="a.test", headers=(), scheme="http", trusted=False):
    target = path + ("?" + query if query else "")
    ex = fake_exchange(
        method,
        target,
        host,
        headers,
        "10.0.0.9",
        info_host=host.split(":")[0],
        scheme=scheme,
        trusted=_Trusted(trusted),
    )
    return ex, ex.transport


def _run(module, options, path="/", **kw):
    """(what the service got: path?query and header edits, or None) and (what the client got)."""
    seen = {}

    async def service(ex):
        seen["target"] = ex.target
        seen["headers"] = {k: v for k, (_, v) in ex.header_edits.items()}

    handler = module.build(options, BuildContext("m@file", "r@file", None))(service)
    ex, t = _exchange(path, **kw)
    asyncio.run(handler(ex))
    return (seen or None), t.data.decode("latin-1")


@pytest.mark.parametrize(
    ("prefix", "path", "want"),
    [
        ("/api", "/x", "/api/x"),
        ("/api/", "/x", "/api//x"),
        ("api", "/x", "/api/x"),
        ("/a b", "/x", "/a%20b/x"),
    ],
)
def test_addprefix_prepends_the_prefix_as_traefik(prefix, path, want):
    seen, _ = _run(add_prefix, AddPrefix(prefix=prefix), path, query="q=1")
    assert seen["target"] == want + "?q=1"


@pytest.mark.parametrize(
    ("prefixes", "path", "want", "forwarded"),
    [
        (("/api",), "/api/users", "/users", "/api"),
        (("/api",), "/api", "/", "/api"),  # nothing left: the service is asked for /
        (("/api/",), "/api/", "/", "/api/"),
        (("/api",), "/apix/y", "/x/y", "/api"),  # a plain string prefix, as in Traefik
        (("/v1", "/v"), "/v1/a", "/a", "/v1"),  # the first that matches, in order
        (("/v", "/v1"), "/v1/a", "/1/a", "/v"),
        ((" /api ",), "/api/a", "/a", "/api"),  # trimmed
        (("/a b",), "/a%20b/c%2Fd", "/c%2Fd", "/a b"),  # matched decoded, cut escaped
        (("/other",), "/api/a", "/api/a", None),
    ],
)
def test_stripprefix_strips_the_first_matching_prefix(prefixes, path, want, forwarded):
    seen, _ = _run(strip_prefix, StripPrefix(prefixes=prefixes), path, query="q=1")
    assert seen["target"] == want + "?q=1"
    assert seen["headers"].get("x-forwarded-prefix") == forwarded


def test_stripprefix_refuses_a_result_that_is_not_clean():
    seen, sent = _run(strip_prefix, StripPrefix(prefixes=("/api",)), "/api//evil.test/x")
    assert seen is None and sent.startswith("HTTP/1.1 400 ")


def test_stripprefix_forceslash_is_accepted_and_warned(caplog):
    caplog.set_level(logging.WARNING)
    seen, _ = _run(strip_prefix, StripPrefix(prefixes=("/api",), forceSlash=True), "/api")
    assert seen["target"] == "/"
    assert "forceSlash is deprecated" in caplog.text
    caplog.clear()
    _run(strip_prefix, StripPrefix(prefixes=("/api",)), "/api")
    assert "forceSlash" not in caplog.text


@pytest.mark.parametrize(
    ("regex", "path", "want", "forwarded"),
    [
        (("/api/v[0-9]+",), "/api/v12/users", "/users", "/api/v12"),
        (("/x", "/api/v[0-9]+"), "/api/v1/u", "/u", "/api/v1"),
        (("[a-z]+/",), "/abc/x", "/abc/x", None),  # the match must be a prefix of the path
        (("/a*",), "/b", "/b", "/"),  # a one-character match counts ("b" gets its slash back)
        (("x*",), "/b", "/b", None),  # an empty match does not
        (("/a.b",), "/a%20b/c", "/c", "/a b"),
    ],
)
def test_stripprefixregex_strips_the_match_at_the_start(regex, path, want, forwarded):
    seen, _ = _run(strip_prefix_regex, StripPrefixRegex(regex=regex), path)
    assert seen["target"] == want
    assert seen["headers"].get("x-forwarded-prefix") == forwarded


def test_replacepath_asks_for_the_new_path_and_tells_the_old_one():
    seen, _ = _run(replace_path, ReplacePath(path="/new%2Fpath"), "/old/a%20b", query="q=1")
    assert seen["target"] == "/new%2Fpath?q=1"
    assert seen["headers"]["x-replaced-path"] == "/old/a%20b"
    seen, _ = _run(replace_path, ReplacePath(path="/with space"), "/x")
    assert seen["target"] == "/with%20space"


@pytest.mark.parametrize(
    ("regex", "replacement", "path", "want", "replaced"),
    [
        ("^/foo/(.*)", "/bar/$1", "/foo/a/b", "/bar/a/b", "/foo/a/b"),
        ("^/foo/(?P<rest>.*)", "/bar/${rest}x", "/foo/a", "/bar/ax", "/foo/a"),
        ("o", "0", "/foo/boo", "/f00/b00", "/foo/boo"),  # every match
        ("^/nomatch", "/x", "/foo", "/foo", None),
        (" ^/a ", " /b ", "/a", "/b", "/a"),  # both trimmed
    ],
)
def test_replacepathregex_replaces_every_match(regex, replacement, path, want, replaced):
    seen, _ = _run(replace_path_regex, ReplacePathRegex(regex=regex, replacement=replacement), path)
    assert seen["target"] == want
    assert seen["headers"].get("x-replaced-path") == replaced


def test_replacepathregex_answers_400_and_500_for_bad_results():
    seen, sent = _run(replace_path_regex, ReplacePathRegex(regex="^/a", replacement="//b"), "/a")
    assert seen is None and sent.startswith("HTTP/1.1 400 ")
    seen, sent = _run(replace_path_regex, ReplacePathRegex(regex="^/a", replacement="/%zz"), "/a")
    assert seen is None and sent.startswith("HTTP/1.1 500 ")


def _location(sent: str) -> str | None:
    for line in sent.split("\r\n"):
        if line.startswith("Location: "):
            return line[len("Location: ") :]
    return None


@pytest.mark.parametrize(
    ("options", "kw", "status", "location"),
    [
        ({"scheme": "https"}, {"path": "/x", "query": "a=1&b=2"}, 302, "https://a.test/x?a=1&b=2"),
        ({"scheme": "https", "permanent": True}, {"path": "/x"}, 301, "https://a.test/x"),
        ({"scheme": "https"}, {"path": "/x", "method": "POST"}, 307, "https://a.test/x"),
        ({"scheme": "https", "permanent": True}, {"path": "/x", "method": "HEAD"}, 308, "https://a.test/x"),
        (
            {"scheme": "https", "port": "8443"},
            {"path": "/", "host": "a.test:8080"},
            302,
            "https://a.test:8443/",
        ),
        ({"scheme": "https", "port": "443"}, {"path": "/", "host": "a.test:8080"}, 302, "https://a.test/"),
        ({"scheme": "https"}, {"path": "/", "host": "[::1]:8080"}, 302, "https://[::1]/"),
        # the same scheme on another port still redirects (the URL differs), as in Traefik
        ({"scheme": "https", "port": "8443"}, {"path": "/", "scheme": "https"}, 302, "https://a.test:8443/"),
        ({"scheme": "http"}, {"path": "/", "scheme": "https", "host": "a.test:443"}, 302, "http://a.test/"),
    ],
)
def test_redirectscheme_redirects_as_traefik(options, kw, status, location):
    seen, sent = _run(redirect_scheme, RedirectScheme(**options), **kw)
    assert seen is None
    assert sent.startswith(f"HTTP/1.1 {status} ") and _location(sent) == location


@pytest.mark.parametrize(
    ("options", "kw"),
    [
        ({"scheme": "https"}, {"scheme": "https"}),
        ({"scheme": "https"}, {"scheme": "https", "host": "a.test:443"}),  # default port left out
        ({"scheme": "https", "port": "8443"}, {"scheme": "https", "host": "a.test:8443"}),
        ({"scheme": "http"}, {"host": "a.test:80"}),
        # a trusted proxy in front says the client used https
        ({"scheme": "https"}, {"headers": {"X-Forwarded-Proto": "https"}, "trusted": True}),
        ({"scheme": "https"}, {"headers": {"X-Forwarded-Proto": "wss"}, "trusted": True}),
    ],
)
def test_redirectscheme_passes_a_request_already_at_the_target(options, kw):
    seen, sent = _run(redirect_scheme, RedirectScheme(**options), "/x", **kw)
    assert seen == {"target": "/x", "headers": {}} and sent == ""


def test_redirectscheme_ignores_an_untrusted_clients_forwarded_proto():
    seen, sent = _run(
        redirect_scheme, RedirectScheme(scheme="https"), "/x", headers={"X-Forwarded-Proto": "https"}
    )
    assert seen is None and _location(sent) == "https://a.test/x"


@pytest.mark.parametrize(
    ("options", "kw", "status", "location"),
    [
        (
            {"regex": "^http://a\\.test/(.*)", "replacement": "http://b.test/${1}"},
            {"path": "/x/y", "query": "q=1"},
            302,
            "http://b.test/x/y?q=1",
        ),
        (
            {"regex": "^http://([^/:]+):8080/(.*)", "replacement": "https://$1/$2", "permanent": True},
            {"path": "/z", "host": "a.test:8080"},
            301,
            "https://a.test/z",
        ),
        (
            {"regex": "^https://a\\.test/(.*)", "replacement": "https://b.test/$1"},
            {"path": "/z", "scheme": "https", "method": "POST"},
            307,
            "https://b.test/z",
        ),
        (
            {"regex": "^http://a\\.test/(.*)", "replacement": "http://b.test/é $1"},
            {"path": "/z"},
            302,
            "http://b.test/%C3%A9%20z",
        ),
    ],
)
def test_redirectregex_redirects_the_full_url(options, kw, status, location):
    seen, sent = _run(redirect_regex, RedirectRegex(**options), **kw)
    assert seen is None
    assert sent.startswith(f"HTTP/1.1 {status} ") and _location(sent) == location


def test_redirectregex_passes_when_nothing_matches_or_changes():
    seen, sent = _run(redirect_regex, RedirectRegex(regex="^https://", replacement="http://"), "/x")
    assert seen["target"] == "/x" and sent == ""
    seen, sent = _run(redirect_regex, RedirectRegex(regex="^(http://.*)", replacement="$1"), "/x")
    assert seen["target"] == "/x" and sent == ""


def test_redirectregex_to_a_url_go_cannot_parse_is_a_500():
    seen, sent = _run(
        redirect_regex, RedirectRegex(regex="^http://a.test/", replacement="http://b/%zz"), "/x"
    )
    assert seen is None and sent.startswith("HTTP/1.1 500 ")
