"""Starvation guard for strict selection: WORKER_MAX_WAIT lets a job that waited too
long run ahead of the strict order (issue 6, "Starvation guard")."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from selection_support import Pool, eventually, record

from bananas import Client, Job, Registry


def busy_registry(seen: list[tuple[str, str, float]], seconds: float, names: tuple[str, ...] = ("task",)) -> Registry:
    registry = Registry()

    async def task(job: Job) -> None:
        seen.append((job.routing_key, job.priority.value, time.monotonic()))
        await asyncio.sleep(seconds)

    for name in names:
        registry.add(name, task)
    return registry


BACKLOG = 120  # at 50 ms each, ~6 s of work on the preferred list


@pytest.mark.parametrize(
    ("env", "old", "busy"),
    [
        ({"WORKER_MAX_WAIT": "low:1"}, ("default", "low"), ("default", "high")),
        ({"WORKER_ROUTING_KEYS": "urgent,bulk", "WORKER_MAX_WAIT": "bulk:1"}, ("bulk", "normal"), ("urgent", "high")),
    ],
    ids=["by-priority", "by-routing-key"],
)
async def test_old_job_runs_ahead_of_a_steady_backlog(
    pool: Pool, client: Client, env: dict[str, str], old: tuple[str, str], busy: tuple[str, str]
) -> None:
    client.submit_job("task", "old", old[1], routing_key=old[0])
    client.submit_many("task", ["busy"] * BACKLOG, busy[1], routing_key=busy[0])
    seen: list[tuple[str, str, float]] = []
    started = time.monotonic()
    await pool.start_env(busy_registry(seen, 0.05), {**env, "WORKER_CONCURRENCY": "1"})
    await eventually(lambda: any(k == old[0] and p == old[1] for k, p, _ in seen), timeout=8, what="the old job")
    position = next(i for i, (k, p, _) in enumerate(seen) if (k, p) == old)
    at = seen[position][2] - started
    print(f"\nWORKER_MAX_WAIT {env['WORKER_MAX_WAIT']}: old job ran {at:.2f} s after start, "
          f"after {position} of {BACKLOG} backlog jobs")  # fmt: skip
    assert 0 < position < BACKLOG, "it ran ahead of the backlog, which was still there"
    assert at < 5.0, "within a few seconds"


async def test_without_guard_strict_order_makes_the_old_job_wait(pool: Pool, client: Client) -> None:
    old = client.submit_job("task", "old", "low")
    client.submit_many("task", ["busy"] * BACKLOG, "high")
    seen: list[tuple[str, str, float]] = []
    await pool.start_env(busy_registry(seen, 0.05), {"WORKER_CONCURRENCY": "1"})
    await asyncio.sleep(2.5)
    assert seen, "the worker is running the backlog"
    assert all(p == "high" for _, p, _ in seen), "strict order: low waits while high has jobs"
    assert client.get_job(old).status == "pending"  # type: ignore[union-attr]


async def test_guard_also_serves_an_old_parked_job(pool: Pool, client: Client, r: redis.Redis) -> None:
    """A job parked by a worker without its handler waits in its name's list: the guard
    must see it there too, or it waits behind the backlog despite WORKER_MAX_WAIT."""
    old = client.submit_job("transcode", "old", "low")
    seen: list[tuple[str, str, float]] = []
    plain = await pool.start(busy_registry(seen, 0.05), concurrency=1)  # handles "task" only
    await eventually(lambda: "parked" in record(r, old), what="the job to be parked")
    await pool.stop(plain)
    client.submit_many("task", ["busy"] * BACKLOG, "high")
    registry = busy_registry(seen, 0.05, ("task", "transcode"))
    started = time.monotonic()
    await pool.start_env(registry, {"WORKER_MAX_WAIT": "low:1", "WORKER_CONCURRENCY": "1"})
    await eventually(lambda: record(r, old)["status"] == "completed", timeout=8, what="the old parked job")
    done_after = sum(1 for _, p, _ in seen if p == "high")
    print(f"\nWORKER_MAX_WAIT low:1, old job parked: ran {time.monotonic() - started:.2f} s after start, "
          f"after {done_after} backlog jobs")  # fmt: skip
    assert done_after < BACKLOG
