"""Keeps the leases of running jobs alive, and tells the fleet this worker is alive.

A lease is extended every third of its length (every 2 s at most) while its handler
runs, so a long job is never handed to a second worker; a worker that dies stops
extending and its jobs come back once the lease runs out. The same beat refreshes the
worker's entry in the registry (``bananas workers``), which expires 2 x the lease length
after the last beat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from bananas.aio import raise_if_cancelling
from bananas.core.clock import Clock
from bananas.core.codec import decode_id
from bananas.core.fleet import beat_fields
from bananas.redis import calls
from bananas.redis.backoff import loop_log_level
from bananas.redis.broker import Broker

log = logging.getLogger("bananas.worker")

#: Longest time between two refreshes of the worker's entry, so ``bananas workers`` shows
#: its load and counters a few seconds old at most, whatever the lease length.
ANNOUNCE_INTERVAL = 2.0


class LeaseKeeper:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        lease_seconds: float,
        held: Callable[[], Mapping[str, str]],
        on_lost: Callable[[str], None],
        worker_id: str,
        describe: Mapping[str, str],
        counters: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ) -> None:
        """``describe``: the fixed fields of this worker's entry (core/fleet.py
        ``worker_hash``); ``counters``: (attempts ended, attempts failed) so far."""
        self._broker = broker
        self._clock = clock
        self._lease = lease_seconds
        self._held = held
        self._on_lost = on_lost
        self._worker_id = worker_id
        self._info = dict(describe)
        self._counters = counters

    @property
    def interval(self) -> float:
        return min(self._lease / 3, ANNOUNCE_INTERVAL)

    async def beat(self) -> None:
        held = list(self._held().items())
        now = self._clock.now()
        if held:
            replies = await self._broker.run_many(
                calls.extend(int(self._lease * 1000), held, layout=self._broker.layout)
            )
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            for job_id in (job_id for reply in replies for job_id in reply):
                name = decode_id(job_id)
                log.debug("lease on job %s is no longer held by this worker", name)
                self._on_lost(name)
        processed, failed = self._counters()
        info = {**self._info, **beat_fields(now, len(held), processed, failed)}
        # The entry outlives a missed beat or two, and a killed worker leaves the
        # registry within 2 x its lease length (docs/OPERATIONS.md).
        await self._broker.announce(self._worker_id, now, info, ttl_ms=max(1, int(self._lease * 2000)))

    async def run(self) -> None:
        while True:
            raise_if_cancelling()
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = loop_log_level(exc)
                log.log(level, "heartbeat failed: %s", exc)
            await asyncio.sleep(self.interval)
