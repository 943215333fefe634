"""router.body_pace: Apache mod_reqtimeout's body rule (20 s + 1 s per 500 bytes) and readTimeout, in process
with the allowance shortened so each case takes a fraction of a second."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from router import body_pace
from router.body_pace import paced


@pytest.fixture(autouse=True)
def short_allowance(monkeypatch):
    monkeypatch.setattr(body_pace, "ALLOWANCE", 0.1)


async def test_a_stalled_body_is_cut_after_the_allowance():
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="slower than 500 bytes/s"), paced(None) as pace:
        pace.received = 10  # 0.02 s of credit
        await asyncio.sleep(60)
    # At 0.12 s; the bound is wide so a loaded machine (pytest -n 2) cannot flake it, and far under 60 s.
    assert 0.1 <= time.monotonic() - t0 < 10


async def test_a_body_that_keeps_the_pace_is_never_cut():
    with paced(None) as pace:
        for _ in range(30):  # 0.6 s, six times the allowance, at 25,000 bytes/s
            await asyncio.sleep(0.02)
            pace.received += 500
    assert pace.why is None


async def test_read_timeout_cuts_even_a_fast_body():
    with pytest.raises(TimeoutError, match="readTimeout"), paced(0.05) as pace:
        pace.received = 1 << 30
        await asyncio.sleep(5)


async def test_another_cancellation_passes_and_a_cut_leaves_later_timeouts_working():
    async def cancelled() -> None:
        with paced(None):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(cancelled())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    with pytest.raises(TimeoutError), paced(None):
        await asyncio.sleep(5)
    # The cut was taken back from the task's cancellation count: an ordinary timeout still fires as one.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await asyncio.sleep(5)
    assert asyncio.current_task().cancelling() == 0


async def test_an_outside_cancel_in_the_turn_the_pace_fires_is_not_lost(monkeypatch):
    """aiohttp cancels the handler of a client that left; if the pace cuts the body in that same loop turn,
    the task must still end cancelled (as with asyncio.timeout), not turn the outside cancel into a
    TimeoutError that the handler would answer."""
    monkeypatch.setattr(body_pace, "ALLOWANCE", 0.0)  # the pace fires in the next loop turn
    paces = []

    async def reading() -> None:
        with paced(None) as pace:
            paces.append(pace)
            asyncio.get_running_loop().call_soon(task.cancel)  # the outside cancel, same next turn
            await asyncio.sleep(5)

    task = asyncio.ensure_future(reading())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert paces[0].why is not None  # the pace did fire: both cancellations met


async def test_a_body_already_whole_sets_no_timer():
    """A body that came whole with its head (``content.is_eof()`` before the first read) cannot stall: no
    timer is set for it, even with a readTimeout that has long run out by the time it is read."""
    whole = SimpleNamespace(is_eof=lambda: True)
    with paced(0.01, whole) as pace:
        await asyncio.sleep(0.1)
        pace.received += 10
    assert pace.why is None and pace._handle is None
    on_its_way = SimpleNamespace(is_eof=lambda: False)
    with pytest.raises(TimeoutError, match="readTimeout"), paced(0.01, on_its_way):
        await asyncio.sleep(5)
