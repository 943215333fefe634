"""Traefik's TCP router rules: ``HostSNI``, ``HostSNIRegexp``, ``ClientIP`` and ``ALPN``, v3 and v2.

The one Go-expression grammar (:mod:`discover.goexpr`) parses the rule, and the HTTP rules' boolean
combinators (:func:`router.matchers.and_fn` / :func:`~router.matchers.or_fn`) join the closures; ``ClientIP``
is the HTTP matcher itself (it reads ``client_ip``, which :class:`ConnInfo` has too). A connection is matched
once, before any byte is relayed, on :class:`ConnInfo`: the ClientHello's SNI and ALPN list (empty for a
connection that is not TLS) and the client's address.

As in Traefik v3 each matcher takes one argument; under ``ruleSyntax: v2`` HostSNI, HostSNIRegexp (gorilla
host templates), ALPN and ClientIP take several. ``HostSNI(`*`)`` matches every connection, TLS or not
(the catch-all of plain TCP); its routers get priority -1 unless one is set (Traefik's GetRulePriority).
"""

from __future__ import annotations

from collections.abc import Callable

from discover.goexpr import And, Call, GoExprError, Node, Not, parse_expr
from discover.goregex import GoRegexpError, compile_go, gorilla_template_regexp
from router.matchers import RuleError, and_fn, build_call, or_fn

__all__ = ["ConnInfo", "TCPRule", "parse_tcp_rule"]

ACME_TLS_1 = "acme-tls/1"


class ConnInfo:
    """What a TCP rule sees of a connection: SNI (lower case, "" when none or not TLS), the offered ALPN
    protocols and the client's IP."""

    __slots__ = ("sni", "alpn", "client_ip", "tls")

    def __init__(self, sni: str, alpn: tuple[str, ...], client_ip: str, tls: bool) -> None:
        self.sni = sni
        self.alpn = alpn
        self.client_ip = client_ip
        self.tls = tls


Match = Callable[[ConnInfo], bool]


class TCPRule:
    """A compiled TCP rule: ``match(info)``; ``catch_all`` when it is exactly ``HostSNI(`*`)``;
    ``sni_names`` the HostSNI arguments (lower case, ``*`` kept), what a certResolver is asked for."""

    __slots__ = ("source", "match", "catch_all", "sni_names")

    def __init__(self, source: str, match: Match, catch_all: bool, sni_names: tuple[str, ...]) -> None:
        self.source = source
        self.match = match
        self.catch_all = catch_all
        self.sni_names = sni_names


def _true(info: ConnInfo) -> bool:
    return True


def _host_ok(host: str) -> bool:
    """Traefik's ``^(\\*\\.)?[[:word:].\\-:]+$`` (``[[:word:]]`` is ``[0-9A-Za-z_]``), without a regex."""
    body = host[2:] if host.startswith("*.") else host
    return bool(body) and all(c.isascii() and (c.isalnum() or c in "_.-:") for c in body)


def _host_sni(args: list[tuple[str, int]], syntax: str) -> Match:
    names = []
    any_sni = False  # v2: a `*` after the first argument matches any SNI, but not a connection without one
    for i, (value, pos) in enumerate(args):
        if value == "*":
            if i == 0:  # Traefik's hostSNIV2 (hosts[0] == "*") and v3's one argument: every connection
                return _true
            any_sni = True
            continue
        if not _host_ok(value) or (syntax == "v2" and value.startswith("*.")):
            raise RuleError(pos, f"invalid value {value!r} for HostSNI: not a valid hostname or IP")
        names.append(value.lower().rstrip("."))
    exact = frozenset(n for n in names if not n.startswith("*."))
    wild = frozenset(n[1:] for n in names if n.startswith("*.") and syntax != "v2")

    def match_sni(info: ConnInfo) -> bool:
        sni = info.sni
        if not sni:
            return False
        if any_sni or sni in exact:
            return True
        dot = sni.find(".")
        return bool(wild) and dot >= 0 and sni[dot:] in wild

    return match_sni


def _host_sni_regexp(args: list[tuple[str, int]], syntax: str) -> Match:
    searches = []
    for value, pos in args:
        if not value.isascii():
            raise RuleError(pos, f"invalid value {value!r} for HostSNIRegexp: non-ASCII characters")
        try:
            pattern = gorilla_template_regexp(value, "host") if syntax == "v2" else value
            searches.append(compile_go(pattern).matches)
        except GoRegexpError as exc:
            raise RuleError(pos, f"invalid regexp for HostSNIRegexp: {exc}") from None
    found = tuple(searches)

    def match_sni_regexp(info: ConnInfo) -> bool:
        return any(s(info.sni) for s in found)

    return match_sni_regexp


def _alpn(args: list[tuple[str, int]], syntax: str) -> Match:
    protocols = []
    for value, pos in args:
        if value == ACME_TLS_1:
            raise RuleError(pos, f"invalid protocol value for ALPN, {ACME_TLS_1!r} is not allowed")
        protocols.append(value)
    wanted = frozenset(protocols)

    def match_alpn(info: ConnInfo) -> bool:
        return any(p in wanted for p in info.alpn)

    return match_alpn


_BUILDERS: dict[str, Callable[[list[tuple[str, int]], str], Match] | None] = {
    "HostSNI": _host_sni,
    "HostSNIRegexp": _host_sni_regexp,
    "ALPN": _alpn,
    "ClientIP": None,  # the HTTP matcher: it reads .client_ip
}
_NAMES = {
    variant: name
    for name in _BUILDERS
    for variant in (name, name.lower(), name.upper(), name.lower().title())
}


def _compile(node: Node, syntax: str, names: list[str]) -> Match:
    if isinstance(node, Call):
        name = _NAMES.get(node.name)
        if name is None:
            raise RuleError(
                node.column, f"unknown TCP matcher {node.name!r} (HostSNI, HostSNIRegexp, ALPN, ClientIP)"
            )
        args = [(a.value, a.column) for a in node.args]
        if not args or (syntax != "v2" and len(args) != 1):
            raise RuleError(node.column, f"{name} expects 1 argument, got {len(args)}")
        for value, col in args:
            if not value:
                raise RuleError(col, f"empty argument for matcher {name}")
        if name == "HostSNI":
            names.extend(v.lower().rstrip(".") for v, _ in args)
        builder = _BUILDERS[name]
        if builder is None:
            return build_call(Call("ClientIP", node.column, node.args), syntax)[0]  # type: ignore[return-value]
        return builder(args, syntax)
    if isinstance(node, Not):
        inner = _compile(node.operand, syntax, names)

        def match_not(info: ConnInfo) -> bool:
            return not inner(info)

        return match_not
    fns = tuple(_compile(child, syntax, names) for child in node.operands)

    return (and_fn if isinstance(node, And) else or_fn)(fns)  # type: ignore[arg-type,return-value]


def parse_tcp_rule(rule: str, syntax: str = "v3") -> TCPRule:
    """Parse and compile a TCP rule; RuleError (with its column) when it is invalid."""
    syntax = "v2" if (syntax or "").lower() == "v2" else "v3"
    try:
        node = parse_expr(rule, noun="rule", callee="a matcher")
    except GoExprError as exc:
        raise RuleError(exc.column, exc.message) from None
    names: list[str] = []
    match = _compile(node, syntax, names)
    catch_all = (
        isinstance(node, Call)
        and len(node.args) == 1
        and node.args[0].value == "*"
        and (_NAMES.get(node.name) == "HostSNI")
    )
    return TCPRule(rule, match, catch_all, tuple(names))
