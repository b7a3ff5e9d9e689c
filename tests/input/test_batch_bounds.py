"""TTLs and numbers are bounded at the edge, and one bad job cannot break a batch of
acknowledgements (issue 9, item 7)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis
from input_helpers import StartWorker, eventually, snapshot

from bananas import Client, Registry, WorkerSettings
from bananas.core.job import MAX_TTL
from bananas.errors import ConfigurationError, ValidationError
from bananas.redis import calls, connection, keys
from bananas.redis.broker import Broker
from bananas.redis.runner import SyncRunner
from bananas.worker.writer import Writer

HUGE = 10**17


def test_client_refuses_a_result_ttl_out_of_range(redis_url: str, r: redis.Redis) -> None:
    before = snapshot(r)
    with Client(redis_url) as client:
        with pytest.raises(ValidationError, match=r"result_ttl must be at most 2147483647 seconds"):
            client.submit_job("task", None, result_ttl=HUGE)
        with pytest.raises(ValidationError, match=r"result_ttl"):
            client.schedule_job("task", None, delay=5, result_ttl=MAX_TTL + 1)
        with pytest.raises(ValidationError, match=r"delay"):
            client.schedule_job("task", None, delay=1e300)
        with pytest.raises(ValidationError, match=r"max_retries"):
            client.submit_many("task", [1, 2], max_retries=2**40)
        assert client.submit_job("task", None, result_ttl=MAX_TTL)  # the bound itself is fine
    after = snapshot(r)
    assert len(after) == len(before) + 3  # only the last job: its record, list, routing keys set


@pytest.mark.parametrize("name", ["RESULT_TTL", "RESULT_FAILURE_TTL", "JOB_COMPLETED_TTL", "JOB_FAILED_TTL"])
def test_settings_refuse_a_ttl_out_of_range(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        WorkerSettings.from_env({name: str(HUGE)})


def _leased(r: redis.Redis, job_id: str, token: str) -> bytes:
    record = json.dumps({"id": job_id, "name": "task", "created_at": "2030-01-01T00:00:00Z", "status": "processing"})
    r.set(keys.job(job_id), record)
    r.zadd(keys.LEASES, {job_id: int(time.time() * 1000) + 60_000})
    r.hset(keys.LEASE_OWNERS, job_id, token)
    return record.encode()


def _done(job_id: str) -> bytes:
    return json.dumps(
        {"id": job_id, "name": "task", "created_at": "2030-01-01T00:00:00Z", "status": "completed"}
    ).encode()


def test_ack_many_applies_the_others_when_one_job_has_a_bad_ttl(r: redis.Redis) -> None:
    for job_id in ("a", "bad", "c"):
        _leased(r, job_id, f"t-{job_id}")
    before_bad = r.get(keys.job("bad"))
    fields = ["status", "completed", "result", "1"]
    merged = calls.ack_many(
        [
            calls.ack("a", "t-a", _done("a"), 0, 60, fields, layout=keys.STANDALONE),
            calls.ack("bad", "t-bad", _done("bad"), 0, HUGE, fields, layout=keys.STANDALONE),
            calls.ack("c", "t-c", _done("c"), 0, 60, fields, layout=keys.STANDALONE),
        ]
    )
    runner = SyncRunner(r)
    assert runner.run(merged) == [1, -1, 1]
    # Nothing was written for the bad one: it keeps its lease and its record.
    assert r.hget(keys.LEASE_OWNERS, "bad") == b"t-bad" and r.get(keys.job("bad")) == before_bad
    assert r.hget(keys.LEASE_OWNERS, "a") is None and r.hget(keys.LEASE_OWNERS, "c") is None
    assert json.loads(r.get(keys.job("c")))["status"] == "completed"  # type: ignore[arg-type]
    # The single-job script refuses the same values before writing anything.
    with pytest.raises(redis.ResponseError, match="TTL out of range"):
        runner.run(calls.ack("bad", "t-bad", _done("bad"), HUGE, 0, layout=keys.STANDALONE))
    assert r.hget(keys.LEASE_OWNERS, "bad") == b"t-bad" and r.get(keys.job("bad")) == before_bad


async def test_the_writer_keeps_one_bad_ack_from_failing_its_batch(redis_url: str, r: redis.Redis) -> None:
    ids = [f"w{n}" for n in range(6)]
    for job_id in ids:
        _leased(r, job_id, f"t-{job_id}")
    client = connection.async_client(redis_url)
    broker = Broker(client)
    writer = Writer(broker)
    try:
        futures = [
            writer.send(
                calls.ack(job_id, f"t-{job_id}", _done(job_id), HUGE if job_id == "w3" else 0, layout=keys.STANDALONE)
            )
            for job_id in ids
        ]
        runner = asyncio.create_task(writer.run())
        results = await asyncio.gather(*futures, return_exceptions=True)
        writer.close()
        await runner
    finally:
        await broker.close()
        await client.aclose()
    assert [res for n, res in enumerate(results) if n != 3] == [1] * 5
    assert isinstance(results[3], ValueError) and "TTL" in str(results[3])
    assert r.hget(keys.LEASE_OWNERS, "w3") == b"t-w3"


async def test_a_foreign_huge_result_ttl_does_not_break_the_batch(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    """A record with a huge ``result_ttl`` written raw by another producer runs once and
    completes (with the worker's own result TTL), and so do the jobs acknowledged with it."""
    runs: list[str] = []

    async def task(job: object) -> str:
        runs.append(job.id)  # type: ignore[attr-defined]
        await asyncio.sleep(0.3)  # finish together, so the acks share one batch
        return "ok"

    registry = Registry()
    registry.add("task", task)
    with Client(redis_url) as client:
        ids = [client.submit_job("task", {"n": n}) for n in range(15)]
    foreign = ids[7]
    record = json.loads(r.get(keys.job(foreign)))  # type: ignore[arg-type]
    record["result_ttl"] = HUGE
    r.set(keys.job(foreign), json.dumps(record))
    await start_worker(registry, concurrency=15, lease_seconds=2.0, result_ttl=300)
    with Client(redis_url) as client:

        def all_completed() -> bool:
            return all(getattr(client.get_job(i), "status", None) == "completed" for i in ids)

        await eventually(all_completed, timeout=15, what="every job completed")
        await asyncio.sleep(2.5)  # longer than a lease: a lost ack would show as a second run
    assert sorted(runs) == sorted(ids)
    assert 0 < r.ttl(keys.result(foreign)) <= 300
