"""finish.lua, table-driven against a real server: seed, call, compare (issue 14)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import redis

import bananas
from bananas.client.core import ClientCore
from bananas.core.workflow import step_link
from bananas.redis import calls, keys
from bananas.redis.runner import SyncRunner


def submit(r: redis.Redis, workflow: bananas.Chain | bananas.Chord) -> tuple[str, list[list[str]]]:
    plan, call = ClientCore().submit_workflow(workflow)
    assert SyncRunner(r).run(call) == 1
    assert SyncRunner(r).run(call) == 0  # a retried submit writes nothing
    return plan.id, [[j.id for j in stage] for stage in plan.stages]


def lease(r: redis.Redis, job_id: str, token: str) -> None:
    r.hset(keys.LEASE_OWNERS, job_id, token)
    r.zadd(keys.LEASES, {job_id: 1})


def end(r: redis.Redis, job_id: str, token: str, result: object, status: str = "completed") -> int:
    from bananas.core.job import Job

    job = Job.from_record(r.get(keys.job(job_id)) or b"")
    link = step_link(job)
    assert link is not None
    step = calls.StepEnd(
        link.workflow_id, link.stage, link.index, link.size, link.is_group, link.allow_failure,
        [(n.id, n.routing_key, n.priority) for n in link.next], json.dumps(result).encode(),
        "boom" if status != "completed" else "", 3600, datetime.now(UTC).isoformat(),
    )  # fmt: skip
    call = calls.finish(
        job_id, token, job.to_record(), 0, status, dead_cap=-1 if status == "completed" else 0, step=step,
        layout=keys.STANDALONE,
    )
    return int(SyncRunner(r).run(call))


def test_a_member_ending_twice_counts_once_and_the_callback_is_queued_once(r: redis.Redis) -> None:
    wid, (members, (callback,)) = submit(
        r,
        bananas.chord([bananas.sig("m", routing_key="gpu"), bananas.sig("m")], bananas.sig("cb", routing_key="email")),
    )
    assert r.llen("bananas:route:gpu:queue:normal") == 1 and r.exists(keys.job(callback)) == 0
    lease(r, members[0], "t1")
    assert end(r, members[0], "t1", "first") == 1
    # The same member delivered again after a crash, ending again with another result.
    lease(r, members[0], "t2")
    assert end(r, members[0], "t2", "again") == 1
    assert r.hget(keys.workflow(wid), "count:0") == b"1"
    assert r.exists(keys.job(callback)) == 0
    # A late ack of a lost lease changes nothing.
    assert end(r, members[1], "never-held", "x") == 0
    lease(r, members[1], "t3")
    assert end(r, members[1], "t3", {"n": 2}) == 1
    assert r.lrange("bananas:route:email:queue:normal", 0, -1) == [callback.encode()]
    record = json.loads(r.get(keys.job(callback)) or b"")
    assert record["parent_result"] == ["first", {"n": 2}] and record["status"] == "pending"
    assert r.hexists(keys.workflow(wid), f"record:{callback}") == 0
    # The member ending yet again cannot queue the callback twice.
    lease(r, members[1], "t4")
    assert end(r, members[1], "t4", "late") == 1
    assert r.llen("bananas:route:email:queue:normal") == 1
    # The callback ends: the workflow completes with its result, announced once.
    lease(r, callback, "t5")
    assert end(r, callback, "t5", 42) == 1
    assert r.hget(keys.workflow(wid), "state") == b"completed"
    assert r.hget(keys.result(wid), "result") == b"42"
    assert 0 < r.ttl(keys.workflow(wid)) <= 3600


def test_a_failed_step_fails_the_workflow_and_queues_nothing(r: redis.Redis) -> None:
    wid, ((first,), (second,)) = submit(r, bananas.chain(bananas.sig("a"), bananas.sig("b")))
    lease(r, first, "t")
    assert end(r, first, "t", None, status="failed") == 1
    assert r.hget(keys.workflow(wid), "state") == b"failed"
    assert r.hget(keys.workflow(wid), "failed_step") == first.encode()
    assert r.hget(keys.result(wid), "status") == b"failed"
    assert r.exists(keys.job(second)) == 0 and r.lrange(keys.DEAD, 0, -1) == [first.encode()]


async def test_a_poison_pill_step_fails_its_workflow_and_frees_its_unique_key(redis_url: str, r: redis.Redis) -> None:
    import redis.asyncio as aioredis

    from bananas.core.clock import SYSTEM_CLOCK
    from bananas.redis.broker import Broker
    from bananas.worker.recoverer import Recoverer

    wid, ((first,), (second,)) = submit(r, bananas.chain(bananas.sig("pill"), bananas.sig("b")))
    # The step's worker died under it for the last time allowed: its lease expired long ago.
    r.rpop("bananas:route:default:queue:normal")
    record = json.loads(r.get(keys.job(first)) or b"")
    record.update(status="processing", recoveries=1, unique_key="pill-key")
    r.set(keys.job(first), json.dumps(record))
    r.set(keys.unique_lock("pill-key"), first)
    lease(r, first, "dead-worker")
    client = aioredis.Redis.from_url(redis_url)
    try:
        recoverer = Recoverer(Broker(client), SYSTEM_CLOCK, 1.0, 1, lambda _id: False, result_failure_ttl=60)
        assert await recoverer.recover_once() == 1
    finally:
        await client.aclose()
    assert r.lrange(keys.DEAD, 0, -1) == [first.encode()]
    assert r.hget(keys.workflow(wid), "state") == b"failed"
    assert b"poison pill" in (r.hget(keys.result(wid), "error") or b"")
    assert r.exists(keys.unique_lock("pill-key")) == 0
    assert r.exists(keys.job(second)) == 0


def test_allow_failure_counts_a_failure_but_not_a_cancel(r: redis.Redis) -> None:
    members = [bananas.sig("m"), bananas.sig("m")]
    wid, ((a, b), (callback,)) = submit(r, bananas.chord(members, bananas.sig("cb"), allow_failure=True))
    lease(r, a, "t1")
    assert end(r, a, "t1", None, status="failed") == 1
    lease(r, b, "t2")
    assert end(r, b, "t2", 7) == 1
    assert json.loads(r.get(keys.job(callback)) or b"")["parent_result"] == [None, 7]
    wid, ((a, _b), _) = submit(r, bananas.chord(members, bananas.sig("cb"), allow_failure=True))
    lease(r, a, "t3")
    assert end(r, a, "t3", None, status="cancelled") == 1
    assert r.hget(keys.workflow(wid), "state") == b"failed"
