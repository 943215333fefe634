"""Traefik's router rules: parse once, compile to closures, match per request.

A rule is a Go-like boolean expression of matchers (``Host(`a.test`) && PathPrefix(`/api`)``) joined by
``&&``, ``||`` and ``!`` with parentheses; ``!`` binds tightest, then ``&&``, then ``||``. Strings are Go
string literals: raw in backticks, or interpreted in double quotes (``\\n``, ``\\x41``, ``\\u00e9``...).
The grammar is the one provider constraints use too (``discover.goexpr``); what each matcher means, and
the regexes (Go's RE2, linear time), are in ``router.matchers``. Matcher names are accepted as Traefik
accepts them: exact, lower case, upper case or title case.

Nothing here parses or allocates per request beyond what a matcher needs: every rule is compiled into a
tree of closures, and ``Rule.match`` *is* the root closure (an instance attribute, no bound-method hop).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from discover.goexpr import And, Call, GoExprError, Node, Not, parse_expr
from router.matchers import Matcher, RuleError, and_fn, build_call, matcher_name, or_fn

__all__ = ["RequestInfo", "Rule", "RuleError", "parse_rule"]


class RequestInfo:
    """What matchers see of a request; built once per request by the proxy.

    ``host`` is lowercased with port and trailing dot stripped; ``path`` is the normalised path;
    ``headers`` is a case-insensitive multi-mapping (``get``/``getall``). ``authority`` is the raw Host
    (or absolute-form authority) and ``via`` the entry point's handler, a class attribute of the proxy's
    per-entry-point subclass (None here): only rules naming X-Forwarded-*/X-Real-Ip read them, to see
    Traefik's trust-aware values (:mod:`router.forwarded_view`).
    """

    __slots__ = ("method", "host", "path", "raw_query", "headers", "client_ip", "authority", "_query")
    via: Any = None

    def __init__(
        self,
        method: str,
        host: str,
        path: str,
        raw_query: str,
        headers: Any,
        client_ip: str,
        authority: str = "",
    ):
        self.method = method
        self.host = host
        self.path = path
        self.raw_query = raw_query
        self.headers = headers
        self.client_ip = client_ip
        self.authority = authority
        self._query: dict[str, list[str]] | None = None

    @property
    def query(self) -> dict[str, list[str]]:
        """The query string parsed on first use (blank values kept), then cached."""
        q = self._query
        if q is None:
            q = self._query = parse_qs(self.raw_query, keep_blank_values=True) if self.raw_query else {}
        return q

    def __repr__(self) -> str:
        return (
            f"RequestInfo({self.method!r}, {self.host!r}, {self.path!r}, {self.raw_query!r}, "
            f"client_ip={self.client_ip!r})"
        )


class Rule:
    """A compiled rule.

    ``match(req) -> bool`` is the compiled closure itself (an instance attribute).
    ``hosts``: the hosts outside of which the rule can never match, or ``None`` when it may match any
    host. The routing table files a rule under its hosts, and then needs less than ``match``:
    ``match_in_hosts`` is what is left to check once the request's host is known to be one of ``hosts``
    (``Host(`a`) && Path(`/x`)`` → just the path), or ``None`` when nothing is left: ``host_only``,
    the rule is exactly "the host is one of ``hosts``".

    ``domains`` is something else: every ``Host()`` argument anywhere in the rule, lower-cased, wildcards
    (``*.example.com``) kept, whatever ``||`` or ``!`` surrounds it (Traefik's ``ParseDomains``). It is
    what a router claims for its certificates and its TLS options by SNI; ``hosts`` only serves routing.
    """

    __slots__ = ("source", "syntax", "hosts", "host_only", "match", "match_in_hosts", "domains")

    def __init__(
        self,
        source: str,
        match: Matcher,
        hosts: frozenset[str] | None,
        host_only: bool = False,
        syntax: str = "v3",
        match_in_hosts: Matcher | None | bool = False,
    ) -> None:
        self.source = source
        self.syntax = syntax
        self.hosts = hosts
        self.host_only = host_only = host_only and hosts is not None
        self.match = match
        if match_in_hosts is False or hosts is None:  # not given: derived from host_only
            match_in_hosts = None if host_only else match
        self.match_in_hosts: Matcher | None = match_in_hosts  # type: ignore[assignment]
        self.domains: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"Rule({self.source!r})"


# (match, hosts, host_only, match once the host is known to be in hosts — None when nothing is left)
_Compiled = tuple[Matcher, "frozenset[str] | None", bool, "Matcher | None"]


def _compile(node: Node, syntax: str) -> _Compiled:
    if isinstance(node, Call):
        fn, hosts, host_only = build_call(node, syntax)
        return fn, hosts, host_only, None if host_only else fn
    if isinstance(node, Not):
        inner = _compile(node.operand, syntax)[0]

        def match_not(req: RequestInfo) -> bool:
            return not inner(req)

        return match_not, None, False, match_not
    parts = [_compile(child, syntax) for child in node.operands]
    is_and = isinstance(node, And)
    fn = (and_fn if is_and else or_fn)(tuple(p[0] for p in parts))
    constrained = [p[1] for p in parts if p[1] is not None]
    if is_and:
        # Knowing the host is in the intersection settles every host-only side: what is left is the rest.
        hosts = frozenset.intersection(*constrained) if constrained else None
        rest = tuple(p[3] for p in parts if p[3] is not None)
        if hosts is None:
            return fn, None, False, fn
        return fn, hosts, not rest, and_fn(rest) if rest else None
    hosts = frozenset.union(*constrained) if len(constrained) == len(parts) else None
    host_only = hosts is not None and all(p[2] for p in parts)
    return fn, hosts, host_only, None if host_only else fn


def parse_rule(rule: str, syntax: str = "v3") -> Rule:
    """Parse and compile a Traefik rule; raise :class:`RuleError` (with its column) if it is invalid.

    ``syntax`` is ``"v3"`` (default) or ``"v2"``; it only changes how ambiguous v2 forms are read
    (``HostRegexp`` arguments are gorilla templates under v2, regexps under v3 unless they hold
    ``{name}`` placeholders). Anything else is read as v3, as Traefik does.
    """
    syntax = syntax.lower() if syntax else "v3"
    if syntax not in ("v2", "v3"):
        syntax = "v3"
    try:
        node = parse_expr(rule, noun="rule", callee="a matcher")
    except GoExprError as exc:
        raise RuleError(exc.column, exc.message) from None
    match, hosts, host_only, match_in_hosts = _compile(node, syntax)
    compiled = Rule(rule, match, hosts, host_only, syntax, match_in_hosts)
    compiled.domains = frozenset(_domains(node))
    return compiled


def _domains(node: Node) -> list[str]:
    """The arguments of every ``Host``/``HostHeader`` call in the tree (a valid rule: names are known)."""
    if isinstance(node, Call):
        if matcher_name(node.name) in ("Host", "HostHeader"):
            return [a.value.strip().lower().rstrip(".") for a in node.args if a.value.strip()]
        return []
    if isinstance(node, Not):
        return _domains(node.operand)
    return [d for child in node.operands for d in _domains(child)]
