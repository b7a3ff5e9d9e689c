"""The client side on a real 3-master Redis Cluster: a user who changes only
``REDIS_URL`` to ``redis+cluster://...`` gets the same behaviour from ``Client``,
``AsyncClient``, the dead letters, limits and the periodic scheduler's store.

The routing keys used live on three different masters (``alpha``, ``delta``, ``beta``).
Where a worker's step is needed (a lease, an ack, a burial, a progress report), the
test runs the worker's own script through the cluster runner after taking the job as a
dequeue would; everything else goes through the public API.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis
from cluster.group import ClusterGroup, master_index

from bananas import AsyncClient, Client, chain, sig
from bananas.client.inspect import read_running
from bananas.core.clock import format_time, to_datetime
from bananas.core.job import Job, JobStatus
from bananas.core.lifecycle import mark_completed, mark_started
from bananas.core.result import result_fields
from bananas.dlq import DeadLetters, RetryOutcome
from bananas.errors import JobCancelledError, ValidationError
from bananas.limits_admin import LimitsAdmin
from bananas.redis import calls, connection, keys
from bananas.redis.broker import Broker
from bananas.redis.runner import SyncRunner
from bananas.scheduler.definition import Schedule
from bananas.scheduler.policy import next_step
from bananas.scheduler.store import FireResult, ScheduleStore, forget, read_states

pytestmark = pytest.mark.timeout(60)

KEYS3 = ("alpha", "delta", "beta")
LAYOUT = keys.CLUSTER


def test_the_routing_keys_are_on_three_masters() -> None:
    assert sorted(master_index(k) for k in KEYS3) == [0, 1, 2]


# -- a worker's steps, with its own scripts -------------------------------------------


def take(r: redis.Redis, job_id: str, token: str = "tok") -> Job:
    """Take ``job_id`` off its ready list and lease it, as the dequeue script does."""
    rk = LAYOUT.routing_key_of(job_id)
    assert rk is not None
    raw = r.get(LAYOUT.job(job_id))
    assert raw is not None
    job = Job.from_record(raw, job_id=job_id)
    assert r.lrem(LAYOUT.queue(rk, job.priority), 1, job_id) == 1
    r.zadd(LAYOUT.leases(rk), {job_id: int(time.time() * 1000) + 60_000})
    r.hset(LAYOUT.lease_owners(rk), job_id, token)
    mark_started(job, to_datetime(time.time()))
    job.attempts += 1
    return job


def ack(r: redis.Redis, job: Job, value: Any, token: str = "tok") -> None:
    now = time.time()
    mark_completed(job, to_datetime(now))
    fields = result_fields(
        job, status="completed", started=now, finished=now, worker="w", encoded_result=json.dumps(value).encode()
    )
    reply = SyncRunner(r).run(calls.ack(job.id, token, job.to_record(), 3600, 3600, fields, layout=LAYOUT))
    assert reply == 1


def bury(r: redis.Redis, job: Job, token: str = "tok") -> None:
    job.status = JobStatus.FAILED
    job.error = "ValueError: boom"
    assert SyncRunner(r).run(calls.bury(job.id, token, job.to_record(), 3600, 0, layout=LAYOUT)) == 1


# -- submit, read, locate, cancel, purge ----------------------------------------------


def test_submit_paths_ids_registry_and_reads(client: Client, cluster: ClusterGroup) -> None:
    assert client.layout is keys.CLUSTER
    ids = {rk: client.submit_job("work", {"rk": rk}, routing_key=rk) for rk in KEYS3}
    for rk, job_id in ids.items():
        assert job_id.startswith(f"{rk}~")
        job = client.get_job(job_id)
        assert job is not None and job.routing_key == rk and job.status is JobStatus.PENDING
    many = client.submit_many("bulk", [1, 2, 3], routing_key="delta", priority="high")
    assert all(i.startswith("delta~") for i in many)
    later = client.schedule_job("later", None, delay=3600, routing_key="beta")
    unique = client.submit_job("u", None, routing_key="alpha", unique_key="k1")
    assert client.submit_job("u", None, routing_key="alpha", unique_key="k1") == unique

    r = cluster.client()
    # The registry was filled beside the scripts (their own "known" is slot-local).
    assert r.smembers(keys.ROUTING_KEYS) == set(KEYS3)

    stats = client.queue_stats()
    assert stats.ready("alpha", "normal") == 2 and stats.ready("delta", "normal") == 1
    assert stats.ready("delta", "high") == 3 and stats.ready("beta", "normal") == 1
    assert stats.scheduled == 1 and stats.dead == 0 and stats.processing == 0
    assert not any(q.legacy for q in stats.queues)
    assert {q.key for q in stats.queues if q.routing_key == "beta"} == {
        LAYOUT.queue("beta", p) for p in ("high", "normal", "low")
    }
    assert json.loads(json.dumps(stats.to_json()))["routes"]  # the --json document builds

    # An id without a routing key cannot exist on Cluster: not found, not an error.
    assert client.get_job("0b7c1e1e-0000-4000-8000-000000000000") is None
    assert client.cancel("no-routing-key") is False

    # Cancel a waiting and a scheduled job: out of their lists at once.
    assert client.cancel(ids["beta"]) is True
    assert client.cancel(later) is True
    assert client.cancel(unique) is True  # with its unique key: released in the same slot
    assert client.submit_job("u", None, routing_key="alpha", unique_key="k1") != unique
    stats = client.queue_stats()
    assert stats.ready("beta", "normal") == 0 and stats.scheduled == 0
    job = client.get_job(ids["beta"])
    assert job is not None and job.status is JobStatus.CANCELLED

    # Purge one routing key: its lists only.
    assert client.purge("delta", dry_run=True) == 4
    assert client.purge("delta") == 4
    assert client.queue_stats().ready("delta", "high") == 0
    assert client.queue_stats().ready("alpha", "normal") == 2


def test_locate_running_workers_pause(client: Client, cluster: ClusterGroup) -> None:
    from bananas.client.locate import locate

    r = connection.sync_client(cluster.url)
    waiting = client.submit_job("w", None, routing_key="alpha")
    job = client.get_job(waiting)
    assert job is not None
    where = locate(client.redis, job, client.layout)
    assert where.place == "ready" and where.key == LAYOUT.queue("alpha", "normal") and where.ahead == 0

    running = [client.submit_job("r", i, routing_key=rk) for i, rk in enumerate(KEYS3)]
    for job_id in running:
        take(r, job_id, token="worker-1:abc")
    found = client.running()
    assert sorted(j.job_id for j in found) == sorted(running)
    assert [j.lease_deadline for j in found] == sorted(j.lease_deadline for j in found)
    assert len(client.running(limit=2)) == 2
    leased = client.get_job(running[2])
    assert leased is not None
    where = locate(client.redis, leased, client.layout)
    assert where.place == "running" and where.key == LAYOUT.leases("beta")
    assert client.queue_stats().processing == 3
    assert client.queue_stats().route("delta").in_flight == 1  # type: ignore[union-attr]
    assert client.workers() == []  # none announced; the read crosses every lease set

    assert client.pause("delta") is True
    assert client.pause("gamma", "high") is True
    assert client.pause("delta") is False
    assert [(p.routing_key, p.priority) for p in client.paused()] == [("delta", None), ("gamma", "high")]
    stats = client.queue_stats()
    assert stats.route("delta").paused  # type: ignore[union-attr]
    assert any(p.kind == "paused" and p.routing_key == "gamma" for p in stats.problems)
    assert client.resume("delta") is True and client.resume("gamma", "high") is True
    assert client.paused() == []


def test_migration_mode_and_cross_key_workflows_are_refused(cluster: ClusterGroup) -> None:
    with pytest.raises(ValidationError, match="does not run on Redis Cluster"):
        Client(cluster.url, compat="original")
    with Client(cluster.url) as client:
        with pytest.raises(ValidationError, match="every step of a workflow must use one routing key"):
            client.submit(chain(sig("a", None, routing_key="alpha"), sig("b", None, routing_key="delta")))
        handle = client.submit(chain(sig("a", 1, routing_key="beta"), sig("b", None, routing_key="beta")))
        assert handle.id.startswith("beta~") and all(i.startswith("beta~") for i in handle.job_ids)
        info = client.get_workflow(handle.id)
        assert info is not None and info.state == "running"
        assert client.get_job(handle.job_ids[0]) is not None
        assert cluster.client().smembers(keys.ROUTING_KEYS) == {"beta"}


# -- results and progress: sharded Pub/Sub ---------------------------------------------


async def test_results_and_progress_arrive_by_ssubscribe(cluster: ClusterGroup) -> None:
    r = connection.sync_client(cluster.url)
    async with AsyncClient(cluster.url) as client:
        waits = {
            rk: asyncio.create_task(client.submit_and_wait("add", {"rk": rk}, routing_key=rk, timeout=20))
            for rk in KEYS3
        }

        def pending() -> list[str]:
            return [k for rk in KEYS3 for k in r.lrange(LAYOUT.queue(rk, "normal"), 0, -1)]

        deadline = time.monotonic() + 10
        while len(pending()) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        ids = [i.decode() for i in pending()]
        assert len(ids) == 3
        for job_id in ids:
            ack(r, take(r, job_id), {"done": job_id})
        results = {rk: await asyncio.wait_for(task, 10) for rk, task in waits.items()}
        assert {rk: v["done"].partition("~")[0] for rk, v in results.items()} == {rk: rk for rk in KEYS3}

        # A running job's progress reaches ``on_progress``; its result ends the wait.
        job_id = await client.submit_job("slow", None, routing_key="delta")
        job = take(r, job_id)
        seen: list[float] = []
        waiting = asyncio.create_task(
            client.get_result(job_id, timeout=20, on_progress=lambda p: seen.append(float(p)))
        )
        await asyncio.sleep(0.3)
        runner = SyncRunner(r)
        runner.run(calls.progress(job_id, "tok", 0.5, "half", format_time(to_datetime(time.time())), 60, layout=LAYOUT))
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert seen == [0.5]
        ack(r, job, 42)
        assert await asyncio.wait_for(waiting, 10) == 42

        # Cancelling a waiting job ends its waiter (the cancel script's notice).
        job_id = await client.submit_job("c", None, routing_key="alpha")
        waiting = asyncio.create_task(client.get_result(job_id, timeout=20))
        await asyncio.sleep(0.3)
        assert await client.cancel(job_id) is True
        with pytest.raises(JobCancelledError):
            await asyncio.wait_for(waiting, 10)


def test_sync_client_waits_on_the_cluster_too(client: Client, cluster: ClusterGroup) -> None:
    import threading

    r = connection.sync_client(cluster.url)
    job_id = client.submit_job("x", None, routing_key="beta")

    def finish() -> None:
        time.sleep(0.3)
        ack(r, take(r, job_id), "ok")

    thread = threading.Thread(target=finish)
    thread.start()
    try:
        assert client.get_result(job_id, timeout=10) == "ok"
    finally:
        thread.join()


# -- dead letters -----------------------------------------------------------------------


def test_dead_letters_of_every_routing_key(client: Client, cluster: ClusterGroup) -> None:
    r = connection.sync_client(cluster.url)
    dead = {rk: [client.submit_job("fails", i, routing_key=rk) for i in range(2)] for rk in KEYS3}
    for ids in dead.values():
        for job_id in ids:
            bury(r, take(r, job_id))
    letters = DeadLetters(client)
    assert letters.count() == 6 and client.queue_stats().dead == 6
    assert sorted(letters.ids()) == sorted(i for ids in dead.values() for i in ids)
    assert [e.id for e in letters.entries(routing_key="delta")] == list(reversed(dead["delta"]))
    page = letters.page(limit=4)
    assert page.total == 6 and len(page.items) == 4 and page.next_cursor == 4
    rest = letters.page(cursor=4, limit=4)
    assert len(rest.items) == 2 and rest.next_cursor is None
    assert {e.id for e in page.items + rest.items} == set(letters.ids())
    one = dead["beta"][0]
    entry = letters.get(one)
    assert entry is not None and entry.routing_key == "beta"

    result = letters.retry(one)
    assert result.outcome is RetryOutcome.RETRIED and result.queue == LAYOUT.queue("beta", "normal")
    assert r.lrange(LAYOUT.queue("beta", "normal"), 0, -1) == [one.encode()]
    assert letters.retry(one).outcome is RetryOutcome.NOT_DEAD
    report = letters.retry_all(routing_key="alpha")
    assert len(report.retried) == 2 and letters.count() == 3
    assert letters.purge(name="fails", routing_key="delta") == 2
    assert letters.delete(dead["beta"][1]) is True
    assert letters.count() == 0
    assert client.get_job(dead["delta"][0]) is None  # purged with its record


def test_limits_in_flight_per_slot(client: Client, cluster: ClusterGroup) -> None:
    admin = LimitsAdmin(connection.sync_client(cluster.url))
    assert admin.layout is keys.CLUSTER
    admin.set_route("alpha", concurrency=2)
    admin.set_job("send", rate="10/s")
    client.submit_job("x", None, routing_key="alpha")
    r = cluster.client()
    r.hset(LAYOUT.inflight("alpha"), "alpha", 1)  # what a dequeue under the limit counts
    view = admin.read()
    assert view.limits.route_concurrency == {"alpha": 2}
    assert view.inflight == {"alpha": 1} and view.per_routing_key


# -- the periodic scheduler's store ---------------------------------------------------


async def test_three_stores_fire_each_tick_exactly_once(cluster: ClusterGroup) -> None:
    schedule = Schedule.create("* * * * *", "tick", routing_key="delta", payload={"n": 1})
    clients = [connection.async_client(cluster.url) for _ in range(3)]
    try:
        stores = [ScheduleStore(Broker(c, layout=LAYOUT)) for c in clients]
        for store in stores:
            await store._broker.load_scripts()
        start = 1_800_000_000 - 1_800_000_000 % 60
        registered = [await s.register(schedule, start, start + 60, float(start)) for s in stores]
        assert [o.result for o in registered].count(FireResult.ENQUEUED) == 1
        cursor = start
        for _ in range(3):  # three ticks, each raced by the three stores
            now = float(cursor + 60 + 1)
            step = next_step(schedule, cursor, now)
            outcomes = await asyncio.gather(*(s.fire(schedule, step, cursor, now) for s in stores))
            assert [o.result for o in outcomes].count(FireResult.ENQUEUED) == 1, outcomes
            assert all(o.cursor == step.tick for o in outcomes)
            assert step.tick is not None
            cursor = step.tick
        r = cluster.client()
        ready = r.lrange(LAYOUT.queue("delta", "normal"), 0, -1)
        assert len(ready) == 3 and len(set(ready)) == 3 and all(i.startswith("delta~") for i in ready)
        assert r.smembers(keys.ROUTING_KEYS) == {"delta"}
        # A store whose cursor is behind never re-queues an old tick.
        old = next_step(schedule, start, float(start + 61))
        assert (await stores[0].fire(schedule, old, start, float(start + 61))).result is FireResult.LOST
        assert r.llen(LAYOUT.queue("delta", "normal")) == 3

        sync = connection.sync_client(cluster.url)
        (state,) = read_states(sync)
        assert state.id == schedule.id and state.cursor == cursor and state.run_count == 3
        assert r.zscore(keys.SCHEDULES, schedule.id) == float(cursor + 60)
        assert forget(connection.sync_client(cluster.url), schedule.id) is True
        assert read_states(sync) == [] and not r.exists(LAYOUT.schedule_index(schedule.id))
    finally:
        for c in clients:
            await c.aclose()


def test_running_reader_on_standalone_layout_is_one_read() -> None:
    """The standalone reader still reads the one lease set straight away (no registry
    read first): its batches are unchanged."""
    steps = read_running(None)
    batch = next(steps)
    assert batch == [("ZRANGE", keys.LEASES, 0, -1, "WITHSCORES")]


# -- the dashboard's backend -------------------------------------------------------------


def test_dashboard_backend_on_cluster(client: Client, cluster: ClusterGroup) -> None:
    from bananas.dashboard.backend import Backend

    backend = Backend(client)
    r = connection.sync_client(cluster.url)
    waiting = client.submit_job("w", None, routing_key="alpha")
    running = client.submit_job("r", None, routing_key="delta")
    take(r, running)
    r.zadd(LAYOUT.leases("delta"), {running: 1})  # a lease past its deadline
    dead = client.submit_job("d", None, routing_key="beta")
    bury(r, take(r, dead))

    assert backend.job(waiting)["location"]["place"] == "ready"
    assert backend.job(running)["location"]["key"] == LAYOUT.leases("delta")
    assert backend.expired_leases(time.time()) == 1
    overview = backend.overview(0, 50, None, False)
    assert {row["routing_key"] for row in overview["routes"]} >= set(KEYS3)
    assert overview["totals"]["dead"] == 1 and overview["totals"]["expired_leases"] == 1
    page = backend.dead_page(0, 10, None, None)
    assert [item["id"] for item in page["items"]] == [dead]
    assert backend.dead_retry(dead)["retried"] is True
    assert backend.running(0, 10, None, None).total == 1
    assert backend.pause("beta", None)["paused"] is True
