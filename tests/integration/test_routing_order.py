"""Routing and order: jobs reach only pools of their routing key; a worker consumes
``k1:high, k1:normal, k1:low, k2:high, ...`` strictly; each list is FIFO."""

from __future__ import annotations

import asyncio
import itertools

import redis
from support import Recorder, Workers, eventually, strings

from bananas import Client, Job, Priority, Registry

PRIORITIES = ("high", "normal", "low")


async def test_jobs_reach_only_pools_of_their_routing_key(client: Client, workers: Workers, r: redis.Redis) -> None:
    gpu = Recorder("gpu-only")
    email = Recorder("email-only")
    general = Recorder("email+default")
    await workers.start(gpu.registry, routing_keys=("gpu",))
    await workers.start(email.registry, routing_keys=("email",))
    await workers.start(general.registry, routing_keys=("email", "default"))

    submitted: dict[str, str] = {}
    for i, (key, prio) in enumerate(itertools.product(["gpu", "email", "default"], PRIORITIES * 4)):
        submitted[client.submit_job("task", i, prio, routing_key=key)] = key
    orphan = client.submit_job_with_route("task", "nobody listens", Priority.HIGH, "video")

    runs = lambda: gpu.runs + email.runs + general.runs  # noqa: E731
    await eventually(lambda: len(runs()) >= len(submitted), what="every routed job to run")
    await asyncio.sleep(0.2)  # a job wrongly delivered twice would show up by now

    allowed = {"gpu": {"gpu-only"}, "email": {"email-only", "email+default"}, "default": {"email+default"}}
    ran_ids = [run[1] for run in runs()]
    assert sorted(ran_ids) == sorted(submitted), "each job runs exactly once"
    for label, job_id, routing_key, _prio, _payload in runs():
        assert routing_key == submitted[job_id]
        assert label in allowed[routing_key], f"{routing_key} job ran on {label}"
    assert orphan not in ran_ids
    assert strings(r.lrange("bananas:route:video:queue:high", 0, -1)) == [orphan]
    assert client.get_job(orphan).status == "pending"  # type: ignore[union-attr]


async def test_multi_key_worker_follows_strict_order(client: Client, workers: Workers, r: redis.Redis) -> None:
    for key in ("k3", "k2", "k1"):
        for prio in reversed(PRIORITIES):
            for i in range(2):
                client.submit_job("task", f"{key}:{prio}:{i}", prio, routing_key=key)
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=("k1", "k2"), concurrency=1)
    expected = [f"{k}:{p}:{i}" for k in ("k1", "k2") for p in PRIORITIES for i in range(2)]
    await eventually(lambda: len(rec.runs) >= len(expected), what="k1 and k2 jobs to run")
    assert rec.payloads == expected
    # k3 is not one of the worker's keys: untouched
    assert sum(r.llen(f"bananas:route:k3:queue:{p}") for p in PRIORITIES) == 6


async def test_order_is_rechecked_before_every_fetch(client: Client, workers: Workers) -> None:
    """A better job that arrives while the worker is busy is taken before waiting ones."""
    gate = asyncio.Event()
    order: list[str] = []
    registry = Registry()

    @registry.handler("task")
    async def task(job: Job) -> None:
        order.append(job.payload)
        if job.payload == "first":
            await gate.wait()

    client.submit_job("task", "first", "low", routing_key="k2")
    await workers.start(registry, routing_keys=("k1", "k2"), concurrency=1)
    await eventually(lambda: order == ["first"], what="first job to start")
    client.submit_job("task", "k2:high", "high", routing_key="k2")
    client.submit_job("task", "k1:low", "low", routing_key="k1")
    client.submit_job("task", "k1:high", "high", routing_key="k1")
    gate.set()
    await eventually(lambda: len(order) == 4, what="all jobs to run")
    assert order == ["first", "k1:high", "k1:low", "k2:high"]


async def test_priority_order_within_a_key_and_fifo(client: Client, workers: Workers) -> None:
    sequence = ["low", "high", "normal", "low", "normal", "high", "high", "low", "normal"]
    for i, prio in enumerate(sequence):
        client.submit_job("task", f"{prio}{i}", prio, routing_key="gpu")
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=("gpu",), concurrency=1)
    await eventually(lambda: len(rec.runs) == len(sequence), what="all jobs to run")
    expected = [f"{p}{i}" for want in PRIORITIES for i, p in enumerate(sequence) if p == want]
    assert rec.payloads == expected


def test_lists_are_lpush_rpop_fifo(client: Client, r: redis.Redis) -> None:
    ids = [client.submit_job("task", i, "normal", routing_key="email") for i in range(5)]
    queue = "bananas:route:email:queue:normal"
    # Producers push on the left: the newest id is at index 0, the oldest at the right end.
    assert strings(r.lrange(queue, 0, -1)) == list(reversed(ids))
    assert strings([r.rpop(queue)]) == [ids[0]]


async def test_worker_takes_only_its_priorities(client: Client, workers: Workers, r: redis.Redis) -> None:
    high = client.submit_job("task", "h", "high", routing_key="gpu")
    normal = client.submit_job("task", "n", "normal", routing_key="gpu")
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=("gpu",), priorities=(Priority.HIGH,))
    await eventually(lambda: rec.ids == [high], what="the high job to run")
    await asyncio.sleep(0.1)
    assert rec.ids == [high]
    assert strings(r.lrange("bananas:route:gpu:queue:normal", 0, -1)) == [normal]


async def test_legacy_lists_drained_after_defaults_routed_list(
    client: Client, workers: Workers, r: redis.Redis
) -> None:
    for prio in reversed(PRIORITIES):
        legacy_id = f"legacy-{prio}"
        r.set(
            f"bananas:job:{legacy_id}",
            f'{{"id":"{legacy_id}","name":"task","payload":"legacy:{prio}","status":"pending",'
            f'"priority":"{prio}","created_at":"2025-11-10T04:16:33Z","updated_at":"2025-11-10T04:16:33Z",'
            f'"attempts":0,"max_retries":3}}',
        )
        r.lpush(f"bananas:queue:{prio}", legacy_id)
        client.submit_job("task", f"default:{prio}", prio)
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=("default",), concurrency=1)
    await eventually(lambda: len(rec.runs) == 6, what="routed and legacy jobs to run")
    assert rec.payloads == [f"{src}:{p}" for p in PRIORITIES for src in ("default", "legacy")]
    assert all(run[2] == "default" for run in rec.runs)


async def test_legacy_lists_are_not_drained_by_other_keys(workers: Workers, r: redis.Redis) -> None:
    r.set(
        "bananas:job:legacy-1",
        '{"id":"legacy-1","name":"task","payload":1,"status":"pending","priority":"high",'
        '"created_at":"2025-11-10T04:16:33Z","updated_at":"2025-11-10T04:16:33Z","attempts":0,"max_retries":3}',
    )
    r.lpush("bananas:queue:high", "legacy-1")
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=("gpu",))
    await asyncio.sleep(0.2)
    assert rec.runs == []
    assert r.llen("bananas:queue:high") == 1
