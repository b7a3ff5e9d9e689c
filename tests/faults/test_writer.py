"""The worker's writer across a lost connection: a batch that failed on a connection
error is sent again, and every job's outcome in it still lands (regression test: the
second flush used to fail on a start it had already dropped, so the whole batch's
outcomes were discarded and those jobs ran again)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import redis
import redis.exceptions

from bananas import Client, Job, Priority
from bananas.core.clock import to_datetime
from bananas.core.lifecycle import mark_completed, mark_started
from bananas.redis import calls, connection, keys
from bananas.redis.broker import Broker
from bananas.redis.scripts import Call
from bananas.worker.writer import Writer


class _CutOnce(Broker):
    """A real broker whose first batch write fails as if the connection dropped."""

    cuts = 1

    async def write_many(self, batch: Sequence[Call]) -> list[Any]:
        if self.cuts:
            self.cuts -= 1
            raise redis.exceptions.ConnectionError("connection cut by the test")
        return await super().write_many(batch)


async def test_writer_resends_a_batch_after_a_connection_error(redis_url: str, r: redis.Redis, client: Client):
    tokens = {}
    jobs: list[Job] = []
    for n in range(3):
        job_id = client.submit_job("work", {"n": n}, Priority.NORMAL, routing_key="alpha")
        assert r.rpop(keys.route_queue("alpha", Priority.NORMAL)) == job_id.encode()
        tokens[job_id] = f"test-host:1:abcd0001:{n}"
        r.zadd(keys.LEASES, {job_id: int(time.time() * 1000) + 60_000})
        r.hset(keys.LEASE_OWNERS, job_id, tokens[job_id])
        job = client.get_job(job_id)
        assert job is not None
        jobs.append(job)

    aclient = connection.async_client(redis_url)
    broker = _CutOnce(aclient)
    writer = Writer(broker)
    task = asyncio.create_task(writer.run())
    try:
        outcomes = []
        for job in jobs:
            mark_started(job, to_datetime(time.time()))
            writer.send(calls.start(job.id, tokens[job.id], job.to_record(), layout=keys.STANDALONE))
            mark_completed(job, to_datetime(time.time()))
            outcomes.append(
                writer.send(calls.ack(job.id, tokens[job.id], job.to_record(), 3600, layout=keys.STANDALONE))
            )
        replies = await asyncio.wait_for(asyncio.gather(*outcomes), 20)
        assert replies == [1, 1, 1]
    finally:
        writer.close()
        await asyncio.wait_for(task, 10)
        await broker.close()
        await aclient.aclose()
    for job in jobs:
        got = client.get_job(job.id)
        assert got is not None and got.status == "completed"
    assert r.zcard(keys.LEASES) == 0 and r.hlen(keys.LEASE_OWNERS) == 0
