"""Static files served by the proxy itself: ``http.services.<name>.static`` (see :class:`StaticFiles`)."""

from __future__ import annotations

from typing import Any

from discover.model import StaticFiles

__all__ = ["StaticError", "build_static"]


class StaticError(ValueError):
    """A static service that cannot be served (its root does not exist, ...): the message says why."""


def build_static(service: str, router: str, spec: StaticFiles) -> Any:
    """The target serving ``spec`` for ``router``: ``handle(...)`` like every target (the fast path, with
    sendfile) and ``serve(ex)`` at the end of a middleware chain. Raises :class:`StaticError`. Runs at
    compile time, off the request path."""
    raise StaticError("static services are not supported yet")
