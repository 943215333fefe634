"""The one grammar of Traefik's boolean matcher expressions: router rules and provider constraints.

Both are Go-like expressions of calls joined by ``&&``, ``||`` and ``!`` with parentheses
(``Host(`a.test`) && !PathPrefix(`/admin`)``, ``Label(`env`, `prod`) || LabelRegex(`tier`, `^web`)``);
``!`` binds tightest, then ``&&``, then ``||``. Every argument is a Go string literal: raw in backquotes,
or interpreted in double quotes with Go's escapes. Traefik parses both with the same kind of grammar, so
here one lexer, one parser and one string decoder serve both: what a call *means* is left to the caller
(``router.rules`` compiles matchers, ``discover.constraints`` label predicates).

The parser produces a small AST whose nodes carry 1-based columns into the source, so that callers can
report "column N: ..." for their own (semantic) errors exactly as the parser does for syntax errors.
This module lives in ``discover`` because both ``discover`` and ``router`` may import it (the router's
import contract allows it, next to ``discover.model`` and ``discover.goregex``).

The circuit breaker's ``expression`` (``NetworkErrorRatio() > 0.5 || LatencyAtQuantileMS(50.0) > 100``)
is the same grammar plus numbers and comparisons, as Traefik parses it with Go's own expression parser:
``parse_expr(..., numbers=True)`` accepts number literals (as call arguments and operands) and ``<``,
``<=``, ``>``, ``>=``, ``==``, ``!=`` between two operands (:class:`Compare`, :class:`Num`). Without that
flag nothing changes: a digit or a ``<`` is still an unexpected character in a rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "And",
    "Arg",
    "Call",
    "Compare",
    "GoExprError",
    "Node",
    "Not",
    "Num",
    "Or",
    "decode_go_string",
    "parse_expr",
]


class GoExprError(ValueError):
    """An expression that does not parse; ``column`` is 1-based, into the expression's text."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.message = message


@dataclass(frozen=True, slots=True)
class Arg:
    """A decoded string argument and the column of its opening quote."""

    value: str
    column: int


@dataclass(frozen=True, slots=True)
class Num:
    """A number literal (only with ``numbers=True``): its value, its text and its column."""

    value: float
    text: str
    column: int

    @property
    def is_int(self) -> bool:
        """Whether Go would read it as an integer constant (no '.' and no exponent)."""
        return not any(c in self.text for c in ".eE")


@dataclass(frozen=True, slots=True)
class Call:
    """``Name(args...)``: ``column`` is the name's. Arguments are strings (:class:`Arg`), or also numbers
    (:class:`Num`) with ``numbers=True``."""

    name: str
    column: int
    args: tuple[Arg | Num, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    column: int


@dataclass(frozen=True, slots=True)
class And:
    """Two or more operands (chains are flattened: ``a && b && c`` is one node)."""

    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right`` (only with ``numbers=True``); ``op`` is one of ``< <= > >= == !=``, ``column``
    the operator's."""

    op: str
    left: Node | Num
    right: Node | Num
    column: int


Node = Call | Not | And | Or | Compare

# ------------------------------------------------------------------------------------------------
# Go string literals
# ------------------------------------------------------------------------------------------------

_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_OCTDIGITS = frozenset("01234567")
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}


def _read_escape(src: str, i: int, out: bytearray) -> int:
    """Decode the escape at ``src[i] == '\\'`` into ``out``; return the index after it.

    Go's ``\\x`` and octal escapes are single *bytes* (``"\\xc3\\xa9"`` is "é"), ``\\u``/``\\U`` are code
    points: hence a byte buffer, decoded once the literal is complete.
    """
    e = src[i + 1]
    if e in _SIMPLE_ESCAPES:
        out.append(_SIMPLE_ESCAPES[e])
        return i + 2
    if e in _HEX_WIDTH:
        width = _HEX_WIDTH[e]
        digits = src[i + 2 : i + 2 + width]
        if len(digits) != width or not set(digits) <= _HEXDIGITS:
            raise GoExprError(i + 1, f"invalid escape '\\{e}': expected {width} hexadecimal digits")
        code = int(digits, 16)
        if e == "x":
            out.append(code)
            return i + 4
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise GoExprError(i + 1, f"invalid escape '\\{e}{digits}': not a valid Unicode code point")
        out += chr(code).encode()
        return i + 2 + width
    if e in _OCTDIGITS:
        digits = src[i + 1 : i + 4]
        if len(digits) != 3 or not set(digits) <= _OCTDIGITS or int(digits, 8) > 255:
            raise GoExprError(i + 1, "invalid octal escape: expected 3 octal digits (at most \\377)")
        out.append(int(digits, 8))
        return i + 4
    raise GoExprError(i + 1, f"unknown escape sequence '\\{e}' in double-quoted string")


def _read_interpreted(src: str, start: int) -> tuple[str, int]:
    """The Go interpreted string literal whose '"' is at ``start``: (value, index after it).

    Bytes that are not valid UTF-8 (only ``\\x``/octal escapes can make them) are kept as surrogate
    escapes, so that matching them (``goregex`` encodes with ``surrogateescape``) sees Go's exact bytes.
    """
    out = bytearray()
    i, n = start + 1, len(src)
    while True:
        j = i
        while j < n and src[j] not in '"\\\n':
            j += 1
        out += src[i:j].encode("utf-8", "surrogatepass")
        if j >= n or src[j] == "\n" or (src[j] == "\\" and j + 1 >= n):
            raise GoExprError(start + 1, "unterminated string: missing closing '\"'")
        if src[j] == '"':
            return out.decode("utf-8", "surrogateescape"), j + 1
        i = _read_escape(src, j, out)


def decode_go_string(literal: str) -> str:
    """The value of one complete Go string literal (backquoted or double-quoted); GoExprError if bad."""
    if literal.startswith("`") and literal.endswith("`") and len(literal) >= 2 and "`" not in literal[1:-1]:
        return literal[1:-1].replace("\r", "")
    if literal.startswith('"'):
        value, end = _read_interpreted(literal, 0)
        if end == len(literal):
            return value
        raise GoExprError(end + 1, "unexpected text after the closing '\"'")
    raise GoExprError(1, "not a Go string literal: quote it with '`' or '\"'")


# ------------------------------------------------------------------------------------------------
# Lexer
# ------------------------------------------------------------------------------------------------

IDENT, STRING, LPAREN, RPAREN, COMMA, AND, OR, NOT, EOF = (
    "identifier",
    "string",
    "'('",
    "')'",
    "','",
    "'&&'",
    "'||'",
    "'!'",
    "end",
)
NUMBER, CMP = "number", "comparison"  # only with numbers=True
_PUNCT = {"(": LPAREN, ")": RPAREN, ",": COMMA, "!": NOT}
_CMP_START = frozenset("<>=!")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    value: str
    col: int  # 1-based


def _number_end(src: str, i: int) -> int:
    """The index after the decimal number literal starting at ``i`` (digits, a fraction, an exponent)."""
    n = len(src)
    while i < n and src[i].isdigit():
        i += 1
    if i < n and src[i] == ".":
        i += 1
        while i < n and src[i].isdigit():
            i += 1
    if i < n and src[i] in "eE":
        j = i + 1
        if j < n and src[j] in "+-":
            j += 1
        if j < n and src[j].isdigit():
            i = j
            while i < n and src[i].isdigit():
                i += 1
    return i


def _comparison(src: str, i: int) -> _Tok | None:
    """The comparison operator at ``i`` (numbers mode), or None for a lone '!' (negation)."""
    two = src[i : i + 2]
    if two in ("<=", ">=", "==", "!="):
        return _Tok(CMP, two, i + 1)
    c = src[i]
    if c in "<>":
        return _Tok(CMP, c, i + 1)
    if c == "=":
        raise GoExprError(i + 1, "unexpected '='; did you mean '=='?")
    return None


def _tokenize(src: str, numbers: bool = False) -> Iterator[_Tok]:
    """Tokens, produced lazily so that errors are reported in the order they appear in the text. With
    ``numbers``, number literals and comparison operators too."""
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c in " \t\r\n":
            i += 1
        elif numbers and c in _CMP_START and (tok := _comparison(src, i)) is not None:
            yield tok
            i += len(tok.value)
        elif numbers and (c.isdigit() or (c == "." and src[i + 1 : i + 2].isdigit())):
            end = _number_end(src, i)
            if end < n and (src[end].isalnum() or src[end] in "._"):
                raise GoExprError(end + 1, f"unexpected {src[end]!r} in a number")
            yield _Tok(NUMBER, src[i:end], i + 1)
            i = end
        elif c in _PUNCT:
            yield _Tok(_PUNCT[c], c, i + 1)
            i += 1
        elif c == "&" or c == "|":
            if not src.startswith(c * 2, i):
                raise GoExprError(i + 1, f"unexpected {c!r}; did you mean '{c * 2}'?")
            yield _Tok(AND if c == "&" else OR, c * 2, i + 1)
            i += 2
        elif c == "`":
            end = src.find("`", i + 1)
            if end < 0:
                raise GoExprError(i + 1, "unterminated string: missing closing '`'")
            yield _Tok(STRING, src[i + 1 : end].replace("\r", ""), i + 1)  # Go drops '\r' in raw strings
            i = end + 1
        elif c == '"':
            value, end = _read_interpreted(src, i)
            yield _Tok(STRING, value, i + 1)
            i = end
        elif c == "'":
            raise GoExprError(i + 1, "strings must be quoted with '`' or '\"', not \"'\"")
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            yield _Tok(IDENT, src[i:j], i + 1)
            i = j
        else:
            raise GoExprError(i + 1, f"unexpected character {c!r}")
    yield _Tok(EOF, "", n + 1)


# ------------------------------------------------------------------------------------------------
# Parser
# ------------------------------------------------------------------------------------------------


# Parentheses and '!' nest at most this deep: far beyond what a person writes, and well inside Python's
# recursion limit, so a hostile label is refused with a column instead of raising RecursionError.
MAX_DEPTH = 100


class _Parser:
    """Recursive descent; ``noun`` names the whole text in messages ("rule", "expression"), ``callee``
    what may be called ("a matcher")."""

    def __init__(self, src: str, noun: str, callee: str, numbers: bool = False) -> None:
        self.toks = _tokenize(src, numbers)
        self.numbers = numbers
        self.cur: _Tok | None = None
        self.noun = noun
        self.callee = callee
        self.depth = 0

    def deeper(self, col: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise GoExprError(col, f"nested more than {MAX_DEPTH} levels deep")

    def describe(self, t: _Tok) -> str:
        if t.kind == IDENT:
            return repr(t.value)
        if t.kind == STRING:
            return "a string"
        if t.kind == NUMBER:
            return f"the number {t.value}"
        if t.kind == CMP:
            return repr(t.value)
        if t.kind == EOF:
            return f"end of {self.noun}"
        return t.kind

    def peek(self) -> _Tok:
        if self.cur is None:
            self.cur = next(self.toks)
        return self.cur

    def take(self) -> _Tok:
        t = self.peek()
        if t.kind != EOF:
            self.cur = None
        return t

    def parse(self) -> Node:
        if self.peek().kind == EOF:
            raise GoExprError(1, f"empty {self.noun}")
        node = self.parse_or()
        t = self.peek()
        if t.kind == RPAREN:
            raise GoExprError(t.col, "unbalanced parentheses: unexpected ')'")
        if t.kind != EOF:
            raise GoExprError(
                t.col, f"unexpected {self.describe(t)} after a complete expression; expected '&&' or '||'"
            )
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.peek().kind == OR:
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_unary()]
        while self.peek().kind == AND:
            self.take()
            items.append(self.parse_unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_unary(self) -> Node:
        if self.peek().kind == NOT:
            col = self.take().col
            self.deeper(col)
            node = Not(self.parse_unary(), col)
            self.depth -= 1
            return node
        if self.numbers:
            return self.parse_comparison()
        return self.parse_primary()  # type: ignore[return-value]  # Num only in numbers mode

    def parse_comparison(self) -> Node:
        """``operand [op operand]`` (numbers mode): one comparison, no chains (Go has no ``a < b < c``
        for numbers either)."""
        left = self.parse_primary()
        if self.peek().kind != CMP:
            if isinstance(left, Num):
                t = self.peek()
                raise GoExprError(t.col, f"expected a comparison after the number {left.text}")
            return left
        op = self.take()
        right = self.parse_primary()
        if self.peek().kind == CMP:
            t = self.peek()
            raise GoExprError(t.col, f"unexpected {t.value!r}: comparisons do not chain; use '&&'")
        return Compare(op.value, left, right, op.col)

    def parse_primary(self) -> Node | Num:
        t = self.take()
        if t.kind == NUMBER:
            return Num(float(t.value), t.value, t.col)
        if t.kind == LPAREN:
            self.deeper(t.col)
            node = self.parse_or()
            self.depth -= 1
            close = self.take()
            if close.kind != RPAREN:
                raise GoExprError(
                    close.col, f"expected ')' to close '(' at column {t.col}, found {self.describe(close)}"
                )
            return node
        if t.kind == IDENT:
            return self.parse_call(t)
        if t.kind == EOF:
            raise GoExprError(t.col, f"unexpected end of {self.noun}; expected {self.callee}, '(' or '!'")
        raise GoExprError(t.col, f"unexpected {self.describe(t)}; expected {self.callee}, '(' or '!'")

    def parse_call(self, name: _Tok) -> Call:
        opening = self.take()
        if opening.kind != LPAREN:
            raise GoExprError(opening.col, f"expected '(' after {name.value}, found {self.describe(opening)}")
        args: list[Arg | Num] = []
        while True:
            a = self.take()
            if a.kind == RPAREN:
                break
            if a.kind == EOF:
                raise GoExprError(
                    a.col, f"expected ')' to close '(' at column {opening.col}, found end of {self.noun}"
                )
            if a.kind == NUMBER:
                args.append(Num(float(a.value), a.value, a.col))
            elif a.kind == STRING:
                args.append(Arg(a.value, a.col))
            else:
                raise GoExprError(a.col, f"expected a string argument or ')', found {self.describe(a)}")
            sep = self.take()
            if sep.kind == RPAREN:
                break
            if sep.kind != COMMA:
                raise GoExprError(
                    sep.col,
                    f"expected ',' or ')' to close '(' at column {opening.col}, found {self.describe(sep)}",
                )
        return Call(name.value, name.col, tuple(args))


def parse_expr(
    src: str, noun: str = "expression", callee: str = "a function call", *, numbers: bool = False
) -> Node:
    """Parse ``src`` into its AST; raise :class:`GoExprError` (1-based column) if it does not parse.

    ``noun`` is how messages name the text ("empty rule", "unexpected end of expression"), ``callee``
    what the caller accepts where an operand is expected ("expected a matcher, '(' or '!'"). ``numbers``
    adds number literals and comparisons (the circuit breaker's expressions); rules never set it.
    """
    return _Parser(src, noun, callee, numbers).parse()
