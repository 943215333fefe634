"""``prometheus@internal``: the metrics in Prometheus's text format, at whatever path its router sends.

The counters are copied on the loop (:meth:`router.metrics.Metrics.snapshot`, well under a millisecond for
thousands of series), then summed and written out by ``prometheus_client`` in a worker thread with the
process collector's ``/proc`` reads, so that a scrape of a big configuration never stalls the requests the
loop is serving (docs/metrics.md has the timings).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, ProcessCollector, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from router.exchange import Exchange, Handler, answer
from router.metrics import Metrics, Snapshot, families

__all__ = ["prometheus_handler", "render"]

_PROCESS = ProcessCollector(registry=None)  # process_cpu_seconds_total & co., as Traefik's own


class _Frozen(Collector):
    """The families of one snapshot, plus the process's, as a collector for ``generate_latest``."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        yield from _PROCESS.collect()
        yield from families(self.snap)


def render(snap: Snapshot) -> bytes:
    """The exposition text of a snapshot (reads only ``snap``: safe in a worker thread)."""
    return generate_latest(_Frozen(snap))


def prometheus_handler(metrics: Metrics) -> Handler:
    """The exchange handler of ``prometheus@internal`` over ``metrics``."""

    async def serve(ex: Exchange) -> None:
        snap = metrics.snapshot()
        body = await asyncio.get_running_loop().run_in_executor(None, render, snap)
        await answer(ex, 200, body, content_type=CONTENT_TYPE_LATEST)

    return serve
