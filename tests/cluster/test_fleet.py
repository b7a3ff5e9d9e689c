"""Operating a fleet on Redis Cluster: dead letters and ``bananas dlq``, fleet limits
(``bananas limits``), ``bananas queues --json`` / ``bananas workers --json``, and the key
layout itself: after a job's whole life every key is in its routing key's slot, except the
fleet-wide ones (LAYOUT: docs/adr/0001-cluster-key-layout.md)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import Any

import pytest
from integration.support import Recorder, Workers, eventually
from redis.crc import key_slot

from bananas import Client, Job, Registry, chain, sig
from cluster.conftest import run_cli
from cluster.group import ClusterGroup, slot_of

pytestmark = pytest.mark.timeout(60)

M0, M1, M2 = "alpha", "delta", "beta"

#: Keys outside any routing key's slot, by name (LAYOUT.md "Fleet-wide").
FLEET_WIDE_EXACT = {
    "bananas:routing_keys",
    "bananas:workers",
    "bananas:limits",
    "bananas:schedules",
    "bananas:reconcile:lock",
}
FLEET_WIDE_PREFIXES = ("bananas:worker:", "bananas:schedule:", "bananas:throughput:")


def fleet_wide(key: str) -> bool:
    return key in FLEET_WIDE_EXACT or key.startswith(FLEET_WIDE_PREFIXES)


async def cli(env: dict[str, str], *args: str) -> Any:
    """``bananas ARGS`` off the event loop (in-process workers keep running); exit 0 asserted."""
    done = await asyncio.to_thread(run_cli, env, *args)
    assert done.returncode == 0, f"bananas {' '.join(args)}: {done.stderr}"
    return done.stdout


def status(client: Client, job_id: str) -> str | None:
    job = client.get_job(job_id)
    return None if job is None else job.status.value


async def test_dead_letters_across_masters_and_dlq_cli(
    client: Client, workers: Workers, cluster_env: dict[str, str]
) -> None:
    broken = [True]
    registry = Registry()

    @registry.handler("fragile")
    def fragile(job: Job) -> str:
        if broken[0]:
            raise ValueError(f"broken on {job.routing_key}")
        return f"fixed {job.payload}"

    await workers.start(registry, routing_keys=(M0, M1, M2))
    dead = {key: client.submit_job("fragile", n, routing_key=key, max_retries=0) for n, key in enumerate((M0, M1, M2))}
    await eventually(
        lambda: all(status(client, i) == "failed" for i in dead.values()), what="the three jobs to fail for good"
    )
    assert client.queue_stats().dead == 3

    listed = [json.loads(line) for line in (await cli(cluster_env, "dlq", "list", "--json")).splitlines()]
    assert sorted(row["id"] for row in listed) == sorted(dead.values())
    assert {row["id"]: row["routing_key"] for row in listed} == {i: k for k, i in dead.items()}
    assert all(row["error"].startswith("ValueError: broken on") for row in listed)
    only = (await cli(cluster_env, "dlq", "list", "--routing-key", M2, "--json")).splitlines()
    assert [json.loads(line)["id"] for line in only] == [dead[M2]]
    shown = await cli(cluster_env, "dlq", "show", dead[M1])
    assert dead[M1] in shown and f"broken on {M1}" in shown

    broken[0] = False
    await cli(cluster_env, "dlq", "retry", dead[M0])
    await eventually(lambda: status(client, dead[M0]) == "completed", what="the retried job to complete")
    assert await asyncio.to_thread(client.get_result, dead[M0]) == "fixed 0"
    await cli(cluster_env, "dlq", "retry", "--all", "--routing-key", M2)
    await eventually(lambda: status(client, dead[M2]) == "completed", what="the retried M2 job to complete")
    job = client.get_job(dead[M2])
    assert job is not None and job.routing_key == M2

    await cli(cluster_env, "dlq", "purge", "--yes")
    assert client.get_job(dead[M1]) is None
    assert client.queue_stats().dead == 0
    assert "no dead letters" in await cli(cluster_env, "dlq", "list")


class Probe:
    """Counts jobs running at once per routing key and records start times; jobs of a
    routing key in ``held`` wait until ``release()``."""

    def __init__(self, seconds: float, held: tuple[str, ...] = ()) -> None:
        self.seconds = seconds
        self.held = held
        self.gate = asyncio.Event()
        self.now: dict[str, int] = defaultdict(int)
        self.peak: dict[str, int] = defaultdict(int)
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.registry = Registry()
        self.registry.add("task", self.run)

    async def run(self, job: Job) -> None:
        key = job.routing_key
        self.starts[key].append(time.monotonic())
        self.now[key] += 1
        self.peak[key] = max(self.peak[key], self.now[key])
        if key in self.held:
            await self.gate.wait()
        await asyncio.sleep(self.seconds)
        self.now[key] -= 1


async def test_fleet_limits_hold_across_workers(client: Client, workers: Workers, cluster_env: dict[str, str]) -> None:
    out = await cli(cluster_env, "limits", "set", "gpu", "--concurrency", "2")
    assert out.strip() == "routing key gpu: concurrency 2"
    await cli(cluster_env, "limits", "set", "email", "--rate", "20/s")
    probe = Probe(0.1, held=("gpu",))
    gpu = client.submit_many("task", [None] * 10, routing_key="gpu")
    email = client.submit_many("task", [None] * 30, routing_key="email")
    free = client.submit_many("task", [None] * 8, routing_key=M0)
    for _ in range(2):
        await workers.start(probe.registry, routing_keys=("gpu", "email", M0), concurrency=4)
    await eventually(lambda: probe.now["gpu"] == 2, what="2 gpu jobs running")
    listed = await cli(cluster_env, "limits", "list")
    assert "routing key gpu: concurrency 2 (in flight 2)" in listed.splitlines(), listed
    assert "routing key email: rate 20/1s" in listed.splitlines(), listed
    await asyncio.sleep(0.3)
    assert probe.peak["gpu"] == 2 and len(probe.starts["gpu"]) == 2, "a third gpu job started"
    probe.gate.set()
    ids = gpu + email + free
    await eventually(lambda: all(status(client, i) == "completed" for i in ids), timeout=20, what="every job")
    starts = sorted(probe.starts["email"])
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    print(f"\ncluster: gpu --concurrency 2 peak {probe.peak['gpu']}; email --rate 20/s measured {rate:.1f}/s")
    assert probe.peak["gpu"] == 2
    assert probe.peak[M0] > 2, "an unlimited key was held back"
    assert 20 * 0.85 <= rate <= 20 * 1.1
    await cli(cluster_env, "limits", "clear", "gpu")
    assert "gpu" not in await cli(cluster_env, "limits", "list")


async def test_queues_and_workers_json(client: Client, workers: Workers, cluster_env: dict[str, str]) -> None:
    one = await workers.start(Recorder(names=("resize",)).registry, routing_keys=("gpu", M0))
    two = await workers.start(Recorder(names=("other",)).registry, routing_keys=(M1,), concurrency=3)
    for key, n in (("email", 3), (M2, 2)):
        client.submit_many("send_email", [None] * n, routing_key=key)
    client.submit_job("send_email", None, "high", routing_key=M2)

    data = json.loads(await cli(cluster_env, "queues", "--json"))
    assert set(data) == set(client.queue_stats().to_json())
    routes = {r["routing_key"]: r for r in data["routes"]}
    assert routes["email"]["ready"] == 3 and routes["email"]["orphaned"] is True
    assert routes[M2]["ready"] == 3 and routes[M2]["consumers"] == 0
    assert routes["gpu"]["consumers"] == 1 and routes[M1]["consumers"] == 1
    depth = {(q["routing_key"], q["priority"]): q["ready"] for q in data["queues"]}
    assert depth[(M2, "normal")] == 2 and depth[(M2, "high")] == 1 and depth[("email", "normal")] == 3

    listed = json.loads(await cli(cluster_env, "workers", "--json"))
    by_id = {w["id"]: w for w in listed}
    assert set(by_id) == {one.worker_id, two.worker_id}
    assert by_id[one.worker_id]["routing_keys"] == ["gpu", M0]
    assert by_id[two.worker_id]["routing_keys"] == [M1] and by_id[two.worker_id]["concurrency"] == 3
    assert {w.id for w in client.workers()} == {one.worker_id, two.worker_id}


async def test_every_key_of_a_job_life_is_in_its_routing_keys_slot(
    cluster: ClusterGroup, client: Client, workers: Workers, cluster_env: dict[str, str]
) -> None:
    """Submit (unique, bulk, scheduled), run with progress and a result, retry, bury, dead
    letter retry, cancel, pause/resume, a two-step chain, fleet limits: afterwards every key
    on every master is tagged with the routing key (so in its slot), or is fleet-wide."""
    rk = M1
    fail_first: set[str] = set()
    registry = Registry()

    @registry.handler("work")
    def work(job: Job) -> int:
        job.set_progress(0.5, "half way")
        return int(job.payload or 0) + int(job.parent_result or 0) + 1

    @registry.handler("flaky")
    def flaky(job: Job) -> str:
        if job.id not in fail_first:
            fail_first.add(job.id)
            raise RuntimeError("first attempt fails")
        return "ok"

    @registry.handler("doomed")
    def doomed(job: Job) -> None:
        raise ValueError("never")

    await cli(cluster_env, "limits", "set", rk, "--concurrency", "5")
    await cli(cluster_env, "limits", "set", rk, "--rate", "1000/s")
    await cli(cluster_env, "limits", "set", "--job-name", "work", "--rate", "1000/s")
    assert client.pause(rk) is True
    ids = [
        client.submit_job("work", 1, routing_key=rk, unique_key="only-once"),
        client.submit_job("work", 2, "high", routing_key=rk, result_ttl=600, expires_in=600),
        client.schedule_job("work", 3, delay=0.3, routing_key=rk),
        client.submit_job("flaky", None, "low", routing_key=rk),
        *client.submit_many("work", [4, 5], routing_key=rk),
    ]
    doomed_id = client.submit_job("doomed", None, routing_key=rk, max_retries=1)
    cancelled = client.submit_job("work", 6, routing_key=rk)
    assert client.cancel(cancelled) is True
    handle = client.submit(chain(sig("work", 10, routing_key=rk), sig("work", 20, routing_key=rk)))
    unknown = client.submit_job("nobody_handles_this", None, routing_key=rk)  # parked: no handler
    assert client.resume(rk) is True

    await workers.start(registry, routing_keys=(rk,))
    await eventually(lambda: all(status(client, i) == "completed" for i in ids), what="every job to complete")
    await eventually(lambda: status(client, doomed_id) == "failed", what="the doomed job to be buried")
    assert await asyncio.to_thread(handle.wait, 15) == 32
    await cli(cluster_env, "dlq", "retry", doomed_id)
    await eventually(lambda: status(client, doomed_id) == "failed", what="the doomed job to be buried again")
    await eventually(lambda: client.queue_stats().parked, what="the unknown job to be parked")
    assert status(client, unknown) == "pending"

    slot = slot_of(rk)
    misplaced: dict[str, list[str]] = {}
    seen = 0
    for node, keys in cluster.keys_by_node():
        for key in keys:
            seen += 1
            if fleet_wide(key):
                continue
            if f"{{{rk}}}" not in key or key_slot(key.encode()) != slot:
                misplaced.setdefault(f"node {node.port}", []).append(key)
    assert seen > 10
    assert misplaced == {}, f"keys outside {rk}'s slot {slot} that are not fleet-wide: {misplaced}"
