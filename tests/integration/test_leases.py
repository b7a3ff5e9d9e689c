"""At-least-once delivery: leases, their extension by live workers, recovery after a
worker dies, and late acknowledgements that must not corrupt a job's state."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import redis
from support import CliRunner, Workers, eventually, job_record, ran, status_of, strings, wait_until

from bananas import Client, Job, Registry


def assert_settled(r: redis.Redis, job_id: str) -> None:
    """Not leased, not queued, not scheduled, not dead."""
    assert r.zscore("bananas:leases", job_id) is None
    assert r.hget("bananas:lease:owners", job_id) is None
    assert r.zscore("bananas:queue:scheduled", job_id) is None
    assert job_id.encode() not in r.lrange("bananas:queue:dead", 0, -1)
    for key in r.keys("bananas:route:*:queue:*") + r.keys("bananas:queue:[hnl]*"):
        assert job_id.encode() not in r.lrange(key, 0, -1), f"{job_id} still in {key!r}"


def test_job_of_a_killed_worker_is_delivered_again(cli: CliRunner, client: Client, r: redis.Redis) -> None:
    env = {"JOB_LEASE_SECONDS": "1"}
    first = cli.worker("--routing-keys", "gpu", pool="A", env=env)
    cli.wait_ready(first)
    job_id = client.submit_job("slow", {"by_pool": {"A": 60}, "seconds": 0}, "high", routing_key="gpu")
    wait_until(lambda: [job_id, "A", str(first.pid)] in ran(r, "test:started"), what="worker A to start the job")
    # The start is written beside the handler, not before it: wait for it to land.
    wait_until(lambda: status_of(r, job_id) == "processing", what="worker A's start to be recorded")

    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert status_of(r, job_id) == "processing"
    assert r.zscore("bananas:leases", job_id) is not None  # still leased by the dead worker

    second = cli.worker("--routing-keys", "gpu", pool="B", env=env)
    wait_until(lambda: status_of(r, job_id) == "completed", 15, what="the job to be recovered and completed")
    assert ran(r) == [[job_id, "slow", "gpu", "high", "B"]]
    record = job_record(r, job_id)
    assert record is not None and record["attempts"] == 2 and record["recoveries"] == 1
    assert record["routing_key"] == "gpu" and record["priority"] == "high"
    assert_settled(r, job_id)
    assert second.poll() is None


def lapse_lease(r: redis.Redis, job_id: str) -> None:
    """Make a running job's lease lapse as if its worker had hung past it: the deadline
    is in the past and the lease no longer carries the runner's token (so its heartbeat
    cannot extend it). A worker's clock cannot do this: leases run on the server's time."""
    pipe = r.pipeline(transaction=True)
    pipe.hset("bananas:lease:owners", job_id, "lapsed")
    pipe.zadd("bananas:leases", {job_id: 0})
    pipe.execute()


@pytest.mark.parametrize("late_outcome", ["success", "failure_dead", "failure_retry"])
async def test_late_outcome_from_expired_lease_is_discarded(
    client: Client, workers: Workers, r: redis.Redis, late_outcome: str
) -> None:
    started = asyncio.Event()
    slow_registry = Registry()

    @slow_registry.handler("job")
    async def slow(job: Job) -> str:
        started.set()
        # Finish only after the job was recovered and completed elsewhere: a late outcome.
        await eventually(lambda: status_of(r, job.id) == "completed", what="the other worker to complete the job")
        if late_outcome != "success":
            raise ValueError("late failure")
        return "late"

    fast_runs: list[int] = []
    fast_registry = Registry()

    @fast_registry.handler("job")
    def fast(job: Job) -> str:
        fast_runs.append(job.attempts)
        return "fresh"

    stale = await workers.start(slow_registry, routing_keys=("gpu",), concurrency=1, lease_seconds=1.0)
    max_retries = 0 if late_outcome == "failure_dead" else 3
    job_id = client.submit_job("job", None, "high", routing_key="gpu", max_retries=max_retries)
    await asyncio.wait_for(started.wait(), 10)
    lapse_lease(r, job_id)

    await workers.start(fast_registry, routing_keys=("gpu",), lease_seconds=1.0)
    await eventually(lambda: status_of(r, job_id) == "completed", what="the job to be recovered and completed")
    assert fast_runs == [2]

    await eventually(lambda: stale.processed == 1, what="the stale worker to finish its attempt")
    await asyncio.sleep(0.1)
    record = job_record(r, job_id)
    assert record is not None
    assert record["status"] == "completed" and record["attempts"] == 2 and record["recoveries"] == 1
    assert "error" not in record
    assert_settled(r, job_id)
    assert fast_runs == [2]


async def test_live_worker_extends_its_lease(client: Client, workers: Workers, r: redis.Redis) -> None:
    calls: list[str] = []
    registry = Registry()

    @registry.handler("long")
    def long(job: Job) -> None:  # a sync handler: the heartbeat must not wait for its thread
        calls.append(job.id)
        time.sleep(3)

    for _ in range(2):  # a second worker on the same key would take the job if the lease lapsed
        await workers.start(registry, routing_keys=("gpu",), lease_seconds=1.0)
    job_id = client.submit_job("long", None, routing_key="gpu")
    await eventually(lambda: calls, what="the job to start")
    first_deadline = await eventually(lambda: r.zscore("bananas:leases", job_id), what="the lease")
    await asyncio.sleep(1.5)
    later_deadline = r.zscore("bananas:leases", job_id)
    assert later_deadline is not None and later_deadline > first_deadline
    assert later_deadline > time.time() * 1000  # never allowed to lapse while running

    await eventually(lambda: status_of(r, job_id) == "completed", what="the long job to finish")
    assert calls == [job_id]
    record = job_record(r, job_id)
    assert record is not None and record["attempts"] == 1 and "recoveries" not in record
    assert_settled(r, job_id)


async def test_dequeue_and_lease_are_one_step(client: Client, workers: Workers, r: redis.Redis) -> None:
    """While a job runs it is in no ready list but always in the leases."""
    gate = asyncio.Event()
    registry = Registry()

    @registry.handler("wait")
    async def wait(job: Job) -> None:
        await gate.wait()

    await workers.start(registry, routing_keys=("gpu",))
    job_id = client.submit_job("wait", None, routing_key="gpu")
    await eventually(lambda: status_of(r, job_id) == "processing", what="the job to start")
    assert r.llen("bananas:route:gpu:queue:normal") == 0
    assert r.zscore("bananas:leases", job_id) is not None
    assert strings([r.hget("bananas:lease:owners", job_id)])[0]
    gate.set()
    await eventually(lambda: status_of(r, job_id) == "completed", what="the job to finish")
    assert_settled(r, job_id)
