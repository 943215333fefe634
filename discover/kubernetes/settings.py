"""``providers.kubernetesIngress``: Traefik v3's options, as the provider acts on them.

dockroute's only departure: ``ingressClass`` defaults to ``dockroute`` (Traefik's default is empty, which
takes every Ingress without a class and those of class ``traefik``), so a dockroute beside a Traefik in one
cluster never serves Traefik's Ingresses unless told to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_INGRESS_CLASS",
    "INGRESS_CONTROLLERS",
    "IngressEndpoint",
    "KubernetesIngressSettings",
    "SelectorError",
    "check_selector",
]

DEFAULT_INGRESS_CLASS = "dockroute"
# IngressClass controllers whose classes this provider serves: Traefik's (so a Traefik IngressClass works
# unchanged) and dockroute's own (the Helm chart's IngressClass names it).
INGRESS_CONTROLLERS = ("traefik.io/ingress-controller", "dockroute.io/ingress-controller")


@dataclass(frozen=True, slots=True)
class IngressEndpoint:
    """``ingressEndpoint``: what is written into each routed Ingress's ``status.loadBalancer``."""

    ip: str = ""
    hostname: str = ""
    published_service: str = ""  # "namespace/name": copy that Service's address


@dataclass(frozen=True, slots=True)
class KubernetesIngressSettings:
    endpoint: str = ""  # the API server's URL; "" = in-cluster, $KUBECONFIG or ~/.kube/config
    token: str = ""  # a bearer token, or a file holding one (Traefik's FileOrContent)
    cert_auth_file_path: str = ""  # the CA that signed the API server's certificate
    namespaces: tuple[str, ...] = ()  # () = every namespace
    label_selector: str = ""  # applies to Ingresses only, as in Traefik
    ingress_class: str = DEFAULT_INGRESS_CLASS
    ingress_endpoint: IngressEndpoint | None = None
    throttle_duration: float = 0.0  # seconds between two rebuilds at most once
    allow_empty_services: bool = False
    allow_external_name_services: bool = False
    cross_provider_namespaces: tuple[str, ...] | None = None  # None: no restriction
    disable_ingress_class_lookup: bool = False
    disable_cluster_scope_resources: bool = False
    native_lb_by_default: bool = False
    strict_prefix_matching: bool = False
    default_rule_syntax: str = "v3"  # core.defaultRuleSyntax is not read by dockroute: v3

    @property
    def lookup_classes(self) -> bool:
        """IngressClass resources are listed and watched (cluster-scoped: both switches turn it off)."""
        return not (self.disable_ingress_class_lookup or self.disable_cluster_scope_resources)


# -- labelSelector ---------------------------------------------------------------------------------------
# Its syntax, checked as the API server's labels.Parse checks it: Traefik parses labelSelector when its
# provider starts and refuses one that does not parse; dockroute does the same at start (naming the key),
# rather than learning it from a 400 on every list. Requirements separated by commas, each key, !key, key=v,
# key==v, key!=v, key in (v1,v2), key notin (v1,v2), key > 1 or key < 1; keys are qualified names
# (prefix/name), values label values (empty, or up to 63 characters).

_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|<|>|[^\s,=!()<>]+)")
_OPERATORS = ("=", "==", "!=", "in", "notin", "<", ">")


class SelectorError(ValueError):
    """A selector that does not parse; ``str()`` says where."""


def _tokens(selector: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(selector):
        m = _TOKEN.match(selector, pos)
        if m is None:  # only trailing blanks are left
            break
        out.append(m[1])
        pos = m.end()
    return out


def _key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise SelectorError(f"invalid label key {key!r}: the prefix must be a DNS subdomain")
    if len(name) > 63 or not _NAME.fullmatch(name):
        raise SelectorError(
            f"invalid label key {key!r}: a name of up to 63 letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit"
        )


def _value(value: str) -> None:
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        raise SelectorError(
            f"invalid label value {value!r}: up to 63 letters, digits, '-', '_' or '.', starting and ending "
            "with a letter or digit"
        )


def _is_word(token: str | None) -> bool:
    return token is not None and token not in ("==", "!=", "=", "!", "(", ")", ",", "<", ">")


def check_selector(selector: str) -> None:
    """Raises :class:`SelectorError` when ``selector`` is not a label selector the API accepts."""
    tokens = _tokens(selector)
    i = 0

    def peek() -> str | None:
        return tokens[i] if i < len(tokens) else None

    while i < len(tokens):
        if peek() == "!":
            i += 1
            if not _is_word(peek()):
                raise SelectorError(f"expected a label key after '!', got {peek() or 'the end'!r}")
            _key(tokens[i])
            i += 1
        else:
            if not _is_word(peek()) or peek() in ("in", "notin"):
                raise SelectorError(f"expected a label key, got {peek()!r}")
            _key(tokens[i])
            i += 1
            op = peek()
            if op is not None and op != ",":
                if op not in _OPERATORS:
                    raise SelectorError(f"expected an operator (=, ==, !=, in, notin, <, >), got {op!r}")
                i += 1
                i = _operand(tokens, i, op)
        if i < len(tokens):
            if tokens[i] != ",":
                raise SelectorError(f"expected ',' between requirements, got {tokens[i]!r}")
            i += 1
            if i == len(tokens):
                raise SelectorError("a requirement is missing after the last ','")


def _operand(tokens: list[str], i: int, op: str) -> int:
    """Checks what follows ``op``; the index after it."""
    nxt = tokens[i] if i < len(tokens) else None
    if op in ("in", "notin"):
        if nxt != "(":
            raise SelectorError(f"expected '(' after {op!r}, got {nxt or 'the end'!r}")
        i += 1
        while True:
            tok = tokens[i] if i < len(tokens) else None
            if tok == ")":
                return i + 1
            if _is_word(tok):
                _value(str(tok))
                i += 1
                tok = tokens[i] if i < len(tokens) else None
            if tok == ",":
                i += 1
            elif tok != ")":
                raise SelectorError(f"expected ',' or ')' in the values of {op!r}, got {tok or 'the end'!r}")
    if op in ("<", ">"):
        if not _is_word(nxt) or not re.fullmatch(r"[-+]?\d+", str(nxt)):
            raise SelectorError(f"expected an integer after {op!r}, got {nxt or 'the end'!r}")
        return i + 1
    if nxt is None or nxt == ",":
        return i  # key= : the empty value
    if not _is_word(nxt):
        raise SelectorError(f"expected a value after {op!r}, got {nxt!r}")
    _value(nxt)
    return i + 1
