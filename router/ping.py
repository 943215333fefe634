"""``ping@internal``: Traefik's health answer, ``200 OK``, then ``terminatingStatusCode`` (503 by default)
once a graceful shutdown began.

The entry points keep serving while the shutdown waits (``lifeCycle.requestAcceptGraceTimeout``, then the
in-flight requests' grace period), so a load balancer in front that polls ``/ping`` sees the shutdown
coming and stops sending before the listeners close. The body is Go's ``http.StatusText`` of the status,
as Traefik writes it.
"""

from __future__ import annotations

from http import HTTPStatus

from router.exchange import Exchange, answer
from router.settings import PingSettings

__all__ = ["PingHandler", "status_text"]


def status_text(status: int) -> str:
    """Go's ``http.StatusText``: the reason phrase, or "" for a status it does not know."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class PingHandler:
    """The exchange handler of ``ping@internal``; :meth:`terminate` flips it for good (the app calls it
    when shutdown begins)."""

    __slots__ = ("_healthy", "_terminating", "terminating")

    def __init__(self, settings: PingSettings) -> None:
        self.terminating = False
        self._healthy = (200, status_text(200).encode())
        code = settings.terminating_status_code
        self._terminating = (code, status_text(code).encode())

    def terminate(self) -> None:
        self.terminating = True

    async def __call__(self, ex: Exchange) -> None:
        status, body = self._terminating if self.terminating else self._healthy
        await answer(ex, status, body)
