"""Each server's state and why, for the API: ``serverStates`` beside Traefik's ``serverStatus``.

Traefik's ``serverStatus`` (URL → ``UP``/``DOWN``) is kept as it is, for tools written against Traefik;
``serverStates`` says why a server is down, read live like it:

- ``DOWN: unreachable: ...`` — a provider knows the proxy cannot reach it (another Docker network);
- ``DOWN: active check failed: status 500`` — its ``healthCheck`` fails (the last probe's reason);
- ``DOWN: passive: 3 failures in 10s, last: status 502, back at 2026-01-01T12:00:10Z`` — taken out by
  passive health (:mod:`router.passive_health`), with when it comes back (or ``back when the active
  check passes``);
- ``UP`` otherwise.
"""

from __future__ import annotations

import time
from typing import Any

from router.passive_health import UNTIL_CHECK

UP, DOWN = "UP", "DOWN"


def is_up(u: Any, now: float) -> bool:
    """A server is up unless its active check fails, it is passively down (``Upstream.is_up``), or a
    provider knows it cannot be reached."""
    return not u.unreachable and u.is_up(now)


def server_state(u: Any, now: float, wall: float | None = None) -> str:
    """``UP`` or ``DOWN: <why>`` for server ``u`` at monotonic time ``now`` (``wall``: the same instant
    on the wall clock, for the time a passively-down server comes back)."""
    if u.unreachable:
        return f"{DOWN}: unreachable: {u.unreachable}"
    if not u.healthy:
        return f"{DOWN}: active check failed: {u.why or 'no answer'}"
    if u.down_until > now:
        if u.down_until == UNTIL_CHECK:
            back = "back when the active check passes"
        else:
            at = (time.time() if wall is None else wall) + (u.down_until - now)
            back = "back at " + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at + 0.5))
        return f"{DOWN}: passive: {u.passive_why}, {back}"
    return UP
