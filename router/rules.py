"""Traefik's router rules: parse once, compile to closures, match per request.

A rule is a Go-like boolean expression of matchers (``Host(`a.test`) && PathPrefix(`/api`)``) joined by
``&&``, ``||`` and ``!`` with parentheses; ``!`` binds tightest, then ``&&``, then ``||``. Strings are Go
string literals: raw in backticks, or interpreted in double quotes (``\\n``, ``\\x41``, ``\\u00e9``...).
Matcher names are accepted as Traefik accepts them: exact, lower case, upper case or title case.

The semantics follow Traefik v3 (``pkg/muxer/http/matcher.go``); the v2 forms users still write are
accepted under both syntaxes (``pkg/muxer/http/matcher_v2.go`` and gorilla/mux templates):
``Host``/``HostHeader`` and ``Path``/``PathPrefix``/``Method``/``ClientIP`` with several arguments (any
of them), ``Headers``/``HeadersRegexp`` (key/value pairs, all of them), ``Query(`k=v`)`` and
``{name:regexp}`` placeholders in ``HostRegexp``, ``Path``, ``PathPrefix`` and ``Query``.

Regular expressions use Go's RE2 syntax; they are translated to Python's ``re`` (rejecting what RE2 does
not have: backreferences, lookarounds, possessive repeats) and compiled once at parse time. Like Go's
``regexp.MatchString`` they match anywhere in the string unless anchored.

Nothing here parses or allocates per request beyond what a matcher needs: every rule is compiled into a
tree of closures, and ``Rule.match`` *is* the root closure (an instance attribute, no bound-method hop).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

__all__ = ["RequestInfo", "Rule", "RuleError", "parse_rule"]

Matcher = Callable[["RequestInfo"], bool]


class RuleError(ValueError):
    """A rule that does not parse or compile; ``column`` is 1-based, into the rule's text."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.message = message


class RequestInfo:
    """What matchers see of a request; built once per request by the proxy.

    ``host`` is lowercased with port and trailing dot stripped; ``path`` is the normalised path;
    ``headers`` is a case-insensitive multi-mapping (``get``/``getall``).
    """

    __slots__ = ("method", "host", "path", "raw_query", "headers", "client_ip", "_query")

    def __init__(self, method: str, host: str, path: str, raw_query: str, headers: Any, client_ip: str):
        self.method = method
        self.host = host
        self.path = path
        self.raw_query = raw_query
        self.headers = headers
        self.client_ip = client_ip
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
    """

    __slots__ = ("source", "syntax", "hosts", "host_only", "match", "match_in_hosts")

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

    def __repr__(self) -> str:
        return f"Rule({self.source!r})"


# --------------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------------

_IDENT, _STRING, _LPAREN, _RPAREN, _COMMA, _AND, _OR, _NOT, _EOF = (
    "identifier",
    "string",
    "'('",
    "')'",
    "','",
    "'&&'",
    "'||'",
    "'!'",
    "end of rule",
)
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_SIMPLE_ESCAPES.update({"\\": "\\", '"': '"'})
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


class _Tok:
    __slots__ = ("kind", "value", "pos")

    def __init__(self, kind: str, value: str, pos: int) -> None:
        self.kind = kind
        self.value = value
        self.pos = pos  # 0-based

    def describe(self) -> str:
        if self.kind == _IDENT:
            return f"{self.value!r}"
        if self.kind == _STRING:
            return "a string"
        return self.kind


def _err(pos: int, message: str) -> RuleError:
    return RuleError(pos + 1, message)


def _tokenize(src: str) -> Iterator[_Tok]:
    """Tokens, produced lazily so that errors are reported in the order they appear in the rule."""
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            yield _Tok(_LPAREN, c, i)
            i += 1
        elif c == ")":
            yield _Tok(_RPAREN, c, i)
            i += 1
        elif c == ",":
            yield _Tok(_COMMA, c, i)
            i += 1
        elif c == "!":
            yield _Tok(_NOT, c, i)
            i += 1
        elif c == "&" or c == "|":
            if src.startswith(c * 2, i):
                yield _Tok(_AND if c == "&" else _OR, c * 2, i)
                i += 2
            else:
                raise _err(i, f"unexpected {c!r}; did you mean '{c * 2}'?")
        elif c == "`":
            end = src.find("`", i + 1)
            if end < 0:
                raise _err(i, "unterminated string: missing closing '`'")
            yield _Tok(_STRING, src[i + 1 : end].replace("\r", ""), i)
            i = end + 1
        elif c == '"':
            value, i2 = _read_quoted(src, i)
            yield _Tok(_STRING, value, i)
            i = i2
        elif c == "'":
            raise _err(i, "strings must be quoted with '`' or '\"', not \"'\"")
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            yield _Tok(_IDENT, src[i:j], i)
            i = j
        else:
            raise _err(i, f"unexpected character {c!r}")
    yield _Tok(_EOF, "", n)


def _read_quoted(src: str, start: int) -> tuple[str, int]:
    """Read a Go interpreted string literal starting at the '"' at ``start``; return (value, end)."""
    out: list[str] = []
    i, n = start + 1, len(src)
    while True:
        if i >= n or src[i] == "\n":
            raise _err(start, "unterminated string: missing closing '\"'")
        c = src[i]
        if c == '"':
            return "".join(out), i + 1
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise _err(start, "unterminated string: missing closing '\"'")
        e = src[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = src[i + 2 : i + 2 + width]
            if len(digits) != width or not set(digits) <= _HEXDIGITS:
                raise _err(i, f"invalid escape '\\{e}': expected {width} hexadecimal digits")
            code = int(digits, 16)
            if e != "x" and (code > 0x10FFFF or 0xD800 <= code <= 0xDFFF):
                raise _err(i, f"invalid escape '\\{e}{digits}': not a valid Unicode code point")
            out.append(chr(code))
            i += 2 + width
        elif e in "01234567":
            digits = src[i + 1 : i + 4]
            if len(digits) != 3 or not all(d in "01234567" for d in digits) or int(digits, 8) > 255:
                raise _err(i, "invalid octal escape: expected 3 octal digits (at most \\377)")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise _err(i, f"unknown escape sequence '\\{e}' in double-quoted string")


# --------------------------------------------------------------------------------------------------
# Parser → AST
# --------------------------------------------------------------------------------------------------
# Nodes: ("call", name, name_pos, [(value, pos), ...]) | ("not", node) | ("and", [nodes]) | ("or", [nodes])


class _Parser:
    def __init__(self, src: str) -> None:
        self.toks = _tokenize(src)
        self.cur: _Tok | None = None

    def peek(self) -> _Tok:
        if self.cur is None:
            self.cur = next(self.toks)
        return self.cur

    def take(self) -> _Tok:
        t = self.peek()
        if t.kind != _EOF:
            self.cur = None
        return t

    def parse(self) -> tuple:
        if self.peek().kind == _EOF:
            raise _err(0, "empty rule")
        node = self.parse_or()
        t = self.peek()
        if t.kind != _EOF:
            if t.kind == _RPAREN:
                raise _err(t.pos, "unbalanced parentheses: unexpected ')'")
            raise _err(t.pos, f"unexpected {t.describe()} after a complete expression; expected '&&' or '||'")
        return node

    def parse_or(self) -> tuple:
        items = [self.parse_and()]
        while self.peek().kind == _OR:
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else ("or", items)

    def parse_and(self) -> tuple:
        items = [self.parse_unary()]
        while self.peek().kind == _AND:
            self.take()
            items.append(self.parse_unary())
        return items[0] if len(items) == 1 else ("and", items)

    def parse_unary(self) -> tuple:
        if self.peek().kind == _NOT:
            self.take()
            return ("not", self.parse_unary())
        return self.parse_primary()

    def parse_primary(self) -> tuple:
        t = self.take()
        if t.kind == _LPAREN:
            node = self.parse_or()
            close = self.take()
            if close.kind != _RPAREN:
                raise _err(
                    close.pos,
                    f"expected ')' to close '(' at column {t.pos + 1}, found {close.describe()}",
                )
            return node
        if t.kind == _IDENT:
            opening = self.take()
            if opening.kind != _LPAREN:
                raise _err(opening.pos, f"expected '(' after matcher {t.value}, found {opening.describe()}")
            args: list[tuple[str, int]] = []
            while True:
                a = self.take()
                if a.kind == _RPAREN:
                    break
                if a.kind != _STRING:
                    if a.kind == _EOF:
                        raise _err(
                            a.pos, f"expected ')' to close '(' at column {opening.pos + 1}, found end of rule"
                        )
                    raise _err(a.pos, f"expected a string argument or ')', found {a.describe()}")
                args.append((a.value, a.pos))
                sep = self.take()
                if sep.kind == _RPAREN:
                    break
                if sep.kind != _COMMA:
                    raise _err(
                        sep.pos,
                        f"expected ',' or ')' to close '(' at column {opening.pos + 1}, "
                        f"found {sep.describe()}",
                    )
            return ("call", t.value, t.pos, args)
        if t.kind == _EOF:
            raise _err(t.pos, "unexpected end of rule; expected a matcher, '(' or '!'")
        raise _err(t.pos, f"unexpected {t.describe()}; expected a matcher, '(' or '!'")


# --------------------------------------------------------------------------------------------------
# Go regexp (RE2 syntax) → Python re
# --------------------------------------------------------------------------------------------------

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_REPEAT = re.compile(r"\{(\d+)(?:(,)(\d*))?\}")
_FLAGS = re.compile(r"\(\?([imsU]*(?:-[imsU]*)?)([:)])")
_GO_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_GO_META = frozenset("\\.+*?()|[]{}^$")


def go_quote_meta(s: str) -> str:
    """Go's ``regexp.QuoteMeta``."""
    return "".join("\\" + c if c in _GO_META else c for c in s)


def _go_escape(p: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape at ``p[i] == '\\'``; return (python text, next index)."""
    if i + 1 >= len(p):
        raise ValueError("trailing backslash at end of expression")
    c = p[i + 1]
    if c == "Q":
        end = p.find("\\E", i + 2)
        lit = p[i + 2 :] if end < 0 else p[i + 2 : end]
        nxt = len(p) if end < 0 else end + 2
        return "".join("\\" + ch if not ch.isalnum() else ch for ch in lit), nxt
    if c == "x":
        if p.startswith("{", i + 2):
            end = p.find("}", i + 3)
            digits = p[i + 3 : end] if end >= 0 else ""
            if not digits or not set(digits) <= _HEXDIGITS or int(digits, 16) > 0x10FFFF:
                raise ValueError(f"invalid escape sequence: {p[i : end + 1 if end >= 0 else len(p)]!r}")
            return f"\\U{int(digits, 16):08x}", end + 1
        digits = p[i + 2 : i + 4]
        if len(digits) != 2 or not set(digits) <= _HEXDIGITS:
            raise ValueError(f"invalid escape sequence: {p[i : i + 4]!r}")
        return "\\x" + digits, i + 4
    if c in "01234567":
        j = i + 1
        while j < len(p) and j < i + 4 and p[j] in "01234567":
            j += 1
        if c != "0" and j == i + 2:
            raise ValueError(f"invalid escape sequence: {p[i : i + 2]!r} (backreferences are not supported)")
        return f"\\U{int(p[i + 1 : j], 8):08x}", j
    if c in "89":
        raise ValueError(f"invalid escape sequence: {p[i : i + 2]!r} (backreferences are not supported)")
    if c == "z" and not in_class:
        return "\\Z", i + 2
    if c in "AbB" and not in_class:
        return "\\" + c, i + 2
    if c in "dDwWsSaftnrv":
        return "\\" + c, i + 2
    if c in "pP":
        raise ValueError(f"Unicode classes ({p[i : i + 2]!r}...) are not supported")
    if c in _GO_PUNCT:
        return "\\" + c, i + 2
    raise ValueError(f"invalid escape sequence: {p[i : i + 2]!r}")


def _go_class(p: str, i: int) -> tuple[str, int]:
    """Translate the character class starting at ``p[i] == '['``; return (python text, next index)."""
    out = ["["]
    j = i + 1
    if j < len(p) and p[j] == "^":
        out.append("^")
        j += 1
    first = True
    while True:
        if j >= len(p):
            raise ValueError(f"missing closing ]: {p[i:]!r}")
        c = p[j]
        if c == "]" and not first:
            out.append("]")
            return "".join(out), j + 1
        first = False
        if c == "[" and p.startswith("[:", j):
            end = p.find(":]", j + 2)
            name = p[j + 2 : end] if end >= 0 else ""
            if name.startswith("^"):
                raise ValueError(f"negated POSIX classes ({p[j : end + 2]!r}) are not supported")
            if name in _POSIX_CLASSES:
                out.append(_POSIX_CLASSES[name])
                j = end + 2
                continue
            if end >= 0:
                raise ValueError(f"invalid character class range: {p[j : end + 2]!r}")
        if c == "\\":
            text, j = _go_escape(p, j, True)
            out.append(text)
            continue
        out.append("\\" + c if c in "[]&~|" else c)
        j += 1


def go_regexp(pattern: str) -> re.Pattern[str]:
    """Compile a Go (RE2) regular expression into an equivalent Python pattern; ValueError if invalid."""
    out: list[str] = []
    # Per open group: (flags active inside it, list of flag groups opened by "(?flags)" in it).
    stack: list[tuple[str, list[str]]] = [("", [])]
    i, n = 0, len(pattern)
    repeatable = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            text, i = _go_escape(pattern, i, False)
            out.append(text)
            repeatable = text not in ("\\A", "\\Z", "\\b", "\\B")
            continue
        if c == "[":
            text, i = _go_class(pattern, i)
            out.append(text)
            repeatable = True
            continue
        if c == "(":
            flags, opened = stack[-1]
            if pattern.startswith("(?", i):
                m = _FLAGS.match(pattern, i)
                if pattern.startswith("(?P<", i) or pattern.startswith("(?<", i):
                    start = i + (4 if pattern[i + 2] == "P" else 3)
                    end = pattern.find(">", start)
                    name = pattern[start:end] if end >= 0 else ""
                    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                        raise ValueError(
                            f"invalid named capture: {pattern[i : end + 1 if end >= 0 else n]!r}"
                        )
                    out.append("(")  # names only matter for extraction; Go and Python differ on them
                    stack.append((flags, []))
                    i = end + 1
                    repeatable = False
                    continue
                if m is None or m.group(1) in ("", "-") and m.group(2) == ")" or m.group(1).endswith("-"):
                    raise ValueError(f"invalid or unsupported Perl syntax: {pattern[i : i + 4]!r}")
                spec = m.group(1)
                if "U" in spec:
                    raise ValueError("the ungreedy flag (?U) is not supported")
                on, _, off = spec.partition("-")
                new_flags = "".join(f for f in "ims" if (f in flags or f in on) and f not in off)
                py_spec = spec if spec else ""
                if m.group(2) == ":":
                    out.append(f"(?{py_spec}:" if py_spec else "(?:")
                    stack.append((new_flags, []))
                else:
                    # "(?i)" applies to the rest of the current group: open a scoped group there.
                    out.append(f"(?{py_spec}:")
                    opened.append(py_spec)
                    stack[-1] = (new_flags, opened)
                i = m.end()
                repeatable = False
                continue
            out.append("(")
            stack.append((flags, []))
            i += 1
            repeatable = False
            continue
        if c == ")":
            if len(stack) == 1:
                raise ValueError(f"unexpected ): {pattern!r}")
            _, opened = stack.pop()
            out.append(")" * len(opened) + ")")
            i += 1
            repeatable = True
            continue
        if c == "|":
            flags, opened = stack[-1]
            # Flags set by "(?i)" survive '|' in Go: close the scoped groups and reopen them.
            out.append(")" * len(opened) + "|" + "".join(f"(?{s}:" for s in opened))
            i += 1
            repeatable = False
            continue
        if c == "$":
            out.append("$" if "m" in stack[-1][0] else "\\Z")
            i += 1
            repeatable = False
            continue
        if c in "*+?" or (c == "{" and _REPEAT.match(pattern, i)):
            if not repeatable:
                raise ValueError(f"missing argument to repetition operator: {pattern[i]!r}")
            if c == "{":
                m = _REPEAT.match(pattern, i)
                assert m is not None
                lo, hi = m.group(1), m.group(3)
                if int(lo) > 1000 or (hi and (int(hi) > 1000 or int(hi) < int(lo))):
                    raise ValueError(f"invalid repeat count: {m.group(0)!r}")
                out.append(m.group(0))
                i = m.end()
            else:
                out.append(c)
                i += 1
            if i < n and pattern[i] == "?":
                out.append("?")
                i += 1
            if i < n and (pattern[i] in "*+?" or (pattern[i] == "{" and _REPEAT.match(pattern, i))):
                raise ValueError(f"invalid nested repetition operator: {pattern[i - 1 : i + 1]!r}")
            repeatable = False
            continue
        if c == "{":
            out.append("\\{")
        else:
            out.append(c)
        i += 1
        repeatable = c != "^"
    if len(stack) != 1:
        raise ValueError(f"missing closing ): {pattern!r}")
    out.append(")" * len(stack[0][1]))
    return re.compile("".join(out), re.ASCII)


# --------------------------------------------------------------------------------------------------
# gorilla/mux templates (v2): "{name}" / "{name:regexp}" placeholders
# --------------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_-]*(?::|\})")


def _looks_like_template(s: str) -> bool:
    return _PLACEHOLDER.search(s) is not None


def _template_regexp(tpl: str, kind: str) -> str:
    """gorilla/mux ``newRouteRegexp``: the Go regexp a host/path/prefix/query-value template stands for."""
    default = {"host": "[^.]+", "path": "[^/]+", "prefix": "[^/]+", "query": ".*"}[kind]
    idxs: list[tuple[int, int]] = []
    level = start = 0
    for k, ch in enumerate(tpl):
        if ch == "{":
            level += 1
            if level == 1:
                start = k
        elif ch == "}":
            level -= 1
            if level == 0:
                idxs.append((start, k + 1))
            elif level < 0:
                raise ValueError(f"unbalanced braces in {tpl!r}")
    if level:
        raise ValueError(f"unbalanced braces in {tpl!r}")
    parts = ["(?i)^" if kind == "host" else "^"]
    end = 0
    for a, b in idxs:
        parts.append(go_quote_meta(tpl[end:a]))
        name, colon, patt = tpl[a + 1 : b - 1].partition(":")
        if not colon:
            patt = default
        if not name or not patt:
            raise ValueError(f"missing name or pattern in {tpl[a:b]!r}")
        parts.append(f"(?:{patt})")
        end = b
    parts.append(go_quote_meta(tpl[end:]))
    if kind == "query" and tpl == "":
        parts.append(default)
    if kind != "prefix":
        parts.append("$")
    return "".join(parts)


# --------------------------------------------------------------------------------------------------
# Matchers: each builder returns (closure, hosts, host_only)
# --------------------------------------------------------------------------------------------------

_Args = list[tuple[str, int]]
_Built = tuple[Matcher, "frozenset[str] | None", bool]


def _compile_re(value: str, pos: int, what: str) -> re.Pattern[str]:
    try:
        return go_regexp(value)
    except (ValueError, re.error) as exc:
        raise _err(pos, f"invalid regexp for {what}: {exc}") from None


def _true(req: RequestInfo) -> bool:
    return True


def _build_host(name: str, args: _Args, syntax: str) -> _Built:
    hosts: list[str] = []
    wildcards: list[str] = []
    for value, pos in args:
        if not value.isascii():
            raise _err(pos, f"invalid value {value!r} for {name}: non-ASCII characters are not allowed")
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


def _build_host_regexp(name: str, args: _Args, syntax: str) -> _Built:
    for value, pos in args:
        if not value.isascii():
            raise _err(pos, f"invalid value {value!r} for {name}: non-ASCII characters are not allowed")
    template = syntax == "v2" or len(args) > 1 or any(_looks_like_template(v) for v, _ in args)
    if template:
        regs = []
        for value, pos in args:
            try:
                regs.append(go_regexp(_template_regexp(value, "host")))
            except (ValueError, re.error) as exc:
                raise _err(pos, f"invalid host template for {name}: {exc}") from None
        searches = tuple(r.search for r in regs)
    else:
        searches = (_compile_re(args[0][0], args[0][1], name).search,)
    if len(searches) == 1:
        search = searches[0]

        def match_host_re(req: RequestInfo) -> bool:
            return search(req.host) is not None

        return match_host_re, None, False

    def match_host_res(req: RequestInfo) -> bool:
        host = req.host
        return any(s(host) is not None for s in searches)

    return match_host_res, None, False


def _check_path(name: str, value: str, pos: int) -> None:
    if not value.startswith("/"):
        raise _err(pos, f"path {value!r} of {name} does not start with a '/'")


def _path_template(name: str, value: str, pos: int, syntax: str, kind: str) -> Callable | None:
    """The search function of a v2 path template, or None if ``value`` is a plain path."""
    if "{" not in value or (syntax != "v2" and not _looks_like_template(value)):
        return None
    try:
        return go_regexp(_template_regexp(value, kind)).search
    except (ValueError, re.error) as exc:
        raise _err(pos, f"invalid path template for {name}: {exc}") from None


def _build_path(name: str, args: _Args, syntax: str) -> _Built:
    plain: list[str] = []
    searches: list[Callable] = []
    for value, pos in args:
        _check_path(name, value, pos)
        s = _path_template(name, value, pos, syntax, "path")
        if s is None:
            plain.append(value)
        else:
            searches.append(s)
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
        return p in paths or any(s(p) is not None for s in regs)

    return match_path_templates, None, False


def _build_path_prefix(name: str, args: _Args, syntax: str) -> _Built:
    plain: list[str] = []
    searches: list[Callable] = []
    for value, pos in args:
        _check_path(name, value, pos)
        s = _path_template(name, value, pos, syntax, "prefix")
        if s is None:
            plain.append(value)
        else:
            searches.append(s)
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
        return (bool(prefixes) and p.startswith(prefixes)) or any(s(p) is not None for s in regs)

    return match_prefix_templates, None, False


def _build_path_regexp(name: str, args: _Args, syntax: str) -> _Built:
    search = _compile_re(args[0][0], args[0][1], name).search

    def match_path_re(req: RequestInfo) -> bool:
        return search(req.path) is not None

    return match_path_re, None, False


def _build_method(name: str, args: _Args, syntax: str) -> _Built:
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
        raise _err(name_pos, f"{name} expects key/value pairs, got {len(args)} arguments")
    return [(args[k][0], args[k + 1][0], args[k + 1][1]) for k in range(0, len(args), 2)]


def _all(matchers: list[Matcher]) -> Matcher:
    return _and_fn(tuple(matchers))


def _header_eq(key: str, value: str) -> Matcher:
    def match_header(req: RequestInfo) -> bool:
        return value in req.headers.getall(key, ())

    return match_header


def _header_re(key: str, search: Callable) -> Matcher:
    def match_header_re(req: RequestInfo) -> bool:
        return any(search(v) is not None for v in req.headers.getall(key, ()))

    return match_header_re


def _build_header(name: str, args: _Args, syntax: str, name_pos: int = 0) -> _Built:
    return _all([_header_eq(k, v) for k, v, _ in _pairs(name, args, name_pos)]), None, False


def _build_header_regexp(name: str, args: _Args, syntax: str, name_pos: int = 0) -> _Built:
    ms = [_header_re(k, _compile_re(v, pos, name).search) for k, v, pos in _pairs(name, args, name_pos)]
    return _all(ms), None, False


def _query_eq(key: str, value: str) -> Matcher:
    def match_query(req: RequestInfo) -> bool:
        return value in req.query.get(key, ())

    return match_query


def _query_re(key: str, search: Callable) -> Matcher:
    def match_query_re(req: RequestInfo) -> bool:
        return any(search(v) is not None for v in req.query.get(key, ()))

    return match_query_re


def _query_v2(name: str, value: str, pos: int, syntax: str) -> Matcher:
    """gorilla ``Queries("k", "v")``: the key's *first* value against the template ``v`` (empty: any)."""
    key, _, tpl = value.partition("=")
    if not key:
        raise _err(pos, f"empty key in {name}({value!r})")
    if not tpl:

        def match_query_key(req: RequestInfo) -> bool:
            return bool(req.query.get(key))

        return match_query_key
    if "{" not in tpl or (syntax != "v2" and not _looks_like_template(tpl)):

        def match_query_first(req: RequestInfo) -> bool:
            values = req.query.get(key)
            return bool(values) and values[0] == tpl

        return match_query_first
    try:
        search = go_regexp(_template_regexp(tpl, "query")).search
    except (ValueError, re.error) as exc:
        raise _err(pos, f"invalid query template for {name}: {exc}") from None

    def match_query_template(req: RequestInfo) -> bool:
        values = req.query.get(key)
        return bool(values) and search(values[0]) is not None

    return match_query_template


def _build_query(name: str, args: _Args, syntax: str, name_pos: int = 0) -> _Built:
    # A key holding '=' can only come from "%3D"; every argument holding one is the v2 `k=v` form.
    v2_form = all("=" in v for v, _ in args)
    if v2_form:
        return _all([_query_v2(name, v, pos, syntax) for v, pos in args]), None, False
    if len(args) > 2:
        raise _err(name_pos, f"{name} expects 1 or 2 arguments (or 'key=value' forms), got {len(args)}")
    # v3: Query(`k`, `v`): some value of k is v; Query(`k`): k is present with an empty value.
    return _query_eq(args[0][0], args[1][0] if len(args) == 2 else ""), None, False


def _build_query_regexp(name: str, args: _Args, syntax: str) -> _Built:
    if len(args) == 1:
        return _query_eq(args[0][0], ""), None, False
    (key, _), (value, pos) = args
    return _query_re(key, _compile_re(value, pos, name).search), None, False


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


def _build_client_ip(name: str, args: _Args, syntax: str) -> _Built:
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
            raise _err(pos, f"invalid IP address or CIDR {value!r} for {name}") from None
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


# name → (builder, min args, max args or None, builder wants the name's position)
_MATCHERS: dict[str, tuple[Callable[..., _Built], int, int | None, bool]] = {
    "Host": (_build_host, 1, None, False),
    "HostHeader": (_build_host, 1, None, False),
    "HostRegexp": (_build_host_regexp, 1, None, False),
    "Path": (_build_path, 1, None, False),
    "PathPrefix": (_build_path_prefix, 1, None, False),
    "PathRegexp": (_build_path_regexp, 1, 1, False),
    "Method": (_build_method, 1, None, False),
    "Header": (_build_header, 2, 2, True),
    "Headers": (_build_header, 2, None, True),
    "HeaderRegexp": (_build_header_regexp, 2, 2, True),
    "HeadersRegexp": (_build_header_regexp, 2, None, True),
    "Query": (_build_query, 1, None, True),
    "QueryRegexp": (_build_query_regexp, 1, 2, False),
    "ClientIP": (_build_client_ip, 1, None, False),
}
# Traefik registers each matcher as written, in lower case, upper case and title case.
_NAMES: dict[str, str] = {}
for _canonical in _MATCHERS:
    for _variant in (_canonical, _canonical.lower(), _canonical.upper(), _canonical.lower().title()):
        _NAMES.setdefault(_variant, _canonical)


# --------------------------------------------------------------------------------------------------
# AST → closures
# --------------------------------------------------------------------------------------------------


def _and_fn(fns: tuple[Matcher, ...]) -> Matcher:
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


def _or_fn(fns: tuple[Matcher, ...]) -> Matcher:
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


# (match, hosts, host_only, match once the host is known to be in hosts — None when nothing is left)
_Compiled = tuple[Matcher, "frozenset[str] | None", bool, "Matcher | None"]


def _compile(node: tuple, syntax: str) -> _Compiled:
    kind = node[0]
    if kind == "call":
        _, raw_name, name_pos, args = node
        name = _NAMES.get(raw_name)
        if name is None:
            raise _err(name_pos, f"unknown matcher {raw_name!r}")
        builder, lo, hi, wants_pos = _MATCHERS[name]
        if len(args) < lo or (hi is not None and len(args) > hi):
            if hi is None:
                expected = f"at least {lo}"
            elif lo == hi:
                expected = str(lo)
            else:
                expected = f"{lo} or {hi}"
            plural = "" if expected in ("1", "at least 1") else "s"
            raise _err(name_pos, f"{name} expects {expected} argument{plural}, got {len(args)}")
        for value, pos in args:
            if not value:
                raise _err(pos, f"empty argument for matcher {name}")
        if wants_pos:
            fn, hosts, host_only = builder(name, args, syntax, name_pos)
        else:
            fn, hosts, host_only = builder(name, args, syntax)
        return fn, hosts, host_only, None if host_only else fn
    if kind == "not":
        inner = _compile(node[1], syntax)[0]

        def match_not(req: RequestInfo) -> bool:
            return not inner(req)

        return match_not, None, False, match_not
    parts = [_compile(child, syntax) for child in node[1]]
    fn = (_and_fn if kind == "and" else _or_fn)(tuple(p[0] for p in parts))
    constrained = [p[1] for p in parts if p[1] is not None]
    if kind == "and":
        # Knowing the host is in the intersection settles every host-only side: what is left is the rest.
        hosts = frozenset.intersection(*constrained) if constrained else None
        rest = tuple(p[3] for p in parts if p[3] is not None)
        if hosts is None:
            return fn, None, False, fn
        return fn, hosts, not rest, _and_fn(rest) if rest else None
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
    node = _Parser(rule).parse()
    match, hosts, host_only, match_in_hosts = _compile(node, syntax)
    return Rule(rule, match, hosts, host_only, syntax, match_in_hosts)
