"""``providers.providersThrottleDuration``: how often one provider's configuration may be applied.

Traefik's semantics, per provider: a configuration is passed on at once when none was passed on within the
last ``duration`` seconds; one arriving sooner waits for the end of that window, and if several arrive
meanwhile only the newest is passed on (the others were never applied, so nothing is lost but churn). A
duration of 0 passes everything on at once. One provider's throttle never delays another's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class _Handle(Protocol):
    def cancel(self) -> None: ...


# (delay in seconds, callback) → something cancellable; the event loop's call_later by default.
Scheduler = Callable[[float, Callable[[], None]], _Handle]


@dataclass
class _State(Generic[T]):
    passed_at: float | None = None  # clock time the last configuration was passed on
    pending: T | None = None
    has_pending: bool = False
    timer: _Handle | None = None


class ProviderThrottle(Generic[T]):
    """Coalesces each provider's configurations to at most one per ``duration`` seconds (newest wins)."""

    def __init__(
        self,
        duration: float,
        apply: Callable[[str, T], None],
        clock: Callable[[], float] | None = None,
        schedule: Scheduler | None = None,
    ) -> None:
        self.duration = max(0.0, duration)
        self._apply = apply
        self._clock = clock
        self._schedule = schedule
        self._states: dict[str, _State[T]] = {}

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _later(self, delay: float, callback: Callable[[], None]) -> _Handle:
        if self._schedule is not None:
            return self._schedule(delay, callback)
        return asyncio.get_running_loop().call_later(delay, callback)

    def offer(self, provider: str, cfg: T) -> None:
        """A new configuration from ``provider``: passed on now, or kept as the newest for later."""
        if self.duration <= 0:
            self._apply(provider, cfg)
            return
        state = self._states.setdefault(provider, _State())
        now = self._now()
        if state.timer is None and (state.passed_at is None or now - state.passed_at >= self.duration):
            self._pass(provider, state, cfg, now)
            return
        state.pending, state.has_pending = cfg, True
        if state.timer is None:
            assert state.passed_at is not None
            wait = state.passed_at + self.duration - now
            state.timer = self._later(max(0.0, wait), lambda: self._flush(provider))

    def _pass(self, provider: str, state: _State[T], cfg: T, now: float) -> None:
        state.passed_at = now
        self._apply(provider, cfg)

    def _flush(self, provider: str) -> None:
        state = self._states[provider]
        state.timer = None
        if not state.has_pending:
            return
        cfg = state.pending
        state.pending, state.has_pending = None, False
        self._pass(provider, state, cfg, self._now())  # type: ignore[arg-type]

    def close(self) -> None:
        """Forget what is waiting (shutdown)."""
        for state in self._states.values():
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
            state.pending, state.has_pending = None, False
