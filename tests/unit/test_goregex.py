"""Configured regexes: Go's regexp semantics through RE2, linear time, clear refusals."""

import inspect
import time

import pytest
import re2

from discover import goregex
from discover.goregex import GoRegexpError, compile_go, go_quote_meta, gorilla_template_regexp


def test_options_are_gos():
    """Perl syntax and leftmost-first matching as Go's regexp.Compile; bounded memory; no stderr noise."""
    opts = goregex._OPTIONS
    assert opts.posix_syntax is False
    assert opts.longest_match is False
    assert opts.perl_classes is True and opts.word_boundary is True
    assert opts.case_sensitive is True and opts.dot_nl is False and opts.never_nl is False
    assert opts.encoding == re2.Options.Encoding.UTF8
    assert 8 << 20 < opts.max_mem <= 64 << 20
    assert opts.log_errors is False


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        # MatchString: a match anywhere counts
        ("b", "abc", True),
        ("^b", "abc", False),
        ("^/api/v[0-9]+/", "/api/v2/x", True),
        ("^[a-z]+\\.example\\.com$", "shop.example.com", True),
        ("^[a-z]+\\.example\\.com$", "shop1.example.com", False),
        # $ is the end of the text, ^ its start, unless (?m)
        ("^a$", "a\n", False),
        ("^b$", "a\nb", False),
        ("(?m)^b$", "a\nb", True),
        ("a\\z", "a", True),
        # '.' does not match a newline unless (?s)
        ("a.c", "a\nc", False),
        ("(?s)a.c", "a\nc", True),
        # Perl classes and word boundaries, ASCII like Go's
        ("\\d+", "x42", True),
        ("\\d", "\u0663", False),
        ("\\w", "é", False),
        ("\\bfoo\\b", "a foo b", True),
        ("\\bfoo\\b", "afoob", False),
        ("\\Bfoo", "afoo", True),
        # Unicode classes and case folding
        ("^\\pL+$", "café", True),
        ("^\\p{Greek}+$", "αβ", True),
        ("(?i)^é$", "É", True),
        ("(?i)k", "\u212a", True),  # Kelvin sign folds to k, as in Go
        # flags, lazy repeats, ungreedy flag, \Q..\E, POSIX classes, counted repeats, named groups
        ("x(?i)a|b", "B", True),
        ("(?i:a)b", "AB", False),
        ("^a+?$", "aaa", True),
        ("(?U)^a+$", "aaa", True),
        ("\\Qa.b\\E", "axb", False),
        ("\\Qa.b\\E", "a.b", True),
        ("^[[:alpha:]]+$", "ab", True),
        ("[[:^alpha:]]", "ab", False),
        ("^a{2,3}$", "aaaa", False),
        ("a{,2}", "a{,2}", True),  # not a repeat in Go: literal
        ("(?P<x>a)(?<y>b)", "ab", True),
        ("\\x{41}\\101", "AA", True),
    ],
)
def test_go_semantics(pattern, text, expected):
    assert compile_go(pattern).matches(text) is expected


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("(a)\\1", "backreferences are not supported"),
        ("(?P<n>a)\\2", "backreferences"),
        ("(?=a)", "lookahead/lookbehind"),
        ("(?!a)", "lookahead/lookbehind"),
        ("(?<=a)b", "lookahead/lookbehind"),
        ("(?<!a)b", "lookahead/lookbehind"),
        ("(?>a)", "atomic groups"),
        ("a*+", "possessive"),
        ("a\\Z", "use \\z"),
        ("a\\C", "\\C"),
        ("(a", "missing )"),
        ("a)", "unexpected )"),
        ("[a-", "missing ]"),
        ("a**", "bad repetition operator"),
        ("a{1001}", "invalid repetition size"),
        ("\\8", "invalid escape"),
        ("(?z)", "invalid perl operator"),
        ("\\p{Nope}", "invalid character class range"),
    ],
)
def test_refused_with_the_reason(pattern, words):
    with pytest.raises(GoRegexpError) as info:
        compile_go(pattern)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("pattern", ["\\\\C", "\\QC\\E", "\\Q\\C\\E", "[\\\\]C"])
def test_backslash_c_only_refused_as_an_escape(pattern):
    """Only RE2's any-byte escape is refused; a literal backslash before C, or C quoted, is fine."""
    assert compile_go(pattern).matches("x\\C") is True


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("^/(a+)+$", "/" + "a" * 30 + "!"),
        ("^(a|aa)+$", "a" * 60 + "!"),
        ("^(a|a?)+$", "a" * 60 + "!"),
        ("(x+x+)+y", "x" * 5000),
        ("^(\\w+\\s?)*$", "word " * 2000 + "!"),
    ],
)
def test_hostile_patterns_are_linear(pattern, text):
    rx = compile_go(pattern)
    start = time.perf_counter()
    assert rx.matches(text) is False
    assert time.perf_counter() - start < 0.05


def test_any_str_is_matched_without_raising():
    rx = compile_go("^caf.$")
    assert rx.matches("café") is True
    # a header that was not UTF-8 reaches us surrogate-escaped; a lone surrogate from anywhere else
    assert rx.matches(b"caf\xe9".decode("utf-8", "surrogateescape")) is False
    assert compile_go("^caf").matches(b"caf\xe9".decode("utf-8", "surrogateescape")) is True
    assert compile_go("x").matches("\ud800x") is True


def test_memo_is_bounded_and_answers_like_re2():
    rx = compile_go("^[0-9]+$")
    memo = inspect.getclosurevars(rx.matches).nonlocals["memo"]
    for i in range(500):
        assert rx.matches(str(i)) is True
        assert rx.matches(f"x{i}") is False
        assert len(memo) <= goregex._MEMO_SIZE
    long = "1" * (goregex._MEMO_TEXT + 1)
    assert rx.matches(long) is True and long not in memo


def test_compiled_once_per_text():
    assert compile_go("^cached$") is compile_go("^cached$")


def test_public_api_fallback_answers_the_same(monkeypatch):
    """If google-re2's underlying Match ever changes, matching goes through its public search."""
    real = goregex._direct_ok
    monkeypatch.setattr(goregex, "_direct_ok", lambda: False)
    matches = goregex._matcher(re2.compile("^/api/v[0-9]+/", goregex._OPTIONS))
    assert matches("/api/v2/x") is True
    assert matches("/api/x") is False
    assert real() is True  # this google-re2 does have it


def test_quote_meta():
    assert (
        go_quote_meta("a.b*c[d]{e}(f)|g^h$i\\j+k?")
        == "a\\.b\\*c\\[d\\]\\{e\\}\\(f\\)\\|g\\^h\\$i\\\\j\\+k\\?"
    )
    assert compile_go("^" + go_quote_meta("1.2+3") + "$").matches("1.2+3")
    assert not compile_go("^" + go_quote_meta("1.2+3") + "$").matches("1x22+3")


@pytest.mark.parametrize(
    ("tpl", "kind", "pattern"),
    [
        ("{sub}.example.com", "host", "(?i)^(?:[^.]+)\\.example\\.com$"),
        ("/u/{id:[0-9]+}", "path", "^/u/(?:[0-9]+)$"),
        ("/u/{id}", "prefix", "^/u/(?:[^/]+)"),
        ("{v}", "query", "^(?:.*)$"),
        ("", "query", "^.*$"),
        ("/{a:x{2}}", "path", "^/(?:x{2})$"),
    ],
)
def test_gorilla_templates(tpl, kind, pattern):
    assert gorilla_template_regexp(tpl, kind) == pattern
    compile_go(pattern)


@pytest.mark.parametrize("tpl", ["/{a", "/a}", "/{:x}", "/{a:}"])
def test_gorilla_template_errors(tpl):
    with pytest.raises(GoRegexpError):
        gorilla_template_regexp(tpl, "path")
