"""Issue 9 item 9: one worker on 10,000 routing keys (one per tenant) runs jobs. Past about
2,650 keys the dequeue script used to fail on every call ("too many results to unpack")."""

from __future__ import annotations

import asyncio

import pytest
import redis
from support import Workers, eventually, status_of

from bananas import Client, Job, Registry

pytestmark = pytest.mark.timeout(120)

KEYS = 10_000


async def test_worker_on_ten_thousand_routing_keys_runs_a_job_on_the_last(
    client: Client, workers: Workers, r: redis.Redis
) -> None:
    ran: list[str] = []
    registry = Registry()

    @registry.handler("tenant_job")
    def tenant_job(job: Job) -> None:
        ran.append(job.routing_key)

    routing_keys = tuple(f"tenant-{n:05d}" for n in range(KEYS))
    await workers.start(registry, routing_keys=routing_keys, concurrency=4)
    last = client.submit_job("tenant_job", None, routing_key=routing_keys[-1])
    first = client.submit_job("tenant_job", None, routing_key=routing_keys[0])
    await eventually(lambda: status_of(r, last) == "completed" and status_of(r, first) == "completed",
                     timeout=60, what="the jobs on the first and last of 10,000 routing keys")  # fmt: skip
    await asyncio.sleep(0.2)
    assert sorted(ran) == [routing_keys[0], routing_keys[-1]]
