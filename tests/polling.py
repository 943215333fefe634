"""Waiting for a condition in async tests: poll it, never sleep a fixed time as a way to synchronise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_for(cond: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``cond`` (sync or async) until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = cond()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)


def until(condition: Callable[[], object], timeout: float = 10.0) -> Any:
    """:func:`wait_for` at a finer interval, for in-process tests whose conditions turn within a loop turn."""
    return wait_for(condition, timeout=timeout, interval=0.005)
