"""The worker's runtime on a real Redis Cluster, below the public client: the cluster
runners (one pipeline per master, scripts on every master, NOSCRIPT, WAIT per master,
single-slot transactions), SPUBLISH from the scripts heard by SSUBSCRIBE on every master,
wake-up latency of an idle worker on keys spread over the three masters, recovery of
expired leases and promotion of scheduled jobs in every routing key's slot (the
worker's own and every key in ``bananas:routing_keys``).

Jobs are queued with raw script calls (``redis/calls.py`` with the cluster layout), so
these tests depend on the runtime only, not on the client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import pytest
import redis
from integration.support import Recorder, Workers, eventually

from bananas import WorkerSettings
from bananas.config import QueueSelection
from bananas.core.clock import SYSTEM_CLOCK, to_datetime
from bananas.core.job import Job, new_job
from bananas.core.limits import FleetLimits
from bananas.core.priority import Priority
from bananas.core.selection import DequeuePlan, Source, base_order
from bananas.redis import calls, connection, keys
from bananas.redis.backoff import is_connection_error
from bananas.redis.broker import Broker
from bananas.redis.cluster_runner import AsyncClusterRunner, CrossSlotTransactionError, SyncClusterRunner
from bananas.redis.runner import AsyncRunner, Durability, SyncRunner
from bananas.worker.fetcher import Fetcher
from bananas.worker.reconciler import ReconcileLimits, reconcile
from bananas.worker.wakeup import WakeupListener
from cluster.group import ClusterGroup, master_index, slot_of, spread_keys

pytestmark = pytest.mark.timeout(60)

L = keys.CLUSTER
#: Two routing keys on each master, interleaved (m0, m1, m2, m0, m1, m2).
KEYS = spread_keys(2)


def make_job(routing_key: str, payload: Any = None, name: str = "task", priority: str = "normal") -> Job:
    job = new_job(name, payload, priority, routing_key, now=to_datetime(time.time()))
    job.id = L.new_job_id(routing_key)
    return job


async def submit_raw(runner: AsyncRunner, jobs: list[Job]) -> list[Any]:
    """Queue ``jobs`` as a producer on Cluster does: the scripts, then the registry."""
    replies = await runner.run_many([calls.submit(j, j.to_record(), layout=L) for j in jobs])
    await runner.client.sadd(keys.ROUTING_KEYS, *{j.routing_key for j in jobs})
    return replies


@contextlib.asynccontextmanager
async def async_runner(cluster: ClusterGroup, **options: Any) -> Any:
    client = connection.async_client(cluster.url)
    try:
        yield AsyncRunner(client, **options)
    finally:
        await client.aclose()


def test_keys_of_this_module_are_spread_over_three_masters() -> None:
    assert sorted(master_index(k) for k in KEYS) == [0, 0, 1, 1, 2, 2]


async def test_async_runner_sends_one_batch_per_master(cluster: ClusterGroup) -> None:
    async with async_runner(cluster) as runner:
        assert isinstance(runner, AsyncClusterRunner)
        jobs = [make_job(k, n) for n, k in enumerate(KEYS * 3)]
        assert await submit_raw(runner, jobs) == [1] * len(jobs)
        # Submitted twice: the script says "already there", nothing queued twice.
        assert await submit_raw(runner, jobs[:3]) == [0, 0, 0]
        for key in KEYS:
            node = cluster.master_of(key)
            with contextlib.closing(node.client()) as c:
                assert c.llen(L.queue(key, "normal")) == 3, key
        # Raw commands go to the master of their first key (a multi-key one keeps to a slot).
        lengths = await runner.send([("LLEN", L.queue(k, "normal")) for k in KEYS])
        assert lengths == [3] * len(KEYS)


async def test_a_burst_of_calls_waits_for_connections_instead_of_failing(cluster: ClusterGroup) -> None:
    """The cluster client's node pools raise when they run dry: the runner queues callers
    per node instead, as the standalone client's blocking pool does."""
    async with async_runner(cluster) as runner:
        jobs = [make_job(KEYS[n % 2]) for n in range(1500)]
        replies = await asyncio.gather(
            *(runner.run(calls.submit(j, j.to_record(), layout=L)) for j in jobs), return_exceptions=True
        )
        assert [r for r in replies if r != 1] == []


async def test_noscript_on_every_master_is_reloaded(cluster: ClusterGroup) -> None:
    async with async_runner(cluster) as runner:
        assert await submit_raw(runner, [make_job(k) for k in KEYS]) == [1] * len(KEYS)
        for node in cluster.masters():
            with contextlib.closing(node.client()) as c:
                c.script_flush()
        assert await submit_raw(runner, [make_job(k) for k in KEYS]) == [1] * len(KEYS)


async def test_transactions_stay_in_one_slot(cluster: ClusterGroup) -> None:
    async with async_runner(cluster) as runner:
        one, two = make_job(KEYS[0]), make_job(KEYS[0])
        calls_ = [calls.submit(j, j.to_record(), layout=L) for j in (one, two)]
        assert await runner.run_many(calls_, transaction=True) == [1, 1]
        apart = [calls.submit(j, j.to_record(), layout=L) for j in (make_job(KEYS[0]), make_job(KEYS[1]))]
        with pytest.raises(CrossSlotTransactionError, match="spans 2 hash slots") as info:
            await runner.run_many(apart, transaction=True)
        assert "\n" not in str(info.value)


async def test_wait_replicas_runs_on_each_master_of_the_batch(cluster: ClusterGroup) -> None:
    # strict: raises NotReplicatedError unless the replica of *each* master confirmed.
    async with async_runner(cluster, durability=Durability(1, strict=True)) as runner:
        jobs = [make_job(k) for k in KEYS]
        assert await submit_raw(runner, jobs) == [1] * len(jobs)
        for key in KEYS:
            with contextlib.closing(cluster.master_of(key).client()) as c:
                assert c.info("replication")["connected_slaves"] >= 1


def test_sync_runner_on_cluster(cluster: ClusterGroup) -> None:
    client = connection.sync_client(cluster.url)
    try:
        runner = SyncRunner(client, durability=Durability(1))
        assert isinstance(runner, SyncClusterRunner)
        jobs = [make_job(k) for k in KEYS]
        assert runner.run_many([calls.submit(j, j.to_record(), layout=L) for j in jobs]) == [1] * len(jobs)
        for node in cluster.masters():
            with contextlib.closing(node.client()) as c:
                c.script_flush()
        job = make_job(KEYS[1])
        assert runner.run(calls.submit(job, job.to_record(), layout=L)) == 1
        with pytest.raises(CrossSlotTransactionError):
            runner.run_many([calls.submit(j, j.to_record(), layout=L) for j in jobs[:2]], transaction=True)
    finally:
        client.close()


async def test_spublish_from_scripts_wakes_subscribers_on_every_master(cluster: ClusterGroup) -> None:
    client = connection.async_client(cluster.url)
    events = {L.notify_channel(k): asyncio.Event() for k in KEYS}
    heard: list[tuple[str, float]] = []
    cancels: list[str] = []
    subscribed = asyncio.Event()
    listener = WakeupListener(
        client,
        events,
        on_message=lambda channel: heard.append((channel, time.perf_counter())),
        on_data={keys.CANCEL_CHANNEL: cancels.append},
        on_subscribed=subscribed.set,
        shard_channels=list(events),
    )
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        await asyncio.sleep(0.05)
        runner = AsyncRunner(client)
        latencies = {}
        for key in KEYS:
            heard.clear()
            started = time.perf_counter()
            await submit_raw(runner, [make_job(key)])
            got = await eventually(lambda key=key: [t for c, t in heard if c == L.notify_channel(key)], timeout=5)
            latencies[key] = (got[0] - started) * 1000
        print(f"\ncluster wake-up after submit (ms): { {k: round(v, 1) for k, v in latencies.items()} }")
        assert max(latencies.values()) < 100
        # The fleet-wide cancel channel is a plain PUBLISH, heard on any node.
        with contextlib.closing(cluster.client()) as plain:
            plain.publish(keys.CANCEL_CHANNEL, "some-id")
        await eventually(lambda: cancels == ["some-id"], timeout=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


async def test_idle_worker_on_five_keys_over_three_masters_picks_up_in_milliseconds(
    cluster: ClusterGroup, workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the fallback poll pushed far away, only the sharded wake-ups can start a job.
    monkeypatch.setattr("bananas.worker.service.IDLE_POLL", 60.0)
    monkeypatch.setattr("bananas.worker.fetcher.FULL_SCAN_INTERVAL", 60.0)
    five = KEYS[:5]
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=tuple(five))
    pickups = []
    async with async_runner(cluster) as runner:
        for key in [five[4], five[2], five[0], five[1], five[3]] * 2:
            await asyncio.sleep(0.2)  # idle again
            job = make_job(key)
            started = time.monotonic()
            await submit_raw(runner, [job])
            await eventually(lambda job=job: job.id in rec.ids, timeout=5, what=f"job on {key}", interval=0.001)
            pickups.append((time.monotonic() - started) * 1000)
    pickups.sort()
    p50 = pickups[len(pickups) // 2]
    print(f"\ncluster idle pickup on 5 keys over 3 masters: p50 {p50:.1f} ms, max {pickups[-1]:.1f} ms")
    assert p50 < 100


async def test_order_across_keys_is_the_workers_order(cluster: ClusterGroup, workers: Workers) -> None:
    """One call per routing key, in the worker's order: with one free slot, the first
    key of the worker's list that has a job wins, whichever master holds it."""
    order = (KEYS[2], KEYS[0], KEYS[1])
    async with async_runner(cluster) as runner:
        jobs = {k: [make_job(k, n) for n in range(3)] for k in order}
        await submit_raw(runner, [j for k in reversed(order) for j in jobs[k]])
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=order, concurrency=1)
    expected = [j.id for k in order for j in jobs[k]]
    await eventually(lambda: len(rec.ids) == len(expected), timeout=10)
    assert rec.ids == expected


async def test_expired_leases_are_recovered_in_every_known_slot(cluster: ClusterGroup, workers: Workers) -> None:
    """A worker that died holding jobs on three masters: a worker on *one* of the keys
    recovers all of them (every known routing key's lease set is visited) and runs its own."""
    mine, others = KEYS[0], KEYS[1:3]
    async with async_runner(cluster) as runner:
        jobs = {k: make_job(k) for k in (mine, *others)}
        await submit_raw(runner, list(jobs.values()))
        for key, job in jobs.items():
            refs = base_order([key], [Priority.NORMAL], "strict", legacy=False)
            plan = DequeuePlan.build([Source(r) for r in refs], FleetLimits())
            call = calls.dequeue(plan, FleetLimits(), [-1], lease_ms=200, token="dead:1", count=1, layout=L)
            reply = await runner.run(call)
            assert reply[2] in (job.id.encode(), job.id) and len(reply) == 4  # wait, list index, id, record
    await asyncio.sleep(0.3)  # every lease has expired
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=(mine,), lease_seconds=1.0)
    await eventually(lambda: jobs[mine].id in rec.ids, timeout=15, what="own job recovered and run")
    with contextlib.closing(cluster.client()) as c:

        def back_in_queue() -> bool:
            return all(c.llen(L.queue(k, "normal")) == 1 and c.zcard(L.leases(k)) == 0 for k in others)

        await eventually(back_in_queue, timeout=15, what="other keys' jobs back in their ready lists")


async def test_scheduled_jobs_are_promoted_in_their_slot(cluster: ClusterGroup, workers: Workers) -> None:
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=tuple(KEYS[:3]))
    async with async_runner(cluster) as runner:
        jobs = [make_job(k) for k in KEYS[:3]]
        due = time.time() + 0.5
        replies = await runner.run_many([calls.schedule(j, j.to_record(), due, layout=L) for j in jobs])
        assert replies == [1, 1, 1]
        await runner.client.sadd(keys.ROUTING_KEYS, *KEYS[:3])
    await eventually(lambda: set(rec.ids) == {j.id for j in jobs}, timeout=10, what="scheduled jobs run")
    assert time.time() >= due


def test_a_cluster_node_refusing_scripts_would_show(cluster: ClusterGroup) -> None:
    """Valkey 9.1 keeps refusing every script on a node after one script touched a key of
    another slot ("non local key"); dequeue.lua once did (LMPOP with 'RIGHT' as a key).
    After this module's dequeues, every master still runs scripts."""
    for node in cluster.masters():
        with contextlib.closing(node.client()) as c:
            owned = next(k for k in KEYS if cluster.master_of(k).port == node.port)
            try:
                c.eval("return redis.call('EXISTS', KEYS[1])", 1, L.queue(owned, "high"))
            except redis.exceptions.ResponseError as exc:  # pragma: no cover - the failure shown
                pytest.fail(f"master {node.port} refuses scripts: {exc}")


async def test_reconciler_repairs_each_known_slot(cluster: ClusterGroup) -> None:
    """A lease nobody owns, a job queued twice and a job in no queue (an orphan), on
    three masters: one pass per known routing key's slot and an orphan sweep over every
    master repair them all (each job back in exactly one ready list)."""
    leased, doubled, orphan = make_job(KEYS[0]), make_job(KEYS[1]), make_job(KEYS[2])
    async with async_runner(cluster) as runner:
        await submit_raw(runner, [leased, doubled, orphan])
        await runner.send(
            [
                ("RPOP", L.queue(KEYS[0], "normal")),
                ("ZADD", L.leases(KEYS[0]), int(time.time() * 1000) - 1000, leased.id),
                ("LPUSH", L.queue(KEYS[1], "normal"), doubled.id),
                ("RPOP", L.queue(KEYS[2], "normal")),
            ]
        )
        report = await reconcile(
            Broker(runner.client, layout=L), SYSTEM_CLOCK, lease_seconds=1.0, limits=ReconcileLimits(orphan_min_age=0)
        )
    assert {(r.kind, r.job_id) for r in report.repairs if r.applied} == {
        ("lease_without_owner", leased.id),
        ("duplicate_placement", doubled.id),
        ("orphan", orphan.id),
    }, report.summary()
    assert report.sweep_complete
    with contextlib.closing(cluster.client()) as c:
        assert c.lrange(L.queue(KEYS[0], "normal"), 0, -1) == [leased.id]
        assert c.lrange(L.queue(KEYS[1], "normal"), 0, -1) == [doubled.id]
        assert c.lrange(L.queue(KEYS[2], "normal"), 0, -1) == [orphan.id]
        assert c.zcard(L.leases(KEYS[0])) == 0


async def test_a_slot_moving_to_another_master_is_followed(cluster: ClusterGroup) -> None:
    """Resharding: while a routing key's slot migrates, a script on it is refused
    (ASK on the old master, then TRYAGAIN on the new one: a multi-key call waits for the
    slot to settle); the runner tries again briefly, then raises a retryable error, and
    wrote nothing. Once the slot has moved, it follows MOVED to the new owner."""
    key = KEYS[0]
    slot = slot_of(key)
    source = cluster.master_of(key)
    target = next(n for n in cluster.masters() if n.port != source.port)
    async with async_runner(cluster) as runner:
        first = make_job(key)
        with contextlib.closing(target.client()) as t, contextlib.closing(source.client()) as s:
            t.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source.node_id)
            s.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target.node_id)
            started = time.monotonic()
            with pytest.raises(redis.exceptions.TryAgainError) as info:
                await runner.run(calls.submit(first, first.to_record(), layout=L))
            assert time.monotonic() - started < 3
            assert is_connection_error(info.value)  # the worker's loops back off and retry
            for node in cluster.masters():
                with contextlib.closing(node.client()) as c:
                    c.execute_command("CLUSTER SETSLOT", slot, "NODE", target.node_id)
        assert await submit_raw(runner, [first]) == [1]  # MOVED: the slot map is read again
        with contextlib.closing(target.client()) as t:
            assert t.lrange(L.queue(key, "normal"), 0, -1) == [first.id]


async def test_weighted_selection_keeps_its_shares_across_masters(cluster: ClusterGroup) -> None:
    """Weighted selection with one dequeue call per routing key: each key is asked for the
    slots the weighted draw gave it, so the shares hold as on one server."""
    weights = {"beta": 6, "alpha": 3, "delta": 1}  # one key on each master
    assert sorted(master_index(k) for k in weights) == [0, 1, 2]
    settings = WorkerSettings.from_env(
        {"REDIS_URL": cluster.url, "WORKER_ROUTING_KEYS": ",".join(f"{k}:{w}" for k, w in weights.items())}
    )
    async with async_runner(cluster) as runner:
        for key in weights:
            jobs = [make_job(key) for _ in range(1400)]
            for lo in range(0, len(jobs), 200):
                chunk = jobs[lo : lo + 200]
                call = calls.submit_many(
                    key, Priority.NORMAL, [j.id for j in chunk], [j.to_record() for j in chunk], layout=L
                )
                assert await runner.run(call) == len(chunk)
        fetcher = Fetcher(Broker(runner.client, layout=L), settings, None, SYSTEM_CLOCK)
        counts: Counter[str] = Counter()
        sizes = [1, 3, 10, 7, 2, 1, 5]
        n = 0
        while sum(counts.values()) < 2000:
            free = sizes[n % len(sizes)]
            _, taken = await fetcher.fetch(free, {}, f"test:{n}")
            assert len(taken) == free, "every key holds jobs: every free slot gets one"
            counts.update(source.ref.routing_key for source, _, _ in taken)
            n += 1
    total = sum(counts.values())
    shares = {k: counts[k] / total for k in weights}
    print(f"\ncluster weighted shares over {total} jobs: { {k: f'{v:.1%}' for k, v in shares.items()} }")
    for key, weight in weights.items():
        assert abs(shares[key] - weight / 10) <= 0.03, f"{key}: {shares[key]:.2%}"


async def test_priority_first_across_masters(cluster: ClusterGroup, workers: Workers) -> None:
    """Priority-first selection: every key's high list before any key's low one, though
    the keys live on different masters (one call per key and priority)."""
    first, second = KEYS[0], KEYS[1]
    assert master_index(first) != master_index(second)
    low = [make_job(first, n, priority="low") for n in range(2)]
    high_second = [make_job(second, n, priority="high") for n in range(2)]
    high_first = [make_job(first, 9, priority="high")]
    async with async_runner(cluster) as runner:
        await submit_raw(runner, [*low, *high_second, *high_first])
    rec = Recorder()
    await workers.start(
        rec.registry, routing_keys=(first, second), concurrency=1, queue_selection=QueueSelection.PRIORITY_FIRST
    )
    expected = [j.id for j in (*high_first, *high_second, *low)]
    await eventually(lambda: len(rec.ids) == len(expected), timeout=10)
    assert rec.ids == expected
