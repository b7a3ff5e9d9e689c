"""Throughput history: jobs that ended per routing key per minute, kept in Redis for an hour.

A listener counts ``succeeded`` and ``dead`` events in memory (cheap, on the hot path);
a helper loop adds the counts to ``bananas:throughput:{minute}`` every few seconds, so
the whole fleet's history survives any restart of a worker or of the dashboard, and a
chart of the last minutes is one small read (docs/DASHBOARD.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from bananas.aio import raise_if_cancelling
from bananas.events import EventKind, JobEvent
from bananas.redis.backoff import is_connection_error
from bananas.redis.broker import Broker

log = logging.getLogger("bananas.worker")

#: How long a minute's counts are kept.
HISTORY_SECONDS = 3600
#: How often counts are added to Redis.
FLUSH_SECONDS = 5.0


class Throughput:
    KINDS = (EventKind.SUCCEEDED, EventKind.DEAD)

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[tuple[int, str]] = Counter()

    def observe(self, event: JobEvent) -> None:
        if event.applied:
            self._counts[(int(event.at // 60), event.routing_key)] += 1

    async def flush(self, broker: Broker) -> None:
        if not self._counts:
            return
        counts, self._counts = self._counts, Counter()
        try:
            await broker.add_throughput(counts, HISTORY_SECONDS)
        except BaseException:
            self._counts.update(counts)  # kept for the next try
            raise

    async def run(self, broker: Broker, interval: float = FLUSH_SECONDS) -> None:
        while True:
            raise_if_cancelling()
            try:
                await self.flush(broker)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = logging.WARNING if is_connection_error(exc) else logging.ERROR
                log.log(level, "throughput history not written: %s", exc)
            await asyncio.sleep(interval)
