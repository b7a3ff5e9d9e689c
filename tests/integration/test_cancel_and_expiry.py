"""Cancel (``Client.cancel``, ``bananas cancel``) and expiry (``expires_in``), issue 10."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
import redis
from support import CliRunner, Workers, eventually, job_record, status_of

from bananas import AsyncClient, Client, EventKind, Job, JobCancelledError, JobEvent, JobExpiredError, Registry
from bananas.errors import ValidationError


def test_cancel_pending_job_removes_it_atomically(client: Client, r: redis.Redis) -> None:
    job_id = client.submit_job("resize", {"w": 1}, "high", routing_key="gpu")
    assert client.cancel(job_id) is True
    assert r.llen("bananas:route:gpu:queue:high") == 0
    record = job_record(r, job_id)
    assert record is not None and record["status"] == "cancelled"
    with pytest.raises(JobCancelledError):
        client.get_result(job_id)
    # Cancelling again, or a job that never existed: False.
    assert client.cancel(job_id) is False
    assert client.cancel("no-such-job") is False


def test_cancel_scheduled_job(client: Client, r: redis.Redis) -> None:
    job_id = client.schedule_job("report", None, delay=60, routing_key="email")
    assert client.cancel(job_id) is True
    assert r.zcard("bananas:queue:scheduled") == 0
    assert status_of(r, job_id) == "cancelled"


async def test_cancelled_pending_job_never_runs(workers: Workers, client: Client, r: redis.Redis) -> None:
    ran: list[str] = []
    registry = Registry()

    @registry.handler("work")
    def work(job: Job) -> None:
        ran.append(job.id)

    cancelled = client.submit_job("work", None, routing_key="gpu")
    kept = client.submit_job("work", None, routing_key="gpu")
    assert client.cancel(cancelled)
    await workers.start(registry, routing_keys=("gpu",))
    await eventually(lambda: status_of(r, kept) == "completed", what="the other job to run")
    assert ran == [kept]
    assert status_of(r, cancelled) == "cancelled"


async def test_cancel_running_async_job_stops_it(workers: Workers, redis_url: str, r: redis.Redis) -> None:
    started = asyncio.Event()
    finished: list[str] = []
    seen: list[JobEvent] = []
    registry = Registry()
    registry.on(EventKind.CANCELLED)(seen.append)

    @registry.handler("long")
    async def long(job: Job) -> None:
        started.set()
        await asyncio.sleep(60)
        finished.append(job.id)

    await workers.start(registry, routing_keys=("gpu",), max_retries=3)
    async with AsyncClient(redis_url) as client:
        job_id = await client.submit_job("long", None, routing_key="gpu")
        await asyncio.wait_for(started.wait(), 10)
        waiter = asyncio.create_task(client.get_result(job_id, timeout=15))
        began = time.monotonic()
        assert await client.cancel(job_id) is True
        with pytest.raises(JobCancelledError):
            await waiter
        assert time.monotonic() - began < 5
    record = job_record(r, job_id)
    assert record is not None and record["status"] == "cancelled" and record["attempts"] == 1
    assert finished == []
    assert r.zcard("bananas:leases") == 0 and r.zcard("bananas:queue:scheduled") == 0
    assert [e.job_id for e in seen] == [job_id]


async def test_cancel_running_sync_job_sees_cancel_requested(workers: Workers, client: Client, r: redis.Redis) -> None:
    started = threading.Event()
    noticed: list[bool] = []
    registry = Registry()

    @registry.handler("crunch")
    def crunch(job: Job) -> str:
        started.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not job.cancel_requested:
            time.sleep(0.02)
        noticed.append(job.cancel_requested)
        return "stopped early"

    await workers.start(registry, routing_keys=("cpu",))
    job_id = client.submit_job("crunch", None, routing_key="cpu")
    await eventually(started.is_set, what="the sync handler to start")
    assert client.cancel(job_id) is True
    await eventually(lambda: status_of(r, job_id) == "cancelled", what="the job to end cancelled")
    assert noticed == [True]
    with pytest.raises(JobCancelledError):
        client.get_result(job_id)


def test_cancel_cli(cli: CliRunner, client: Client) -> None:
    job_id = client.submit_job("resize", None, routing_key="gpu")
    done = cli.run("cancel", job_id)
    assert done.returncode == 0 and "cancelled" in done.stdout
    again = cli.run("cancel", job_id)
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "already cancelled" in again.stderr
    unknown = cli.run("cancel", "nope")
    assert unknown.returncode == 1 and "no job" in unknown.stderr


async def test_expired_job_never_runs(workers: Workers, client: Client, r: redis.Redis) -> None:
    ran: list[str] = []
    seen: list[JobEvent] = []
    registry = Registry()
    registry.on(EventKind.EXPIRED)(seen.append)

    @registry.handler("notify")
    def notify(job: Job) -> None:
        ran.append(job.id)

    stale = client.submit_job("notify", None, routing_key="email", expires_in=0.2)
    fresh = client.submit_job("notify", None, routing_key="email", expires_in=timedelta(minutes=5))
    record = job_record(r, stale)
    assert record is not None and record["expires_at"].endswith("Z")
    await asyncio.sleep(0.4)
    await workers.start(registry, routing_keys=("email",))
    await eventually(lambda: status_of(r, fresh) == "completed", what="the fresh job to run")
    await eventually(lambda: status_of(r, stale) == "expired", what="the stale job to expire")
    assert ran == [fresh]
    assert [e.job_id for e in seen] == [stale]
    with pytest.raises(JobExpiredError):
        client.get_result(stale)
    assert r.llen("bananas:queue:dead") == 0  # expiry is not a failure: no dead letter


def test_expires_in_on_schedule_and_submit_many(client: Client, r: redis.Redis) -> None:
    scheduled = client.schedule_job("x", None, delay=10, expires_in=30)
    ids = client.submit_many("x", [1, 2], expires_in=30)
    for job_id in (scheduled, *ids):
        record = job_record(r, job_id)
        assert record is not None and "expires_at" in record


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "soon", True, 10**12])
def test_bad_expires_in_is_refused_and_writes_nothing(client: Client, r: redis.Redis, bad: object) -> None:
    with pytest.raises(ValidationError, match="expires_in"):
        client.submit_job("x", None, expires_in=bad)  # type: ignore[arg-type]
    assert r.dbsize() == 0
