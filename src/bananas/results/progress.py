"""Waiting for a result while reporting the job's progress (``on_progress``).

The wait subscribes to the job's progress channel on the waiter's one Pub/Sub
connection, next to its result channel; each announcement is followed by a read of
``bananas:progress:<id>`` (so a burst of reports yields the latest one, not every one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from bananas.core.progress import Progress
from bananas.core.result import JobResult
from bananas.redis import keys
from bananas.redis.keys import KeyLayout
from bananas.results.waiter import ResultWaiter

ProgressCallback = Callable[[Progress], None]


async def fetch_progress(
    client: aioredis.Redis, job_id: str, layout: KeyLayout = keys.STANDALONE
) -> Progress | None:
    data = await client.hgetall(layout.progress(job_id))
    return Progress.from_hash(data) if data else None


async def wait_with_progress(
    client: aioredis.Redis,
    waiter: ResultWaiter,
    job_id: str,
    timeout: float | None,
    on_progress: ProgressCallback,
) -> JobResult:
    """``waiter.wait(job_id, timeout)``, calling ``on_progress`` with every new progress
    value seen meanwhile (the current one first, if there is one)."""
    channel = waiter.layout.progress_channel(job_id)
    loop = asyncio.get_running_loop()
    last: tuple[float, str | None] | None = None
    async with waiter.watch(job_id) as watch:
        outcome: asyncio.Future[JobResult] = asyncio.ensure_future(watch.result(timeout))
        try:
            while True:
                announced: asyncio.Future[None] = loop.create_future()
                await waiter.subscribe(channel, announced)
                try:
                    # Subscribed first, then read: a report stored after the read is announced.
                    progress = await fetch_progress(client, job_id, waiter.layout)
                    if progress is not None and (float(progress), progress.message) != last:
                        last = (float(progress), progress.message)
                        on_progress(progress)
                    pending: set[asyncio.Future[Any]] = {outcome, announced}
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    await waiter.unsubscribe(channel, announced)
                if outcome.done():
                    return outcome.result()
        finally:
            if not outcome.done():
                outcome.cancel()
