"""Issue 9 item 9: one worker on 10,000 routing keys (one per tenant) runs jobs, woken or not. Past about
2,650 keys the dequeue script used to fail on every call ("too many results to unpack")."""

from __future__ import annotations

import asyncio

import pytest
import redis
from support import eventually, status_of

from bananas import Client, Job, Registry, Worker
from bananas.config import WorkerSettings

pytestmark = pytest.mark.timeout(120)

KEYS = 10_000


async def test_worker_on_ten_thousand_routing_keys_runs_a_job_on_the_last(
    client: Client, redis_url: str, r: redis.Redis
) -> None:
    ran: list[str] = []
    registry = Registry()

    @registry.handler("tenant_job")
    def tenant_job(job: Job) -> None:
        ran.append(job.routing_key)

    routing_keys = tuple(f"tenant-{n:05d}" for n in range(KEYS))
    worker = Worker(registry, WorkerSettings(redis_url=redis_url, routing_keys=routing_keys, concurrency=4))
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.wait_ready(), 60)  # 10,000 subscriptions on a busy machine
        await _run_jobs(client, r, routing_keys, ran)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


async def _run_jobs(client: Client, r: redis.Redis, routing_keys: tuple[str, ...], ran: list[str]) -> None:
    last = client.submit_job("tenant_job", None, routing_key=routing_keys[-1])
    first = client.submit_job("tenant_job", None, routing_key=routing_keys[0])
    await eventually(lambda: status_of(r, last) == "completed" and status_of(r, first) == "completed",
                     timeout=60, what="the jobs on the first and last of 10,000 routing keys")  # fmt: skip
    # A producer that pushes without publishing a wake-up (allowed by the wire format):
    # the worker's once-a-second look at every list finds it.
    middle = routing_keys[len(routing_keys) // 2]
    r.set(
        "bananas:job:quiet-1",
        '{"id":"quiet-1","name":"tenant_job","payload":null,"status":"pending","priority":"low",'
        f'"routing_key":"{middle}","created_at":"2026-12-03T10:00:00Z","updated_at":"2026-12-03T10:00:00Z"}}',
    )
    r.lpush(f"bananas:route:{middle}:queue:low", "quiet-1")
    await eventually(
        lambda: status_of(r, "quiet-1") == "completed", timeout=60, what="the job pushed without a wake-up"
    )
    await asyncio.sleep(0.2)
    assert sorted(ran) == sorted([routing_keys[0], middle, routing_keys[-1]])
