"""The worker's wake-ups across a Cluster failover: after kill -9 of a master, an idle
worker's shard subscriptions are made again on the promoted replica, so a job queued
there still wakes it within milliseconds (not at the next safety poll), and the runner
sends the scripts to the new master once it has re-read the slot map."""

from __future__ import annotations

import asyncio
import time

import pytest
from integration.support import Recorder, Workers, eventually

from bananas.redis import connection
from bananas.redis.runner import AsyncRunner
from cluster.group import ClusterGroup, slot_of
from cluster.test_runtime import make_job, submit_raw

pytestmark = pytest.mark.timeout(120)

#: One routing key on each master (cluster/group.py ON_MASTER).
KEYS = ("alpha", "delta", "beta")
VICTIM = "delta"


async def test_wakeups_follow_a_failover(
    cluster: ClusterGroup, workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the sharded wake-ups can start a job quickly: the safety polls are far away.
    monkeypatch.setattr("bananas.worker.service.IDLE_POLL", 60.0)
    monkeypatch.setattr("bananas.worker.fetcher.FULL_SCAN_INTERVAL", 60.0)
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=KEYS)
    client = connection.async_client(cluster.url)
    runner = AsyncRunner(client)
    try:
        before = make_job(VICTIM)
        await submit_raw(runner, [before])
        await eventually(lambda: before.id in rec.ids, timeout=5, what="a job before the kill")

        killed = cluster.kill_master(VICTIM)
        started = time.monotonic()
        cluster.wait_failover(killed, slot_of(VICTIM))
        failover_s = time.monotonic() - started

        # Submits go to the promoted replica once the runner has re-read the slot map.
        async def submitted() -> bool:
            try:
                return await submit_raw(runner, [after]) == [1]
            except Exception:
                return False

        after = make_job(VICTIM)
        await eventually(submitted, timeout=15, what="a submit to the promoted replica")
        queued = time.monotonic()
        # The listener resubscribes with backoff after losing the master: allow that, but
        # far less than the 60 s safety poll.
        await eventually(lambda: after.id in rec.ids, timeout=15, what="the job after the failover")
        pickup_s = time.monotonic() - queued
        print(f"\ncluster failover {failover_s:.1f}s; pickup after it {pickup_s * 1000:.0f} ms")
        assert pickup_s < 10
        # The other masters' keys were never disturbed.
        others = [make_job(k) for k in KEYS if k != VICTIM]
        await submit_raw(runner, others)
        await eventually(lambda: all(j.id in rec.ids for j in others), timeout=5, what="jobs on the other masters")
    finally:
        await client.aclose()
        await asyncio.sleep(0)
