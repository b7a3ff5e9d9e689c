"""Handlers of the Cluster suite's worker processes (``cluster.app:registry``).

Each records what it did in the instrument server (``TEST_STORE_URL``, the session's
standalone server), never in the cluster under test: ``test:started`` and ``test:ran``
list ``id|routing key|priority|pool|pid`` (pool: ``TEST_POOL``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis

from bananas import Job, Registry

registry = Registry()
_client: redis.Redis | None = None


def store() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["TEST_STORE_URL"], decode_responses=True)
    return _client


def _entry(job: Job) -> str:
    return f"{job.id}|{job.routing_key}|{job.priority.value}|{os.environ.get('TEST_POOL', '')}|{os.getpid()}"


@registry.handler("noop")
def noop(job: Job) -> None:
    store().rpush("test:ran", _entry(job))


@registry.handler("slow")
async def slow(job: Job) -> None:
    """Marks its start, sleeps ``payload.by_pool[TEST_POOL]`` (else ``payload.seconds``),
    then records its run."""
    store().rpush("test:started", _entry(job))
    payload: dict[str, Any] = job.payload if isinstance(job.payload, dict) else {}
    seconds = (payload.get("by_pool") or {}).get(os.environ.get("TEST_POOL", ""), payload.get("seconds", 0))
    await asyncio.sleep(float(seconds))
    store().rpush("test:ran", _entry(job))


def entries(r: redis.Redis, key: str = "test:ran") -> list[list[str]]:
    """The entries of ``key``, each split on ``|``."""
    return [str(e).split("|") for e in r.lrange(key, 0, -1)]


#: Three ``bananas scheduler`` processes share this every-second schedule; a worker runs
#: its ticks and records each one (``test:ticks``: ``schedule tick|job id``).
periodic = Registry()
periodic.periodic(
    "* * * * * *",
    "tick",
    {"source": "cluster"},
    schedule_id="cluster-every-second",
    routing_key="delta",
    priority="high",
    grace=60.0,
)


@periodic.handler("tick")
def tick(job: Job) -> None:
    store().rpush("test:ticks", f"{job.extra['schedule_tick']}|{job.id}")
