"""Traefik's constraint language for the Docker provider (``providers.docker.constraints``).

An expression is a boolean combination of ``Label(`key`, `value`)`` (the label ``key`` equals ``value``)
and ``LabelRegex(`key`, `regex`)`` (the label's value, empty when absent, contains a match of ``regex``,
like Go's ``regexp.MatchString``), with ``!``, ``&&`` (binds tighter), ``||`` and parentheses. The grammar
and its Go string literals are the ones router rules use (``discover.goexpr``); regexes are Go's, compiled
by RE2 (``discover.goregex``), so a label value cannot make matching take more than linear time. An empty
expression matches everything, as in Traefik.

Unlike Traefik, a regex that does not compile is reported when the expression is parsed instead of making
the function quietly false for every container.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from discover.goexpr import And, Call, GoExprError, Node, Not, parse_expr
from discover.goregex import GoRegexpError, compile_go

__all__ = ["Matcher", "parse_constraints"]

Matcher = Callable[[Mapping[str, str]], bool]


def _error(col: int, message: str) -> ValueError:
    return ValueError(f"constraints: column {col}: {message}")


def _label(key: str, value: str) -> Matcher:
    return lambda labels: labels.get(key) == value


def _label_regex(key: str, matches: Callable[[str], bool]) -> Matcher:
    return lambda labels: matches(labels.get(key, ""))


def _call(call: Call) -> Matcher:
    if call.name not in ("Label", "LabelRegex"):
        raise _error(call.column, f"unknown function {call.name!r}; expected Label or LabelRegex")
    if len(call.args) != 2:
        raise _error(call.column, f"{call.name} takes 2 arguments (label name, value), got {len(call.args)}")
    key, value = call.args
    if call.name == "Label":
        return _label(key.value, value.value)
    try:
        regex = compile_go(value.value)
    except GoRegexpError as exc:
        raise _error(value.column, f"invalid regular expression {value.value!r}: {exc}") from None
    return _label_regex(key.value, regex.matches)


def _compile(node: Node) -> Matcher:
    if isinstance(node, Call):
        return _call(node)
    if isinstance(node, Not):
        inner = _compile(node.operand)
        return lambda labels: not inner(labels)
    parts = tuple(_compile(child) for child in node.operands)
    if isinstance(node, And):
        return lambda labels: all(p(labels) for p in parts)
    return lambda labels: any(p(labels) for p in parts)


def parse_constraints(expr: str) -> Matcher:
    """Compile a constraint expression into a predicate over a container's labels.

    Raises ``ValueError`` (``constraints: column N: ...``, 1-based) when the expression does not parse.
    """
    if not expr.strip():
        return lambda labels: True
    try:
        node = parse_expr(expr, noun="expression", callee="Label(...), LabelRegex(...)")
    except GoExprError as exc:
        raise _error(exc.column, exc.message) from None
    return _compile(node)
