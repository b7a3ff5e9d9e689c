"""Handlers used by the test suite's CLI workers. Each records its run in Redis."""

from __future__ import annotations

import asyncio
import os
import time

import redis

from bananas import Job, Registry

registry = Registry()
_client: redis.Redis | None = None


def store() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _client


def record(job: Job) -> None:
    """Append the job to the 'test:ran' list: id|name|routing key|priority|pool."""
    pool = os.environ.get("TEST_POOL", "")
    store().rpush("test:ran", f"{job.id}|{job.name}|{job.routing_key}|{job.priority.value}|{pool}")


@registry.handler("process_image")
def process_image(job: Job) -> dict[str, int]:
    record(job)
    return {"size": job.payload["w"] * job.payload["h"]}


@registry.handler("send_email")
async def send_email(job: Job) -> None:
    record(job)


@registry.handler("noop")
def noop(job: Job) -> None:
    record(job)


@registry.handler("sleep")
async def sleep(job: Job) -> None:
    await asyncio.sleep(float(job.payload or 1))
    record(job)


@registry.handler("sync_sleep")
def sync_sleep(job: Job) -> None:
    time.sleep(float(job.payload or 1))
    record(job)


@registry.handler("boom")
def boom(job: Job) -> None:
    record(job)
    raise ValueError("boom")
