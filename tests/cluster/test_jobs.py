"""Bananas on a real Redis Cluster through its public API only (``redis+cluster://``):
routing, strict order across routing keys that live on different masters, priorities,
scheduled jobs and retries, results, cancel, pause/resume. In-process workers, as in
tests/integration (its helpers are reused)."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from integration.support import Recorder, Workers, eventually

from bananas import AsyncClient, Client, Job, JobCancelledError, JobFailedError, JobStatus, Registry
from cluster.conftest import run_cli
from cluster.group import ClusterGroup, master_index

pytestmark = pytest.mark.timeout(60)

PRIORITIES = ("high", "normal", "low")
#: One routing key on each master (0, 1, 2).
M0, M1, M2 = "alpha", "delta", "beta"


def test_routing_keys_of_this_module_are_on_three_masters() -> None:
    assert [master_index(k) for k in (M0, M1, M2)] == [0, 1, 2]
    assert [master_index(k) for k in ("gpu", "email", "video", "default")] == [2, 1, 0, 1]


async def test_jobs_reach_only_pools_of_their_routing_key(client: Client, workers: Workers) -> None:
    gpu = Recorder("gpu-only")
    email = Recorder("email-only")
    general = Recorder("email+alpha")
    await workers.start(gpu.registry, routing_keys=("gpu",))
    await workers.start(email.registry, routing_keys=("email",))
    await workers.start(general.registry, routing_keys=("email", M0))

    submitted: dict[str, str] = {}
    for i, (key, prio) in enumerate(itertools.product(["gpu", "email", M0], PRIORITIES * 3)):
        submitted[client.submit_job("task", i, prio, routing_key=key)] = key
    orphan = client.submit_job("task", "nobody listens", "high", routing_key="video")

    def runs() -> list[tuple[str, str, str, str, object]]:
        return gpu.runs + email.runs + general.runs

    await eventually(lambda: len(runs()) >= len(submitted), what="every routed job to run")
    await asyncio.sleep(0.3)  # a job wrongly delivered twice would show up by now
    allowed = {"gpu": {"gpu-only"}, "email": {"email-only", "email+alpha"}, M0: {"email+alpha"}}
    ran_ids = [run[1] for run in runs()]
    assert sorted(ran_ids) == sorted(submitted), "each job runs exactly once"
    for label, job_id, routing_key, _prio, _payload in runs():
        assert routing_key == submitted[job_id]
        assert label in allowed[routing_key], f"{routing_key} job ran on {label}"
    assert orphan not in ran_ids
    job = client.get_job(orphan)
    assert job is not None and job.status == JobStatus.PENDING and job.routing_key == "video"
    stats = client.queue_stats()
    assert stats.route("video").ready == 1


async def test_strict_order_across_routing_keys_on_three_masters(client: Client, workers: Workers) -> None:
    """``routing_keys=(M0, M1, M2)``, concurrency 1: M0 high, normal, low, then M1's, then
    M2's, each list FIFO, although the three keys are on three different masters."""
    for key in (M2, M1, M0, "gamma"):
        for prio in reversed(PRIORITIES):
            for i in range(2):
                client.submit_job("task", f"{key}:{prio}:{i}", prio, routing_key=key)
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=(M0, M1, M2), concurrency=1)
    expected = [f"{k}:{p}:{i}" for k in (M0, M1, M2) for p in PRIORITIES for i in range(2)]
    await eventually(lambda: len(rec.runs) >= len(expected), what="the three keys' jobs to run")
    assert rec.payloads == expected
    # gamma is not one of the worker's keys (and shares M0's master): untouched.
    assert client.queue_stats().route("gamma").ready == 6


async def test_order_is_rechecked_across_masters_before_every_fetch(client: Client, workers: Workers) -> None:
    """A better job that arrives on another master while the worker is busy is taken first."""
    gate = asyncio.Event()
    order: list[str] = []
    registry = Registry()

    @registry.handler("task")
    async def task(job: Job) -> None:
        order.append(job.payload)
        if job.payload == "first":
            await gate.wait()

    client.submit_job("task", "first", "low", routing_key=M2)
    await workers.start(registry, routing_keys=(M0, M2), concurrency=1)
    await eventually(lambda: order == ["first"], what="the first job to start")
    client.submit_job("task", "m2:high", "high", routing_key=M2)
    client.submit_job("task", "m0:low", "low", routing_key=M0)
    client.submit_job("task", "m0:high", "high", routing_key=M0)
    gate.set()
    await eventually(lambda: len(order) == 4, what="every job to run")
    assert order == ["first", "m0:high", "m0:low", "m2:high"]


async def test_priority_order_and_fifo_within_a_key(client: Client, workers: Workers) -> None:
    sequence = ["low", "high", "normal", "low", "normal", "high", "high", "low", "normal"]
    for i, prio in enumerate(sequence):
        client.submit_job("task", f"{prio}{i}", prio, routing_key="gpu")
    ids = client.submit_many("task", ["bulk0", "bulk1", "bulk2"], "high", routing_key="gpu")
    assert len(set(ids)) == 3
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=("gpu",), concurrency=1)
    await eventually(lambda: len(rec.runs) == len(sequence) + 3, what="every job to run")
    expected = [f"{p}{i}" for want in PRIORITIES for i, p in enumerate(sequence) if p == want]
    assert rec.payloads == [*expected[:3], "bulk0", "bulk1", "bulk2", *expected[3:]]


async def test_scheduled_jobs_and_retries_keep_their_routing_key(client: Client, workers: Workers) -> None:
    attempts: dict[str, list[tuple[str, str, float]]] = {}
    registry = Registry()

    @registry.handler("flaky")
    def flaky(job: Job) -> str:
        attempts.setdefault(job.id, []).append((job.routing_key, job.priority.value, time.monotonic()))
        if len(attempts[job.id]) < 3:
            raise RuntimeError(f"attempt {len(attempts[job.id])} fails")
        return "third time"

    @registry.handler("later")
    def later(job: Job) -> str:
        attempts.setdefault(job.id, []).append((job.routing_key, job.priority.value, time.monotonic()))
        return "on time"

    others = Recorder("others", names=("flaky", "later"))
    await workers.start(registry, routing_keys=(M1, M2))
    await workers.start(others.registry, routing_keys=(M0, "gpu", "default"))
    began = time.monotonic()
    scheduled = client.schedule_job("later", None, delay=0.8, priority="high", routing_key=M2)
    retried = client.submit_job("flaky", None, "low", routing_key=M1, max_retries=3)
    assert client.get_job(scheduled).status == JobStatus.SCHEDULED  # type: ignore[union-attr]
    # Sync waits off the event loop: the in-process workers run on it.
    assert await asyncio.to_thread(client.get_result, retried, 20) == "third time"
    assert await asyncio.to_thread(client.get_result, scheduled, 20) == "on time"
    assert [a[:2] for a in attempts[retried]] == [(M1, "low")] * 3
    assert [a[:2] for a in attempts[scheduled]] == [(M2, "high")]
    assert attempts[scheduled][0][2] - began >= 0.75, "the scheduled job ran early"
    job = client.get_job(retried)
    assert job is not None and job.attempts == 3 and job.routing_key == M1 and job.status == JobStatus.COMPLETED
    assert others.runs == [], "a retried or scheduled job reached another routing key's pool"


def result_registry() -> Registry:
    """``double`` (after 50 ms, so a waiter is subscribed before the result exists and is
    woken by its notice, not by its first read) and ``fail``."""
    registry = Registry()

    @registry.handler("double")
    async def double(job: Job) -> int:
        await asyncio.sleep(0.05)
        return int(job.payload) * 2

    @registry.handler("fail")
    async def fail(job: Job) -> None:
        await asyncio.sleep(0.05)
        raise ValueError("no good")

    return registry


async def test_results_on_every_master(cluster: ClusterGroup, workers: Workers) -> None:
    await workers.start(result_registry(), routing_keys=(M0, M1, M2))

    def sync_side() -> None:
        with Client(cluster.url) as client:
            for n, key in enumerate((M0, M1, M2)):
                job_id = client.submit_job("double", n + 1, routing_key=key)
                assert client.get_result(job_id, timeout=15) == 2 * (n + 1)
            outcome = client.get_job_result(job_id)
            assert outcome is not None and outcome.status == JobStatus.COMPLETED and outcome.routing_key == M2
            failed = client.submit_job("fail", None, routing_key=M1, max_retries=0)
            with pytest.raises(JobFailedError, match="no good"):
                client.get_result(failed, timeout=15)

    await asyncio.to_thread(sync_side)
    async with AsyncClient(cluster.url) as aclient:
        ids = [await aclient.submit_job("double", n, routing_key=key) for n, key in enumerate((M0, M1, M2))]
        assert await asyncio.gather(*(aclient.get_result(i, timeout=15) for i in ids)) == [0, 2, 4]


async def test_submit_and_wait_on_every_master(cluster: ClusterGroup, workers: Workers) -> None:
    await workers.start(result_registry(), routing_keys=(M0, M1, M2))

    def sync_side() -> None:
        with Client(cluster.url) as client:
            for n, key in enumerate((M0, M1, M2, M0)):
                assert client.submit_and_wait("double", n + 1, routing_key=key, timeout=10) == 2 * (n + 1), key
            with pytest.raises(JobFailedError, match="no good"):
                client.submit_and_wait("fail", None, routing_key=M1, max_retries=0, timeout=10)

    async with AsyncClient(cluster.url) as aclient:
        results = await asyncio.gather(
            *(aclient.submit_and_wait("double", n, routing_key=key, timeout=10) for n, key in enumerate((M0, M1, M2)))
        )
        assert results == [0, 2, 4]
        with pytest.raises(JobFailedError, match="no good"):
            await aclient.submit_and_wait("fail", None, routing_key=M2, max_retries=0, timeout=10)
    await asyncio.to_thread(sync_side)


async def test_cancel_a_waiting_and_a_running_job(
    client: Client, workers: Workers, cluster_env: dict[str, str]
) -> None:
    started = asyncio.Event()
    ran: list[str] = []
    registry = Registry()

    @registry.handler("hold")
    async def hold(job: Job) -> None:
        ran.append(job.id)
        started.set()
        await asyncio.sleep(30)

    waiting = client.submit_job("hold", None, routing_key=M1)
    assert client.cancel(waiting) is True
    assert client.get_job(waiting).status == JobStatus.CANCELLED  # type: ignore[union-attr]
    running = client.submit_job("hold", None, routing_key=M2)
    await workers.start(registry, routing_keys=(M1, M2))
    await asyncio.wait_for(started.wait(), 10)
    done = await asyncio.to_thread(run_cli, cluster_env, "cancel", running)
    assert done.returncode == 0, done.stderr
    await eventually(
        lambda: client.get_job(running).status == JobStatus.CANCELLED,  # type: ignore[union-attr]
        what="the running job to end cancelled",
    )
    with pytest.raises(JobCancelledError):
        await asyncio.to_thread(client.get_result, running, 5)
    assert ran == [running], "the cancelled waiting job ran"
    assert client.cancel(running) is False  # already finished


async def test_pause_and_resume(client: Client, workers: Workers, cluster_env: dict[str, str]) -> None:
    rec = Recorder()
    assert client.pause(M1) is True
    done = await asyncio.to_thread(run_cli, cluster_env, "pause", M2, "--priority", "low")
    assert done.returncode == 0, done.stderr
    await workers.start(rec.registry, routing_keys=(M0, M1, M2))
    held = client.submit_job("task", "m1", routing_key=M1)
    low = client.submit_job("task", "m2:low", "low", routing_key=M2)
    free = client.submit_job("task", "m2:high", "high", routing_key=M2)
    other = client.submit_job("task", "m0", routing_key=M0)
    await eventually(lambda: sorted(rec.ids) == sorted([free, other]), what="the jobs not paused to run")
    await asyncio.sleep(0.5)
    assert sorted(rec.ids) == sorted([free, other])
    assert {(p.routing_key, p.priority) for p in client.paused()} == {(M1, None), (M2, "low")}
    stats = client.queue_stats()
    assert stats.route(M1).paused and stats.route(M1).ready == 1
    # Resume from the CLI (M1) and from the client (M2 low).
    done = await asyncio.to_thread(run_cli, cluster_env, "resume", M1)
    assert done.returncode == 0, done.stderr
    assert client.resume(M2, "low") is True
    await eventually(lambda: len(rec.ids) == 4, what="the resumed jobs to run")
    assert set(rec.ids) == {held, low, free, other}
    assert client.paused() == []
