"""The handlers the Bananas benchmark worker runs (``benchmarks.systems._bananas_app:registry``).

Async handlers: for I/O-light jobs that is Bananas' sensible configuration (no thread
hand-off). Each does the benchmark's one ``INCR``; ``pickup`` also records its latency.
``noop_sync`` is the same job as a plain function (run in the worker's thread pool).
"""

from __future__ import annotations

import os
import time

import redis
import redis.asyncio as aioredis

from bananas import Job, Registry
from benchmarks.systems._common import COUNTER_KEY, LATENCY_KEY

registry = Registry()

# BENCH_BANANAS_LISTENER=noop adds one event listener that does nothing, for every kind:
# the cost of building and fanning out the job events (benchmarks/listener_cost.py).
if os.environ.get("BENCH_BANANAS_LISTENER") == "noop":

    @registry.on()
    def _noop_listener(event: object) -> None:
        return None


_async_client: aioredis.Redis | None = None
_sync_client: redis.Redis | None = None


def _url() -> str:
    return os.environ.get("BENCH_REDIS_URL") or os.environ["REDIS_URL"]


def _aredis() -> aioredis.Redis:
    global _async_client
    if _async_client is None:
        _async_client = aioredis.Redis.from_url(_url())
    return _async_client


@registry.handler("noop")
async def noop(job: Job) -> None:
    await _aredis().incr(COUNTER_KEY)


@registry.handler("pickup")
async def pickup(job: Job) -> None:
    started = time.monotonic()
    latency_ms = (started - job.payload["t"]) * 1000.0
    pipe = _aredis().pipeline(transaction=False)
    pipe.incr(COUNTER_KEY)
    pipe.rpush(LATENCY_KEY, repr(latency_ms))
    await pipe.execute()


@registry.handler("noop_sync")
def noop_sync(job: Job) -> None:
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(_url())
    _sync_client.incr(COUNTER_KEY)


@registry.handler("empty")
async def empty(job: Job) -> None:
    """Does nothing at all: a drain of these measures Bananas' own cost per job."""


@registry.handler("nothing")
async def nothing(job: Job) -> None:
    """Does nothing at all: the handler of the instruction count (benchmarks/instructions.py),
    so what is counted is Bananas' own cost per job, not a Redis call of the handler's."""
    return None
