import pytest

from router.paths import (
    ENCODED_ESCAPES,
    BadTarget,
    denied_escape,
    denied_escapes,
    normalize_host,
    normalize_path,
    split_target,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("/a/b", "/a/b"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/%2e%2e/b", "/b"),
        ("/a/%2E%2e/%2e/b", "/b"),
        ("/a/b/..", "/a"),  # Go's JoinPath (Traefik's sanitizePath): a trailing slash only if one was sent
        ("/a/b/.", "/a/b"),
        ("/a/b/../", "/a/"),
        ("/./foo/../bar//", "/bar/"),  # Traefik's documented example
        ("/..", "/"),
        ("/%7Euser", "/~user"),
        ("/%41%42c", "/ABc"),
        ("/a%2fb", "/a%2Fb"),  # an encoded slash is data, not a separator
        ("/a%2Fb/../c", "/c"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a//b", "/a/b"),  # merged, as Traefik v3.6+'s sanitizePath does
        ("//a", "/a"),
        ("/a//", "/a/"),
        ("/a/..%2Fb", "/a/..%2Fb"),  # "..%2F" is no dot segment: data, refused unless allowEncodedSlash
        ("*", "*"),
    ],
)
def test_normalize_path(raw, expected):
    assert normalize_path(raw) == expected


@pytest.mark.parametrize("raw", ["/%", "/%4", "/%zz", "/a%g1"])
def test_bad_escapes_are_refused(raw):
    with pytest.raises(BadTarget):
        normalize_path(raw)


def test_split_target_forms():
    assert split_target("/p?q=1&r") == (None, "/p", "q=1&r")
    assert split_target("http://Example.test:81/x?y") == ("Example.test:81", "/x", "y")
    assert split_target("https://a.test") == ("a.test", "/", "")
    assert split_target("http://a.test?x=1") == ("a.test", "/", "x=1")
    assert split_target("*") == (None, "*", "")
    with pytest.raises(BadTarget):
        split_target("example.com:443")


@pytest.mark.parametrize("target", ["/p#frag", "/p?q#f", "http://a.test/x#y"])
def test_a_fragment_is_refused(target):
    """Traefik's denyFragment: a "#" never belongs in a request target; cut here and not at the backend
    (or the other way round), it would make two readings of one path."""
    with pytest.raises(BadTarget):
        split_target(target)


def test_denied_escapes_follow_the_allowed_keys():
    everything = denied_escapes(frozenset())
    assert everything == {"%2F", "%5C", "%00", "%3B", "%25", "%3F", "%23"}
    assert denied_escapes(frozenset({"allowEncodedSlash"})) == everything - {"%2F"}
    assert denied_escape(normalize_path("/a%2fb"), everything) == "%2F"
    assert denied_escape("/a%20b%3Bc", everything) == "%3B"
    assert denied_escape("/a%20b", everything) is None


def test_denied_escapes_in_both_cases_and_the_cheap_refusal_first():
    """One function for the entry point (normalised paths: upper case) and the middleware (a rewritten path
    may hold ``%2f``); denied_escape itself skips a path without ``%`` or ``\\`` before any scan."""
    both = denied_escapes({"allowEncodedPercent"}, both_cases=True)
    assert both == {"%2F", "%5C", "%00", "%3B", "%3F", "%23", "%2f", "%5c", "%3b", "%3f"}
    assert denied_escape("/a%2fb", both) == "%2f"
    assert denied_escape("/plain/path", both) is None
    assert denied_escape("/a\\b", both) == "\\"


def test_one_table_of_encoded_characters():
    """The encodedCharacters keys of the static schema (entry points), of the middleware's options and of
    the escapes refused are the same seven, in one table (router.paths.ENCODED_ESCAPES)."""
    from dataclasses import fields

    from discover.middlewares.paths import EncodedCharacters
    from dockroute.static.schema import ENCODED_CHARACTERS

    assert tuple(ENCODED_ESCAPES) == ENCODED_CHARACTERS
    assert [f.name for f in fields(EncodedCharacters)] == list(ENCODED_ESCAPES)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("example.com:8080", "example.com"),
        ("Example.com.:8080", "example.com"),
        ("[::1]:80", "[::1]"),
        ("[FE80::1]", "[fe80::1]"),
        ("", ""),
    ],
)
def test_normalize_host(raw, expected):
    assert normalize_host(raw) == expected


def test_normalize_path_without_sanitizing_keeps_segments():
    """``sanitizePath: false``: escapes are still normalised, dot segments and duplicate slashes stay."""
    assert normalize_path("/a/../b//c/./d", sanitize=False) == "/a/../b//c/./d"
    assert normalize_path("/%61%2f/..", sanitize=False) == "/a%2F/.."
    assert normalize_path("/a/../b//c/./d") == "/b/c/d"
