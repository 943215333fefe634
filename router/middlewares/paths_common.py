"""What the path and redirect middlewares share: Go's URL path escaping rules, and RE2 regexes with
submatches and Go's ``ReplaceAllString``/``Expand``.

``ex.path`` is the path as it goes on the wire to the service: escaped, normalised by the proxy (escapes
of unreserved characters decoded, the rest upper-case, dot segments removed). Traefik keeps two views of
a path, Go's ``URL.Path`` (decoded) and ``URL.RawPath``/``EscapedPath()`` (what is sent); its middlewares
match prefixes against the decoded one and rewrite the escaped one. The helpers here give the same two
views of ``ex.path``, so that ``/a%20b`` is stripped by the prefix ``/a b`` as in Traefik while ``%2F``
stays an encoded slash on the wire.

Regexes: :func:`discover.goregex.compile_go` validates the pattern with Go's rules (and names what Go
refuses); the pattern is then compiled once more by RE2 with submatches, which ``compile_go`` leaves out
because matching alone does not need them. Both happen in ``build`` (a worker thread), never per request.
"""

from __future__ import annotations

from collections.abc import Callable

import re2

from discover.goregex import GoRegexpError, compile_go
from router.middlewares import MiddlewareError

__all__ = [
    "GoRe",
    "encoded_prefix_len",
    "ensure_leading_slash",
    "escape_path",
    "is_clean",
    "path_unescape",
    "wire_path",
]

_HEX = "0123456789ABCDEFabcdef"
# Go's shouldEscape(c, encodePath) is false for these (net/url): unreserved plus "$&+,/:;=@".
_PATH_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~$&+,/:;=@")
# Go's validEncoded(s, encodePath) also lets these through as they are (sub-delims, brackets, escapes).
_VALID_ENCODED = _PATH_SAFE | frozenset("!'()*[]%")


def ensure_leading_slash(s: str) -> str:
    """Traefik's ``ensureLeadingSlash``: "" stays "" (Go then asks for ``/``)."""
    return s if not s or s[0] == "/" else "/" + s


def path_unescape(s: str) -> str | None:
    """Go's ``url.PathUnescape``: every ``%XX`` decoded (``%2F`` too); None for a bad escape."""
    if "%" not in s:
        return s
    out = bytearray()
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "%":
            h = s[i + 1 : i + 3]
            if len(h) != 2 or h[0] not in _HEX or h[1] not in _HEX:
                return None
            out.append(int(h, 16))
            i += 3
        else:
            out += c.encode("utf-8", "surrogateescape")
            i += 1
    return out.decode("utf-8", "surrogateescape")


def escape_path(s: str) -> str:
    """Go's ``escape(s, encodePath)``: every byte outside the path-safe set as ``%XX``."""
    if _PATH_SAFE.issuperset(s):
        return s
    return "".join(
        c if c in _PATH_SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
        for c in s
    )


def wire_path(raw: str) -> str | None:
    """Go's ``EscapedPath()`` for ``RawPath = raw``, ``Path = PathUnescape(raw)``: ``raw`` itself when it
    is a valid encoding, else the decoded path escaped again; None when ``raw`` has a bad escape."""
    decoded = path_unescape(raw)
    if decoded is None:
        return None
    if _VALID_ENCODED.issuperset(raw):
        return raw
    return escape_path(decoded)


def encoded_prefix_len(raw: str, decoded_prefix: str) -> int:
    """How many characters of the escaped ``raw`` spell the decoded ``decoded_prefix`` (Traefik's
    ``encodedPrefixLen``: an escape counts for one decoded byte, other characters for their bytes)."""
    want = len(decoded_prefix.encode("utf-8", "surrogateescape"))
    got = i = 0
    n = len(raw)
    while i < n and got < want:
        if raw[i] == "%" and i + 2 < n:
            i += 3
            got += 1
        else:
            got += len(raw[i].encode("utf-8", "surrogateescape"))
            i += 1
    return i


def is_clean(path: str) -> bool:
    """Whether Go's ``URL.JoinPath()`` (``path.Join``: no ``//``, ``.`` or ``..`` segments) leaves
    ``path`` as it is. Traefik answers 400 when a rewritten path is not: a stripped ``/api//evil.test``
    must not reach the service as the network-path reference ``//evil.test``."""
    if "//" not in path and "/." not in path:
        return True
    segments = path.split("/")[1:]
    last = len(segments) - 1
    return not any(seg in (".", "..") or (not seg and k != last) for k, seg in enumerate(segments))


def _options() -> re2.Options:
    """RE2 as Go's ``regexp.Compile`` (as :mod:`discover.goregex`), with submatches."""
    opts = re2.Options()
    opts.posix_syntax = False
    opts.longest_match = False
    opts.perl_classes = True
    opts.word_boundary = True
    opts.dot_nl = False
    opts.case_sensitive = True
    opts.encoding = re2.Options.Encoding.UTF8
    opts.max_mem = 32 << 20
    opts.log_errors = False
    return opts


_OPTIONS = _options()

# A replacement template, parsed once: literal UTF-8 text, or a group's index (-1: no such group).
Template = tuple[bytes | int, ...]
Spans = list[tuple[int, int]]


def _direct(compiled: object) -> Callable[[bytes, int], Spans] | None:
    """RE2's own ``Match`` on a compiled pattern (about 1 µs where the binding's ``search`` takes 5),
    probed once with a real match and a miss, as :mod:`discover.goregex` does; None when the binding
    changed (then the public ``search`` is used)."""
    try:
        match = compiled._regexp.Match  # type: ignore[attr-defined]
        anchor = re2._re2.RE2.Anchor.UNANCHORED
        probe = re2.compile("b(c)?", _OPTIONS)._regexp.Match
        if probe(anchor, b"abcb", 1, 4)[:2] != [(1, 3), (2, 3)] or probe(anchor, b"a", 0, 1)[0][0] != -1:
            return None
    except Exception:  # noqa: BLE001 (any surprise means: do not use the direct call)
        return None

    def direct(b: bytes, pos: int) -> Spans:
        return match(anchor, b, pos, len(b))  # type: ignore[no-any-return]

    return direct


class GoRe:
    """A Go regex with submatches, on UTF-8 bytes as Go's are: ``matches`` is Go's ``MatchString``,
    ``search`` its ``FindSubmatchIndex``, ``replace_all`` its ``ReplaceAllString``."""

    __slots__ = ("pattern", "matches", "_match", "_search", "groups", "names")

    def __init__(self, pattern: str, option: str) -> None:
        try:
            # Go's rules, and the reason when Go would refuse the pattern; also the memoised matcher.
            self.matches: Callable[[str], bool] = compile_go(pattern).matches
            compiled = re2.compile(pattern, _OPTIONS)
            on_bytes = re2.compile(pattern.encode("utf-8"), _OPTIONS)
        except GoRegexpError as exc:
            raise MiddlewareError(option, f"invalid regex {pattern!r}: {exc}") from None
        except (re2.error, UnicodeEncodeError) as exc:
            raise MiddlewareError(option, f"invalid regex {pattern!r}: {exc}") from None
        self.pattern = pattern
        self.groups: int = compiled.groups
        self.names: dict[str, int] = dict(compiled.groupindex)
        self._match = _direct(compiled)
        self._search = on_bytes.search

    def search(self, b: bytes, pos: int = 0) -> Spans | None:
        """Go's ``FindSubmatchIndex`` from ``pos`` (``^`` still means the start of ``b``): the match's
        (start, end) then each group's ((-1, -1) for a group that took no part)."""
        if self._match is not None:
            spans = self._match(b, pos)
            return spans if spans[0][0] >= 0 else None
        m = self._search(b, pos)
        return None if m is None else [m.span(g) for g in range(self.groups + 1)]

    def find(self, text: str) -> str | None:
        """Go's ``FindString``: the leftmost match's text, or None when there is none."""
        b = text.encode("utf-8", "surrogateescape")
        m = self.search(b)
        return None if m is None else b[m[0][0] : m[0][1]].decode("utf-8", "surrogateescape")

    def template(self, replacement: str) -> Template:
        """``replacement`` parsed as Go's ``Regexp.Expand`` reads it: ``$1``, ``${1}``, ``$name``,
        ``${name}`` (a name is the longest run of letters, digits and ``_``: ``$1x`` is group ``1x``),
        ``$$`` for ``$``; a malformed ``$`` is kept as it is."""
        out: list[bytes | int] = []
        lit: list[str] = []
        rest = replacement
        while True:
            before, dollar, after = rest.partition("$")
            lit.append(before)
            if not dollar:
                break
            if after.startswith("$"):
                lit.append("$")
                rest = after[1:]
                continue
            ref = _extract(after)
            if ref is None:
                lit.append("$")
                rest = after
                continue
            name, rest = ref
            out.append("".join(lit).encode("utf-8", "surrogateescape"))
            lit = []
            out.append(self._group(name))
        out.append("".join(lit).encode("utf-8", "surrogateescape"))
        return tuple(x for x in out if x != b"")

    def _group(self, name: str) -> int:
        if name.isascii() and name.isdigit() and (name == "0" or name[0] != "0") and len(name) <= 8:
            num = int(name)
            return num if num <= self.groups else -1
        return self.names.get(name, -1)

    def replace_all(self, text: str, tpl: Template) -> str:
        """Go's ``ReplaceAllString(text, replacement)``: every non-overlapping match replaced, an empty
        match right after a match ignored, the search moving on by at least one character."""
        b = text.encode("utf-8", "surrogateescape")
        out: list[bytes] = []
        last = pos = 0
        n = len(b)
        while pos <= n:
            m = self.search(b, pos)
            if m is None:
                break
            start, end = m[0]
            out.append(b[last:start])
            if end > last or start == 0:
                out.append(expand(b, m, tpl))
            last = end
            width = _rune_width(b[pos]) if pos < n else 1
            pos = pos + width if pos + width > end else end
        out.append(b[last:])
        return b"".join(out).decode("utf-8", "surrogateescape")


def _rune_width(lead: int) -> int:
    """The length of the UTF-8 sequence starting with byte ``lead`` (1 for an invalid one, as Go's
    ``DecodeRuneInString``)."""
    if lead < 0xC0:
        return 1
    if lead < 0xE0:
        return 2
    return 3 if lead < 0xF0 else 4


def expand(b: bytes, spans: Spans, tpl: Template) -> bytes:
    """A template with the groups of one match (``spans`` from :meth:`GoRe.search`) filled in."""
    parts: list[bytes] = []
    for item in tpl:
        if isinstance(item, bytes):
            parts.append(item)
        elif item >= 0:
            s, e = spans[item]
            if s >= 0:
                parts.append(b[s:e])
    return b"".join(parts)


def _extract(s: str) -> tuple[str, str] | None:
    """Go's ``extract``: the group name after a ``$`` and the rest, or None when malformed."""
    brace = s.startswith("{")
    if brace:
        s = s[1:]
    i = 0
    while i < len(s) and (s[i].isalpha() or s[i].isdigit() or s[i] == "_"):
        i += 1
    if i == 0:
        return None
    name = s[:i]
    if brace:
        if i >= len(s) or s[i] != "}":
            return None
        i += 1
    return name, s[i:]
