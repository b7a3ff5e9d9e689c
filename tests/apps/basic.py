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


def pool_name() -> str:
    return os.environ.get("TEST_POOL", "")


def _seconds(job: Job) -> float:
    """``payload["seconds"]``, or ``payload["by_pool"][pool]`` when given (default 0)."""
    payload = job.payload if isinstance(job.payload, dict) else {}
    by_pool = payload.get("by_pool") or {}
    return float(by_pool.get(pool_name(), payload.get("seconds", 0)))


def mark_started(job: Job) -> None:
    """Append 'id|pool|pid' to 'test:started' as the handler begins."""
    store().rpush("test:started", f"{job.id}|{pool_name()}|{os.getpid()}")


@registry.handler("slow")
async def slow(job: Job) -> None:
    """Marks its start, sleeps (async, cancellable), then records its run."""
    mark_started(job)
    await asyncio.sleep(_seconds(job))
    record(job)


@registry.handler("sync_slow")
def sync_slow(job: Job) -> None:
    """Like ``slow`` but blocks a thread, as a sync handler does."""
    mark_started(job)
    time.sleep(_seconds(job))
    record(job)


@registry.handler("whoami")
def whoami(job: Job) -> None:
    """Records which process ran the job in 'test:pids' as 'id|pid'."""
    store().rpush("test:pids", f"{job.id}|{os.getpid()}")
    time.sleep(_seconds(job))


@registry.handler("rendezvous")
def rendezvous(job: Job) -> None:
    """Records 'id|pid' in 'test:pids', then waits (up to 10 s) until ``payload["parties"]``
    different processes are inside this handler at once: proof that they run in parallel."""
    store().rpush("test:pids", f"{job.id}|{os.getpid()}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = {entry.split(b"|")[1] for entry in store().lrange("test:pids", 0, -1)}  # type: ignore[union-attr]
        if len(pids) >= int(job.payload["parties"]):
            return
        time.sleep(0.02)
    raise TimeoutError("the other parties never arrived")
