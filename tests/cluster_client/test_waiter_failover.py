"""Result waiters across a failover: ``kill -9`` of the master holding a waited job's
routing key. The waiter's shard subscription dies with that master; it subscribes
again where the slot lives now, so the result stored on the promoted replica still ends
the wait, and waits on the other masters are not held up meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from cluster.group import ClusterGroup, master_index, slot_of

from bananas import AsyncClient
from bananas.redis import connection, keys
from cluster_client.test_client_paths import ack, take

pytestmark = pytest.mark.timeout(120)

VICTIM, OTHER = "alpha", "delta"
LAYOUT = keys.CLUSTER


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    group = ClusterGroup(tmp_path_factory.mktemp("cluster-waiter"))  # with replicas
    try:
        group.start()
        yield group
    finally:
        group.stop()


async def test_a_wait_survives_the_failover_of_its_master(cluster: ClusterGroup) -> None:
    assert master_index(VICTIM) != master_index(OTHER)
    async with AsyncClient(cluster.url) as client:
        victim_id = await client.submit_job("slow", None, routing_key=VICTIM)
        other_id = await client.submit_job("slow", None, routing_key=OTHER)
        victim_wait = asyncio.create_task(client.get_result(victim_id, timeout=60))
        other_wait = asyncio.create_task(client.get_result(other_id, timeout=60))
        await asyncio.sleep(0.3)  # both subscribed

        killed = await asyncio.to_thread(cluster.kill_master, VICTIM)
        # The other master's result arrives while the victim's slot has no master yet.
        other = connection.sync_client(cluster.url)
        await asyncio.to_thread(lambda: ack(other, take(other, other_id), "other"))
        started = time.monotonic()
        assert await asyncio.wait_for(other_wait, 15) == "other"
        assert time.monotonic() - started < 10

        await asyncio.to_thread(cluster.wait_failover, killed, slot_of(VICTIM))
        # The job was written before the kill: the replica has it (or, if the copy had
        # not reached it, the test resubmits nothing and says so).
        r = connection.sync_client(cluster.url)
        if r.get(LAYOUT.job(victim_id)) is None:
            pytest.skip("the replica had not received the job before the kill (asynchronous replication)")
        await asyncio.to_thread(lambda: ack(r, take(r, victim_id), "victim"))
        assert await asyncio.wait_for(victim_wait, 30) == "victim"

        # New waits after the failover subscribe on the promoted master.
        again = await client.submit_job("slow", None, routing_key=VICTIM)
        waiting = asyncio.create_task(client.get_result(again, timeout=30))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(lambda: ack(r, take(r, again), "again"))
        assert await asyncio.wait_for(waiting, 15) == "again"
        other.close()
        r.close()
