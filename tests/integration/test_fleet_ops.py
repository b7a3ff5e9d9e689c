"""See and steer the fleet (issue 10): ``workers``, ``running``, ``queues`` with its
problems, ``pause``/``resume`` and ``purge``, against a real server, with in-process
workers and worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import pytest
import redis
from support import CliRunner, Recorder, Workers, eventually, status_of, wait_until

from bananas import AsyncClient, Client, Job, JobCancelledError, Registry, WorkerInfo
from bananas.config import QueueSelection
from bananas.core.fleet import WORKER_FIELDS

FIELDS = {
    "id", "host", "pid", "routing_keys", "priorities", "queue_selection", "concurrency", "running", "processed",
    "failed", "started_at", "heartbeat_at", "version", "mode", "handlers",
}  # fmt: skip
RUNNING_FIELDS = {"job_id", "name", "routing_key", "priority", "attempt", "worker_id", "started_at", "lease_deadline"}
ROUTE_FIELDS = {"routing_key", "ready", "in_flight", "consumers", "paused", "orphaned", "oldest_age_seconds"}


async def cli_json(cli: CliRunner, *args: str) -> Any:
    """Run ``bananas ARGS --json`` off the event loop (in-process workers keep running)."""
    done = await asyncio.to_thread(cli.run, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_workers_lists_each_live_worker_and_a_stopped_one_leaves_at_once(
    workers: Workers, cli: CliRunner, client: Client, redis_url: str
) -> None:
    def boom(job: Job) -> None:
        raise RuntimeError("no")

    registry = Registry()
    registry.add("ok", lambda job: None)
    registry.add("boom", boom)
    gpu = await workers.start(
        registry, routing_keys=("gpu", "email"), concurrency=3, lease_seconds=1.5,
        queue_selection=QueueSelection.PRIORITY_FIRST
    )
    other = await workers.start(Recorder(names=("resize",)).registry, routing_keys=("default",), lease_seconds=1.5)
    client.submit_job("ok", None, routing_key="gpu")
    client.submit_job("boom", None, routing_key="gpu", max_retries=0)

    def counted() -> list[WorkerInfo]:
        return [w for w in client.workers() if w.id == gpu.worker_id and w.processed == 2]

    (info,) = await eventually(counted, what="the worker's counters in its entry")
    assert info.failed == 1 and info.running == 0
    assert info.routing_keys == ["gpu", "email"] and info.priorities == ["high", "normal", "low"]
    assert info.queue_selection == "priority-first" and info.concurrency == 3 and info.mode == "default"
    assert info.handlers == ["boom", "ok"] and info.pid == os.getpid() and info.version
    assert info.started_at is not None and info.heartbeat_at is not None and info.heartbeat_at >= info.started_at

    listed = await cli_json(cli, "workers")
    assert sorted(w["id"] for w in listed) == sorted([gpu.worker_id, other.worker_id])
    for entry in listed:
        assert set(entry) == FIELDS and list(entry) == list(WORKER_FIELDS)
    shown = next(w for w in listed if w["id"] == gpu.worker_id)
    assert {k: v for k, v in shown.items() if k != "heartbeat_at"} == {
        k: v for k, v in info.to_json().items() if k != "heartbeat_at"
    }
    text = await asyncio.to_thread(cli.run, "workers")
    assert gpu.worker_id in text.stdout and "gpu,email" in text.stdout and "2 worker(s)" in text.stdout

    async with AsyncClient(redis_url) as aclient:
        assert {w.id for w in await aclient.workers()} == {gpu.worker_id, other.worker_id}
    await workers.stop(gpu)
    assert [w.id for w in client.workers()] == [other.worker_id]


def test_killed_worker_leaves_the_registry_within_two_lease_lengths(cli: CliRunner, client: Client) -> None:
    lease = 1.0
    proc = cli.worker("--routing-keys", "gpu", env={"JOB_LEASE_SECONDS": str(lease)})
    cli.wait_ready(proc)
    (worker_id,) = cli.worker_ids(proc.pid)
    wait_until(lambda: any(w.id == worker_id for w in client.workers()), what="the worker in the registry")
    os.killpg(proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    proc.wait(10)
    wait_until(lambda: all(w.id != worker_id for w in client.workers()), timeout=10, what="the killed worker to go")
    # The entry expires 2 x lease after the last heartbeat, which came before the kill.
    assert time.monotonic() - killed <= 2 * lease + 0.5


async def test_running_shows_a_job_in_flight(
    workers: Workers, cli: CliRunner, client: Client, r: redis.Redis
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def hold(job: Job) -> None:
        started.set()
        await release.wait()

    registry = Registry()
    registry.add("hold", hold)
    worker = await workers.start(registry, routing_keys=("gpu",), lease_seconds=3.0)
    before = time.time()
    job_id = client.submit_job("hold", None, "high", routing_key="gpu")
    await asyncio.wait_for(started.wait(), 10)
    await eventually(lambda: status_of(r, job_id) == "processing", what="its start recorded")

    (shown,) = await cli_json(cli, "running")
    assert set(shown) == RUNNING_FIELDS
    assert shown["job_id"] == job_id and shown["name"] == "hold" and shown["routing_key"] == "gpu"
    assert shown["priority"] == "high" and shown["attempt"] == 1 and shown["worker_id"] == worker.worker_id
    assert before - 1 <= shown["started_at"] <= time.time()
    assert shown["lease_deadline"] > time.time()
    stats = client.queue_stats()
    route = stats.route("gpu")
    assert route is not None and route.in_flight == 1 and route.consumers == 1
    # The worker's load is counted from the leases at read time, not a beat late.
    assert [(w.id, w.running) for w in client.workers()] == [(worker.worker_id, 1)]
    text = await asyncio.to_thread(cli.run, "running")
    assert job_id in text.stdout and worker.worker_id in text.stdout
    release.set()
    await eventually(lambda: not client.running(), what="the job to finish")


async def test_queues_flags_orphaned_keys_and_unrunnable_parked_jobs_problems_first(
    workers: Workers, cli: CliRunner, client: Client
) -> None:
    await workers.start(Recorder(names=("resize",)).registry, routing_keys=("gpu",))
    for _ in range(3):
        client.submit_job("send_email", None, routing_key="email")
    parked = client.submit_job("transcode", None, routing_key="gpu")
    await eventually(lambda: client.queue_stats().parked, what="the unknown job to be parked")
    assert status_of(client.redis, parked) == "pending"

    data = await cli_json(cli, "queues")
    assert set(data) == set(client.queue_stats().to_json())
    assert {"routes", "queues", "scheduled", "processing", "dead", "parked"} <= set(data)
    routes = {r["routing_key"]: r for r in data["routes"]}
    for entry in data["routes"]:
        assert set(entry) == ROUTE_FIELDS
    email, gpu = routes["email"], routes["gpu"]
    assert email["ready"] == 3 and email["consumers"] == 0 and email["orphaned"] is True
    assert email["in_flight"] == 0 and email["paused"] is False and email["oldest_age_seconds"] >= 0
    assert gpu["consumers"] == 1 and gpu["orphaned"] is False and gpu["ready"] == 1
    for entry in data["queues"]:
        assert {"routing_key", "priority", "ready", "legacy", "key", "oldest_age_seconds", "paused"} <= set(entry)
    normal = next(q for q in data["queues"] if q["routing_key"] == "email" and q["priority"] == "normal")
    assert normal["ready"] == 3 and normal["oldest_age_seconds"] >= 0 and normal["paused"] is False
    assert [(p["job_name"], p["waiting"], p["runnable"]) for p in data["parked"]] == [("transcode", 1, False)]

    text = (await asyncio.to_thread(cli.run, "queues")).stdout.splitlines()
    header = next(i for i, line in enumerate(text) if line.startswith("ROUTING KEY"))
    problems = text[:header]
    assert problems[0] == "Problems:"
    assert "  ! email: 3 jobs waiting, no worker listens on this routing key" in problems
    assert any("'transcode'" in line and "no live worker" in line for line in problems), problems


def test_pause_holds_across_two_worker_processes_and_resume_restarts_them(
    cli: CliRunner, client: Client, r: redis.Redis
) -> None:
    procs = [cli.worker("--routing-keys", "pz", "--concurrency", "2", pool=f"w{i}") for i in range(2)]
    for proc in procs:
        cli.wait_ready(proc)
    paused = cli.run("pause", "pz")
    assert paused.returncode == 0 and "paused pz" in paused.stdout
    held = [client.submit_job("noop", i, routing_key="pz") for i in range(6)]
    time.sleep(1.5)  # a few full scans and wake-ups of both workers
    assert [status_of(r, j) for j in held] == ["pending"] * 6
    stats = client.queue_stats()
    route = stats.route("pz")
    assert route is not None and route.paused and route.ready == 6 and route.consumers == 2 and not route.orphaned
    assert all(q.paused for q in stats.queues if q.routing_key == "pz")
    assert "paused (no worker starts their jobs): pz" in cli.run("workers").stdout

    # One priority only: high runs, low waits.
    client.resume("pz")
    wait_until(lambda: all(status_of(r, j) == "completed" for j in held), what="the held jobs to run")
    assert client.pause("pz", "low") is True
    low = client.submit_job("noop", None, "low", routing_key="pz")
    high = client.submit_job("noop", None, "high", routing_key="pz")
    wait_until(lambda: status_of(r, high) == "completed", what="the high job")
    time.sleep(1.0)
    assert status_of(r, low) == "pending"
    shown = client.queue_stats()
    assert [q.paused for q in shown.queues if q.routing_key == "pz" and not q.legacy] == [False, False, True]
    assert [p.to_json()["priority"] for p in client.paused()] == ["low"]
    resumed = cli.run("resume", "pz", "--priority", "low")
    assert resumed.returncode == 0 and "resumed pz (low priority)" in resumed.stdout
    wait_until(lambda: status_of(r, low) == "completed", what="the low job after resume")


def test_purge_counts_without_yes_and_removes_with_it(cli: CliRunner, client: Client, r: redis.Redis) -> None:
    normal = [client.submit_job("send_email", i, routing_key="email") for i in range(4)]
    high = client.submit_job("send_email", None, "high", routing_key="email")
    other = client.submit_job("send_email", None, routing_key="sms")

    dry = cli.run("purge", "email")
    assert dry.returncode == 0 and "5 ready job(s) would be removed" in dry.stdout and "--yes" in dry.stdout
    assert r.llen("bananas:route:email:queue:normal") == 4 and status_of(r, high) == "pending"

    one = cli.run("purge", "email", "--priority", "high", "--yes")
    assert one.returncode == 0 and "removed 1" in one.stdout
    assert status_of(r, high) == "cancelled" and r.llen("bananas:route:email:queue:normal") == 4
    assert 0 < r.ttl(f"bananas:job:{high}") <= 7 * 24 * 3600
    with pytest.raises(JobCancelledError):  # result waiters learn it, as with `bananas cancel`
        client.get_result(high, timeout=1)

    rest = cli.run("purge", "email", "--yes")
    assert rest.returncode == 0 and "removed 4" in rest.stdout
    assert [status_of(r, j) for j in normal] == ["cancelled"] * 4
    assert r.llen("bananas:route:email:queue:normal") == 0
    assert status_of(r, other) == "pending" and r.llen("bananas:route:sms:queue:normal") == 1
    assert client.purge("email") == 0

    bad = cli.run("purge", "e mail", "--yes")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "ROUTING_KEY" in bad.stderr


def test_purge_removes_parked_jobs_and_a_long_list_in_steps(client: Client, r: redis.Redis) -> None:
    ids = client.submit_many("bulk", list(range(4500)), routing_key="bulk")
    # A parked list, as a worker without the handler leaves it.
    r.lpush("bananas:route:bulk:queue:low:job:transcode", ids[0])
    r.sadd("bananas:route:bulk:parked", "low:transcode")
    r.lrem("bananas:route:bulk:queue:normal", 1, ids[0])
    assert client.purge("bulk", dry_run=True) == 4500
    assert client.purge("bulk") == 4500
    assert r.llen("bananas:route:bulk:queue:normal") == 0 and r.llen("bananas:route:bulk:queue:low:job:transcode") == 0
    assert {status_of(r, i) for i in ids[:10] + ids[-10:]} == {"cancelled"}


async def test_async_client_reads_and_acts_like_the_blocking_one(
    workers: Workers, redis_url: str, r: redis.Redis
) -> None:
    release = asyncio.Event()

    async def hold(job: Job) -> None:
        await release.wait()

    registry = Registry()
    registry.add("hold", hold)
    worker = await workers.start(registry, routing_keys=("gpu",))
    async with AsyncClient(redis_url) as client:
        running = await client.submit_job("hold", None, routing_key="gpu")
        await eventually(client.running, what="the job in flight")
        (shown,) = await client.running()
        assert shown.job_id == running and shown.worker_id == worker.worker_id
        assert await client.pause("gpu") is True
        waiting = [await client.submit_job("hold", i, routing_key="gpu") for i in range(3)]
        assert [p.routing_key for p in await client.paused()] == ["gpu"]
        stats = await client.queue_stats()
        route = stats.route("gpu")
        assert route is not None and route.paused and route.ready == 3 and route.in_flight == 1
        assert await client.purge("gpu", dry_run=True) == 3
        assert await client.purge("gpu") == 3
        assert [status_of(r, j) for j in waiting] == ["cancelled"] * 3
        release.set()  # a job already running when the key was paused finishes normally
        await eventually(lambda: status_of(r, running) == "completed", what="the running job to finish")
        assert await client.resume("gpu") is True and await client.paused() == []
