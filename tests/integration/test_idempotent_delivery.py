"""Delivery is idempotent (issue 9, item 6): an id pushed twice runs once, a job whose
record is already final is not run again from a ready list, and a lease is never
overwritten by a second delivery. Each drop is logged with the list it came from."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
import redis

from bananas import Client, Registry, Worker
from bananas.core.limits import FleetLimits
from bananas.core.priority import Priority
from bananas.core.routing import QueueRef
from bananas.core.selection import DequeuePlan, Source
from bananas.redis import calls, keys
from bananas.redis.runner import SyncRunner

QUEUE = keys.route_queue("default", Priority.NORMAL)


async def _eventually(predicate, timeout: float = 10.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return value


def _dequeue(r: redis.Redis, token: str, count: int = 10) -> list[object]:
    plan = DequeuePlan.build([Source(QueueRef("default", Priority.NORMAL))], FleetLimits())
    call = calls.dequeue(plan, FleetLimits(), [-1], lease_ms=30_000, token=token, count=count, layout=keys.STANDALONE)
    return list(SyncRunner(r).run(call))


def test_dequeue_never_overwrites_a_lease(r: redis.Redis) -> None:
    r.hset(keys.LEASE_OWNERS, "held", "other-worker:7")
    r.zadd(keys.LEASES, {"held": 123})
    r.lpush(QUEUE, "held", "fresh", "fresh")  # "held" is taken first, "fresh" is pushed twice
    reply = _dequeue(r, "me:1")
    # held: dropped from list 1 (-1); fresh: leased once, its second copy dropped.
    assert reply == [0, -1, b"held", 1, b"fresh", -1, b"fresh"]
    assert r.hget(keys.LEASE_OWNERS, "held") == b"other-worker:7"
    assert r.zscore(keys.LEASES, "held") == 123
    assert r.hget(keys.LEASE_OWNERS, "fresh") == b"me:1"
    assert r.llen(QUEUE) == 0


async def test_an_id_pushed_twice_runs_once(
    redis_url: str, r: redis.Redis, start_worker, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[str] = []

    async def task(job: object) -> None:
        runs.append(job.id)  # type: ignore[attr-defined]
        await asyncio.sleep(0.3)

    registry = Registry()
    registry.add("task", task)
    with Client(redis_url) as client:
        job_id = client.submit_job("task", None)
        other = client.submit_job("task", None)
    r.lpush(QUEUE, job_id)  # a second copy, as a buggy or foreign producer might push
    caplog.set_level(logging.WARNING, logger="bananas.worker")
    await start_worker(registry, concurrency=4)
    with Client(redis_url) as client:
        await _eventually(
            lambda: all(getattr(client.get_job(i), "status", None) == "completed" for i in (job_id, other)),
            what="both jobs completed",
        )
    await asyncio.sleep(0.5)
    assert sorted(runs) == sorted([job_id, other])
    assert f"job {job_id} dropped from {QUEUE}" in caplog.text


async def test_a_final_record_found_in_a_ready_list_is_not_run_again(
    redis_url: str, r: redis.Redis, start_worker, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[str] = []
    registry = Registry()
    registry.add("task", lambda job: runs.append(job.id))
    caplog.set_level(logging.WARNING, logger="bananas.worker")
    worker: Worker = await start_worker(registry)
    with Client(redis_url) as client:
        done = client.submit_job("task", None)
        await _eventually(lambda: getattr(client.get_job(done), "status", None) == "completed", what="first run")
        before = r.get(keys.job(done))
        # A completed id back in its ready list, and a record a newer version cancelled.
        r.lpush(QUEUE, done)
        record = json.loads(before)  # type: ignore[arg-type]
        record.update(id="cancelled-one", status="cancelled")
        r.set(keys.job("cancelled-one"), json.dumps(record))
        r.lpush(QUEUE, "cancelled-one")
        after = client.submit_job("task", None)
        await _eventually(lambda: after in runs, what="the next job")
    await _eventually(lambda: "cancelled-one" in caplog.text, what="the drop log line")
    assert runs == [done, after]
    assert r.get(keys.job(done)) == before  # untouched
    assert json.loads(r.get(keys.job("cancelled-one")))["status"] == "cancelled"  # type: ignore[arg-type]
    assert r.llen(keys.DEAD) == 0 and r.hlen(keys.LEASE_OWNERS) == 0 and r.zcard(keys.LEASES) == 0
    assert f"job {done} dropped from {QUEUE}: its record is already completed" in caplog.text
    assert f"job cancelled-one dropped from {QUEUE}: its record is already cancelled" in caplog.text
    assert worker.processed >= 2
