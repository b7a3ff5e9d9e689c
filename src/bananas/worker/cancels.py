"""Hears operators' cancellations of jobs this worker is running.

A cancellation is published on ``bananas:cancel`` (the job id) and also left in
``bananas:cancel:<id>`` with a TTL; the message stops an async handler within
milliseconds, the once-a-second look catches one missed while Pub/Sub reconnected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bananas.aio import raise_if_cancelling
from bananas.redis.backoff import loop_log_level
from bananas.redis.broker import Broker

log = logging.getLogger("bananas.worker")

#: Seconds between looks at the pending cancellations of the jobs this worker holds.
INTERVAL = 1.0
#: Most ids asked about in one look.
BATCH = 1000


class CancelWatcher:
    def __init__(self, broker: Broker, held: Callable[[], list[str]], on_cancel: Callable[[str], None]) -> None:
        self._broker = broker
        self._held = held
        self._on_cancel = on_cancel

    def heard(self, job_id: str) -> None:
        """A message on the cancel channel: act at once if the job is ours."""
        self._on_cancel(job_id)

    async def look(self) -> None:
        held = self._held()
        for start in range(0, len(held), BATCH):
            for job_id in await self._broker.cancel_requests(held[start : start + BATCH]):
                self._on_cancel(job_id)

    async def run(self) -> None:
        while True:
            raise_if_cancelling()
            try:
                await self.look()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = loop_log_level(exc)
                log.log(level, "looking for cancelled jobs failed: %s", exc)
            await asyncio.sleep(INTERVAL)
