"""Passive health: taking a server out of rotation after failed requests, without probing it.

With ``loadBalancer.passiveHealthCheck`` (Traefik v3.5+, pkg/healthcheck PassiveServiceHealthChecker): a
request fails when the server could not be reached or answered with a status >= 500 (also the 502/504 the
proxy answers when the server broke the connection or did not answer in time); any other answer clears the
server's failures. ``maxFailedAttempts`` failures within ``failureWindow`` take it out: for
``failureWindow`` when the service has no active ``healthCheck``, else until the active check next passes
(Traefik leaves recovery to the active check then). Failures while it is out do not prolong it.

Without the key (dockroute's behaviour before strategies, kept): only a failed connection counts, one is
enough, and the server is out for :data:`router.balancer.PASSIVE_COOLDOWN` seconds, prolonged by each
further failed connection; answers never take a server out.

The state lives on the server (``Upstream.down_until``, ``failures``, ``passive_why``); ``down_until`` is
:data:`PENDING` while failures are counted but the server is still in, so that a request that succeeds
clears everything with one test of ``down_until`` (``ServiceBalancer.mark_ok``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from discover.model import PassiveHealthCheck

log = logging.getLogger("dockroute.balancer")

PENDING = -1.0  # down_until while failures are counted: in rotation (<= now), but not clean (truthy)
UNTIL_CHECK = math.inf  # down_until when only the next passing active check brings it back


class PassiveHealth:
    """One service's passive health rules."""

    __slots__ = ("window", "max_failed", "answers", "until_check", "configured")

    def __init__(self, spec: PassiveHealthCheck | None, cooldown: float, active: bool) -> None:
        self.configured = spec is not None
        if spec is None:
            self.window, self.max_failed, self.answers, self.until_check = cooldown, 1, False, False
        else:
            self.window = spec.failure_window
            self.max_failed = max(1, spec.max_failed_attempts)  # Traefik: 0 or less is down at the first
            self.answers = True  # 5xx answers count
            self.until_check = active

    def failed(self, service: str, up: Any, now: float, why: str) -> None:
        """A request to ``up`` failed (``why``): count it, and take the server out when it is the
        ``max_failed``-th within the window."""
        if up.down_until > now:
            if self.configured:
                return  # already out: Traefik keeps its timer
            up.down_until = now + self.window  # without the key: each failed connection prolongs it
            return
        cut = now - self.window
        failures = [t for t in up.failures or () if t > cut]
        failures.append(now)
        if len(failures) < self.max_failed:
            up.failures = failures
            up.down_until = PENDING
            return
        up.failures = None
        if not self.configured:
            up.passive_why = f"connection failed: {why}"
            up.down_until = now + self.window
            log.warning("service %s: server %s failed to connect; out for %gs", service, up.url, self.window)
            return
        up.passive_why = f"{len(failures)} failures in {self.window:g}s, last: {why}"
        if self.until_check:
            up.down_until = UNTIL_CHECK
            back = "until its active health check passes"
        else:
            up.down_until = now + self.window
            back = f"for {self.window:g}s"
        log.warning("service %s: server %s is out %s (passive: %s)", service, up.url, back, up.passive_why)
