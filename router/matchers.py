"""The matchers of Traefik's router rules: each call in a rule becomes a closure over a request.

``router.rules`` parses a rule (with the shared Go-expression grammar) and asks :func:`build_call` for
each call; the builders here check the arguments, compile what they hold (regexes through RE2, hosts
into sets, CIDRs into networks) once, at parse time, and return the closure that runs per request.

The semantics follow Traefik v3's HTTP matchers; the v2 forms users still write are accepted under both
syntaxes: ``Host``/``HostHeader`` and ``Path``/``PathPrefix``/``Method``/``ClientIP`` with several
arguments (any of them), ``Headers``/``HeadersRegexp`` (key/value pairs, all of them), ``Query(`k=v`)``
and gorilla/mux ``{name:regexp}`` placeholders in ``HostRegexp``, ``Path``, ``PathPrefix`` and ``Query``.
Regexes are Go's (RE2 syntax and semantics, linear time, see ``discover.goregex``) and, like Go's
``regexp.MatchString``, match anywhere in the text unless anchored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from discover.goexpr import Call
from discover.goregex import GoRegexpError, compile_go, gorilla_template_regexp
from router.forwarded_view import is_managed
from router.forwarded_view import values as forwarded_values

if TYPE_CHECKING:
    from router.rules import RequestInfo

__all__ = ["Matcher", "RuleError", "and_fn", "build_call", "matcher_name", "or_fn"]

Matcher = Callable[["RequestInfo"], bool]


class RuleError(ValueError):
    """A rule that does not parse or compile; ``column`` is 1-based, into the rule's text."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.message = message


def and_fn(fns: tuple[Matcher, ...]) -> Matcher:
    """All of ``fns``, short-circuiting; one and two operands (the usual cases) get a closure each."""
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns

        def match_and2(req: RequestInfo) -> bool:
            return a(req) and b(req)

        return match_and2

    def match_and(req: RequestInfo) -> bool:
        for f in fns:  # noqa: SIM110 (a loop is cheaper than all() over a generator)
            if not f(req):
                return False
        return True

    return match_and


def or_fn(fns: tuple[Matcher, ...]) -> Matcher:
    """Any of ``fns``, short-circuiting, shaped as :func:`and_fn`."""
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns

        def match_or2(req: RequestInfo) -> bool:
            return a(req) or b(req)

        return match_or2

    def match_or(req: RequestInfo) -> bool:
        for f in fns:  # noqa: SIM110 (a loop is cheaper than any() over a generator)
            if f(req):
                return True
        return False

    return match_or


def _looks_like_template(s: str) -> bool:
    """Whether ``s`` holds a gorilla placeholder: ``{`` then a name (``[A-Za-z_][A-Za-z0-9_-]*``) then
    ``:`` or ``}``. A plain scan: configured text never goes through a backtracking regex."""
    i = s.find("{")
    while i >= 0:
        j = i + 1
        if j < len(s) and (s[j].isascii() and (s[j].isalpha() or s[j] == "_")):
            j += 1
            while j < len(s) and s[j].isascii() and (s[j].isalnum() or s[j] in "_-"):
                j += 1
            if j < len(s) and s[j] in ":}":
                return True
        i = s.find("{", i + 1)
    return False


# --------------------------------------------------------------------------------------------------
# Matchers: each builder returns (closure, hosts, host_only)
# --------------------------------------------------------------------------------------------------

_Args = list[tuple[str, int]]
_Built = tuple[Matcher, "frozenset[str] | None", bool]


def _compile_re(value: str, col: int, what: str) -> Callable[[str], bool]:
    """``MatchString`` of the Go pattern ``value``; RuleError at the argument's column if RE2 refuses it."""
    try:
        return compile_go(value).matches
    except GoRegexpError as exc:
        raise RuleError(col, f"invalid regexp for {what}: {exc}") from None


def _compile_template(value: str, col: int, what: str, kind: str) -> Callable[[str], bool]:
    """``MatchString`` of the gorilla template ``value`` (a host, path, prefix or query-value one)."""
    try:
        return compile_go(gorilla_template_regexp(value, kind)).matches
    except GoRegexpError as exc:
        raise RuleError(
            col, f"invalid {kind if kind != 'prefix' else 'path'} template for {what}: {exc}"
        ) from None


def _true(req: RequestInfo) -> bool:
    return True


def _build_host(name: str, args: _Args, syntax: str, col: int) -> _Built:
    hosts: list[str] = []
    wildcards: list[str] = []
    for value, pos in args:
        if not value.isascii():
            raise RuleError(pos, f"invalid value {value!r} for {name}: non-ASCII characters are not allowed")
        h = value.lower()
        if h == "*":
            return _true, None, False
        if h.endswith(".") and len(h) > 1:
            h = h[:-1]
        (wildcards if h.startswith("*") else hosts).append(h)
    if wildcards:
        exact = frozenset(hosts)
        exprs = tuple(wildcards)

        def match_wildcard(req: RequestInfo) -> bool:
            host = req.host
            if not host:
                return False
            if host in exact:
                return True
            dot = host.find(".")
            return ("*" if dot < 0 else "*" + host[dot:]) in exprs

        return match_wildcard, None, False
    if len(hosts) == 1:
        only = hosts[0]

        def match_host(req: RequestInfo) -> bool:
            return req.host == only

        return match_host, frozenset(hosts), True
    hostset = frozenset(hosts)

    def match_hosts(req: RequestInfo) -> bool:
        return req.host in hostset

    return match_hosts, hostset, True


def _build_host_regexp(name: str, args: _Args, syntax: str, col: int) -> _Built:
    for value, pos in args:
        if not value.isascii():
            raise RuleError(pos, f"invalid value {value!r} for {name}: non-ASCII characters are not allowed")
    template = syntax == "v2" or len(args) > 1 or any(_looks_like_template(v) for v, _ in args)
    if template:
        searches = tuple(_compile_template(value, pos, name, "host") for value, pos in args)
    else:
        searches = (_compile_re(args[0][0], args[0][1], name),)
    if len(searches) == 1:
        search = searches[0]

        def match_host_re(req: RequestInfo) -> bool:
            return search(req.host)

        return match_host_re, None, False

    def match_host_res(req: RequestInfo) -> bool:
        host = req.host
        return any(s(host) for s in searches)

    return match_host_res, None, False


def _check_path(name: str, value: str, pos: int) -> None:
    if not value.startswith("/"):
        raise RuleError(pos, f"path {value!r} of {name} does not start with a '/'")


def _path_template(name: str, value: str, pos: int, syntax: str, kind: str) -> Callable[[str], bool] | None:
    """The match function of a v2 path template, or None if ``value`` is a plain path."""
    if "{" not in value or (syntax != "v2" and not _looks_like_template(value)):
        return None
    return _compile_template(value, pos, name, kind)


def _split_paths(
    name: str, args: _Args, syntax: str, kind: str
) -> tuple[list[str], list[Callable[[str], bool]]]:
    """``Path``/``PathPrefix`` arguments checked and split into plain paths and v2 template matchers."""
    plain: list[str] = []
    searches: list[Callable[[str], bool]] = []
    for value, pos in args:
        _check_path(name, value, pos)
        s = _path_template(name, value, pos, syntax, kind)
        if s is None:
            plain.append(value)
        else:
            searches.append(s)
    return plain, searches


def _build_path(name: str, args: _Args, syntax: str, col: int) -> _Built:
    plain, searches = _split_paths(name, args, syntax, "path")
    if not searches:
        if len(plain) == 1:
            only = plain[0]

            def match_path(req: RequestInfo) -> bool:
                return req.path == only

            return match_path, None, False
        paths = frozenset(plain)

        def match_paths(req: RequestInfo) -> bool:
            return req.path in paths

        return match_paths, None, False
    paths = frozenset(plain)
    regs = tuple(searches)

    def match_path_templates(req: RequestInfo) -> bool:
        p = req.path
        return p in paths or any(s(p) for s in regs)

    return match_path_templates, None, False


def _build_path_prefix(name: str, args: _Args, syntax: str, col: int) -> _Built:
    plain, searches = _split_paths(name, args, syntax, "prefix")
    if not searches:
        if len(plain) == 1:
            only = plain[0]

            def match_prefix(req: RequestInfo) -> bool:
                return req.path.startswith(only)

            return match_prefix, None, False
        prefixes = tuple(plain)

        def match_prefixes(req: RequestInfo) -> bool:
            return req.path.startswith(prefixes)

        return match_prefixes, None, False
    prefixes = tuple(plain)
    regs = tuple(searches)

    def match_prefix_templates(req: RequestInfo) -> bool:
        p = req.path
        return (bool(prefixes) and p.startswith(prefixes)) or any(s(p) for s in regs)

    return match_prefix_templates, None, False


def _build_path_regexp(name: str, args: _Args, syntax: str, col: int) -> _Built:
    search = _compile_re(args[0][0], args[0][1], name)

    def match_path_re(req: RequestInfo) -> bool:
        return search(req.path)

    return match_path_re, None, False


def _build_method(name: str, args: _Args, syntax: str, col: int) -> _Built:
    methods = [v.upper() for v, _ in args]
    if len(methods) == 1:
        only = methods[0]

        def match_method(req: RequestInfo) -> bool:
            return req.method == only

        return match_method, None, False
    mset = frozenset(methods)

    def match_methods(req: RequestInfo) -> bool:
        return req.method in mset

    return match_methods, None, False


def _pairs(name: str, args: _Args, name_pos: int) -> list[tuple[str, str, int]]:
    if len(args) % 2:
        raise RuleError(name_pos, f"{name} expects key/value pairs, got {len(args)} arguments")
    return [(args[k][0], args[k + 1][0], args[k + 1][1]) for k in range(0, len(args), 2)]


def _all(matchers: list[Matcher]) -> Matcher:
    return and_fn(tuple(matchers))


def _header_eq(key: str, value: str) -> Matcher:
    def match_header(req: RequestInfo) -> bool:
        return value in req.headers.getall(key, ())

    return match_header


def _header_re(key: str, search: Callable[[str], bool]) -> Matcher:
    def match_header_re(req: RequestInfo) -> bool:
        return any(search(v) for v in req.headers.getall(key, ()))

    return match_header_re


def _forwarded_eq(key: str, value: str) -> Matcher:
    name = key.lower()

    def match_forwarded_header(req: RequestInfo) -> bool:
        return value in forwarded_values(req, name)

    return match_forwarded_header


def _forwarded_re(key: str, search: Callable[[str], bool]) -> Matcher:
    name = key.lower()

    def match_forwarded_header_re(req: RequestInfo) -> bool:
        return any(search(v) for v in forwarded_values(req, name))

    return match_forwarded_header_re


# A header the entry point's forwardedheaders handler manages (X-Forwarded-*, X-Real-Ip, any ``_``
# spelling) is read through Traefik's trust-aware view, decided here once per rule: other header
# rules read the client's headers as they are, at no added cost.


def _build_header(name: str, args: _Args, syntax: str, col: int) -> _Built:
    ms = [(_forwarded_eq if is_managed(k) else _header_eq)(k, v) for k, v, _ in _pairs(name, args, col)]
    return _all(ms), None, False


def _build_header_regexp(name: str, args: _Args, syntax: str, col: int) -> _Built:
    ms = [
        (_forwarded_re if is_managed(k) else _header_re)(k, _compile_re(v, pos, name))
        for k, v, pos in _pairs(name, args, col)
    ]
    return _all(ms), None, False


def _query_eq(key: str, value: str) -> Matcher:
    def match_query(req: RequestInfo) -> bool:
        return value in req.query.get(key, ())

    return match_query


def _query_re(key: str, search: Callable[[str], bool]) -> Matcher:
    def match_query_re(req: RequestInfo) -> bool:
        return any(search(v) for v in req.query.get(key, ()))

    return match_query_re


def _query_v2(name: str, value: str, pos: int, syntax: str) -> Matcher:
    """gorilla ``Queries("k", "v")``: the key's *first* value against the template ``v`` (empty: any)."""
    key, _, tpl = value.partition("=")
    if not key:
        raise RuleError(pos, f"empty key in {name}({value!r})")
    if not tpl:

        def match_query_key(req: RequestInfo) -> bool:
            return bool(req.query.get(key))

        return match_query_key
    if "{" not in tpl or (syntax != "v2" and not _looks_like_template(tpl)):

        def match_query_first(req: RequestInfo) -> bool:
            values = req.query.get(key)
            return bool(values) and values[0] == tpl

        return match_query_first
    search = _compile_template(tpl, pos, name, "query")

    def match_query_template(req: RequestInfo) -> bool:
        values = req.query.get(key)
        return bool(values) and search(values[0])

    return match_query_template


def _build_query(name: str, args: _Args, syntax: str, col: int) -> _Built:
    # A key holding '=' can only come from "%3D"; every argument holding one is the v2 `k=v` form.
    v2_form = all("=" in v for v, _ in args)
    if v2_form:
        return _all([_query_v2(name, v, pos, syntax) for v, pos in args]), None, False
    if len(args) > 2:
        raise RuleError(col, f"{name} expects 1 or 2 arguments (or 'key=value' forms), got {len(args)}")
    # v3: Query(`k`, `v`): some value of k is v; Query(`k`): k is present with an empty value.
    return _query_eq(args[0][0], args[1][0] if len(args) == 2 else ""), None, False


def _build_query_regexp(name: str, args: _Args, syntax: str, col: int) -> _Built:
    if len(args) == 1:
        return _query_eq(args[0][0], ""), None, False
    (key, _), (value, pos) = args
    return _query_re(key, _compile_re(value, pos, name)), None, False


@lru_cache(maxsize=4096)
def _parse_client_ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not addr:
        return None
    if addr.startswith("[") and addr.endswith("]"):
        addr = addr[1:-1]
    try:
        ip = ipaddress.ip_address(addr.partition("%")[0])
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _build_client_ip(name: str, args: _Args, syntax: str, col: int) -> _Built:
    addrs: set[Any] = set()
    nets: list[Any] = []
    for value, pos in args:
        try:
            if "/" in value:
                net = ipaddress.ip_network(value, strict=False)
                if net.version == 6 and net.network_address.ipv4_mapped is not None and net.prefixlen >= 96:
                    net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
                nets.append(net)
            else:
                ip = ipaddress.ip_address(value)
                if ip.version == 6 and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                addrs.add(ip)
        except ValueError:
            raise RuleError(pos, f"invalid IP address or CIDR {value!r} for {name}") from None
    addrset = frozenset(addrs)
    v4 = tuple(n for n in nets if n.version == 4)
    v6 = tuple(n for n in nets if n.version == 6)

    def match_client_ip(req: RequestInfo) -> bool:
        ip = _parse_client_ip(req.client_ip)
        if ip is None:
            return False
        if ip in addrset:
            return True
        return any(ip in n for n in (v4 if ip.version == 4 else v6))

    return match_client_ip, None, False


# name → (builder, min args, max args or None)
_MATCHERS: dict[str, tuple[Callable[..., _Built], int, int | None]] = {
    "Host": (_build_host, 1, None),
    "HostHeader": (_build_host, 1, None),
    "HostRegexp": (_build_host_regexp, 1, None),
    "Path": (_build_path, 1, None),
    "PathPrefix": (_build_path_prefix, 1, None),
    "PathRegexp": (_build_path_regexp, 1, 1),
    "Method": (_build_method, 1, None),
    "Header": (_build_header, 2, 2),
    "Headers": (_build_header, 2, None),
    "HeaderRegexp": (_build_header_regexp, 2, 2),
    "HeadersRegexp": (_build_header_regexp, 2, None),
    "Query": (_build_query, 1, None),
    "QueryRegexp": (_build_query_regexp, 1, 2),
    "ClientIP": (_build_client_ip, 1, None),
}
# Traefik registers each matcher as written, in lower case, upper case and title case.
_NAMES: dict[str, str] = {}
for _canonical in _MATCHERS:
    for _variant in (_canonical, _canonical.lower(), _canonical.upper(), _canonical.lower().title()):
        _NAMES.setdefault(_variant, _canonical)


def matcher_name(name: str) -> str | None:
    """The canonical name of a matcher as written in a rule (``host`` → ``Host``), or None if unknown."""
    return _NAMES.get(name)


def _expected(lo: int, hi: int | None) -> str:
    if hi is None:
        expected = f"at least {lo}"
    elif lo == hi:
        expected = str(lo)
    else:
        expected = f"{lo} or {hi}"
    plural = "" if expected in ("1", "at least 1") else "s"
    return f"{expected} argument{plural}"


def build_call(call: Call, syntax: str) -> tuple[Matcher, frozenset[str] | None, bool]:
    """The closure of one matcher call, the hosts outside of which it cannot match (or None), and
    whether it is exactly "the host is one of them"; RuleError (with its column) if it is invalid."""
    name = _NAMES.get(call.name)
    if name is None:
        raise RuleError(call.column, f"unknown matcher {call.name!r}")
    builder, lo, hi = _MATCHERS[name]
    args = [(a.value, a.column) for a in call.args]
    if len(args) < lo or (hi is not None and len(args) > hi):
        raise RuleError(call.column, f"{name} expects {_expected(lo, hi)}, got {len(args)}")
    for value, col in args:
        if not value:
            raise RuleError(col, f"empty argument for matcher {name}")
    return builder(name, args, syntax, call.column)
