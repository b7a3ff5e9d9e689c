"""Records written into Redis by a foreign (or broken) client, and job names no worker
knows: the worker parks each bad job in the dead letters with the reason, keeps the
original bytes, and keeps running."""

from __future__ import annotations

import asyncio
import json
from dataclasses import fields

import redis
from input_helpers import StartWorker, eventually

from bananas import Client, Job, Registry, WorkerSettings
from bananas.dlq import DeadLetters

DEAD = "bananas:queue:dead"
CREATED = "2030-01-01T00:00:00Z"


def good(job_id: str, **fields: object) -> bytes:
    return json.dumps({"id": job_id, "name": "task", "created_at": CREATED, "status": "pending", **fields}).encode()


#: id -> (record bytes or None for "no record", fragment of the reason)
FOREIGN: dict[str, tuple[bytes | None, str]] = {
    "not-json": (b"{oops", "not valid JSON"),
    "empty": (b"", "not valid JSON"),
    "binary": (b"\xff\xfe\x00\x01", "not valid JSON"),
    "json-array": (b"[1, 2, 3]", "JSON but not an object (got list)"),
    "json-string": (b'"hello"', "JSON but not an object (got str)"),
    "json-null": (b"null", "JSON but not an object (got NoneType)"),
    "missing-id": (json.dumps({"name": "task", "created_at": CREATED}).encode(), "record has no id"),
    "id-mismatch": (good("someone-else"), "does not match its key"),
    "no-record": (None, "record missing"),
    "no-name": (json.dumps({"id": "no-name", "created_at": CREATED}).encode(), "no job name"),
    "no-created-at": (json.dumps({"id": "no-created-at", "name": "task"}).encode(), "no created_at"),
    "bad-routing-key": (good("bad-routing-key", routing_key="a b"), "invalid routing key 'a b'"),
    "bad-priority": (good("bad-priority", priority="urgent"), "unknown priority 'urgent'"),
    "bad-status": (good("bad-status", status="exploded"), "'exploded' is not a valid JobStatus"),
    "bad-time": (good("bad-time", created_at="yesterday"), "Invalid isoformat string"),
    "huge-attempts": (good("huge-attempts", attempts=1e30), "attempts is"),
    "negative-retries": (good("negative-retries", max_retries=-4), "max_retries is -4"),
    "error-not-text": (good("error-not-text", error={"code": 1}), "error must be a string, not dict"),
}


async def test_malformed_records_go_to_dead_letters_and_the_worker_keeps_running(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    ran: list[str] = []
    registry = Registry()
    registry.add("task", lambda job: ran.append(job.id))
    pipe = r.pipeline()
    for index, (job_id, (raw, _)) in enumerate(FOREIGN.items()):
        if raw is not None:
            pipe.set(f"bananas:job:{job_id}", raw)
        # Routed lists and the legacy (pre-routing) list both get foreign ids.
        queue = "bananas:queue:normal" if index % 3 == 0 else "bananas:route:default:queue:high"
        pipe.lpush(queue, job_id)
    pipe.execute()
    # A foreign scheduled entry that is already due, with an unreadable record.
    r.set("bananas:job:sched-bad", b"<xml/>")
    r.zadd("bananas:queue:scheduled", {"sched-bad": 0})

    worker = await start_worker(registry, concurrency=2)
    expected = {*FOREIGN, "sched-bad"}
    await eventually(lambda: {i.decode() for i in r.lrange(DEAD, 0, -1)} == expected, what="all parked")

    with Client(redis_url) as client:
        good_id = client.submit_job("task", {"after": "the bad ones"})
        await eventually(lambda: good_id in ran, what="a good job after the bad ones")
        await eventually(lambda: getattr(client.get_job(good_id), "status", None) == "completed", what="ack")
    assert r.zcard("bananas:leases") == 0 and r.hlen("bananas:lease:owners") == 0
    assert r.zcard("bananas:queue:scheduled") == 0

    entries = {e.id: e for e in DeadLetters(r).entries(limit=None)}
    for job_id, (raw, reason) in {**FOREIGN, "sched-bad": (b"<xml/>", "not valid JSON")}.items():
        entry = entries[job_id]
        assert entry.malformed, job_id
        assert entry.error.startswith("malformed job record: ") and reason in entry.error, (job_id, entry.error)
        if raw is not None:
            assert entry.original_record == raw.decode("utf-8", errors="replace"), job_id
        assert r.ttl(f"bananas:job:{job_id}") > 0  # parked records expire like any failed job
    assert not worker._stopping.is_set()


async def test_unknown_job_name_fails_clearly_without_stopping_the_worker(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    ran: list[str] = []
    registry = Registry()
    registry.add("known", lambda job: ran.append(job.id))
    # Workers may be configured to hand unknown names on to another pool ("park", see
    # the routing docs); with "fail" the job fails at once, with a clear error.
    mode = {"unknown_jobs": "fail"} if "unknown_jobs" in {f.name for f in fields(WorkerSettings)} else {}
    await start_worker(registry, **mode)
    with Client(redis_url) as client:
        unknown_id = client.submit_job("not_registered", {"x": 1}, max_retries=5)
        await eventually(lambda: r.lpos(DEAD, unknown_id) is not None, what="unknown name dead-lettered")
        known_id = client.submit_job("known", None)
        await eventually(lambda: known_id in ran, what="the next job")
        job = client.get_job(unknown_id)
    assert job is not None and job.status.value == "failed"
    assert job.attempts == 1  # no retries: another attempt on this worker cannot succeed
    assert job.error == "no handler registered for job name 'not_registered' on this worker (known: known)"


async def test_a_record_that_breaks_only_after_reading_is_contained(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    """Unknown extra fields of any JSON shape survive a trip through the worker."""
    seen: list[Job] = []
    registry = Registry()
    registry.add("task", seen.append)
    extra = {"x-tenant": {"id": [1, 2, {"deep": None}]}, "x-flag": True, "x-big": 2**63 - 1}
    r.set("bananas:job:fwd-1", good("fwd-1", **extra))
    r.lpush("bananas:route:default:queue:normal", "fwd-1")
    await start_worker(registry)
    await eventually(lambda: seen, what="the job to run")
    await asyncio.sleep(0.05)
    stored = json.loads(r.get("bananas:job:fwd-1"))  # type: ignore[arg-type]
    assert stored["status"] == "completed"
    assert {k: stored[k] for k in extra} == extra


async def test_parked_scheduled_records_expire(r: redis.Redis, start_worker: StartWorker) -> None:
    r.set("bananas:job:sched-bad", b"<xml/>")
    r.zadd("bananas:queue:scheduled", {"sched-bad": 0})
    await start_worker(Registry(), failed_ttl=600)
    await eventually(lambda: r.lpos(DEAD, "sched-bad") is not None, what="parked")
    assert 0 < r.ttl("bananas:job:sched-bad") <= 600


async def test_a_queue_entry_that_is_not_utf8_does_not_wedge_the_worker(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    ran: list[str] = []
    registry = Registry()
    registry.add("task", lambda job: ran.append(job.id))
    r.lpush("bananas:route:default:queue:normal", b"\xff\xfe-not-utf8")
    with Client(redis_url) as client:
        good_id = client.submit_job("task", None)
    await start_worker(registry, lease_seconds=1.0)
    await eventually(lambda: good_id in ran, timeout=3.0, what="the good job to run")
    await eventually(lambda: r.llen(DEAD) == 1, timeout=3.0, what="the foreign entry to be parked")
