"""Traefik's constraint language for the Docker provider (``providers.docker.constraints``).

An expression is a boolean combination of ``Label(`key`, `value`)`` (the label ``key`` equals ``value``)
and ``LabelRegex(`key`, `regex`)`` (the label's value, empty when absent, contains a match of ``regex``,
like Go's ``regexp.MatchString``), with ``!``, ``&&`` (binds tighter), ``||`` and parentheses. Arguments are
Go string literals: raw (backquoted) or interpreted (double-quoted, with Go's escapes). An empty expression
matches everything, as in Traefik.

Unlike Traefik, a regex that does not compile is reported when the expression is parsed instead of making
the function quietly false for every container.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Matcher", "parse_constraints"]

Matcher = Callable[[Mapping[str, str]], bool]


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "ident", "str", "(", ")", ",", "!", "&&", "||", "end"
    text: str
    col: int  # 1-based


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
}


def _error(col: int, message: str) -> ValueError:
    return ValueError(f"constraints: column {col}: {message}")


def _interpreted(expr: str, start: int) -> tuple[str, int]:
    """A double-quoted Go string starting at ``expr[start] == '"'``: its value and the index after it."""
    out: list[str] = []
    i = start + 1
    while i < len(expr):
        c = expr[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\n":
            break
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(expr):
            break
        e = expr[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
            continue
        width = {"x": 2, "u": 4, "U": 8}.get(e)
        if width is not None:
            digits = expr[i + 2 : i + 2 + width]
            if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise _error(i + 1, f"invalid \\{e} escape in string")
            out.append(chr(int(digits, 16)))
            i += 2 + width
            continue
        if e in "01234567":
            digits = expr[i + 1 : i + 4]
            if not re.fullmatch(r"[0-7]{3}", digits):
                raise _error(i + 1, "invalid octal escape in string")
            out.append(chr(int(digits, 8)))
            i += 4
            continue
        raise _error(i + 1, f"unknown escape sequence \\{e} in string")
    raise _error(start + 1, "string not terminated")


def _tokens(expr: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    n = len(expr)
    while i < n:
        c = expr[i]
        col = i + 1
        if c.isspace():
            i += 1
        elif c in "(),":
            toks.append(_Tok(c, c, col))
            i += 1
        elif expr.startswith("&&", i) or expr.startswith("||", i):
            toks.append(_Tok(expr[i : i + 2], expr[i : i + 2], col))
            i += 2
        elif c == "!":
            toks.append(_Tok("!", "!", col))
            i += 1
        elif c == "`":
            end = expr.find("`", i + 1)
            if end < 0:
                raise _error(col, "string not terminated")
            toks.append(_Tok("str", expr[i + 1 : end], col))
            i = end + 1
        elif c == '"':
            value, i = _interpreted(expr, i)
            toks.append(_Tok("str", value, col))
        elif c.isalpha() or c == "_":
            m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(expr, i)
            assert m is not None
            toks.append(_Tok("ident", m.group(), col))
            i = m.end()
        else:
            raise _error(col, f"unexpected character {c!r}")
    toks.append(_Tok("end", "", n + 1))
    return toks


def _label(key: str, value: str) -> Matcher:
    return lambda labels: labels.get(key) == value


def _label_regex(key: str, pattern: re.Pattern[str]) -> Matcher:
    return lambda labels: pattern.search(labels.get(key, "")) is not None


class _Parser:
    def __init__(self, expr: str) -> None:
        self.toks = _tokens(expr)
        self.pos = 0

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def take(self, kind: str, what: str) -> _Tok:
        tok = self.peek()
        if tok.kind != kind:
            got = "the end of the expression" if tok.kind == "end" else repr(tok.text)
            raise _error(tok.col, f"expected {what}, got {got}")
        self.pos += 1
        return tok

    def parse(self) -> Matcher:
        m = self.or_()
        self.take("end", "'&&', '||' or the end of the expression")
        return m

    def or_(self) -> Matcher:
        left = self.and_()
        while self.peek().kind == "||":
            self.pos += 1
            right = self.and_()
            left = (lambda a, b: lambda labels: a(labels) or b(labels))(left, right)
        return left

    def and_(self) -> Matcher:
        left = self.unary()
        while self.peek().kind == "&&":
            self.pos += 1
            right = self.unary()
            left = (lambda a, b: lambda labels: a(labels) and b(labels))(left, right)
        return left

    def unary(self) -> Matcher:
        if self.peek().kind == "!":
            self.pos += 1
            inner = self.unary()
            return lambda labels: not inner(labels)
        return self.primary()

    def primary(self) -> Matcher:
        tok = self.peek()
        if tok.kind == "(":
            self.pos += 1
            inner = self.or_()
            self.take(")", "')'")
            return inner
        if tok.kind != "ident":
            got = "the end of the expression" if tok.kind == "end" else repr(tok.text)
            raise _error(tok.col, f"expected Label(...), LabelRegex(...), '!' or '(', got {got}")
        self.pos += 1
        if tok.text not in ("Label", "LabelRegex"):
            raise _error(tok.col, f"unknown function {tok.text!r}; expected Label or LabelRegex")
        self.take("(", f"'(' after {tok.text}")
        args: list[_Tok] = []
        if self.peek().kind != ")":
            args.append(self.take("str", "a string argument"))
            while self.peek().kind == ",":
                self.pos += 1
                args.append(self.take("str", "a string argument"))
        self.take(")", "',' or ')'")
        if len(args) != 2:
            raise _error(tok.col, f"{tok.text} takes 2 arguments (label name, value), got {len(args)}")
        key, value = args[0].text, args[1].text
        if tok.text == "Label":
            return _label(key, value)
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise _error(args[1].col, f"invalid regular expression {value!r}: {exc}") from None
        return _label_regex(key, pattern)


def parse_constraints(expr: str) -> Matcher:
    """Compile a constraint expression into a predicate over a container's labels.

    Raises ``ValueError`` (``constraints: column N: ...``, 1-based) when the expression does not parse.
    """
    if not expr.strip():
        return lambda labels: True
    return _Parser(expr).parse()
