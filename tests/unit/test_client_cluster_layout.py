"""The client's I/O-free core with the cluster key layout: ids that carry their routing
key, every key of a call in its routing key's slot, the registry written beside the
scripts, and what Cluster refuses (migration mode, workflows across routing keys).
Standalone is checked to stay as it was. No server: the cluster suite
(tests/cluster_client) runs these paths on a real cluster."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from bananas import chain, group, sig
from bananas.client.core import ClientCore
from bananas.client.inspect import read_paused, read_queue_stats, read_running, read_workers
from bananas.core.compat import ORIGINAL
from bananas.core.job import Job
from bananas.errors import ValidationError
from bananas.redis import keys
from bananas.scheduler.definition import Schedule, tick_job_id

CLUSTER = ClientCore(layout=keys.CLUSTER)


def slots(keys_: tuple[str, ...] | list[str]) -> set[int]:
    return {key_slot(k.encode()) for k in keys_}


def test_a_cluster_job_id_carries_its_routing_key_and_its_call_one_slot() -> None:
    job_id, call = CLUSTER.submit("task", {"a": 1}, routing_key="gpu")
    assert job_id.startswith("gpu~") and keys.CLUSTER.routing_key_of(job_id) == "gpu"
    assert slots(call.keys) == {key_slot(b"{gpu}")}
    job_id, call = CLUSTER.schedule("task", None, delay=5, routing_key="email")
    assert job_id.startswith("email~") and slots(call.keys) == {key_slot(b"{email}")}
    job_id, call = CLUSTER.submit("task", None, routing_key="gpu", unique_key="{x}")
    assert slots(call.keys) == {key_slot(b"{gpu}")}


def test_standalone_ids_and_keys_are_unchanged() -> None:
    job_id, call = ClientCore().submit("task", None, routing_key="gpu")
    assert "~" not in job_id and len(job_id) == 36
    assert call.keys == (f"bananas:job:{job_id}", "bananas:route:gpu:queue:normal", "bananas:routing_keys")
    assert ClientCore().registry_commands(["gpu"], set()) == []
    assert ClientCore().single_slot([call, ClientCore().submit("t", None, routing_key="email")[1]])


def test_submit_many_groups_one_slot_per_call() -> None:
    core = ClientCore(layout=keys.CLUSTER)
    ids, batch = core.submit_many("task", [1, 2, 3], routing_key="gpu")
    assert all(i.startswith("gpu~") for i in ids) and len(set(ids)) == 3
    assert len(batch) == 1 and slots(batch[0].keys) == {key_slot(b"{gpu}")}
    assert core.single_slot(batch)
    _, one = core.submit("t", None, routing_key="email")
    assert not core.single_slot([batch[0], one])  # two routing keys: no transaction on Cluster


def test_registry_is_added_once_per_routing_key() -> None:
    registered: set[str] = set()
    assert CLUSTER.registry_commands(["gpu", "email", "gpu"], registered) == [
        ("SADD", keys.ROUTING_KEYS, "gpu", "email")
    ]
    registered.update(["gpu", "email"])
    assert CLUSTER.registry_commands(["gpu"], registered) == []
    assert CLUSTER.routing_keys_of(["gpu~1", "email~2", "gpu~3", "plain"]) == ["email", "gpu"]


def test_workflows_on_cluster_use_one_routing_key() -> None:
    flow = chain(sig("a", 1, routing_key="gpu"), group(sig("b", None, routing_key="gpu")))
    plan, call = CLUSTER.submit_workflow(flow)
    assert plan.id.startswith("gpu~") and slots(call.keys) == {key_slot(b"{gpu}")}
    assert all(job.id.startswith("gpu~") for stage in plan.stages for job in stage)
    with pytest.raises(ValidationError) as refused:
        CLUSTER.submit_workflow(chain(sig("a", None, routing_key="gpu"), sig("b", None, routing_key="email")))
    assert str(refused.value) == (
        "on Redis Cluster every step of a workflow must use one routing key (docs/WORKFLOWS.md)"
    )
    ClientCore().submit_workflow(chain(sig("a", None, routing_key="gpu"), sig("b", None, routing_key="email")))


def test_migration_mode_is_refused_on_cluster() -> None:
    with pytest.raises(ValidationError, match="does not run on Redis Cluster"):
        ClientCore(compat=ORIGINAL, layout=keys.CLUSTER)


def test_an_id_without_routing_key_names_no_cluster_job() -> None:
    assert not CLUSTER.knows("0b7c1e1e-0000-4000-8000-000000000000")
    assert CLUSTER.knows("gpu~0b7c1e1e-0000-4000-8000-000000000000")
    assert ClientCore().knows("anything")


def test_cancel_and_its_followup_share_one_slot() -> None:
    job_id, call = CLUSTER.submit("t", None, routing_key="gpu", unique_key="k")
    record = Job.from_record(call.args[1], job_id=job_id).to_record()
    cancel = CLUSTER.cancel(job_id, record)
    followup = CLUSTER.after_cancel(job_id, record)
    assert cancel is not None and followup is not None
    assert CLUSTER.single_slot([cancel, followup])


def test_periodic_job_ids_carry_the_routing_key_on_cluster_only() -> None:
    schedule = Schedule.create("* * * * *", "tick", routing_key="gpu")
    assert schedule.build_job(60, 60.5).id == tick_job_id(schedule.id, 60)
    assert schedule.build_job(60, 60.5, cluster=True).id == f"gpu~{tick_job_id(schedule.id, 60)}"


def test_standalone_readers_send_what_they_always_sent() -> None:
    """Standalone: no routing-key registry read before the fleet-wide sets."""
    assert next(read_running(None)) == [("ZRANGE", keys.LEASES, 0, -1, "WITHSCORES")]
    assert next(read_paused()) == [("HGETALL", keys.PAUSED)]
    assert next(read_workers()) == [("ZRANGE", keys.WORKERS, 0, -1), ("HVALS", keys.LEASE_OWNERS)]
    assert next(read_queue_stats(0.0)) == [
        ("SMEMBERS", keys.ROUTING_KEYS),
        ("ZRANGE", keys.WORKERS, 0, -1),
        ("HGETALL", keys.PAUSED),
        ("ZRANGE", keys.LEASES, 0, -1),
    ]


def test_cluster_readers_visit_every_routing_keys_set() -> None:
    steps = read_paused(keys.CLUSTER)
    assert next(steps) == [("SMEMBERS", keys.ROUTING_KEYS)]
    batch = steps.send([[b"gpu", b"email"]])
    assert batch == [("HGETALL", keys.CLUSTER.paused(k)) for k in ("default", "email", "gpu")]
