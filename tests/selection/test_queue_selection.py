"""Queue selection: strict and priority-first order, weighted shares, no starvation,
idle pick-up in every mode (issue 6, "Queue selection")."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter

import pytest
import redis.asyncio as aioredis
from selection_support import Pool, eventually, shares

from bananas import AsyncClient, Client, Job, Registry, WorkerSettings
from bananas.config import QueueSelection
from bananas.core.clock import SYSTEM_CLOCK
from bananas.redis.broker import Broker
from bananas.worker.fetcher import Fetcher

WEIGHTS = {"gpu": 6, "email": 3, "default": 1}
WEIGHTED_KEYS = "gpu:6,email:3,default:1"


def recorder(seen: list[tuple[str, str, object]]) -> Registry:
    registry = Registry()

    async def task(job: Job) -> None:
        seen.append((job.routing_key, job.priority.value, job.payload))

    registry.add("task", task)
    return registry


def fill_mixed(client: Client) -> None:
    """Two jobs in each of a:high, a:normal, a:low, b:high, b:normal, submitted out of order."""
    for key, prio in [("a", "low"), ("b", "normal"), ("a", "normal"), ("b", "high"), ("a", "high")]:
        client.submit_many("task", [f"{key}:{prio}:1", f"{key}:{prio}:2"], prio, routing_key=key)


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ("strict", ["a:high", "a:normal", "a:low", "b:high", "b:normal"]),
        ("priority-first", ["a:high", "b:high", "a:normal", "b:normal", "a:low"]),
    ],
)
async def test_order_with_concurrency_one(pool: Pool, client: Client, selection: str, expected: list[str]) -> None:
    fill_mixed(client)
    seen: list[tuple[str, str, object]] = []
    await pool.start_env(
        recorder(seen), {"WORKER_ROUTING_KEYS": "a,b", "WORKER_QUEUE_SELECTION": selection, "WORKER_CONCURRENCY": "1"}
    )
    await eventually(lambda: len(seen) == 10, what="10 jobs")
    order = [p for _, _, p in seen]
    want = [f"{q}:{i}" for q in expected for i in (1, 2)]  # FIFO within each list
    assert order == want, f"{selection}: {order}"


def fill(client: Client, per_key: int) -> None:
    for key in WEIGHTS:
        client.submit_many("task", [None] * per_key, routing_key=key)


async def drive_fetcher(redis_url: str, total: int, batch_sizes: list[int]) -> Counter[str]:
    """Drive the real dequeue script through Fetcher + Broker; count each job's source key."""
    settings = WorkerSettings.from_env({"REDIS_URL": redis_url, "WORKER_ROUTING_KEYS": WEIGHTED_KEYS})
    assert settings.queue_selection is QueueSelection.WEIGHTED
    conn = aioredis.Redis.from_url(redis_url)
    try:
        fetcher = Fetcher(Broker(conn), settings, None, SYSTEM_CLOCK)
        counts: Counter[str] = Counter()
        taken_total, i = 0, 0
        while taken_total < total:
            free = min(batch_sizes[i % len(batch_sizes)], total - taken_total)
            _, taken = await fetcher.fetch(free, {}, f"test:{i}")
            assert len(taken) == free, "every queue is full, so every free slot gets a job"
            counts.update(source.ref.routing_key for source, _, _ in taken)
            taken_total += len(taken)
            i += 1
        return counts
    finally:
        await conn.aclose()


async def test_weighted_shares_over_10000_jobs(redis_url: str, client: Client) -> None:
    fill(client, 6500)  # gpu needs 6,000 of them: every queue stays non-empty throughout
    # Free slots per fetch vary as they do in a busy worker (one pick per slot).
    batch_sizes = [1, 3, 10, 7, 2, 1, 5]
    counts = await drive_fetcher(redis_url, 10_000, batch_sizes)
    measured = shares(counts)
    print(f"\nweighted {WEIGHTED_KEYS}, 10,000 dequeues, slots per fetch {batch_sizes}: "
          + ", ".join(f"{k} {measured[k]:.2%}" for k in WEIGHTS))  # fmt: skip
    for key, weight in WEIGHTS.items():
        assert abs(measured[key] - weight / 10) <= 0.02, f"{key}: {measured[key]:.2%} vs {weight * 10}%"


async def test_weighted_shares_end_to_end(pool: Pool, client: Client) -> None:
    fill(client, 1500)  # gpu needs ~1,200 of the first 2,000
    seen: list[tuple[str, str, object]] = []
    worker = await pool.start_env(recorder(seen), {"WORKER_ROUTING_KEYS": WEIGHTED_KEYS, "WORKER_CONCURRENCY": "10"})
    await eventually(lambda: len(seen) >= 2000, timeout=30, what="2,000 jobs")
    await pool.stop(worker)
    measured = shares(Counter(key for key, _, _ in seen[:2000]))
    print("\nweighted end to end, first 2,000 jobs of a real worker (concurrency 10): "
          + ", ".join(f"{k} {measured.get(k, 0):.2%}" for k in WEIGHTS))  # fmt: skip
    for key, weight in WEIGHTS.items():
        assert abs(measured.get(key, 0) - weight / 10) <= 0.03, f"{key}: {measured.get(key, 0):.2%}"


async def test_weighted_does_not_starve_a_light_key(pool: Pool, client: Client) -> None:
    """A key of weight 1 behind a key of weight 20 with a deep backlog still gets its jobs."""
    client.submit_many("task", ["heavy"] * 600, routing_key="gpu")
    client.submit_many("task", ["light"] * 5, routing_key="default")
    seen: list[tuple[str, str, object]] = []
    worker = await pool.start_env(
        recorder(seen), {"WORKER_ROUTING_KEYS": "gpu:20,default:1", "WORKER_CONCURRENCY": "4"}
    )
    await eventually(lambda: sum(1 for k, _, _ in seen if k == "default") == 5, what="the 5 light jobs")
    await pool.stop(worker)
    light_at = [i + 1 for i, (k, _, _) in enumerate(seen) if k == "default"]
    # Heavy jobs that ran before the 5th light one (the worker runs on until stopped).
    heavy_before = light_at[-1] - len(light_at)
    print(f"\nweighted gpu:20,default:1: the light jobs ran as jobs {light_at}")
    assert heavy_before < 600, "the light jobs ran while the heavy key still had a backlog"
    # With weight 20:1 the 5th light job comes at about the 105th pick, not after 600.
    assert heavy_before <= 5 * 21 + 20, heavy_before


async def test_weighted_gives_every_slot_to_the_keys_that_have_work(pool: Pool, client: Client) -> None:
    """An empty heavy key does not leave slots idle: weights apply among non-empty queues."""
    client.submit_many("task", list(range(30)), routing_key="default")
    seen: list[tuple[str, str, object]] = []
    await pool.start_env(recorder(seen), {"WORKER_ROUTING_KEYS": "gpu:6,default:1", "WORKER_CONCURRENCY": "5"})
    await eventually(lambda: len(seen) == 30, what="30 jobs of the light key")


@pytest.mark.parametrize(
    "env",
    [
        {"WORKER_ROUTING_KEYS": "gpu,email,default"},
        {"WORKER_ROUTING_KEYS": "gpu,email,default", "WORKER_QUEUE_SELECTION": "priority-first"},
        {"WORKER_ROUTING_KEYS": WEIGHTED_KEYS},
        {"WORKER_ROUTING_KEYS": "gpu,email,default", "WORKER_MAX_WAIT": "low:30"},
    ],
    ids=["strict", "priority-first", "weighted", "strict+max-wait"],
)
async def test_idle_pickup_in_every_mode(pool: Pool, redis_url: str, env: dict[str, str]) -> None:
    registry = Registry()

    async def echo(job: Job) -> object:
        return job.payload

    registry.add("echo", echo)
    await pool.start_env(registry, {**env, "WORKER_CONCURRENCY": "4"})
    latencies: list[float] = []
    async with AsyncClient(redis_url) as client:
        for i, key in enumerate(["email", "gpu", "default", "email", "default"]):
            await asyncio.sleep(0.2)  # idle: the worker is waiting for a wake-up
            start = time.perf_counter()
            assert await client.submit_and_wait("echo", i, routing_key=key, timeout=5) == i
            latencies.append(time.perf_counter() - start)
    print(f"\nidle submit->result {env}: median {statistics.median(latencies) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms")  # fmt: skip
    assert max(latencies) < 1.0, latencies
