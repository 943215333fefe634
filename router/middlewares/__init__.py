"""The middlewares: one module per Traefik type, one registry, chains composed once per configuration.

Each module ``router/middlewares/<module>.py`` has ``build(options, ctx) -> Wrap``: ``options`` is the
type's frozen dataclass (:mod:`discover.middlewares`), already type-checked when the configuration was
read; ``build`` does the rest of the checking (regexes compiled with RE2, networks parsed, files read) and
raises :class:`MiddlewareError` naming the option when one is unusable. That happens when a configuration
is compiled, off the request path: a router whose middleware cannot be built is not routed, with one line
naming router, middleware and option, and every other router is served.

A ``Wrap`` takes the next handler and returns the handler that runs this middleware first; the object
``build`` returns holds whatever state the middleware keeps (rate-limit buckets, a circuit breaker's
counters), and is kept across reloads while the middleware's options do not change (see
:func:`build_chain`), unless its module says ``REUSE = False``. Handlers take an
:class:`~router.exchange.Exchange`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from discover.model import DynamicConfig, Middleware
from router.exchange import Exchange, Handler

__all__ = [
    "MODULES",
    "Before",
    "BuildContext",
    "MiddlewareError",
    "Wrap",
    "build_chain",
    "compose",
    "implemented",
    "split",
]

log = logging.getLogger("dockroute.router")

Wrap = Callable[[Handler], Handler]
# A request-side step: None to go on at once; otherwise an awaitable whose result says whether to go on
# (True: after a wait, as rateLimit's) or not (it answered: ``answer(...)`` returns None).
Step = Callable[[Exchange], Awaitable[Any] | None]


class Before:
    """A middleware that only acts before the request goes on (changes it, wraps ``ex.sink``, or answers
    instead): a plain function rather than a coroutine. :func:`build_chain` runs consecutive ones in one
    loop inside one coroutine, so a chain of them costs a call each, not an awaited frame each (the
    request path's largest cost after the exchange itself). Used alone, it is a ``Wrap`` like any other.
    Extra attributes (``limiter``) are for tests and introspection."""

    def __init__(self, step: Step, **extra: Any) -> None:
        self.step = step
        self.__dict__.update(extra)

    def __call__(self, next_handler: Handler) -> Handler:
        return _fused((self.step,), next_handler)


def _fused(steps: tuple[Step, ...], next_handler: Handler) -> Handler:
    async def before(ex: Exchange) -> None:
        for step in steps:
            pending = step(ex)
            if pending is not None and not await pending:
                return
        await next_handler(ex)

    before.steps = steps  # type: ignore[attr-defined]  # for split()
    before.after = next_handler  # type: ignore[attr-defined]
    return before


def split(handler: Handler) -> tuple[tuple[Step, ...], Handler]:
    """A chain's leading :class:`Before` steps and the handler after them (no steps: ``handler``), so
    that the route's target runs them in its own frame: one coroutine less per request."""
    return getattr(handler, "steps", ()), getattr(handler, "after", handler)


# Traefik's type name → the module implementing it (router/middlewares/<module>.py). A module that does
# not exist (yet) makes its type unsupported: routers using it are refused by name, never served without.
MODULES: Mapping[str, str] = {
    "addPrefix": "add_prefix",
    "stripPrefix": "strip_prefix",
    "stripPrefixRegex": "strip_prefix_regex",
    "replacePath": "replace_path",
    "replacePathRegex": "replace_path_regex",
    "redirectScheme": "redirect_scheme",
    "redirectRegex": "redirect_regex",
    "encodedCharacters": "encoded_characters",
    "headers": "headers",
    "contentType": "content_type",
    "basicAuth": "basic_auth",
    "digestAuth": "digest_auth",
    "forwardAuth": "forward_auth",
    "ipAllowList": "ip_allow_list",
    "ipWhiteList": "ip_allow_list",
    "rateLimit": "rate_limit",
    "inFlightReq": "in_flight_req",
    "retry": "retry",
    "circuitBreaker": "circuit_breaker",
    "buffering": "buffering",
    "errors": "errors",
    "compress": "compress",
    "cache": "cache",
}


class MiddlewareError(ValueError):
    """An option a middleware cannot work with: ``option`` is Traefik's name (``regex``, ``users[2]``)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


@dataclass
class BuildContext:
    """What ``build`` may use besides its options."""

    name: str  # the middleware's qualified name (``auth@file``)
    router: str  # the router the chain is built for
    config: DynamicConfig
    # service name → the final handler serving it (``errors`` fetches its pages through one); None when
    # the service does not exist or cannot be served.
    service_handler: Callable[[str], Handler | None] = lambda name: None
    # free slots for a module's own state keyed by what it needs (shared by routers of one compile)
    shared: dict[Any, Any] = field(default_factory=dict)


def _module(mtype: str) -> Any | None:
    name = MODULES.get(mtype)
    if name is None:
        return None
    try:
        return importlib.import_module(f"router.middlewares.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"router.middlewares.{name}":
            raise
        return None


def implemented(mtype: str) -> bool:
    """Whether dockroute has this middleware type."""
    return _module(mtype) is not None


# A built middleware kept across compiles: (router, the chain's middleware names, position in it) → (type,
# options, built object). A module with ``REUSE = False`` is built again on every compile (its object
# holds references into the configuration, e.g. the service ``errors`` fetches pages from).
Built = dict[tuple[str, tuple[str, ...], int], tuple[str, Any, Any]]


def build_chain(
    names: tuple[str, ...],
    final: Handler,
    ctx: BuildContext,
    previous: Built | None,
    built: Built,
    errors: dict[str, str] | None = None,
) -> Handler | str:
    """The handler running middlewares ``names`` (qualified) in order, then ``final``; or why it cannot
    be built (naming the middleware, and its option when one is at fault). ``chain`` middlewares are
    expanded in place. ``previous``/``built`` carry the built objects over reloads: one whose type and
    options did not change is reused with its state. ``errors`` (when given) receives why a middleware
    could not be built, by name (for the API)."""
    flat = _expand(names, ctx.config, ())
    if isinstance(flat, str):
        return flat
    wraps: list[Wrap] = []
    chain = tuple(m.name for m in flat)
    for position, mw in enumerate(flat):
        module = _module(mw.type)
        if module is None:
            return f"middleware {mw.name} ({mw.type}) is not supported"
        # One object per place in a router's chain, as Traefik builds one per router and entry point: a
        # router whose entry points have different middlewares has one rate limiter per chain, and a
        # middleware listed twice counts twice, before and after a reload alike.
        key = (ctx.router, chain, position)
        old = (previous or {}).get(key)
        reusable = getattr(module, "REUSE", True)
        if reusable and old is not None and old[0] == mw.type and old[1] == mw.options:
            obj = old[2]
        else:
            try:
                obj = module.build(
                    mw.options, BuildContext(mw.name, ctx.router, ctx.config, ctx.service_handler, ctx.shared)
                )
            except MiddlewareError as exc:
                why = f"option {exc.option}: {exc.message}"
                if errors is not None:
                    errors[mw.name] = why
                return f"middleware {mw.name} ({mw.type}): {why}"
            except Exception as exc:  # a bug in one middleware must not fail every router
                log.debug("building middleware %s", mw.name, exc_info=True)
                why = f"could not be built ({type(exc).__name__}: {exc})"
                if errors is not None:
                    errors[mw.name] = why
                return f"middleware {mw.name} ({mw.type}) {why}"
        built[key] = (mw.type, mw.options, obj)
        wraps.append(obj)
    return compose(wraps, final)


def compose(wraps: list[Wrap], final: Handler) -> Handler:
    """The handler running ``wraps`` in order, then ``final``: consecutive :class:`Before` steps are fused
    into one handler."""
    handler = final
    steps: list[Step] = []
    for wrap in reversed(wraps):
        if isinstance(wrap, Before):
            steps.insert(0, wrap.step)
            continue
        if steps:
            handler, steps = _fused(tuple(steps), handler), []
        handler = wrap(handler)
    return _fused(tuple(steps), handler) if steps else handler


def _expand(names: tuple[str, ...], cfg: DynamicConfig, seen: tuple[str, ...]) -> list[Middleware] | str:
    """``names`` resolved to middlewares, chains replaced by what they hold; or why not (missing, broken,
    a chain that contains itself)."""
    out: list[Middleware] = []
    for name in names:
        mw = cfg.middlewares.get(name)
        if mw is None:
            return f"middleware {name} does not exist"
        if mw.error:
            return f"middleware {name} ({mw.type}) is unusable: {mw.error}"
        if mw.type != "chain":
            out.append(mw)
            continue
        if name in seen:
            return f"middleware {name} (chain) contains itself"
        inner = _expand(mw.options.middlewares, cfg, (*seen, name))
        if isinstance(inner, str):
            return f"{inner} (in chain {name})"
        out.extend(inner)
    return out
