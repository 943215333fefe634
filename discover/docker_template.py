"""Traefik's ``defaultRule`` template for Docker containers: the small part of Go's ``text/template`` that
default rules use (``Host(`{{ normalize .Name }}`)``), and Traefik's ``normalize`` function.

Kept apart from the label logic because it is a language of its own: a tokenizer, a parser for pipelines
and an evaluator. Anything beyond the supported forms raises :class:`TemplateError`, so a default rule is
either rendered exactly as Traefik would or refused with a message saying what is supported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from discover.goexpr import GoExprError, decode_go_string

__all__ = ["RuleTemplate", "TemplateError", "normalize"]


def normalize(name: str) -> str:
    """Traefik's ``provider.Normalize``: every run of characters that are not letters or digits → ``-``,
    leading and trailing ones dropped (``web_blog`` → ``web-blog``)."""
    return "-".join(p for p in re.split(r"[^\w]|_", name) if p)


class TemplateError(ValueError):
    """A default rule that uses more of Go's template language than is implemented here."""


_SUPPORTED_FORMS = (
    'supported: {{ .Name }}, {{ .ContainerName }}, {{ normalize .Name }}, {{ index .Labels "key" }}, '
    '{{ normalize (index .Labels "key") }} and pipelines of these'
)

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<raw>`[^`]*`)
    | (?P<str>"(?:[^"\\\n]|\\.)*")
    | (?P<punct>[()|])
    )""",
    re.VERBOSE,
)

_FIELDS = ("Name", "ContainerName", "Labels")
_FUNCS: dict[str, int] = {"normalize": 1, "index": 2}


def _go_string(lit: str) -> str:
    """A string argument: Go's literal syntax, decoded by the one decoder rules and constraints use."""
    try:
        return decode_go_string(lit)
    except GoExprError as exc:
        raise TemplateError(f"string {lit}: {exc.message}") from None


# An expression: ("field", name) | ("str", value) | ("call", func, [args])
Expr = tuple[Any, ...]


class _TemplateParser:
    def __init__(self, action: str) -> None:
        self.action = action
        self.toks: list[tuple[str, str]] = []
        pos = 0
        while pos < len(action):
            if not action[pos:].strip():
                break
            m = _TOKEN.match(action, pos)
            if m is None or m.end() == pos:
                raise TemplateError(f"unsupported template action {{{{{action}}}}}; {_SUPPORTED_FORMS}")
            kind = m.lastgroup or ""
            self.toks.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def fail(self) -> TemplateError:
        return TemplateError(f"unsupported template action {{{{{self.action}}}}}; {_SUPPORTED_FORMS}")

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def pipeline(self) -> Expr:
        expr = self.command(None)
        while self.peek() == ("punct", "|"):
            self.i += 1
            expr = self.command(expr)
        return expr

    def command(self, piped: Expr | None) -> Expr:
        tok = self.peek()
        if tok is None:
            raise self.fail()
        if tok[0] == "ident":
            func = tok[1]
            if func not in _FUNCS:
                raise TemplateError(f"unsupported template function {func!r}; {_SUPPORTED_FORMS}")
            self.i += 1
            args = []
            while (t := self.peek()) is not None and t != ("punct", "|") and t != ("punct", ")"):
                args.append(self.operand())
            if piped is not None:
                args.append(piped)
            if len(args) != _FUNCS[func]:
                raise TemplateError(f"{func} takes {_FUNCS[func]} argument(s) in {{{{{self.action}}}}}")
            return ("call", func, args)
        if piped is not None:
            raise self.fail()
        return self.operand()

    def operand(self) -> Expr:
        tok = self.peek()
        if tok is None:
            raise self.fail()
        kind, text = tok
        self.i += 1
        if kind == "field":
            if text[1:] not in _FIELDS:
                raise TemplateError(f"unknown field {text} in {{{{{self.action}}}}}; {_SUPPORTED_FORMS}")
            return ("field", text[1:])
        if kind in ("raw", "str"):
            return ("str", _go_string(text))
        if tok == ("punct", "("):
            inner = self.pipeline()
            if self.peek() != ("punct", ")"):
                raise self.fail()
            self.i += 1
            return inner
        raise self.fail()


class RuleTemplate:
    """Traefik's ``defaultRule``: literal text with ``{{ ... }}`` actions over ``.Name`` (the implicit
    name), ``.ContainerName`` and ``.Labels``, with the functions ``normalize`` and ``index``.

    Go's ``{{-`` / ``-}}`` whitespace trimming is honoured. Anything else raises :class:`TemplateError`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: list[str | Expr] = []
        pos = 0
        while True:
            start = source.find("{{", pos)
            if start < 0:
                self._text(source[pos:])
                break
            end = source.find("}}", start + 2)
            if end < 0:
                raise TemplateError(f"unclosed action in template {source!r}")
            text = source[pos:start]
            action = source[start + 2 : end]
            if action.startswith("- "):
                text = text.rstrip()
                action = action[2:]
            trim_after = action.endswith(" -")
            if trim_after:
                action = action[:-2]
            self._text(text)
            if action.strip().startswith("/*"):
                pass  # a comment
            else:
                parser = _TemplateParser(action)
                expr = parser.pipeline()
                if parser.peek() is not None:
                    raise parser.fail()
                self.parts.append(expr)
            pos = end + 2
            if trim_after:
                while pos < len(source) and source[pos].isspace():
                    pos += 1

    def _text(self, text: str) -> None:
        if text:
            self.parts.append(text)

    def render(self, name: str, container_name: str, labels: Mapping[str, str]) -> str:
        env = {"Name": name, "ContainerName": container_name, "Labels": labels}
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = self._eval(part, env)
            if not isinstance(value, str):
                raise TemplateError(f'template {self.source!r} prints a map (use index .Labels "key")')
            out.append(value)
        return "".join(out)

    def _eval(self, expr: Expr, env: Mapping[str, Any]) -> Any:
        if expr[0] == "field":
            return env[expr[1]]
        if expr[0] == "str":
            return expr[1]
        _, func, args = expr
        values = [self._eval(a, env) for a in args]
        if func == "normalize":
            if not isinstance(values[0], str):
                raise TemplateError("normalize takes a string")
            return normalize(values[0])
        # index
        if not isinstance(values[0], Mapping) or not isinstance(values[1], str):
            raise TemplateError("index takes a map (.Labels) and a string key")
        return values[0].get(values[1], "")
