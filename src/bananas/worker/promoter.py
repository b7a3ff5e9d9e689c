"""Moves due scheduled jobs and retries to the ready queue of their own routing key and
priority (never to a default queue: the seed's ``MoveScheduledToReady`` bug).

Every worker runs one, so workers alone are a complete system. ``promote`` claims an
entry with ZREM, so any number of promoters can run at once.

Next to the original Go scheduler, which promotes without a claim (it reads the due
entries, then pushes and ZREMs in a plain pipeline, so an entry another promoter moved in
between is pushed again and runs twice), migration mode sets ``grace``: ours promotes an
entry only ``grace`` seconds after it is due, leaving it to the Go scheduler while that
one runs, and ``legacy_default``: due ``default`` jobs go to the legacy lists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from bananas.aio import raise_if_cancelling, wait_event
from bananas.core.clock import Clock, to_datetime
from bananas.core.compat import ORIGINAL, ORIGINAL_SCHEDULER_GRACE
from bananas.core.job import Job
from bananas.core.lifecycle import mark_pending
from bananas.errors import MalformedJobError
from bananas.redis import calls
from bananas.redis.backoff import loop_log_level
from bananas.redis.broker import Broker
from bananas.worker.malformed import stub_record

log = logging.getLogger("bananas.worker")

BATCH = 500
#: Longest sleep between looks at the scheduled set; a new earlier job wakes us sooner.
MAX_IDLE = 1.0


def promoter_compat(compat: str | None) -> dict[str, Any]:
    """The promoter's migration-mode arguments for a ``compat`` setting."""
    if compat == ORIGINAL:
        return {"grace": ORIGINAL_SCHEDULER_GRACE, "legacy_default": True}
    return {}


class Promoter:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        wakeup: asyncio.Event,
        *,
        failed_ttl: int = 0,
        dead_letter_cap: int = 0,
        grace: float = 0.0,
        legacy_default: bool = False,
        routing_keys: Sequence[str] = (),
    ) -> None:
        """``routing_keys``: this worker's own; on Redis Cluster every known routing key's
        scheduled set is visited too (``Broker.slot_groups``)."""
        self._routing_keys = tuple(routing_keys)
        self._grace = grace
        self._legacy_default = legacy_default
        self._failed_ttl = failed_ttl
        self._dead_cap = dead_letter_cap
        self._broker = broker
        self._clock = clock
        self._wakeup = wakeup

    async def promote_due(self) -> int:
        now = self._clock.now()
        groups = await self._broker.slot_groups(self._routing_keys)
        ids = await self._broker.due_scheduled(groups, now - self._grace, BATCH)
        if not ids:
            return 0
        records = await self._broker.records(ids)
        batch = []
        for job_id, raw in zip(ids, records, strict=True):
            try:
                if raw is None:
                    raise MalformedJobError("record missing", job_id)
                job = Job.from_record(raw, job_id=job_id)
            except MalformedJobError as exc:
                log.error("scheduled job %s cannot be read (%s); moved to dead letters", job_id, exc.reason)
                stub = stub_record(job_id, exc.reason, raw, now)
                batch.append(
                    calls.bury_scheduled(job_id, stub, self._failed_ttl, self._dead_cap, layout=self._broker.layout)
                )
                continue
            mark_pending(job, to_datetime(now))
            batch.append(
                calls.promote(job, job.to_record(), layout=self._broker.layout, legacy_default=self._legacy_default)
            )
        if not batch:
            return 0
        return sum(1 for r in await self._broker.run_many(batch) if r == 1)

    async def run(self) -> None:
        while True:
            raise_if_cancelling()
            self._wakeup.clear()
            delay = MAX_IDLE
            try:
                while await self.promote_due() >= BATCH:
                    pass
                next_due = await self._broker.next_due(await self._broker.slot_groups(self._routing_keys))
                if next_due is not None:
                    delay = min(MAX_IDLE, max(0.0, next_due + self._grace - self._clock.now()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = loop_log_level(exc)
                log.log(level, "promoting scheduled jobs failed: %s", exc)
            await wait_event(self._wakeup, delay)
