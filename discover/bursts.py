"""Waiting for a burst of provider events to settle, so that the burst costs one rebuild.

The Docker and Kubernetes providers both wake on every event; ``docker compose up`` of 25 services, or a
Deployment rolling 30 pods, would otherwise rebuild the whole configuration once per event. A burst is a
run of events less than ``quiet`` apart: the rebuild happens when the source falls quiet, or after
``max_wait`` at most, so a long burst still routes its first members while the rest arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def _never() -> bool:
    return False


async def settle(
    wake: asyncio.Event,
    quiet: float,
    max_wait: float,
    urgent: Callable[[], bool] = _never,
    debounce: float = 0.0,
) -> None:
    """Return once no event set ``wake`` for ``quiet`` seconds, or ``max_wait`` after the call; as soon as
    ``urgent()`` says so, after ``debounce`` only (an event that takes a backend away: requests sent to it
    fail while the burst goes on). ``wake`` is clear on return."""
    loop = asyncio.get_running_loop()
    first = loop.time()
    while True:
        wake.clear()
        if urgent():
            await asyncio.sleep(debounce)
            break
        remaining = first + max_wait - loop.time()
        if remaining <= 0:
            break
        try:
            async with asyncio.timeout(min(quiet, remaining)):
                await wake.wait()
        except TimeoutError:
            break  # quiet: the burst is over
    wake.clear()
