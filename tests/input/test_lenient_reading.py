"""One bad value written by a foreign producer never stops a reader for the other jobs
(issue 9, items 1 and 19): records are read through typed, lenient accessors and ids
through one decoder (``codec.decode_id``), in every recovery, reconcile and heartbeat pass."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import redis
from input_helpers import StartWorker, eventually

from bananas import Client, Job, Registry
from bananas.core.clock import SYSTEM_CLOCK
from bananas.redis import connection, keys
from bananas.redis.broker import Broker
from bananas.worker.heartbeat import LeaseKeeper
from bananas.worker.reconciler import reconcile

CREATED = "2030-01-01T00:00:00Z"
#: A job id a foreign client wrote that is not UTF-8.
FOREIGN_ID = b"\xff\xfe-foreign-id"


def _lease_to_dead_worker(r: redis.Redis, job_id: str, worker: str, *, expired_ms_ago: int = 10_000) -> None:
    """Put ``job_id`` in the state a killed worker leaves it in: leased, owner gone, deadline passed."""
    record = json.loads(r.get(keys.job(job_id)))  # type: ignore[arg-type]
    record["status"] = "processing"
    record["attempts"] = 1
    queue = keys.route_queue(record.get("routing_key") or "default", record.get("priority") or "normal")
    r.lrem(queue, 0, job_id)
    r.set(keys.job(job_id), json.dumps(record))
    r.zadd(keys.LEASES, {job_id: int(time.time() * 1000) - expired_ms_ago})
    r.hset(keys.LEASE_OWNERS, job_id, f"{worker}:1")


async def test_a_junk_recoveries_field_does_not_stop_recovery_of_the_others(
    redis_url: str, r: redis.Redis, start_worker: StartWorker, cli_env: dict[str, str]
) -> None:
    ran: list[str] = []
    registry = Registry()
    registry.add("task", lambda job: ran.append(job.id))
    with Client(redis_url) as client:
        healthy = [client.submit_job("task", {"n": n}) for n in range(8)]
        junk = [client.submit_job("task", {"junk": kind}) for kind in ("x", "list")]
    # Two killed workers held the 8 healthy jobs; the two junk records sort first in
    # deadline order, so they are in every recovery batch.
    for n, job_id in enumerate(healthy):
        _lease_to_dead_worker(r, job_id, f"dead-host:{100 + n % 2}:aaaa")
    for job_id, value in zip(junk, ("x", [1, 2]), strict=True):
        _lease_to_dead_worker(r, job_id, "dead-host:102:bbbb", expired_ms_ago=60_000)
        record = json.loads(r.get(keys.job(job_id)))  # type: ignore[arg-type]
        record["recoveries"] = value
        r.set(keys.job(job_id), json.dumps(record))

    done = subprocess.run(
        [sys.executable, "-m", "bananas", "reconcile"], env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr

    await start_worker(registry, lease_seconds=2.0)
    await eventually(lambda: set(healthy) <= set(ran), timeout=15, what="the 8 healthy jobs recovered and run")
    # The junk ones are recovered too: their count restarts from a safe default.
    await eventually(lambda: set(junk) <= set(ran), timeout=15, what="the junk jobs recovered and run")
    assert sorted(ran) == sorted(healthy + junk)  # each exactly once
    with Client(redis_url) as client:
        for job_id in healthy + junk:
            job = client.get_job(job_id)
            assert job is not None and job.extra["recoveries"] == 1, job_id


def test_typed_accessors_return_safe_defaults_on_junk() -> None:
    base = {"id": "j", "name": "task", "created_at": CREATED}
    junk = Job.from_dict(
        {
            **base,
            "recoveries": "x",
            "result_ttl": 10**17,
            "timeout": "soon",
            "parked": [1],
            "history": ["oops", {"attempt": 1}],
            "poison_pill": "yes",
            "failed_at": 5,
            "dlq_retries": [],
        }
    )
    assert junk.recoveries == 0
    assert junk.result_ttl is None  # out of range: the worker's default applies
    assert junk.timeout is None
    assert junk.parked is None
    assert junk.history == [{"attempt": 1}]
    assert junk.poison_pill is False
    assert junk.failed_at is None
    assert junk.dlq_retries == 0
    fine = Job.from_dict({**base, "recoveries": 2.0, "result_ttl": 60, "timeout": 1.5, "poison_pill": True})
    assert (fine.recoveries, fine.result_ttl, fine.timeout, fine.poison_pill) == (2, 60, 1.5, True)


async def test_non_utf8_ids_do_not_break_reconcile_or_the_heartbeat(
    redis_url: str, r: redis.Redis, cli_env: dict[str, str]
) -> None:
    with Client(redis_url) as client:
        good = client.submit_job("task", {"n": 1})
    queue = keys.route_queue("default", "normal")
    r.lpush(queue, FOREIGN_ID)
    r.zadd(keys.LEASES, {FOREIGN_ID + b"-leased": 1})
    r.hset(keys.LEASE_OWNERS, FOREIGN_ID + b"-owned", b"\xfftoken")
    r.lpush(keys.DEAD, FOREIGN_ID + b"-dead")

    client_ = connection.async_client(redis_url)
    try:
        broker = Broker(client_)
        report = await reconcile(broker, SYSTEM_CLOCK, lease_seconds=30.0)
        assert report.repairs  # the lease without owner/record and the owner without lease are repaired
        # The worker's heartbeat: a foreign id it no longer holds comes back as "lost".
        lost: list[str] = []
        held = {FOREIGN_ID.decode("utf-8", "surrogateescape"): "not-the-token"}
        keeper = LeaseKeeper(broker, SYSTEM_CLOCK, 30.0, lambda: held, lost.append, "w-1", {})
        r.zadd(keys.LEASES, {FOREIGN_ID: 1})
        await keeper.beat()
        assert lost == [FOREIGN_ID.decode("utf-8", "surrogateescape")]
        await broker.close()
    finally:
        await client_.aclose()

    done = subprocess.run(
        [sys.executable, "-m", "bananas", "reconcile"], env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "UnicodeDecodeError" not in done.stderr
    assert r.lpos(queue, good) is not None  # the healthy job is untouched


async def test_rehome_honours_the_dead_letter_cap(redis_url: str, r: redis.Redis) -> None:
    """A failed job found in a ready list as well as the dead letters is put in the dead
    letters once, and the list stays within DEAD_LETTER_MAX like every other push to it."""
    r.rpush(keys.DEAD, "old-4", "old-3", "gone-bad", "old-2", "old-1", "old-0")
    record = {"id": "gone-bad", "name": "task", "created_at": CREATED, "status": "failed", "error": "boom"}
    r.set(keys.job("gone-bad"), json.dumps(record))
    r.lpush(keys.route_queue("default", "normal"), "gone-bad")
    client_ = connection.async_client(redis_url)
    try:
        broker = Broker(client_)
        report = await reconcile(broker, SYSTEM_CLOCK, lease_seconds=30.0, dead_letter_cap=3)
        await broker.close()
    finally:
        await client_.aclose()
    assert [rep.job_id for rep in report.repairs if rep.applied] == ["gone-bad"]
    assert r.lrange(keys.DEAD, 0, -1) == [b"gone-bad", b"old-4", b"old-3"]
