"""Scheduled jobs, retries with backoff in their own routing key, dead letters, unknown
job names and per-job timeouts."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from support import Recorder, Workers, eventually, job_record, status_of, strings

from bananas import Client, Fail, Job, Priority, Registry, Retry
from bananas.core.job import new_job
from bananas.core.retry import RetryPolicy

SCHEDULED = "bananas:queue:scheduled"
DEAD = "bananas:queue:dead"


def no_default_queues(r: redis.Redis) -> bool:
    return not r.keys("bananas:route:default:*") and not r.keys("bananas:queue:high") and not r.keys(
        "bananas:queue:normal"
    ) and not r.keys("bananas:queue:low")  # fmt: skip


def assert_no_lease(r: redis.Redis, job_id: str) -> None:
    assert r.zscore("bananas:leases", job_id) is None
    assert r.hget("bananas:lease:owners", job_id) is None


async def test_scheduled_jobs_land_in_their_own_routing_key_and_priority(
    client: Client, workers: Workers, r: redis.Redis
) -> None:
    # Only a worker on an unrelated key runs: it promotes every due job (the seed's
    # MoveScheduledToReady pushed them to a default queue instead).
    await workers.start(Recorder().registry, routing_keys=("other",))
    before = time.time()
    by_delay = client.schedule_job("task", 1, delay=0.3, priority=Priority.HIGH, routing_key="gpu")
    by_timedelta = client.schedule_job("task", 2, delay=timedelta(milliseconds=300), routing_key="email")
    by_time = client.schedule_job(
        "task", 3, run_at=datetime.now(UTC) + timedelta(seconds=0.3), priority="low", routing_key="email"
    )
    after = time.time()
    for job_id in (by_delay, by_timedelta, by_time):
        score = r.zscore(SCHEDULED, job_id)
        assert score is not None and before + 0.29 <= score <= after + 0.31
        rec = job_record(r, job_id)
        assert rec is not None and rec["status"] == "scheduled" and rec["scheduled_for"]

    await eventually(lambda: r.zcard(SCHEDULED) == 0, what="due jobs to be promoted")
    assert strings(r.lrange("bananas:route:gpu:queue:high", 0, -1)) == [by_delay]
    assert strings(r.lrange("bananas:route:email:queue:normal", 0, -1)) == [by_timedelta]
    assert strings(r.lrange("bananas:route:email:queue:low", 0, -1)) == [by_time]
    assert no_default_queues(r)
    job = client.get_job(by_delay)
    assert job is not None and job.status == "pending" and job.routing_key == "gpu" and job.priority is Priority.HIGH

    gpu = Recorder("gpu")
    await workers.start(gpu.registry, routing_keys=("gpu",))
    await eventually(lambda: status_of(r, by_delay) == "completed", what="the gpu job to run")
    assert gpu.ids == [by_delay]


async def test_scheduled_job_does_not_run_early(client: Client, workers: Workers, r: redis.Redis) -> None:
    started: list[float] = []
    registry = Registry()
    registry.add("task", lambda job: started.append(time.time()))
    await workers.start(registry, routing_keys=("gpu",))
    job_id = client.schedule_job("task", None, delay=0.5, routing_key="gpu")
    due = r.zscore(SCHEDULED, job_id)
    assert due is not None
    await eventually(lambda: status_of(r, job_id) == "completed", what="the job to complete")
    assert len(started) == 1 and started[0] >= due


async def test_retry_is_scheduled_in_its_own_routing_key_with_backoff(
    client: Client, workers: Workers, r: redis.Redis
) -> None:
    calls: list[float] = []
    registry = Registry()

    @registry.handler("flaky")
    def flaky(job: Job) -> str:
        calls.append(time.time())
        if len(calls) == 1:
            raise RuntimeError("GPU busy")
        return "ok"

    gpu = await workers.start(registry, routing_keys=("gpu",), retry_policy=RetryPolicy(base=1.0, jitter=0.0))
    job_id = client.submit_job("flaky", None, "low", routing_key="gpu")
    await eventually(lambda: status_of(r, job_id) == "scheduled", what="the first attempt to fail")
    await workers.stop(gpu)

    score = r.zscore(SCHEDULED, job_id)
    assert score is not None and calls[0] + 0.95 <= score <= calls[0] + 1.5  # base 1 s, no jitter
    rec = job_record(r, job_id)
    assert rec is not None
    assert rec["routing_key"] == "gpu" and rec["priority"] == "low" and rec["attempts"] == 1
    assert "RuntimeError: GPU busy" in rec["error"]
    assert_no_lease(r, job_id)

    # Promoted by a worker on another key: it must land in gpu's low list, nowhere else.
    await workers.start(Recorder().registry, routing_keys=("other",))
    await eventually(lambda: r.llen("bananas:route:gpu:queue:low") == 1, what="the retry to be promoted")
    assert strings(r.lrange("bananas:route:gpu:queue:low", 0, -1)) == [job_id]
    assert no_default_queues(r)

    await workers.start(registry, routing_keys=("gpu",))
    await eventually(lambda: status_of(r, job_id) == "completed", what="the retry to succeed")
    assert len(calls) == 2
    assert job_record(r, job_id)["attempts"] == 2  # type: ignore[index]


async def test_backoff_doubles_between_attempts(client: Client, workers: Workers, r: redis.Redis) -> None:
    seen: list[tuple[float, str, str]] = []
    registry = Registry()

    @registry.handler("flaky")
    def flaky(job: Job) -> None:
        seen.append((time.time(), job.routing_key, job.priority.value))
        if len(seen) < 3:
            raise RuntimeError("again")

    policy = RetryPolicy(base=0.2, factor=2.0, jitter=0.0)
    await workers.start(registry, routing_keys=("email",), retry_policy=policy)
    job_id = client.submit_job("flaky", None, Priority.HIGH, routing_key="email")
    await eventually(lambda: status_of(r, job_id) == "completed", what="the third attempt to succeed")
    times = [t for t, _, _ in seen]
    assert times[1] - times[0] >= 0.2 - 0.02
    assert times[2] - times[1] >= 0.4 - 0.02
    assert {(k, p) for _, k, p in seen} == {("email", "high")}


@pytest.mark.parametrize(("max_retries", "attempts"), [(3, 4), (0, 1), (1, 2)])
async def test_failing_job_gets_max_retries_plus_one_attempts_then_dead(
    client: Client, workers: Workers, r: redis.Redis, max_retries: int, attempts: int
) -> None:
    calls: list[int] = []
    registry = Registry()

    @registry.handler("boom")
    def boom(job: Job) -> None:
        calls.append(job.attempts)
        raise ValueError(f"kaboom on attempt {job.attempts}")

    await workers.start(registry, routing_keys=("gpu",))
    job_id = client.submit_job("boom", {"x": 1}, "high", routing_key="gpu", max_retries=max_retries)
    await eventually(lambda: status_of(r, job_id) == "failed", what="the job to fail for good")
    await asyncio.sleep(0.2)  # no further attempt may follow

    assert calls == list(range(1, attempts + 1))
    job = client.get_job(job_id)
    assert job is not None and job.attempts == attempts and job.routing_key == "gpu"
    assert job.error is not None
    assert job.error.startswith(f"ValueError: kaboom on attempt {attempts}")
    assert "Traceback (most recent call last)" in job.error and "raise ValueError" in job.error
    assert strings(r.lrange(DEAD, 0, -1)) == [job_id]
    assert r.zscore(SCHEDULED, job_id) is None
    assert_no_lease(r, job_id)


async def test_unknown_job_name_fails_the_job_not_the_worker(client: Client, workers: Workers, r: redis.Redis) -> None:
    # With WORKER_UNKNOWN_JOBS=fail; the default ("park") hands the job on instead (tests/routing).
    rec = Recorder()
    await workers.start(rec.registry, unknown_jobs="fail")
    bad = client.submit_job("no_such_job", {"a": 1})
    await eventually(lambda: status_of(r, bad) == "failed", what="the unknown job to fail")
    job = client.get_job(bad)
    assert job is not None and job.error is not None
    assert "no_such_job" in job.error and "no handler" in job.error
    assert job.attempts == 1  # not retried: no handler will appear by waiting
    assert strings(r.lrange(DEAD, 0, -1)) == [bad]

    good = client.submit_job("task", 2)
    await eventually(lambda: status_of(r, good) == "completed", what="the worker to keep running")
    assert rec.ids == [good]


async def test_timeout_cancels_async_handler_and_fails_the_attempt(
    client: Client, workers: Workers, r: redis.Redis
) -> None:
    cancelled: list[str] = []
    finished: list[str] = []
    registry = Registry()

    @registry.handler("hang")
    async def hang(job: Job) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(job.id)
            raise
        finished.append(job.id)

    @registry.handler("short", timeout=0.2)
    async def short(job: Job) -> None:
        await hang(job)

    # A record may carry its own "timeout" (seconds), which wins over the handler's and the worker's.
    by_record = new_job("short", None, "normal", "default", now=datetime.now(UTC), max_retries=0)
    by_record.extra["timeout"] = 0.25
    r.set(f"bananas:job:{by_record.id}", by_record.to_record())
    r.lpush("bananas:route:default:queue:normal", by_record.id)

    await workers.start(registry, job_timeout=0.3)
    by_setting = client.submit_job("hang", None, max_retries=0)
    by_handler = client.submit_job("short", None, max_retries=1)
    await eventually(
        lambda: all(status_of(r, j) == "failed" for j in (by_setting, by_handler, by_record.id)),
        what="every job to time out",
    )
    assert sorted(cancelled) == sorted([by_setting, by_handler, by_handler, by_record.id])  # 1 + 2 + 1 attempts
    assert finished == []
    for job_id, seconds in ((by_setting, "0.3"), (by_handler, "0.2"), (by_record.id, "0.25")):
        job = client.get_job(job_id)
        assert job is not None and job.error is not None
        assert job.error.startswith("TimeoutError") and f"timeout of {seconds} seconds" in job.error
    assert client.get_job(by_handler).attempts == 2  # type: ignore[union-attr]


async def test_handler_signals_fail_and_retry(client: Client, workers: Workers, r: redis.Redis) -> None:
    registry = Registry()
    runs: list[str] = []

    @registry.handler("give_up")
    def give_up(job: Job) -> None:
        runs.append("give_up")
        raise Fail("bad input")

    @registry.handler("later")
    def later(job: Job) -> None:
        runs.append("later")
        if job.attempts == 1:
            raise Retry("not yet", delay=0.1)

    await workers.start(registry)
    failed = client.submit_job("give_up", None)
    retried = client.submit_job("later", None)
    await eventually(
        lambda: status_of(r, failed) == "failed" and status_of(r, retried) == "completed", what="both outcomes"
    )
    assert runs.count("give_up") == 1 and runs.count("later") == 2
    assert "bad input" in client.get_job(failed).error  # type: ignore[union-attr, operator]
    assert strings(r.lrange(DEAD, 0, -1)) == [failed]
