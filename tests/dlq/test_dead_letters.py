"""Dead letters through ``bananas.dlq.DeadLetters``: listing, history, retry, purge."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import redis
from dlq_helpers import StartWorker, eventually

from bananas import Client, Fail, Job, JobStatus, Priority, Registry
from bananas.core.lifecycle import HISTORY_LIMIT, FailureDecision, Verdict, apply_failure
from bananas.dlq import DeadLetters, RetryOutcome
from bananas.redis import calls, keys
from bananas.redis.runner import SyncRunner

DEAD = "bananas:queue:dead"


def failing_registry(r: redis.Redis) -> Registry:
    """``flaky`` fails while the Redis key ``test:broken`` exists; ``doomed`` always fails."""
    registry = Registry()

    @registry.handler("flaky")
    def flaky(job: Job) -> str:
        if r.exists("test:broken"):
            raise ValueError(f"broken (attempt {job.attempts})")
        r.rpush("test:ran", job.id)
        return "ok"

    @registry.handler("doomed")
    def doomed(job: Job) -> None:
        raise Fail("doomed from the start")

    return registry


def record(r: redis.Redis, job_id: str) -> dict[str, object]:
    raw = r.get(f"bananas:job:{job_id}")
    assert raw is not None, f"record of {job_id} is gone"
    return json.loads(raw)  # type: ignore[arg-type]


def test_history_is_appended_per_attempt_and_bounded() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    job = Job("id-1", "x", None, Priority.NORMAL, "default", JobStatus.PROCESSING, now, now)
    for attempt in range(1, HISTORY_LIMIT + 4):
        job.attempts = attempt
        error = f"ValueError: failure {attempt}\nTraceback (most recent call last):\n  ..."
        apply_failure(job, FailureDecision(Verdict.RETRY, 1e9), error, 1.9e9 + attempt, worker="w-1")
    history = job.extra["history"]
    assert len(history) == HISTORY_LIMIT
    assert [h["attempt"] for h in history] == list(range(4, HISTORY_LIMIT + 4))
    last = history[-1]
    assert last["error"] == f"ValueError: failure {HISTORY_LIMIT + 3}"  # first line only
    assert last["worker"] == "w-1"
    assert last["time"].startswith("2030-")
    # The record round-trips the history unchanged (it is an extra field).
    assert Job.from_record(job.to_record()).extra["history"] == history


def test_history_tolerates_a_foreign_non_list_value() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    job = Job("id-2", "x", None, Priority.NORMAL, "default", JobStatus.PROCESSING, now, now, attempts=1)
    job.extra["history"] = "written by someone else"
    apply_failure(job, FailureDecision(Verdict.DEAD), "Boom: x", 1.9e9)
    assert [h["attempt"] for h in job.extra["history"]] == [1]


async def test_dead_job_is_listed_with_its_history(redis_url: str, r: redis.Redis, start_worker: StartWorker) -> None:
    r.set("test:broken", 1)
    client = Client(redis_url)
    job_id = client.submit_job("flaky", {"n": 1}, Priority.HIGH, routing_key="gpu", max_retries=2)
    worker = await start_worker(failing_registry(r), routing_keys=("gpu",))
    await eventually(lambda: r.lpos(DEAD, job_id) is not None, what="job in dead letters")

    letters = DeadLetters(client)
    [entry] = letters.entries()
    assert entry.id == job_id and entry.name == "flaky"
    assert (entry.routing_key, entry.priority, entry.attempts) == ("gpu", "high", 3)
    assert entry.error_summary == "ValueError: broken (attempt 3)"
    assert "Traceback (most recent call last)" in entry.traceback
    assert entry.failed_at is not None and not entry.poison_pill and not entry.malformed
    assert [h["attempt"] for h in entry.history] == [1, 2, 3]
    assert [h["error"] for h in entry.history] == [f"ValueError: broken (attempt {i})" for i in (1, 2, 3)]
    assert {h["worker"] for h in entry.history} == {worker.worker_id}
    assert letters.get(job_id) == entry
    assert letters.get("not-dead") is None
    client.close()


async def test_retry_goes_back_to_its_own_routing_key_and_priority(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    client = Client(redis_url)
    job_id = client.submit_job("doomed", None, Priority.LOW, routing_key="email", max_retries=5)
    worker = await start_worker(failing_registry(r), routing_keys=("email",))
    await eventually(lambda: r.lpos(DEAD, job_id) is not None, what="job in dead letters")
    worker.stop()
    await eventually(lambda: not r.zcard("bananas:workers"), what="worker stopped")
    assert r.ttl(f"bananas:job:{job_id}") > 0  # failed records expire (JOB_FAILED_TTL)

    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("bananas:route:email:notify")
    result = DeadLetters(client).retry(job_id)
    assert result.outcome is RetryOutcome.RETRIED
    assert result.queue == "bananas:route:email:queue:low"

    assert r.lrange("bananas:route:email:queue:low", 0, -1) == [job_id.encode()]
    assert r.llen(DEAD) == 0
    rec = record(r, job_id)
    assert (rec["status"], rec["attempts"], rec["routing_key"], rec["priority"]) == ("pending", 0, "email", "low")
    assert "error" not in rec and rec["dlq_retries"] == 1 and rec["max_retries"] == 5
    assert len(rec["history"]) == 1  # kept: the story so far
    assert r.ttl(f"bananas:job:{job_id}") == -1  # a queued job's record never expires
    assert r.exists(f"bananas:result:{job_id}") == 0
    message = None
    for _ in range(50):
        message = pubsub.get_message(timeout=0.1)
        if message:
            break
    assert message is not None and message["channel"] == b"bananas:route:email:notify"
    pubsub.close()
    client.close()


async def test_a_retried_job_that_fails_again_comes_back_and_one_that_heals_completes(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    r.set("test:broken", 1)
    client = Client(redis_url)
    job_id = client.submit_job("flaky", None, routing_key="gpu", max_retries=0)
    await start_worker(failing_registry(r), routing_keys=("gpu",))
    await eventually(lambda: r.lpos(DEAD, job_id) is not None, what="first burial")
    letters = DeadLetters(client)

    assert letters.retry(job_id).outcome is RetryOutcome.RETRIED
    await eventually(lambda: r.lpos(DEAD, job_id) is not None, what="second burial")
    rec = record(r, job_id)
    assert rec["status"] == "failed" and rec["attempts"] == 1 and rec["dlq_retries"] == 1
    assert [h["attempt"] for h in rec["history"]] == [1, 1]  # one per life
    assert r.ttl(f"bananas:job:{job_id}") > 0

    r.delete("test:broken")
    assert letters.retry(job_id).outcome is RetryOutcome.RETRIED
    await eventually(lambda: r.lrange("test:ran", 0, -1) == [job_id.encode()], what="healed run")
    await eventually(lambda: record(r, job_id)["status"] == "completed", what="completed")
    assert r.llen(DEAD) == 0 and record(r, job_id)["dlq_retries"] == 2
    client.close()


def bury_directly(r: redis.Redis, job: Job, *, cap: int = 0) -> None:
    """Put ``job`` in the dead letters the way a worker does (lease, then bury)."""
    job.status = JobStatus.FAILED
    job.error = job.error or "ValueError: boom\nTraceback (most recent call last):\n  File x"
    r.hset("bananas:lease:owners", job.id, "tok")
    SyncRunner(r).run(calls.bury(job.id, "tok", job.to_record(), 3600, cap, layout=keys.STANDALONE))


def dead_job(name: str = "task", routing_key: str = "default", priority: Priority = Priority.NORMAL) -> Job:
    from bananas.core.job import new_job

    job = new_job(name, {"k": routing_key}, priority, routing_key, now=datetime.now(UTC))
    job.attempts = 4
    return job


def test_retry_refusals_write_nothing(redis_url: str, r: redis.Redis) -> None:
    letters = DeadLetters(r)
    assert letters.retry("unknown").outcome is RetryOutcome.NOT_DEAD

    expired = dead_job()
    bury_directly(r, expired)
    r.delete(f"bananas:job:{expired.id}")
    assert letters.retry(expired.id).outcome is RetryOutcome.EXPIRED

    malformed_id = "foreign-1"
    r.set(f"bananas:job:{malformed_id}", b"\x00not json")
    r.lpush(DEAD, malformed_id)
    result = letters.retry(malformed_id)
    assert result.outcome is RetryOutcome.MALFORMED and "not valid JSON" in (result.detail or "")

    stub_id = "foreign-2"  # the stand-in record a worker writes for an unreadable job
    stub = {"id": stub_id, "name": "bananas.malformed_record", "status": "failed", "malformed": True,
            "created_at": "2030-01-01T00:00:00Z", "error": "malformed job record: record missing"}  # fmt: skip
    r.set(f"bananas:job:{stub_id}", json.dumps(stub))
    r.lpush(DEAD, stub_id)
    assert letters.retry(stub_id).outcome is RetryOutcome.MALFORMED

    pending = dead_job()
    bury_directly(r, pending)
    rec = record(r, pending.id)
    rec["status"] = "pending"
    r.set(f"bananas:job:{pending.id}", json.dumps(rec))
    assert letters.retry(pending.id).outcome is RetryOutcome.NOT_FAILED

    before = {k: r.dump(k) for k in r.keys("*")}
    assert letters.retry_all().retried == []
    assert {k: r.dump(k) for k in r.keys("*")} == before


def test_retry_script_refuses_a_record_that_changed_since_it_was_read(redis_url: str, r: redis.Redis) -> None:
    job = dead_job()
    bury_directly(r, job)
    seen = r.get(f"bananas:job:{job.id}")
    assert isinstance(seen, bytes)
    runner = SyncRunner(r)
    fresh = Job.from_record(seen)
    fresh.status = JobStatus.PENDING
    assert runner.run(calls.dlq_retry(fresh, b'{"stale": true}', fresh.to_record(), layout=keys.STANDALONE)) == -1
    assert r.lrange(DEAD, 0, -1) == [job.id.encode()] and r.get(f"bananas:job:{job.id}") == seen
    # Two operators racing: exactly one retry wins, the other finds it gone.
    assert runner.run(calls.dlq_retry(fresh, seen, fresh.to_record(), layout=keys.STANDALONE)) == 1
    assert runner.run(calls.dlq_retry(fresh, fresh.to_record(), fresh.to_record(), layout=keys.STANDALONE)) == 0
    assert r.lrange("bananas:route:default:queue:normal", 0, -1) == [job.id.encode()]


def test_retry_all_filters_by_routing_key_and_keeps_each_priority(redis_url: str, r: redis.Redis) -> None:
    gpu_high, gpu_low = dead_job("a", "gpu", Priority.HIGH), dead_job("b", "gpu", Priority.LOW)
    email = dead_job("a", "email", Priority.HIGH)
    for job in (gpu_high, gpu_low, email):
        bury_directly(r, job)
    report = DeadLetters(r).retry_all(routing_key="gpu")
    assert sorted(x.job_id for x in report.retried) == sorted([gpu_high.id, gpu_low.id]) and not report.skipped
    assert r.lrange("bananas:route:gpu:queue:high", 0, -1) == [gpu_high.id.encode()]
    assert r.lrange("bananas:route:gpu:queue:low", 0, -1) == [gpu_low.id.encode()]
    assert r.lrange(DEAD, 0, -1) == [email.id.encode()]
    assert r.smembers("bananas:routing_keys") == {b"gpu"}

    by_name = DeadLetters(r).retry_all(name="nope")
    assert by_name.retried == [] and r.llen(DEAD) == 1


def test_list_filters_limits_and_shows_expired_entries(redis_url: str, r: redis.Redis) -> None:
    jobs = [dead_job("resize", "gpu"), dead_job("mail", "email"), dead_job("resize", "gpu")]
    for job in jobs:
        bury_directly(r, job)
    r.lpush(DEAD, "gone-1")  # its record expired long ago
    letters = DeadLetters(r)
    assert [e.id for e in letters.entries()] == ["gone-1", jobs[2].id, jobs[1].id, jobs[0].id]  # newest first
    assert [e.id for e in letters.entries(routing_key="gpu")] == [jobs[2].id, jobs[0].id]
    assert [e.id for e in letters.entries(name="mail")] == [jobs[1].id]
    assert [e.id for e in letters.entries(routing_key="gpu", limit=1)] == [jobs[2].id]
    gone = letters.entries(limit=1)[0]
    assert gone.expired and gone.job is None and gone.summary()["expired"] is True


def test_purge_deletes_entries_records_and_results(redis_url: str, r: redis.Redis) -> None:
    gpu, email = dead_job("a", "gpu"), dead_job("a", "email")
    for job in (gpu, email):
        bury_directly(r, job)
        r.hset(f"bananas:result:{job.id}", mapping={"status": "failed"})
    r.lpush(DEAD, "gone-1")
    letters = DeadLetters(r)
    assert letters.purge(routing_key="gpu") == 1
    assert not r.exists(f"bananas:job:{gpu.id}", f"bananas:result:{gpu.id}")
    assert r.exists(f"bananas:job:{email.id}") == 1
    assert letters.purge() == 2
    assert r.llen(DEAD) == 0 and not r.exists(f"bananas:job:{email.id}", f"bananas:result:{email.id}")


def test_purge_keeps_the_record_of_a_job_retried_meanwhile(redis_url: str, r: redis.Redis) -> None:
    job = dead_job()
    bury_directly(r, job)
    assert DeadLetters(r).retry(job.id).outcome is RetryOutcome.RETRIED
    # A purge that read the list before the retry still names the id: it must not delete.
    assert SyncRunner(r).run(calls.dlq_purge([job.id], layout=keys.STANDALONE)) == 0
    assert record(r, job.id)["status"] == "pending"


def test_dead_letter_list_is_capped(redis_url: str, r: redis.Redis) -> None:
    jobs = [dead_job() for _ in range(8)]
    for job in jobs:
        bury_directly(r, job, cap=5)
    assert r.lrange(DEAD, 0, -1) == [j.id.encode() for j in reversed(jobs[-5:])]


@pytest.mark.parametrize("count", [1200])
def test_bulk_retry_and_purge_cross_chunk_boundaries(redis_url: str, r: redis.Redis, count: int) -> None:
    pipe = r.pipeline(transaction=False)
    ids = []
    for i in range(count):
        job = dead_job("bulk", "gpu" if i % 2 else "email")
        job.status, job.error = JobStatus.FAILED, "E: x"
        pipe.set(keys.job(job.id), job.to_record(), ex=3600)
        pipe.lpush(DEAD, job.id)
        ids.append(job.id)
    pipe.execute()
    letters = DeadLetters(r)
    listed = letters.entries()  # read page by page
    assert [e.id for e in listed] == list(reversed(ids)) and letters.count() == count
    report = letters.retry_all(routing_key="gpu")
    assert len(report.retried) == count // 2 and r.llen("bananas:route:gpu:queue:normal") == count // 2
    assert letters.purge() == count // 2
    assert r.llen(DEAD) == 0
