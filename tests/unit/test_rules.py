import pytest
from multidict import CIMultiDict

from router.rules import RequestInfo, RuleError, parse_rule


def req(
    host="a.test",
    path="/",
    method="GET",
    query="",
    headers=(),
    ip="10.0.0.1",
):
    return RequestInfo(method, host, path, query, CIMultiDict(list(headers)), ip)


# (rule, request, expected) — every matcher, positive and negative.
MATCHES = [
    # Host: case-insensitive, trailing dot stripped from the rule
    ("Host(`a.test`)", req(), True),
    ("Host(`a.test`)", req(host="b.test"), False),
    ("Host(`A.Test`)", req(), True),
    ("Host(`a.test.`)", req(), True),
    ("Host(`a.test`)", req(host=""), False),
    ("Host(`a.test`)", req(host="x.a.test"), False),
    # Host wildcards (v3): one label, not the apex, not deeper
    ("Host(`*.a.test`)", req(host="x.a.test"), True),
    ("Host(`*.a.test`)", req(host="a.test"), False),
    ("Host(`*.a.test`)", req(host="y.x.a.test"), False),
    ("Host(`*`)", req(host="anything.test"), True),
    # v2: several hosts, HostHeader
    ("Host(`b.test`, `a.test`)", req(), True),
    ("Host(`b.test`, `c.test`)", req(), False),
    ("HostHeader(`a.test`)", req(), True),
    ("HostHeader(`b.test`)", req(), False),
    # HostRegexp v3: Go MatchString, unanchored unless anchored
    ("HostRegexp(`^[a-z]+\\.test$`)", req(), True),
    ("HostRegexp(`^[a-z]+\\.test$`)", req(host="a1.test"), False),
    ("HostRegexp(`test`)", req(host="x.test.example"), True),
    ("HostRegexp(`^test`)", req(host="x.test.example"), False),
    # HostRegexp v2 placeholders: anchored, default [^.]+
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", req(host="api.example.com"), True),
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", req(host="api1.example.com"), False),
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", req(host="api.example.com.evil"), False),
    ("HostRegexp(`{sub}.example.com`)", req(host="x.example.com"), True),
    ("HostRegexp(`{sub}.example.com`)", req(host="y.x.example.com"), False),
    ("HostRegexp(`{a}.one.test`, `{b}.two.test`)", req(host="x.two.test"), True),
    ("HostRegexp(`{a}.one.test`, `{b}.two.test`)", req(host="x.three.test"), False),
    # Path: exact, case-sensitive
    ("Path(`/x`)", req(path="/x"), True),
    ("Path(`/x`)", req(path="/x/"), False),
    ("Path(`/x`)", req(path="/X"), False),
    ("Path(`/x`, `/y`)", req(path="/y"), True),
    ("Path(`/x`, `/y`)", req(path="/z"), False),
    ("Path(`/users/{id:[0-9]+}`)", req(path="/users/42"), True),
    ("Path(`/users/{id:[0-9]+}`)", req(path="/users/42/x"), False),
    ("Path(`/users/{id}`)", req(path="/users/bob"), True),
    ("Path(`/users/{id}`)", req(path="/users/a/b"), False),
    # PathPrefix
    ("PathPrefix(`/api`)", req(path="/api/v1"), True),
    ("PathPrefix(`/api`)", req(path="/apis"), True),
    ("PathPrefix(`/api`)", req(path="/ap"), False),
    ("PathPrefix(`/api/`)", req(path="/API/x"), False),
    ("PathPrefix(`/a`, `/b`)", req(path="/b/c"), True),
    ("PathPrefix(`/a`, `/b`)", req(path="/c"), False),
    ("PathPrefix(`/u/{id:[0-9]+}`)", req(path="/u/7/edit"), True),
    ("PathPrefix(`/u/{id:[0-9]+}`)", req(path="/u/x/edit"), False),
    # PathRegexp: unanchored unless anchored
    ("PathRegexp(`^/api/v[0-9]+/`)", req(path="/api/v2/x"), True),
    ("PathRegexp(`^/api/v[0-9]+/`)", req(path="/x/api/v2/"), False),
    ("PathRegexp(`\\.php$`)", req(path="/a/index.php"), True),
    ("PathRegexp(`\\.php$`)", req(path="/a/index.php/x"), False),
    ("PathRegexp(`(?i)^/admin`)", req(path="/ADMIN"), True),
    ("PathRegexp(`^/a$`)", req(path="/a\n"), False),  # Go's $ is end of text, not before a newline
    # Method
    ("Method(`GET`)", req(method="GET"), True),
    ("Method(`get`)", req(method="GET"), True),
    ("Method(`GET`)", req(method="POST"), False),
    ("Method(`PUT`, `POST`)", req(method="POST"), True),
    ("Method(`PUT`, `POST`)", req(method="GET"), False),
    # Header / Headers (v2): exact value among the header's values, name case-insensitive
    ("Header(`X-Env`, `prod`)", req(headers=[("x-env", "prod")]), True),
    ("Header(`X-Env`, `prod`)", req(headers=[("X-Env", "dev"), ("X-Env", "prod")]), True),
    ("Header(`X-Env`, `prod`)", req(headers=[("X-Env", "production")]), False),
    ("Header(`X-Env`, `prod`)", req(), False),
    ("Headers(`X-Env`, `prod`)", req(headers=[("X-Env", "prod")]), True),
    ("Headers(`X-Env`, `prod`)", req(headers=[("X-Env", "dev")]), False),
    ("Headers(`A`, `1`, `B`, `2`)", req(headers=[("A", "1"), ("B", "2")]), True),
    ("Headers(`A`, `1`, `B`, `2`)", req(headers=[("A", "1")]), False),
    # HeaderRegexp / HeadersRegexp
    ("HeaderRegexp(`X-Env`, `^pro`)", req(headers=[("X-Env", "production")]), True),
    ("HeaderRegexp(`X-Env`, `^pro`)", req(headers=[("X-Env", "preprod")]), False),
    ("HeaderRegexp(`X-Env`, `od`)", req(headers=[("X-Env", "preprod")]), True),
    ("HeaderRegexp(`X-Env`, `.*`)", req(), False),
    ("HeadersRegexp(`X-Env`, `^dev$`)", req(headers=[("X-Env", "dev")]), True),
    ("HeadersRegexp(`X-Env`, `^dev$`)", req(headers=[("X-Env", "dev2")]), False),
    # Query (v3): a value among the key's values; one argument = present with an empty value
    ("Query(`q`, `traefik`)", req(query="q=awesome&q=traefik"), True),
    ("Query(`q`, `traefik`)", req(query="q=proxy"), False),
    ("Query(`q`, `traefik`)", req(query=""), False),
    ("Query(`q`, `a b`)", req(query="q=a+b"), True),
    ("Query(`mobile`)", req(query="mobile"), True),
    ("Query(`mobile`)", req(query="mobile="), True),
    ("Query(`mobile`)", req(query="mobile=true"), False),
    # Query (v2): `k=v` is the key's first value; `k=` any value
    ("Query(`q=traefik`)", req(query="q=traefik"), True),
    ("Query(`q=traefik`)", req(query="q=other&q=traefik"), False),
    ("Query(`q=`)", req(query="q=anything"), True),
    ("Query(`q=`)", req(query="r=1"), False),
    ("Query(`a=1`, `b=2`)", req(query="a=1&b=2"), True),
    ("Query(`a=1`, `b=2`)", req(query="a=1&b=3"), False),
    ("Query(`id={id:[0-9]+}`)", req(query="id=12"), True),
    ("Query(`id={id:[0-9]+}`)", req(query="id=x12"), False),
    # QueryRegexp
    ("QueryRegexp(`mobile`, `^(true|yes)$`)", req(query="mobile=yes"), True),
    ("QueryRegexp(`mobile`, `^(true|yes)$`)", req(query="mobile=no"), False),
    ("QueryRegexp(`mobile`, `(?i)^(true|yes)$`)", req(query="mobile=TRUE"), True),
    ("QueryRegexp(`mobile`, `^.*$`)", req(query="other=1"), False),
    ("QueryRegexp(`mobile`)", req(query="mobile"), True),
    # ClientIP: address or CIDR, IPv4/IPv6, several (v2)
    ("ClientIP(`10.0.0.1`)", req(ip="10.0.0.1"), True),
    ("ClientIP(`10.0.0.1`)", req(ip="10.0.0.2"), False),
    ("ClientIP(`10.0.0.0/8`)", req(ip="10.200.3.4"), True),
    ("ClientIP(`10.0.0.0/8`)", req(ip="11.0.0.1"), False),
    ("ClientIP(`10.1.2.3/8`)", req(ip="10.9.9.9"), True),  # host bits allowed, as Go's ParseCIDR
    ("ClientIP(`2001:db8::/32`)", req(ip="2001:db8::1"), True),
    ("ClientIP(`2001:db8::/32`)", req(ip="2001:db9::1"), False),
    ("ClientIP(`::1`)", req(ip="::1"), True),
    ("ClientIP(`10.0.0.0/8`)", req(ip="::ffff:10.1.1.1"), True),  # IPv4-mapped peer
    ("ClientIP(`192.168.0.0/16`, `10.0.0.1`)", req(ip="10.0.0.1"), True),
    ("ClientIP(`192.168.0.0/16`, `10.0.0.1`)", req(ip="172.16.0.1"), False),
    ("ClientIP(`10.0.0.0/8`)", req(ip=""), False),
    ("ClientIP(`10.0.0.0/8`)", req(ip="not-an-ip"), False),
    # Matcher names as Traefik accepts them
    ("host(`a.test`)", req(), True),
    ("HOST(`a.test`)", req(), True),
    ("Pathprefix(`/`)", req(), True),
    # Double-quoted Go strings with escapes
    ('Host("a.test")', req(), True),
    ('Path("/caf\\u00e9")', req(path="/café"), True),
    ('Path("/\\x41")', req(path="/A"), True),
    ('Path("/a\\"b")', req(path='/a"b'), True),
    ('PathRegexp("^/v\\\\d$")', req(path="/v1"), True),
]


@pytest.mark.parametrize(("rule", "request_", "expected"), MATCHES)
def test_match(rule, request_, expected):
    assert parse_rule(rule).match(request_) is expected


# Operators and precedence: && binds tighter than ||, ! tightest.
A, B, C = "Host(`a.test`)", "Path(`/b`)", "Method(`POST`)"
OPERATORS = [
    # a || b && c  ==  a || (b && c)
    (f"{A} || {B} && {C}", req(host="x.test", path="/b", method="GET"), False),
    (f"{A} || {B} && {C}", req(host="a.test", path="/z", method="GET"), True),
    (f"({A} || {B}) && {C}", req(host="a.test", path="/z", method="GET"), False),
    # a && b || c  ==  (a && b) || c
    (f"{A} && {B} || {C}", req(host="x.test", path="/z", method="POST"), True),
    (f"{A} && ({B} || {C})", req(host="x.test", path="/z", method="POST"), False),
    # !a && b  ==  (!a) && b
    (f"!{A} && {B}", req(host="a.test", path="/z"), False),
    (f"!({A} && {B})", req(host="a.test", path="/z"), True),
    (f"!{A} && {B}", req(host="x.test", path="/b"), True),
    (f"!!{A}", req(), True),
    (f"!{A}", req(), False),
    # nested parentheses
    (f"(({A}) && (({B}) || ({C})))", req(path="/b"), True),
    (f"(({A}) && (({B}) || ({C})))", req(path="/z"), False),
    (f"!(!({A} || {B}) || {C})", req(host="x.test", path="/b", method="GET"), True),
    (f"!(!({A} || {B}) || {C})", req(host="x.test", path="/b", method="POST"), False),
    # n-ary chains
    (f"{A} && {B} && {C}", req(path="/b", method="POST"), True),
    (f"{A} && {B} && {C}", req(path="/b", method="GET"), False),
    ("Path(`/1`) || Path(`/2`) || Path(`/3`)", req(path="/3"), True),
    ("Path(`/1`) || Path(`/2`) || Path(`/3`)", req(path="/4"), False),
    # whitespace and newlines are free
    (f"\n  {A}\n\t&&   {B}  ", req(path="/b"), True),
]


@pytest.mark.parametrize(("rule", "request_", "expected"), OPERATORS)
def test_operators(rule, request_, expected):
    assert parse_rule(rule).match(request_) is expected


@pytest.mark.parametrize(
    ("rule", "hosts"),
    [
        ("Host(`a.test`)", {"a.test"}),
        ("Host(`A.TEST.`)", {"a.test"}),
        ("Host(`a.test`, `b.test`)", {"a.test", "b.test"}),
        ("HostHeader(`a.test`)", {"a.test"}),
        ("Host(`a.test`) && Path(`/x`)", {"a.test"}),
        ("Path(`/x`) && Host(`a.test`)", {"a.test"}),
        ("Host(`a.test`, `b.test`) && Host(`b.test`, `c.test`)", {"b.test"}),
        ("Host(`a.test`) && Host(`b.test`)", set()),  # can never match
        ("Host(`a.test`) || Host(`b.test`)", {"a.test", "b.test"}),
        ("(Host(`a.test`) && Path(`/x`)) || Host(`b.test`)", {"a.test", "b.test"}),
        ("Host(`a.test`) || Path(`/x`)", None),
        ("Path(`/x`)", None),
        ("PathPrefix(`/`)", None),
        ("HostRegexp(`^a\\.test$`)", None),
        ("Host(`*.a.test`)", None),
        ("Host(`*`)", None),
        ("!Host(`a.test`)", None),
        ("!Host(`a.test`) && Host(`b.test`)", {"b.test"}),
        ("!!Host(`a.test`)", None),
        ("(Host(`a.test`) || Path(`/x`)) && Host(`b.test`)", {"b.test"}),
    ],
)
def test_hosts(rule, hosts):
    r = parse_rule(rule)
    assert r.hosts == (None if hosts is None else frozenset(hosts))


@pytest.mark.parametrize(
    ("rule", "host_only"),
    [
        ("Host(`a.test`)", True),
        ("Host(`a.test`, `b.test`)", True),
        ("Host(`a.test`) || Host(`b.test`)", True),
        ("Host(`a.test`) && Path(`/`)", False),
        ("Host(`a.test`) || Path(`/`)", False),
        ("Host(`*.a.test`)", False),
        ("!Host(`a.test`)", False),
    ],
)
def test_host_only(rule, host_only):
    r = parse_rule(rule)
    assert r.host_only is host_only
    assert (r.match_in_hosts is None) is host_only


# match_in_hosts: what is left to check once the host is known to be in rule.hosts (the host is not
# looked at again, so a request for another host shows it).
@pytest.mark.parametrize(
    ("rule", "request_", "expected"),
    [
        ("Host(`a.test`) && Path(`/x`)", req(host="other", path="/x"), True),
        ("Host(`a.test`) && Path(`/x`)", req(host="other", path="/y"), False),
        ("Path(`/x`) && Host(`a.test`, `b.test`) && Method(`GET`)", req(host="o", path="/x"), True),
        ("Path(`/x`) && Host(`a.test`, `b.test`) && Method(`GET`)", req(host="o", method="PUT"), False),
        # an OR is not simplified: it is checked in full
        ("(Host(`a.test`) && Path(`/x`)) || Host(`b.test`)", req(host="a.test", path="/y"), False),
        ("(Host(`a.test`) && Path(`/x`)) || Host(`b.test`)", req(host="b.test", path="/y"), True),
        # a negated host is not settled by the index
        ("Host(`a.test`) && !Host(`a.test`)", req(host="a.test"), False),
    ],
)
def test_match_in_hosts(rule, request_, expected):
    assert parse_rule(rule).match_in_hosts(request_) is expected


# Errors: (rule, column, words the message must contain)
ERRORS = [
    ("", 1, "empty rule"),
    ("   ", 1, "empty rule"),
    ("Host(`a.test`", 14, "expected ',' or ')'"),
    ("(Host(`a.test`)", 16, "expected ')' to close '(' at column 1"),
    ("((Path(`/`)) || Host(`a`)", 26, "expected ')'"),
    ("Host(`a.test`))", 15, "unbalanced parentheses"),
    ("Host(`a.test`) && Path(`/`))", 28, "unbalanced parentheses"),
    (")", 1, "unexpected ')'"),
    ("Host(`a.test)", 6, "unterminated string"),
    ('Host("a.test)', 6, "unterminated string"),
    ('Host("a\\qb")', 8, "unknown escape"),
    ('Host("\\x4")', 7, "hexadecimal"),
    ("Host('a.test')", 6, "quoted"),
    ("Nope(`a`)", 1, "unknown matcher 'Nope'"),
    ("Host(`a`) && hOsT(`b`)", 14, "unknown matcher"),
    ("Host()", 1, "Host expects at least 1 argument, got 0"),
    ("Path(`/`) && Header(`X`)", 14, "Header expects 2 arguments, got 1"),
    ("PathRegexp(`a`, `b`)", 1, "PathRegexp expects 1 argument, got 2"),
    ("QueryRegexp(`a`, `b`, `c`)", 1, "QueryRegexp expects 1 or 2 arguments"),
    ("Query(`a`, `b`, `c`)", 1, "Query expects 1 or 2 arguments"),
    ("Headers(`A`, `1`, `B`)", 1, "key/value pairs"),
    ("Host(``)", 6, "empty argument"),
    ("Header(`X`, ``)", 13, "empty argument"),
    ("Host(`a.test`) &&", 18, "unexpected end of rule"),
    ("Host(`a.test`) ||", 18, "unexpected end of rule"),
    ("&& Host(`a`)", 1, "unexpected '&&'"),
    ("Host(`a.test`) & Path(`/`)", 16, "'&&'"),
    ("Host(`a.test`) | Path(`/`)", 16, "'||'"),
    ("Host(`a.test`) Path(`/`)", 16, "after a complete expression"),
    ("Host(`a.test`) `x`", 16, "after a complete expression"),
    ("Host", 5, "expected '('"),
    ("Host(a.test)", 6, "expected a string"),
    ("Host(`a` `b`)", 10, "expected ',' or ')'"),
    ("Host(`a`) && @", 14, "unexpected character '@'"),
    ("PathRegexp(`^/(a`)", 12, "invalid regexp"),
    ("PathRegexp(`[a-`)", 12, "invalid regexp"),
    ("HostRegexp(`a**`)", 12, "invalid regexp"),
    ("HeaderRegexp(`X`, `(`)", 19, "invalid regexp"),
    ("QueryRegexp(`k`, `*`)", 18, "invalid regexp"),
    ("PathRegexp(`(a)\\1`)", 12, "backreferences"),
    ("PathRegexp(`(?=a)`)", 12, "unsupported"),
    ("HostRegexp(`{sub:[a-z}.test`)", 12, "invalid host template"),
    ("Path(`/u/{id:(}`)", 6, "invalid path template"),
    ("ClientIP(`10.0.0.0/33`)", 10, "invalid IP address or CIDR"),
    ("ClientIP(`1.2.3.4`, `nope`)", 21, "invalid IP address or CIDR"),
    ("ClientIP(`fe80::/129`)", 10, "invalid IP address or CIDR"),
    ("Path(`x`)", 6, "does not start with a '/'"),
    ("PathPrefix(`api`)", 12, "does not start with a '/'"),
    ("Host(`bücher.test`)", 6, "non-ASCII"),
    ("HostRegexp(`bücher`)", 12, "non-ASCII"),
]


@pytest.mark.parametrize(("rule", "column", "words"), ERRORS)
def test_errors(rule, column, words):
    with pytest.raises(RuleError) as info:
        parse_rule(rule)
    err = info.value
    assert err.column == column, str(err)
    assert words in err.message
    assert str(err).startswith(f"column {column}: ")


def test_rule_error_is_a_value_error():
    assert issubclass(RuleError, ValueError)


# Go regexp semantics (RE2), through the matchers
@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("^a$", "a\n", False),  # Go's $ is the end of the text
        ("(?m)^a$", "a\nb", True),
        ("x(?i)a|b", "B", True),  # flags outlive '|' in Go
        ("x(?i)a|b", "xA", True),
        ("x(?i)a|b", "XA", False),
        ("(?i:a)b", "AB", False),
        ("[[:digit:]]+", "42", True),
        ("^[[:alpha:]]+$", "a1", False),
        ("\\Qa.b\\E", "a.b", True),
        ("\\Qa.b\\E", "axb", False),
        ("a{,2}", "a{,2}", True),  # not a repeat in Go: literal
        ("^a{2}$", "aa", True),
        ("\\x{41}\\x42", "AB", True),
        ("(?<n>a)", "a", True),
        ("(?P<1st>a)b", "ab", True),  # Go allows names Python does not
        ("a\\z", "a", True),
        ("\\d", "\u0663", False),  # Go's \d is ASCII only
        ("[&&]", "&", True),
        ("^\\pL+$", "café", True),  # Unicode classes, which the old translator refused
        ("(?U)^a+", "aaa", True),  # ungreedy flag, idem
        ("\\bword\\b", "a word here", True),
        ("a.c", "a\nc", False),  # '.' does not match a newline unless (?s)
        ("(?s)a.c", "a\nc", True),
    ],
)
def test_go_regexp_semantics(pattern, text, expected):
    r = parse_rule(f"HeaderRegexp(`X`, `{pattern}`)")
    assert r.match(req(headers=[("X", text)])) is expected


def test_regexps_compiled_once_at_parse_time(monkeypatch):
    import re

    import re2

    rule = parse_rule("PathRegexp(`^/a`) && HeaderRegexp(`X`, `y`) && QueryRegexp(`k`, `v`)")

    def boom(*args, **kwargs):
        raise AssertionError("regexp compiled on the request path")

    for module in (re, re2):
        monkeypatch.setattr(module, "compile", boom)
        monkeypatch.setattr(module, "search", boom)
    assert rule.match(req(path="/a", headers=[("X", "y")], query="k=v")) is True
    assert rule.match(req(path="/b", headers=[("X", "y")], query="k=v")) is False


def test_query_parsed_once_and_lazily():
    r = req(query="a=1&a=2&b=")
    assert r._query is None
    q = r.query
    assert q == {"a": ["1", "2"], "b": [""]}
    assert r.query is q
    assert req(query="").query == {}


@pytest.mark.parametrize(
    ("rule", "syntax", "request_", "expected"),
    [
        # under v2 a HostRegexp argument is a gorilla template: literal dots, anchored
        ("HostRegexp(`a.test`)", "v2", req(host="axtest"), False),
        ("HostRegexp(`a.test`)", "v3", req(host="axtest"), True),
        ("HostRegexp(`a.test`)", "v2", req(host="a.test"), True),
        ("HostRegexp(`a.test`)", "v2", req(host="ba.test"), False),
        # v2 forms are accepted under v3 too
        ("Host(`a.test`, `b.test`)", "v3", req(host="b.test"), True),
        ("Headers(`X`, `1`)", "v3", req(headers=[("X", "1")]), True),
        ("Query(`k=v`)", "v3", req(query="k=v"), True),
        # and v3 forms under v2
        ("Query(`k`, `v`)", "v2", req(query="k=v"), True),
        ("Header(`X`, `1`)", "v2", req(headers=[("X", "1")]), True),
        # unknown syntax names fall back to v3, as in Traefik
        ("HostRegexp(`a.test`)", "v9", req(host="axtest"), True),
    ],
)
def test_syntax(rule, syntax, request_, expected):
    r = parse_rule(rule, syntax=syntax)
    assert r.match(request_) is expected


def test_rule_keeps_source():
    r = parse_rule("Host(`a.test`)")
    assert r.source == "Host(`a.test`)"
    assert "a.test" in repr(r)


def test_hostile_regexps_match_in_linear_time():
    """Python's re needs seconds (PathRegexp) and minutes (HeaderRegexp) on these; RE2 microseconds."""
    import time

    path_rule = parse_rule("PathRegexp(`^/(a+)+$`)")
    header_rule = parse_rule("HeaderRegexp(`X-Id`, `^(a|aa)+$`)")
    start = time.perf_counter()
    assert path_rule.match(req(path="/" + "a" * 30 + "!")) is False
    assert header_rule.match(req(headers=[("X-Id", "a" * 60 + "!")])) is False
    assert time.perf_counter() - start < 0.05
    assert path_rule.match(req(path="/aaa")) is True


def test_regexp_matchers_take_any_header_value():
    """A header that was not UTF-8 (surrogate-escaped by the parser) is matched, not an exception."""
    r = parse_rule("HeaderRegexp(`X`, `^caf`)")
    assert r.match(req(headers=[("X", b"caf\xe9".decode("utf-8", "surrogateescape"))])) is True
    assert r.match(req(headers=[("X", "\udcff")])) is False


@pytest.mark.parametrize(
    ("rule", "column", "words"),
    [
        ("Host(`a`) || PathRegexp(`a\\C`)", 25, "\\C"),
        ("HeaderRegexp(`X`, `a\\Z`)", 19, "use \\z"),
        ("QueryRegexp(`k`, `(?<=a)b`)", 18, "lookahead/lookbehind"),
        ("HostRegexp(`{a:(?!x)}.test`)", 12, "invalid host template"),
    ],
)
def test_re2_refusals_name_the_column(rule, column, words):
    with pytest.raises(RuleError) as info:
        parse_rule(rule)
    assert info.value.column == column
    assert words in info.value.message


@pytest.mark.parametrize(
    "rule,domains",
    [
        ("Host(`A.test.`)", {"a.test"}),
        ("Host(`*.wild.test`)", {"*.wild.test"}),
        ("Host(`or.test`) || PathPrefix(`/x`)", {"or.test"}),
        ("!Host(`n.test`) && Path(`/`)", {"n.test"}),
        ("Host(`a.test`, `*.b.test`) || (Method(`GET`) && host(`c.test`))", {"a.test", "*.b.test", "c.test"}),
        ("PathPrefix(`/x`)", set()),
        ("HostRegexp(`^re\\.test$`)", set()),
    ],
)
def test_domains_are_every_host_argument_wherever_it_stands(rule, domains):
    """What a router claims for certificates and TLS options by SNI (Traefik's ParseDomains), unlike
    ``hosts``, which is only what routing may file it under."""
    assert parse_rule(rule).domains == frozenset(domains)
