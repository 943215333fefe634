"""CORS for the ``headers`` middleware, as Traefik does it: the preflight answered by the proxy, and
the ``Access-Control-*`` response headers on every other answer.

Everything that does not depend on the request is joined when the middleware is built; a request costs
a dict lookup for its ``Origin`` (and RE2 matches when ``accessControlAllowOriginListRegex`` is set).

The origin echo rules (Traefik's ``matchOrigin``): the list is walked in order; an entry equal to the
``Origin`` echoes it; a ``*`` entry answers ``*``, or the request's own ``Origin`` when credentials are
allowed (a browser refuses ``*`` with credentials); failing the list, the first regex that matches
echoes the ``Origin``. No match: no ``Access-Control-Allow-Origin`` at all.
"""

from __future__ import annotations

from discover.goregex import GoRegexpError, compile_go
from discover.middlewares.headers import Headers
from router.exchange import Headers as ResponseHeaders
from router.middlewares import MiddlewareError

__all__ = ["Cors"]


class Cors:
    """The CORS part of one ``headers`` middleware, precomputed."""

    __slots__ = (
        "credentials",
        "exact",
        "star",
        "regexes",
        "allow_headers",
        "echo_request_headers",
        "allow_methods",
        "echo_request_method",
        "max_age",
        "expose",
        "vary",
    )

    def __init__(self, o: Headers) -> None:
        self.credentials = o.access_control_allow_credentials
        origins = o.access_control_allow_origin_list
        star = origins.index("*") if "*" in origins else len(origins)
        self.exact = frozenset(origins[:star])  # entries met before the first "*"
        self.star = star < len(origins)
        regexes = []
        for i, pattern in enumerate(o.access_control_allow_origin_list_regex):
            try:
                regexes.append(compile_go(pattern).matches)
            except GoRegexpError as exc:
                raise MiddlewareError(f"accessControlAllowOriginListRegex[{i}]", str(exc)) from None
        self.regexes = tuple(regexes)
        headers, methods = o.access_control_allow_headers, o.access_control_allow_methods
        self.echo_request_headers = "*" in headers and self.credentials
        self.allow_headers = ",".join(headers)
        self.echo_request_method = "*" in methods and self.credentials
        self.allow_methods = ",".join(methods)
        self.max_age = None if o.access_control_max_age is None else str(o.access_control_max_age)
        expose = o.access_control_expose_headers
        # "*" means every header only without credentials: with them Traefik sends no list at all
        self.expose = ",".join(expose) if expose and not ("*" in expose and self.credentials) else ""
        self.vary = o.add_vary_header

    def match(self, origin: str) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None: not allowed."""
        if origin in self.exact:
            return origin
        if self.star:
            return origin if self.credentials else "*"
        for matches in self.regexes:
            if matches(origin):
                return origin
        return None

    def preflight(self, origin: str, method: str, request_headers: str | None) -> ResponseHeaders:
        """The headers of the proxy's own answer to a preflight (in Traefik's order)."""
        out = ResponseHeaders()
        if self.credentials:
            out["Access-Control-Allow-Credentials"] = "true"
        if self.echo_request_headers:
            if request_headers:
                out["Access-Control-Allow-Headers"] = request_headers
        elif self.allow_headers:
            out["Access-Control-Allow-Headers"] = self.allow_headers
        if self.echo_request_method:
            out["Access-Control-Allow-Methods"] = method
        elif self.allow_methods:
            out["Access-Control-Allow-Methods"] = self.allow_methods
        allowed = self.match(origin)
        if allowed is not None:
            out["Access-Control-Allow-Origin"] = allowed
        if self.max_age is not None:
            out["Access-Control-Max-Age"] = self.max_age
        if self.expose:
            out["Access-Control-Expose-Headers"] = self.expose
        return out

    def respond(self, headers: ResponseHeaders, origin: str) -> None:
        """Add the CORS headers to an answer for a request from ``origin`` ("" when it sent none)."""
        allowed = self.match(origin)
        if allowed is not None:
            headers["Access-Control-Allow-Origin"] = allowed
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        if self.expose:
            headers["Access-Control-Expose-Headers"] = self.expose
        if self.vary:
            # Traefik's rule, to the letter: the first Vary value, "Origin" appended unless it is it
            vary = headers.get("Vary", "")
            if vary != "Origin":
                headers["Vary"] = f"{vary},Origin" if vary else "Origin"
