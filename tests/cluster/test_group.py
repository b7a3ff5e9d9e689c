"""The Cluster suite's own harness, without Bananas: the cluster forms in seconds, a plain
``redis.cluster.RedisCluster`` reads and writes across slots, the routing keys the suite
uses are on the masters it says, and a replica takes over within seconds of a kill -9."""

from __future__ import annotations

import contextlib
import time

import pytest

from cluster.group import MASTERS, ON_MASTER, ClusterGroup, master_index, slot_of, spread_keys

pytestmark = pytest.mark.timeout(90)


def test_cluster_serves_every_slot(cluster: ClusterGroup) -> None:
    assert cluster.url.startswith("redis+cluster://127.0.0.1:") and cluster.url.count(",") == MASTERS - 1
    with contextlib.closing(cluster.client()) as c:
        for i in range(200):
            c.set(f"key:{i}", i)
        assert [int(c.get(f"key:{i}")) for i in range(200)] == list(range(200))
        # Keys of one hash tag share a slot: a multi-key command on them is allowed.
        c.mset({"{alpha}:a": 1, "{alpha}:b": 2})
        assert c.mget("{alpha}:a", "{alpha}:b") == ["1", "2"]
    spread = {len(keys) for _node, keys in cluster.keys_by_node()}
    assert len(list(cluster.keys_by_node())) == MASTERS and 0 not in spread
    cluster.flushall()
    assert all(keys == [] for _node, keys in cluster.keys_by_node())


def test_routing_keys_are_on_the_masters_the_suite_says(cluster: ClusterGroup) -> None:
    for index, names in enumerate(ON_MASTER):
        for name in names:
            assert master_index(name) == index
            assert cluster.master_of(name) is cluster.initial_masters[index], name
    assert [master_index(k) for k in spread_keys(2)] == [0, 1, 2, 0, 1, 2]
    for replica, master in zip(cluster.initial_replicas, cluster.initial_masters, strict=True):
        with contextlib.closing(replica.client()) as c:
            info = c.info("replication")
        assert int(info["master_port"]) == master.port and info["master_link_status"] == "up"


def test_replica_takes_over_after_kill_9_and_old_master_rejoins(cluster: ClusterGroup) -> None:
    with contextlib.closing(cluster.client()) as c:
        c.set("{beta}:before", "kept")
        c.wait(1, 1000)  # on the replica before the kill
    killed = cluster.kill_master("beta")
    assert killed is cluster.initial_masters[2] and not killed.alive()
    began = time.monotonic()
    promoted = cluster.wait_failover(killed, slot_of("beta"))
    failover_s = time.monotonic() - began
    assert promoted is cluster.initial_replicas[2]
    assert failover_s < 15, f"failover took {failover_s:.1f}s"
    with contextlib.closing(cluster.client()) as c:
        assert c.get("{beta}:before") == "kept"
        c.set("{beta}:after", "written")
    cluster.restart(killed)
    with contextlib.closing(killed.client()) as k:
        assert k.info("replication")["role"] in ("slave", "replica")
    assert {n.port for n in cluster.masters()} == {
        cluster.initial_masters[0].port,
        cluster.initial_masters[1].port,
        promoted.port,
    }
    print(f"\nfailover {failover_s:.1f}s after kill -9")
