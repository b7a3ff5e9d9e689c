"""The pure parts of the runtime on Redis Cluster: which runner a client gets, how a
batch is laid out per master, slot-aware key looks, the worker's order without legacy
lists, migration mode refused, cluster transients counted as connection errors."""

from __future__ import annotations

import re

import pytest
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.exceptions
from redis.crc import key_slot

from bananas import ConfigurationError, Registry, Worker, WorkerSettings
from bananas.redis import eviction, keys
from bananas.redis.backoff import is_connection_error
from bananas.redis.broker import KeyLook
from bananas.redis.cluster_runner import AsyncClusterRunner, _unit, _unit_replies
from bananas.redis.runner import AsyncRunner, Durability
from bananas.redis.scripts import Call, ScriptName

CLUSTER_URL = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"


def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


def test_a_cluster_client_gets_the_cluster_runner_and_a_plain_one_the_plain_runner() -> None:
    cluster = aiocluster.RedisCluster(startup_nodes=[aiocluster.ClusterNode("127.0.0.1", 7000)])  # type: ignore[no-untyped-call]
    plain = aioredis.Redis()
    assert type(AsyncRunner(cluster, dedicated=True)) is AsyncClusterRunner
    assert type(AsyncRunner(plain, dedicated=True)) is AsyncRunner


def test_a_batch_for_one_master_is_its_calls_then_wait() -> None:
    calls = [Call(ScriptName.SUBMIT, ("bananas:route:{a}:job:a~1",), ("x",)) for _ in range(2)]
    durability = Durability(1)
    unit = _unit(calls, False, False, durability)
    assert [c[0] for c in unit] == ["EVALSHA", "EVALSHA", "WAIT"]
    replies, wait = _unit_replies([1, 0, 1], 2, False, durability)
    assert (replies, wait) == ([1, 0], 1)
    unit = _unit(calls, False, True, durability)
    assert [c[0] for c in unit] == ["MULTI", "EVALSHA", "EVALSHA", "EXEC", "WAIT"]
    replies, wait = _unit_replies([b"OK", b"QUEUED", b"QUEUED", [1, 1], 1], 2, True, durability)
    assert (replies, wait) == ([1, 1], 1)
    aborted, _ = _unit_replies([b"OK", b"QUEUED", b"QUEUED", None, 0], 2, True, durability)
    assert all(isinstance(r, Exception) for r in aborted)


def test_a_slot_aware_key_look_never_mixes_slots_in_one_command() -> None:
    names = [keys.CLUSTER.queue(rk, p) for p in ("high", "normal", "low") for rk in ("gpu", "email", "video", "gpu2")]
    look = KeyLook(names, by_slot=True)
    assert look.names == names and sorted(look.keys) == sorted(names)
    for command in look.commands:
        assert command[0] == "EXISTS"
        assert len({_slot(k) for k in command[1:]}) == 1
    assert look.index is not None and [names[i] for i in look.index] == look.keys
    # Standalone: one EXISTS over every key, in the caller's order, as before.
    plain = KeyLook(names)
    assert plain.index is None and plain.commands == [("EXISTS", *names)]


def test_a_big_slot_is_cut_in_chunks() -> None:
    names = [keys.CLUSTER.parked_queue("gpu", "high", f"job{n}") for n in range(2500)]
    look = KeyLook(names, by_slot=True)
    assert [hi - lo for lo, hi in look.chunks] == [1000, 1000, 500]


def test_a_worker_on_cluster_has_no_legacy_lists() -> None:
    worker = Worker(Registry(), WorkerSettings(redis_url=CLUSTER_URL, routing_keys=("default", "gpu")))
    assert worker.queue_order and not any(ref.legacy for ref in worker.queue_order)
    standalone = Worker(Registry(), WorkerSettings(routing_keys=("default", "gpu")))
    assert any(ref.legacy for ref in standalone.queue_order)


def test_migration_mode_is_refused_on_cluster() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("not available on Redis Cluster")) as info:
        WorkerSettings.from_env({"REDIS_URL": CLUSTER_URL, "BANANAS_COMPAT": "original"})
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("BANANAS_COMPAT: ")


def test_cluster_transients_are_connection_errors() -> None:
    assert is_connection_error(redis.exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"))
    assert is_connection_error(redis.exceptions.TryAgainError("TRYAGAIN"))
    assert is_connection_error(redis.exceptions.SlotNotCoveredError("slot 1 not covered"))
    assert is_connection_error(
        redis.exceptions.RedisClusterException("Redis Cluster cannot be connected. Please provide at least one")
    )
    assert not is_connection_error(redis.exceptions.RedisClusterException("EVALSHA - all keys must map to one slot"))
    assert not is_connection_error(redis.exceptions.ResponseError("ERR wrong number of arguments"))


def test_the_riskiest_eviction_policy_of_the_masters_wins() -> None:
    assert eviction.worst(["noeviction", "volatile-lru", "noeviction"]) == "volatile-lru"
    assert eviction.worst(["noeviction", None, "allkeys-lru"]) == "allkeys-lru"
    assert eviction.worst(["noeviction", None]) is None
    assert eviction.worst([]) == "noeviction"


def test_calls_sent_after_an_ask_each_follow_asking() -> None:
    calls = [Call(ScriptName.SUBMIT, ("bananas:route:{a}:job:a~1",), ("x",)) for _ in range(2)]
    unit = _unit(calls, False, False, Durability(1), asking=True)
    assert [c[0] for c in unit] == ["ASKING", "EVALSHA", "ASKING", "EVALSHA", "WAIT"]
    replies, wait = _unit_replies([b"OK", 1, b"OK", 0, 1], 2, False, Durability(1), asking=True)
    assert (replies, wait) == ([1, 0], 1)
