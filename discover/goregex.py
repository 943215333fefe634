"""Regular expressions from configuration, with Go's semantics and in linear time: RE2.

Traefik compiles every configured regex (``HostRegexp``, ``PathRegexp``, ``HeaderRegexp``,
``QueryRegexp``, constraint ``LabelRegex``...) with Go's ``regexp`` package, whose syntax *is* RE2's and
whose matching is linear in the input. Python's ``re`` backtracks: ``^/(a+)+$`` against 27 characters
takes seconds, and on one event loop that freezes every client. So these patterns are compiled by RE2
itself (the ``google-re2`` package), with the options that make it behave like Go's ``regexp.Compile``:

- Perl syntax (not POSIX), leftmost-first (not leftmost-longest) matching, so ``\\d``, ``\\b``, lazy
  repeats and ``(?i)`` work as in Go; ``^``/``$`` are the ends of the text unless ``(?m)``.
- Like ``regexp.MatchString``, a match anywhere counts: anchor with ``^...$`` to match the whole text.
- A pattern RE2 refuses (backreferences, lookarounds, ``\\Z``, too-large repeats...) raises
  :class:`GoRegexpError` with RE2's reason, plus a hint for the Perl features Go and RE2 lack.

Matching goes to RE2's ``Match`` directly rather than through the ``re``-like ``search``, which builds
offset tables and match objects the matchers do not need (see :func:`compile_go` for the figures).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import re2

__all__ = ["GoRegexp", "GoRegexpError", "compile_go", "go_quote_meta", "gorilla_template_regexp"]

# RE2's memory budget per pattern: program plus DFA state cache (past it RE2 refuses the pattern, or
# falls back to its slower, still linear, NFA). Go has no such knob but limits repeats to 1000; RE2's
# default, 8 MiB, refuses ``\pL{1000}``, which Go accepts. 32 MiB accepts it and still bounds what one
# label can make the process allocate.
MAX_MEM = 32 << 20
# Texts up to this length have their result remembered per pattern (hosts, paths, header values repeat
# from request to request); at most _MEMO_SIZE of them, then the memo starts over. Bounded either way.
_MEMO_TEXT = 256
_MEMO_SIZE = 64


class GoRegexpError(ValueError):
    """A pattern Go's ``regexp`` (RE2) would refuse; the message says why."""


def _options() -> re2.Options:
    opts = re2.Options()
    opts.posix_syntax = False  # Perl syntax: \d \s \w \b, (?i), lazy repeats (Go's syntax.Perl)
    opts.longest_match = False  # leftmost-first, as Go's regexp (not regexp.CompilePOSIX)
    opts.perl_classes = True  # implied by Perl syntax; set so that the intent survives a refactor
    opts.word_boundary = True
    opts.one_line = False  # only read in POSIX mode; in Perl mode ^/$ are text ends unless (?m)
    opts.never_nl = False
    opts.dot_nl = False  # '.' does not match '\n' unless (?s), as in Go
    opts.case_sensitive = True
    opts.encoding = re2.Options.Encoding.UTF8
    opts.max_mem = MAX_MEM
    opts.never_capture = True  # only "does it match" is asked: no submatch bookkeeping
    opts.log_errors = False  # a refused pattern is reported once, by our caller, naming the router
    return opts


_OPTIONS = _options()

# Perl features Go lacks, by the start of RE2's message, with the hint a user needs.
_LOOKAROUND = "lookahead/lookbehind assertions are unsupported in Go's regexp (RE2)"
_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        tuple(f"invalid escape sequence: \\{d}" for d in "123456789"),
        "backreferences are not supported in Go's regexp (RE2)",
    ),
    (tuple(f"invalid perl operator: (?{op}" for op in ("=", "!", "<=", "<!")), _LOOKAROUND),
    (("invalid perl operator: (?>",), "atomic groups are unsupported in Go's regexp (RE2)"),
    (
        tuple(f"bad repetition operator: {op}+" for op in "*+?"),
        "possessive repeats are unsupported in Go's regexp (RE2)",
    ),
    (("invalid escape sequence: \\Z",), "use \\z for the end of the text in Go's regexp (RE2)"),
)


def _why(exc: Exception) -> str:
    """RE2's reason for refusing a pattern, plus a hint when it is a Perl feature Go does not have."""
    msg = exc.args[0] if exc.args else str(exc)
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    for starts, hint in _HINTS:
        if msg.startswith(starts):
            return f"{msg}; {hint}"
    return msg


def _has_any_byte_escape(pattern: str) -> bool:
    """Whether ``pattern`` uses ``\\C`` (any byte): RE2 has it, Go's regexp refuses it.

    A plain scan (no regex over configured text): escapes are skipped two characters at a time and
    ``\\Q...\\E`` quotes as a whole, so ``\\\\C`` and ``\\Q\\C\\E`` are literals, as in Go.
    """
    i, n = 0, len(pattern)
    while i < n:
        i = pattern.find("\\", i)
        if i < 0:
            return False
        nxt = pattern[i + 1 : i + 2]
        if nxt == "C":
            return True
        if nxt == "Q":
            end = pattern.find("\\E", i + 2)
            if end < 0:
                return False
            i = end + 2
        else:
            i += 2
    return False


class GoRegexp:
    """A compiled pattern. ``matches(text) -> bool`` is Go's ``MatchString``: a closure, not a method,
    so a matcher calls it with no bound-method hop."""

    __slots__ = ("pattern", "matches")

    def __init__(self, pattern: str, matches: Callable[[str], bool]) -> None:
        self.pattern = pattern
        self.matches = matches

    def __repr__(self) -> str:
        return f"GoRegexp({self.pattern!r})"


@lru_cache(maxsize=1)
def _direct_ok() -> bool:
    """Whether RE2's own ``Match(anchor, text, pos, endpos)`` is reachable on a compiled pattern.

    It is the binding's underlying object (``re2._re2``), not its documented API, so it is probed once
    with a real match and a real miss; a release that changes it falls back to the public ``search``
    instead of failing a request.
    """
    try:
        raw, anchor = re2.compile("b+", _OPTIONS)._regexp, re2._re2.RE2.Anchor.UNANCHORED
        return raw.Match(anchor, b"abbc", 0, 4)[0] == (1, 3) and raw.Match(anchor, b"ac", 0, 2)[0][0] == -1
    except Exception:  # noqa: BLE001 (any surprise means: do not use the direct call)
        return False


def _byte_matcher(compiled: object) -> Callable[[bytes], bool]:
    if _direct_ok():
        match = compiled._regexp.Match  # type: ignore[attr-defined]
        unanchored = re2._re2.RE2.Anchor.UNANCHORED

        def direct(b: bytes) -> bool:
            return match(unanchored, b, 0, len(b))[0][0] != -1

        return direct
    search = compiled.search  # type: ignore[attr-defined]

    def via_search(b: bytes) -> bool:
        return search(b) is not None

    return via_search


def _matcher(compiled: object) -> Callable[[str], bool]:
    """``MatchString`` over a str: UTF-8 bytes to RE2, with a small bounded memo of recent texts."""
    on_bytes = _byte_matcher(compiled)
    memo: dict[str, bool] = {}
    memo_get = memo.get

    def matches(text: str) -> bool:
        hit = memo_get(text)
        if hit is not None:
            return hit
        # surrogateescape gives back the bytes a header held when it was not UTF-8; surrogatepass any
        # other lone surrogate: encoding never raises on the request path.
        try:
            b = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            b = text.encode("utf-8", "surrogatepass")
        found = on_bytes(b)
        if len(text) <= _MEMO_TEXT:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[text] = found
        return found

    return matches


@lru_cache(maxsize=1024)
def compile_go(pattern: str) -> GoRegexp:
    """Compile ``pattern`` as Go's ``regexp.Compile`` would; raise :class:`GoRegexpError` if it refuses.

    Cached by text: a reload that keeps a rule keeps its compiled program (RE2 programs are immutable
    and safe to share between threads). Matching costs about 0.6 µs (RE2's ``Match`` plus the UTF-8
    encoding) on a first sight of a text and a dict lookup after that, where ``re`` took about 0.15 µs.
    """
    if _has_any_byte_escape(pattern):
        raise GoRegexpError("invalid escape sequence: \\C; Go's regexp has no any-byte escape")
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise GoRegexpError(_why(exc)) from None
    except UnicodeEncodeError:  # a "\xff"-style escape decoded to a lone surrogate: not UTF-8
        raise GoRegexpError("invalid UTF-8 in the pattern") from None
    return GoRegexp(pattern, _matcher(compiled))


_GO_META = frozenset("\\.+*?()|[]{}^$")


def go_quote_meta(s: str) -> str:
    """Go's ``regexp.QuoteMeta``: ``s`` as a pattern that matches exactly ``s``."""
    return "".join("\\" + c if c in _GO_META else c for c in s)


_TEMPLATE_DEFAULTS = {"host": "[^.]+", "path": "[^/]+", "prefix": "[^/]+", "query": ".*"}


def _placeholders(tpl: str) -> list[tuple[int, int]]:
    """The (start, end) of each top-level ``{...}`` in ``tpl``; ValueError if braces do not balance."""
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
                raise GoRegexpError(f"unbalanced braces in {tpl!r}")
    if level:
        raise GoRegexpError(f"unbalanced braces in {tpl!r}")
    return idxs


def gorilla_template_regexp(tpl: str, kind: str) -> str:
    """gorilla/mux ``newRouteRegexp``: the Go pattern a v2 host/path/prefix/query-value template stands for.

    ``{name}`` is a default segment (``[^.]+`` in hosts, ``[^/]+`` in paths, ``.*`` in query values),
    ``{name:re}`` the given pattern; the rest is literal. Hosts are case-insensitive; every kind but
    ``prefix`` is anchored at both ends. The result still has to go through :func:`compile_go`.
    """
    default = _TEMPLATE_DEFAULTS[kind]
    parts = ["(?i)^" if kind == "host" else "^"]
    end = 0
    for a, b in _placeholders(tpl):
        parts.append(go_quote_meta(tpl[end:a]))
        name, colon, patt = tpl[a + 1 : b - 1].partition(":")
        if not colon:
            patt = default
        if not name or not patt:
            raise GoRegexpError(f"missing name or pattern in {tpl[a:b]!r}")
        parts.append(f"(?:{patt})")
        end = b
    parts.append(go_quote_meta(tpl[end:]))
    if kind == "query" and tpl == "":
        parts.append(default)
    if kind != "prefix":
        parts.append("$")
    return "".join(parts)
