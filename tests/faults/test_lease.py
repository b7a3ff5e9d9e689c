"""Scenarios 5 and 6: slow handlers past their lease, a hung worker, and late outcomes."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from bananas import Client, Priority
from bananas.redis import keys
from faults.harness import (
    ROUTING_KEYS,
    SOAK,
    Fleet,
    assert_quiet,
    check,
    job_specs,
    records,
    runs,
    scaled,
    submit_all,
    wait_completed,
    wait_until,
    workers_ready,
)

pytestmark = pytest.mark.timeout(1800 if SOAK else 120)

LEASE = 1.0


def _starts(store: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in store.hgetall("test:starts").items()}


def test_slow_handlers_keep_their_lease(
    fleet: Fleet, redis_url: str, r: redis.Redis, store: redis.Redis, client: Client
):
    """Scenario 5a: a 4 s job under a 1 s lease runs once: the heartbeat extends its lease
    while a second idle worker waits for anything to recover."""
    for _ in range(2):
        fleet.worker(redis_url, concurrency=4, lease=LEASE)
    wait_until(workers_ready(r, 2), 30, "2 workers")
    started = time.monotonic()
    slow = [
        client.submit_job("slow", {"seconds": 4}, Priority.HIGH, routing_key=ROUTING_KEYS[i % 3])
        for i in range(scaled(4))
    ]
    ids = slow + submit_all(client, job_specs(scaled(1000), ms=(5, 30)))
    wait_completed(r, ids, timeout=60 * (SOAK + 1))
    outcome = check("slow_handler", r, store, ids, started, lease_seconds=LEASE, slow_jobs=len(slow), job_seconds=4)
    assert outcome.lost == 0
    assert outcome.duplicated == 0
    assert all(n == 1 for n in _starts(store).values()), "a slow job was started twice"
    for record in records(r, slow).values():
        assert record is not None
        assert record["attempts"] == 1
        assert "recoveries" not in record
    assert_quiet(r)


def test_hung_worker_loses_its_lease(fleet: Fleet, redis_url: str, r: redis.Redis, store: redis.Redis, client: Client):
    """Scenario 5b: a worker frozen with SIGSTOP stops heartbeating; its job is delivered
    again elsewhere; resumed with SIGCONT, its late acknowledgement changes nothing."""
    hung = fleet.worker(redis_url, concurrency=1, lease=LEASE, env={"TEST_ROLE": "hung"}, name="hung")
    wait_until(workers_ready(r, 1), 30, "the first worker")
    started = time.monotonic()
    job_id = client.submit_job("slow", {"seconds": 3}, routing_key="alpha")
    wait_until(lambda: _starts(store).get(job_id) == 1, 20, "the job to start in the first worker")
    hung.signal(signal.SIGSTOP)
    try:
        fleet.worker(redis_url, concurrency=4, lease=LEASE, name="healthy")
        load = submit_all(client, job_specs(scaled(1000), ms=(5, 30)))
        wait_completed(r, [job_id], timeout=30)
        settled = r.get(keys.job(job_id))
    finally:
        hung.signal(signal.SIGCONT)
    wait_until(lambda: runs(store).get(job_id) == 2, 20, "the resumed worker to finish its copy")
    wait_until(lambda: "after its lease was lost" in hung.log_text(), 20, "the late ack to be refused")
    assert r.get(keys.job(job_id)) == settled, "the late acknowledgement rewrote the record"
    assert hung.alive()
    record = records(r, [job_id])[job_id]
    assert record is not None and record["status"] == "completed"
    assert record["recoveries"] == 1 and record["attempts"] == 2
    wait_completed(r, load, timeout=60 * (SOAK + 1))
    outcome = check("hung_worker", r, store, [job_id, *load], started, hung_jobs=1)
    assert outcome.lost == 0 and outcome.duplicated == 1 and runs(store)[job_id] == 2
    assert_quiet(r)


def test_late_outcomes_do_not_corrupt(fleet: Fleet, redis_url: str, r: redis.Redis, store: redis.Redis, client: Client):
    """Scenario 6: a hung worker's late ack, late retry and late bury are all refused; each
    job keeps the one completed record (and result) its current lease holder wrote."""
    per_kind = scaled(7)
    total = 3 * per_kind
    hung = fleet.worker(redis_url, concurrency=total + 5, lease=LEASE, env={"TEST_ROLE": "hung"}, name="hung")
    wait_until(workers_ready(r, 1), 30, "the first worker")
    started = time.monotonic()
    ids: list[str] = []
    for i in range(per_kind):
        rk = ROUTING_KEYS[i % 3]
        ids.append(client.submit_job("slow", {"seconds": 3}, routing_key=rk))  # late ack
        ids.append(client.submit_job("slow", {"seconds": 3, "raise": True}, routing_key=rk))  # late retry
        ids.append(client.submit_job("slow", {"seconds": 3, "raise": True}, routing_key=rk, max_retries=0))  # bury
    wait_until(lambda: len(_starts(store)) == total, 30, "every job to start in the first worker")
    load = submit_all(client, job_specs(scaled(1000), ms=(5, 30)))
    wait_until(lambda: len(runs(store)) >= 50, 30, "the first worker to run some of the load")
    hung.signal(signal.SIGSTOP)
    # Read what it holds only once it is really stopped: a dequeue it makes between the
    # signal and the stop would otherwise be missed here, though it runs twice.
    wait_until(hung.stopped, 10, "the hung worker to stop")
    held = {k.decode() for k, v in r.hgetall(keys.LEASE_OWNERS).items() if f":{hung.pid}:" in v.decode()}
    try:
        fleet.worker(redis_url, concurrency=total + 5, lease=LEASE, name="healthy")
        wait_completed(r, ids + load, timeout=60 * (SOAK + 1))
        settled = {i: r.get(keys.job(i)) for i in ids}
        results = {i: r.hgetall(keys.result(i)) for i in ids}
    finally:
        hung.signal(signal.SIGCONT)
    wait_until(lambda: all(runs(store).get(i) == 2 for i in ids), 30, "the late copies to finish")
    wait_until(
        lambda: hung.log_text().count("after its lease was lost") >= total, 30, "every late outcome to be refused"
    )
    assert {i: r.get(keys.job(i)) for i in ids} == settled, "a late outcome rewrote a record"
    assert {i: r.hgetall(keys.result(i)) for i in ids} == results, "a late outcome rewrote a result"
    assert r.llen(keys.DEAD) == 0, "a late bury reached the dead letters"
    assert hung.alive()
    outcome = check(
        "late_ack",
        r,
        store,
        ids + load,
        started,
        held_when_hung=len(held),
        late_ack=per_kind,
        late_retry=per_kind,
        late_bury=per_kind,
    )
    assert outcome.lost == 0
    assert set(ids) <= held, "the hung worker did not hold every slow job"
    duplicated = {i for i, n in runs(store).items() if n > 1}
    assert set(ids) <= duplicated, "a slow job did not run twice (once late)"
    assert duplicated <= held, "a job not held by the hung worker ran twice"
    assert_quiet(r)
