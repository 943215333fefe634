"""providersThrottleDuration: per provider, the first configuration passes at once, later ones within the
window are coalesced and the newest passes when it ends (Traefik's semantics)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dockroute.throttle import ProviderThrottle


class FakeTimers:
    """A clock and a scheduler the test advances by hand: no sleeping, fully deterministic."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[tuple[float, Callable[[], None], list[bool]]] = []

    def clock(self) -> float:
        return self.now

    def schedule(self, delay: float, callback: Callable[[], None]):
        cancelled = [False]
        self.pending.append((self.now + delay, callback, cancelled))

        class Handle:
            def cancel(self) -> None:
                cancelled[0] = True

        return Handle()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [p for p in self.pending if p[0] <= self.now]
        self.pending = [p for p in self.pending if p[0] > self.now]
        for _, callback, cancelled in sorted(due, key=lambda p: p[0]):
            if not cancelled[0]:
                callback()


def make(duration: float) -> tuple[ProviderThrottle[str], FakeTimers, list[tuple[str, str]]]:
    timers = FakeTimers()
    applied: list[tuple[str, str]] = []
    throttle: ProviderThrottle[str] = ProviderThrottle(
        duration, lambda p, c: applied.append((p, c)), clock=timers.clock, schedule=timers.schedule
    )
    return throttle, timers, applied


def test_first_config_passes_at_once_then_newest_at_end_of_window():
    throttle, timers, applied = make(2.0)
    throttle.offer("file", "a")
    assert applied == [("file", "a")]
    timers.advance(0.5)
    throttle.offer("file", "b")
    timers.advance(0.5)
    throttle.offer("file", "c")
    assert applied == [("file", "a")]  # b and c wait for the window to end
    timers.advance(0.99)
    assert applied == [("file", "a")]
    timers.advance(0.01)  # 2 s after "a" was applied
    assert applied == [("file", "a"), ("file", "c")]  # only the newest; "b" is never applied
    # the window restarts when "c" was applied: "d" within it waits, then passes
    timers.advance(1.0)
    throttle.offer("file", "d")
    assert applied[-1] == ("file", "c")
    timers.advance(1.0)
    assert applied[-1] == ("file", "d")


def test_after_a_quiet_window_a_config_passes_at_once():
    throttle, timers, applied = make(2.0)
    throttle.offer("file", "a")
    timers.advance(2.5)
    throttle.offer("file", "b")
    assert applied == [("file", "a"), ("file", "b")]


def test_providers_are_throttled_independently():
    throttle, timers, applied = make(2.0)
    throttle.offer("file", "f1")
    throttle.offer("docker", "d1")  # another provider's first config is not delayed by file's
    throttle.offer("file", "f2")
    assert applied == [("file", "f1"), ("docker", "d1")]
    timers.advance(2.0)
    assert applied == [("file", "f1"), ("docker", "d1"), ("file", "f2")]


def test_zero_disables_the_throttle():
    throttle, timers, applied = make(0.0)
    for c in "abc":
        throttle.offer("file", c)
    assert applied == [("file", "a"), ("file", "b"), ("file", "c")]
    assert timers.pending == []


def test_close_drops_what_waits():
    throttle, timers, applied = make(2.0)
    throttle.offer("file", "a")
    throttle.offer("file", "b")
    throttle.close()
    timers.advance(5.0)
    assert applied == [("file", "a")]


async def test_on_the_event_loop_with_a_short_window():
    """The default clock and scheduler are the running loop's; polled, not slept."""
    applied: list[str] = []
    throttle: ProviderThrottle[str] = ProviderThrottle(0.2, lambda p, c: applied.append(c))
    loop = asyncio.get_running_loop()
    start = loop.time()
    throttle.offer("file", "a")
    throttle.offer("file", "b")
    throttle.offer("file", "c")
    assert applied == ["a"]
    while len(applied) < 2:
        assert loop.time() - start < 5, "the newest configuration never passed"
        await asyncio.sleep(0.01)
    assert applied == ["a", "c"]
    assert loop.time() - start >= 0.2 - 0.01
